"""Learning curves, tables and paired statistics from ``results.json`` (``assljax report``).

    records = load_records(["runs/npc", "runs/random"])   # concatenated, validated
    summary = summarize(records)                          # plain dict, JSON-ready
    paired = paired_comparison(records, reference="random")   # differences seed by seed
    paths = write_report(records, "report/")              # figures, tables, summary.json

A record is one (strategy, seed, round) of ``assljax run``, described by
:class:`RoundRecord` (the table in ``docs/results_schema.md`` is generated from it).
Curves are grouped by the record's ``label`` (the legend label; the strategy name unless
the config names variants), accuracies are reported in percent as mean ± population
standard deviation (``ddof=0``) over seeds. Runs with the same seed share the initial
labels and the initialization, so each label is also compared with a reference label
seed by seed (:mod:`assljax.report.paired`: mean difference, 95 % interval, wins / ties /
losses, and a verdict in words).

Modules: ``schema`` (RoundRecord, loading, validation), ``summary`` (aggregation over
seeds), ``paired`` (paired differences), ``tables`` (Markdown, CSV, terminal),
``figures`` (matplotlib, imported only inside the functions that draw; the Agg canvas
directly, no pyplot, so the report works headless and from a notebook alike),
``training`` (each run's ``metrics.jsonl`` averaged over seeds, for the training-curve
figure), ``output`` (the report folder and the command line).
"""

from __future__ import annotations

from assljax.report.figures import COLORS, MARKERS
from assljax.report.output import FILES as _FILES
from assljax.report.output import main, run_report, write_report
from assljax.report.paired import paired_comparison
from assljax.report.schema import RoundRecord, load_records, load_round_records
from assljax.report.summary import summarize
from assljax.report.training import load_training_curves

__all__ = ["COLORS", "MARKERS", "RoundRecord", "load_records", "load_round_records",
           "load_training_curves", "main", "paired_comparison", "run_report", "summarize",
           "write_report"]
