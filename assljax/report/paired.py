"""Paired differences to a reference strategy, seed by seed (``assljax report --reference``).

Runs of one config with the same seed share the initial labels and the initialization
(and the training keys), so the seed-to-seed spread, often larger than the gap between
strategies, cancels in the difference ``strategy − reference`` of the same seed. For each
label other than the reference:

- per number of labels x: ``d_s = 100 (acc(label, s, x) − acc(reference, s, x))``
  (percentage points) over the seeds s that have both at x;
- AULC (area under the learning curve) of a run = its mean test accuracy (%) over all its
  rounds, the first included; ``d_s = AULC(label, s) − AULC(reference, s)`` over the seeds
  whose two runs cover the same label counts (a seed whose runs differ, e.g. one still
  running, is left out and listed).

Each set of differences gets its mean, a confidence interval and wins / ties / losses (a
tie is ``|d_s| <= tie_tolerance`` percentage points; default 1e-9, i.e. equal accuracies).

Interval (``interval``):

- ``"t"`` (default): the paired t interval ``mean ± t_{n-1}((1 + level)/2) · sd / √n``
  with the sample standard deviation (``ddof=1``) of the n differences. Exact when the
  differences are normal, and honest at the few seeds an AL study has: the t quantile
  widens the interval (4.30 at 3 seeds, 12.7 at 2).
- ``"bootstrap"``: the percentile interval of the mean over ``resamples`` resamples of
  the seeds with replacement (fixed ``seed``, so reproducible). It makes no normality
  assumption but is too narrow at few seeds (at 2 seeds it is the range of the two
  differences), so it is not the default.

With fewer than 2 paired seeds the interval is undefined (NaN, ``null`` in JSON) and the
verdict says so. The verdict reads ``"not distinguishable from REF at N seeds"`` when the
interval contains 0, and ``"ahead of REF (95 % CI excludes 0)"`` / ``"behind REF (95 % CI
excludes 0)"`` when it does not. One comparison per label count and per label is made,
with no correction for multiple comparisons: with many of them, an interval that just
excludes 0 now and then is expected by chance.

scipy is imported only inside the function that needs its t quantile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from assljax._validation import UserInputError
from assljax.report.schema import RoundRecord, as_round_records
from assljax.report.summary import unique

INTERVALS = ("t", "bootstrap")
DEFAULT_REFERENCE = "random"
UNIT = "percentage points"


def _interval(d: np.ndarray, *, interval: str, level: float, resamples: int,
              seed: int) -> tuple[float, float]:
  """The ``level`` confidence interval of the mean of the differences ``d`` (n,)."""
  n = d.size
  if n < 2:
    return math.nan, math.nan
  mean = float(d.mean())
  if interval == "t":
    from scipy import stats
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half
  rng = np.random.default_rng(seed)
  means = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
  lo, hi = np.percentile(means, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
  return float(lo), float(hi)


def verdict(n: int, ci_low: float, ci_high: float, *, reference: str,
            level: float = 0.95) -> str:
  """The result in words, so that nobody reads noise as a result.

  Args:
    n: number of paired seeds behind the interval.
    ci_low, ci_high: the interval of the mean difference (NaN when undefined).
    reference: the reference label.
    level: the confidence level of the interval.
  """
  if n == 0:
    return "no paired seeds"
  if n < 2 or not (math.isfinite(ci_low) and math.isfinite(ci_high)):
    return "1 paired seed: no interval (needs 2 or more seeds)"
  if ci_low > 0:
    return f"ahead of {reference} ({100 * level:g} % CI excludes 0)"
  if ci_high < 0:
    return f"behind {reference} ({100 * level:g} % CI excludes 0)"
  return f"not distinguishable from {reference} at {n} seeds"


def _stats(d: Sequence[float], *, reference: str, interval: str, level: float,
           tie_tolerance: float, resamples: int, seed: int) -> dict:
  d = np.asarray(d, np.float64)
  lo, hi = _interval(d, interval=interval, level=level, resamples=resamples, seed=seed)
  return {
    "n_seeds": int(d.size),
    "mean": float(d.mean()) if d.size else math.nan,
    "ci_low": lo,
    "ci_high": hi,
    "wins": int(np.sum(d > tie_tolerance)),
    "ties": int(np.sum(np.abs(d) <= tie_tolerance)),
    "losses": int(np.sum(d < -tie_tolerance)),
    "verdict": verdict(int(d.size), lo, hi, reference=reference, level=level),
  }


def check_options(*, interval: str = "t", level: float = 0.95, tie_tolerance: float = 1e-9,
                  resamples: int = 10_000, seed: int = 0) -> None:
  """Raises ValueError naming the first option of :func:`paired_comparison` out of range."""
  if interval not in INTERVALS:
    raise UserInputError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}.")
  if isinstance(level, bool) or not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
    raise UserInputError(f"level must be a number in (0, 1), got {level!r}.")
  if isinstance(tie_tolerance, bool) or not (isinstance(tie_tolerance, (int, float))
                                             and math.isfinite(tie_tolerance)
                                             and tie_tolerance >= 0):
    raise UserInputError(f"tie_tolerance must be a finite number >= 0, got {tie_tolerance!r}.")
  if isinstance(resamples, bool) or not (isinstance(resamples, int) and resamples >= 1):
    raise UserInputError(f"resamples must be a positive int, got {resamples!r}.")
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise UserInputError(f"seed must be an int, got {seed!r}.")


def paired_comparison(records: Sequence[Mapping | RoundRecord], *,
                      reference: str = DEFAULT_REFERENCE, interval: str = "t",
                      level: float = 0.95, tie_tolerance: float = 1e-9,
                      resamples: int = 10_000, seed: int = 0) -> dict:
  """Differences of each label to ``reference``, paired by seed (see the module docstring).

  Args:
    records: result records (dicts as from ``load_records``, or ``RoundRecord``).
    reference: the label every other label is compared with.
    interval: ``"t"`` (paired t interval over seeds) or ``"bootstrap"`` (percentile
      bootstrap of the seeds).
    level: confidence level in (0, 1).
    tie_tolerance: a difference with ``|d| <= tie_tolerance`` (percentage points) is a tie.
    resamples: bootstrap resamples (``interval="bootstrap"`` only).
    seed: seed of the bootstrap resampling.

  Returns:
    A JSON-ready dict (NaN marks an undefined value): ``reference``, ``interval``,
    ``level``, ``tie_tolerance``, ``resamples`` and ``seed`` (bootstrap only), ``unit``
    (``"percentage points"``), ``labels`` (the other labels, in order of first
    appearance) and ``comparisons[label]`` with

    - ``strategy``; ``seeds``: seeds both labels have; ``unpaired_seeds``: ``{"label":
      [...], "reference": [...]}`` seeds only one of them has (left out);
      ``initial_labels_differ``: paired seeds whose first rounds have different
      labeled-class histograms (not paired by their initial labels: read with care);
    - ``by_num_labels``: per label count x both have (ascending, length n_x): ``x``,
      ``seeds`` and ``differences`` (per x, the paired seeds and their d_s in pp),
      ``label_mean``/``reference_mean`` (accuracy in % over those seeds), and the lists
      ``n_seeds``, ``mean``, ``ci_low``, ``ci_high``, ``wins``, ``ties``, ``losses``,
      ``verdict``;
    - ``aulc``: the same scalars for the AULC difference, with ``seeds``,
      ``differences``, ``label_mean``/``reference_mean`` (AULC in %), and
      ``excluded_seeds``: paired seeds whose two runs cover different label counts.

  Raises:
    ValueError: when a record is invalid, ``reference`` is not a label of the records,
      or an option is out of range.
  """
  check_options(interval=interval, level=level, tie_tolerance=tie_tolerance,
                resamples=resamples, seed=seed)
  records = as_round_records(records)
  labels = unique(r.label for r in records)
  if reference not in labels:
    raise UserInputError(f"reference label {reference!r} is not in the records (labels: "
                         f"{', '.join(repr(label) for label in labels)}); choose one with "
                         "--reference.")
  options = dict(reference=reference, interval=interval, level=float(level),
                 tie_tolerance=float(tie_tolerance), resamples=resamples, seed=seed)

  # runs[label][seed]: {num_labels: accuracy in %}; first[(label, seed)]: its first round.
  runs: dict[str, dict[int, dict[int, float]]] = {label: {} for label in labels}
  first: dict[tuple[str, int], RoundRecord] = {}
  strategy_of = {}
  for r in records:
    strategy_of[r.label] = r.strategy
    runs[r.label].setdefault(r.seed, {})[r.num_labels] = 100.0 * r.test_accuracy
    key = (r.label, r.seed)
    if key not in first or r.round < first[key].round:
      first[key] = r

  ref_runs = runs[reference]
  comparisons = {}
  for label in labels:
    if label == reference:
      continue
    own = runs[label]
    seeds = sorted(set(own) & set(ref_runs))
    xs = sorted({x for s in own for x in own[s]} & {x for s in ref_runs for x in ref_runs[s]})
    by_x: dict = {"x": xs, "seeds": [], "differences": [], "label_mean": [],
                  "reference_mean": []}
    for name in ("n_seeds", "mean", "ci_low", "ci_high", "wins", "ties", "losses", "verdict"):
      by_x[name] = []
    for x in xs:
      paired = [s for s in seeds if x in own[s] and x in ref_runs[s]]
      d = [own[s][x] - ref_runs[s][x] for s in paired]
      by_x["seeds"].append(paired)
      by_x["differences"].append(d)
      by_x["label_mean"].append(float(np.mean([own[s][x] for s in paired])) if paired
                                else math.nan)
      by_x["reference_mean"].append(float(np.mean([ref_runs[s][x] for s in paired]))
                                    if paired else math.nan)
      for name, value in _stats(d, **options).items():
        by_x[name].append(value)

    aulc_seeds = [s for s in seeds if sorted(own[s]) == sorted(ref_runs[s])]
    label_aulc = [float(np.mean(list(own[s].values()))) for s in aulc_seeds]
    ref_aulc = [float(np.mean(list(ref_runs[s].values()))) for s in aulc_seeds]
    aulc = {"seeds": aulc_seeds,
            "differences": [a - b for a, b in zip(label_aulc, ref_aulc)],
            "label_mean": float(np.mean(label_aulc)) if aulc_seeds else math.nan,
            "reference_mean": float(np.mean(ref_aulc)) if aulc_seeds else math.nan,
            "excluded_seeds": [s for s in seeds if s not in aulc_seeds]}
    aulc.update(_stats(aulc["differences"], **options))

    comparisons[label] = {
      "strategy": strategy_of[label],
      "seeds": seeds,
      "unpaired_seeds": {"label": sorted(set(own) - set(ref_runs)),
                         "reference": sorted(set(ref_runs) - set(own))},
      "initial_labels_differ": [
          s for s in seeds if first[(label, s)].labeled_class_histogram
          != first[(reference, s)].labeled_class_histogram],
      "by_num_labels": by_x,
      "aulc": aulc,
    }

  out = {"reference": reference, "interval": interval, "level": float(level),
         "tie_tolerance": float(tie_tolerance)}
  if interval == "bootstrap":
    out.update(resamples=resamples, seed=seed)
  out.update(unit=UNIT, labels=[label for label in labels if label != reference],
             comparisons=comparisons)
  return out


def describe_interval(paired: Mapping) -> str:
  """The interval method in words, e.g. ``"95 % paired t interval over seeds"``."""
  pct = f"{100 * paired['level']:g} %"
  if paired["interval"] == "t":
    return f"{pct} paired t interval over seeds"
  return (f"{pct} percentile bootstrap interval over seeds ({paired['resamples']:,} "
          f"resamples, seed {paired['seed']})")
