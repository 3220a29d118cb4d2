"""assljax.report.output: the report folder and the command line."""

from __future__ import annotations

import subprocess
import sys

from report_toy import toy_records, write_results

from assljax import report


def test_main_prints_table_and_writes(tmp_path, capsys):
  run = write_results(tmp_path / "run", toy_records())
  assert report.main([str(run), "--out", str(tmp_path / "out")]) == 0
  out = capsys.readouterr().out
  assert "toy_exp — toyset" in out
  assert "npc (zero-shot)" in out and "68.0 ± 2.0" in out
  assert (tmp_path / "out" / "learning_curves.png").is_file()
  # every file but the training curves: the toy runs logged no metrics.jsonl
  expected = sorted(name for key, name in report._FILES.items() if key != "training_png")
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected


def test_module_cli_bad_input_and_light_import(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "assljax.report", str(tmp_path / "missing"),
                         "--out", str(tmp_path / "out")], capture_output=True, text=True)
  assert proc.returncode == 2
  assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
  code = "import sys, assljax.report; print('matplotlib' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
