"""CRC Tab. 1: the NTK over the last layer vs over all layers, G = 5, Q = 50, CIFAR-10.

Convergence rate control (Kong et al., ICLR 2021 submission; ../shared/papers/000),
Table 1 (p. 5, §3.3). The same facts, checked by a test, are in ``paper_tables.py``.

* The ``crc_cifar10`` protocol at Q = 50 (Tab. 1's "Random sampling / Last" row is Tab. 3's
  CRC row at 100-200 labels): CIFAR-10, WRN-28-2 + FixMatch at its reference settings
  (Nesterov SGD lr 0.03, weight decay 5e-4, EMA 0.999, batch 64, mu = 7, threshold 0.95,
  lambda_u = 1, cosine over 2^20 steps, retrained from scratch every round), 3 seeds
  ("averaged over 3 trials").
* Strategies (Tab. 1's rows): CRC with G = 5 on the last-layer NTK in closed form
  (``crc_last_layer``: C (h(x)^T h(x') + 1) from penultimate features) and on the
  empirical NTK of all parameters (``crc_all_layers``: autodiff).
* Tab. 1's two halves, chosen with the argument ``first=``:
  ``random`` (default, "Random sampling"): the first query is 50 random class-balanced
  labels (5 per class), then three CRC queries of 50: 50 -> 100, 150, 200 (the columns);
  ``untrained`` ("Randomly initialized model", App. A.1's transferability protocol): no
  initial labels; the first query of 50 is made by CRC with the randomly initialized
  network (``al.mode = "random_init_first"``), the network is then trained from another
  random initialization, and two more queries follow: 0 -> 50, 100, 150 (the columns).
* ``train=reference|crc``: FixMatch's 2^20 steps per round, or CRC §4.1's early stopping
  (as in ``crc_cifar10``).

What still differs from the paper:
* Tab. 1 ran "All" with one trial in the randomly-initialized half; here every row has 3
  seeds.
* As in ``crc_cifar10``: training length with ``train=reference``, the validation size
  with ``train=crc``, leaky ReLU 0.1 instead of ReLU, no best-of-several first-round model.

Arguments: ``first=random|untrained`` (default random), ``train=reference|crc``,
``data=tfds|PATH``, ``runlocal`` (CPU-sized, as in ``crc_cifar10``).

    assljax run --config experiments/configs/crc_ablation_layers.py --workdir runs/crc_layers
    assljax run --config experiments/configs/crc_ablation_layers.py:first=untrained --workdir runs/crc_layers_untrained
    assljax run --config experiments/configs/crc_ablation_layers.py:runlocal --workdir runs/crc_layers_local
"""

from __future__ import annotations

from assljax.app import common

crc_cifar10 = common.sibling(__file__, "crc_cifar10")

Q = 50
G = 5
QUERIES = 3          # the random half: 100, 150, 200 after the random 50
FIRST = ("random", "untrained")
KERNELS = {"crc_last_layer": "last_layer", "crc_all_layers": "all_layers"}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, first="random", train="reference", data="tfds")
  first = common.choose("first", args["first"], FIRST)
  config = common.new_config(f"crc_ablation_layers_{first}")
  common.cifar10_source(config, args["data"])
  crc_cifar10.protocol(config, q=Q, queries=QUERIES, train=args["train"])
  if first == "untrained":
    # no labels; query 1 by the untrained network, then queries 2 and 3: 50, 100, 150
    config.al.update(initial_per_class=0, budget=3 * Q, mode="random_init_first")
  for label, kernel in KERNELS.items():
    common.add_strategy(config, label, name="crc", kernel=kernel, group_size=G)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
