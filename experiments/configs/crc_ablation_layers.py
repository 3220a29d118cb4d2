"""CRC ablation (its Table 1): the NTK over all layers vs over the last layer only.

Same protocol as ``crc_cifar10`` (CIFAR-10, WRN-28-2 + FixMatch, a random balanced
first query of Q labels, then rounds of Q labels, G = Q/10, 3 seeds); two CRC runs
that differ only in the kernel of the Gram matrix: the empirical NTK of all parameters
(``crc_all_layers``: autodiff, jvp/vmap) and the last-layer NTK in closed form
(``crc_last_layer``: C (h(x)^T h(x') + 1) from penultimate features, rank <= d + 1, hence
CRC's smallest *positive* eigenvalue).

Arguments: ``q=50|100`` (default 50), ``r=4`` (queries after the first), ``data=tfds|
folder|PATH``, ``runlocal`` (CPU-sized, as in ``crc_cifar10``).

    assljax run --config experiments/configs/crc_ablation_layers.py --workdir runs/crc_layers
    assljax run --config experiments/configs/crc_ablation_layers.py:runlocal --workdir runs/crc_layers_local
"""

from __future__ import annotations

import common
import crc_cifar10

KERNELS = {"crc_all_layers": "all_layers", "crc_last_layer": "last_layer"}


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, q=50, r=4, data="tfds")
  config = crc_cifar10.get_config(_without_runlocal(arg))
  q = config.al.query_size
  config.experiment = f"crc_ablation_layers_q{q}"
  config.strategies = []
  config.strategy_options = {}
  for label, kernel in KERNELS.items():
    common.add_strategy(config, label, name="crc", kernel=kernel, group_size=q // 10)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config


def _without_runlocal(arg: str | None) -> str:
  items = [] if arg is None else [i.strip() for i in str(arg).split(",") if i.strip()]
  return ",".join(i for i in items if i != "runlocal")
