"""CRC ablation (its Table 2): the group size G.

Same protocol as ``crc_cifar10`` (CIFAR-10, WRN-28-2 + FixMatch, a random balanced
first query of Q labels, then rounds of Q labels, 3 seeds); CRC runs with
G in {1, Q/10, Q/5, Q/2, Q} (for Q = 50: 1, 5, 10, 25, 50), labels ``crc_gG``. G = 1
scores single samples (no diversity within a query), G = Q scores whole candidate
queries. The NTK is the strategy's default (as in ``crc_cifar10``).

Arguments: ``q=50|100`` (default 50), ``r=4``, ``data=tfds|folder|PATH``, ``runlocal``
(CPU-sized, as in ``crc_cifar10``).

    assljax run --config experiments/configs/crc_ablation_group.py --workdir runs/crc_groups
    assljax run --config experiments/configs/crc_ablation_group.py:runlocal --workdir runs/crc_groups_local
"""

from __future__ import annotations

import common
import crc_cifar10
from crc_ablation_layers import _without_runlocal


def group_sizes(q: int) -> tuple[int, ...]:
  """The ablated group sizes for query size ``q``: 1, q/10, q/5, q/2, q."""
  return (1, q // 10, q // 5, q // 2, q)


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, q=50, r=4, data="tfds")
  config = crc_cifar10.get_config(_without_runlocal(arg))
  q = config.al.query_size
  config.experiment = f"crc_ablation_group_q{q}"
  config.strategies = []
  config.strategy_options = {}
  for g in group_sizes(q):
    common.add_strategy(config, f"crc_g{g}", name="crc", group_size=g)
  if args["runlocal"]:
    common.small_wrn(config)
    common.runlocal(config, num_classes=10)
  return config
