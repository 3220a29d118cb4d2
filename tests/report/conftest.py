"""Fixtures of the report tests."""

from __future__ import annotations

import pytest
from report_toy import toy_records, write_results

from assljax import report


@pytest.fixture(scope="session")
def written(tmp_path_factory):
  """The report of the toy results, written once: {key: path}."""
  root = tmp_path_factory.mktemp("report")
  workdir = write_results(root / "run", toy_records())
  paths = report.run_report([workdir], root / "out", quiet=True)
  return paths
