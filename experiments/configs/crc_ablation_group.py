"""CRC Tab. 2: the group size G in {2, 5, 10, 100} at Q = 100 on CIFAR-10.

Convergence rate control (Kong et al., ICLR 2021 submission; ../shared/papers/000),
Table 2 (p. 6; §3.4: "This trade-off is established in Tab. 2 when Q = 100, averaged over
three realizations for G = 2, 5, 10, 100"). The same facts, checked by a test, are in
``paper_tables.py``.

* The ``crc_cifar10`` protocol at Q = 100 (Tab. 2's G = 10 row is Tab. 3's CRC row at
  Q = 100): CIFAR-10, WRN-28-2 + FixMatch at its reference settings (Nesterov SGD lr 0.03,
  weight decay 5e-4, EMA 0.999, batch 64, mu = 7, threshold 0.95, lambda_u = 1, cosine over
  2^20 steps, retrained from scratch every round), 3 seeds.
* Labels: "random sampling for the first query": 100 random class-balanced labels (10
  per class), then query steps 1 ... 5 of Q = 100 by CRC: 100 -> 200, 300, 400, 500, 600.
* Strategies: CRC with G = 2, 5, 10, 100 (labels ``crc_g2``, ``crc_g5``, ``crc_g10``,
  ``crc_g100``; Q/G groups per query) on the last-layer NTK (Alg. 2).
* ``train=reference|crc``: FixMatch's 2^20 steps per round, or CRC §4.1's early stopping
  (as in ``crc_cifar10``).

What still differs from the paper: as in ``crc_cifar10`` (training length with
``train=reference``, the validation size with ``train=crc``, leaky ReLU 0.1 instead of
ReLU, no best-of-several first-round model).

Arguments: ``train=reference|crc``, ``data=tfds|PATH``, ``runlocal`` (CPU-sized,
as in ``crc_cifar10``).

    assljax run --config experiments/configs/crc_ablation_group.py --workdir runs/crc_groups
    assljax run --config experiments/configs/crc_ablation_group.py:runlocal --workdir runs/crc_groups_local
"""

from __future__ import annotations

from assljax.app import common

crc_cifar10 = common.sibling(__file__, "crc_cifar10")

Q = 100
GROUP_SIZES = (2, 5, 10, 100)


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, train="reference", data="tfds")
  config = common.new_config("crc_ablation_group")
  common.cifar10_source(config, args["data"])
  crc_cifar10.protocol(config, q=Q, queries=crc_cifar10.QUERIES, train=args["train"])
  for g in GROUP_SIZES:
    common.add_strategy(config, f"crc_g{g}", name="crc", group_size=g)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
