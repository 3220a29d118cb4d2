"""SIGKILL a real run at several moments, resume each time, and get the same results.

The run is a subprocess with the `assljax` logger at DEBUG on stderr; the test kills
it right after chosen log lines: during training, at the start of an acquisition and
in the middle of writing a checkpoint. After the last kill it resumes to the end and
compares `results.json` (without wall-clock timings) with an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from assljax.app.cli import main

from loop_helpers import without_timings

pytestmark = pytest.mark.slow

_SCRIPT = """
import logging, sys
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("%(message)s"))
logger = logging.getLogger("assljax")
logger.addHandler(handler)
logger.setLevel(logging.DEBUG)
from assljax.app.cli import main
sys.exit(main(sys.argv[1:]))
"""

# (log line that triggers the kill, how many times it must have been seen, delay)
_KILLS = [
    ("phase train", 1, 1.5),          # inside training (compilation or steps)
    ("phase acquire", 2, 0.0),        # at an acquisition
    (": saving to", 9, 0.0),          # while a checkpoint is being written
]


def _start(argv):
  return subprocess.Popen([sys.executable, "-c", _SCRIPT, *argv], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _kill_when(process, marker, count, delay):
  seen = 0
  for line in process.stderr:
    if marker in line:
      seen += 1
      if seen == count:
        if delay:
          time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        break
  process.wait()
  return process.returncode


def test_sigkill_and_resume_match_an_uninterrupted_run(tiny_config_path, tmp_path):
  run_args = ["--config.strategies=['random', 'entropy']"]
  reference = str(tmp_path / "reference")
  assert main(["run", "--config", tiny_config_path, "--workdir", reference, *run_args]) == 0

  workdir = str(tmp_path / "killed")
  argv = ["run", "--config", tiny_config_path, "--workdir", workdir, *run_args]
  killed = 0
  for marker, count, delay in _KILLS:
    code = _kill_when(_start(argv), marker, count, delay)
    killed += code == -signal.SIGKILL
    argv = ["run", "--workdir", workdir, "--resume"]
  assert killed == len(_KILLS), "every kill must land before the run finishes"
  final = _start(argv)
  _, err = final.communicate(timeout=600)
  assert final.returncode == 0, err[-2000:]

  with open(os.path.join(reference, "results.json")) as f:
    expected = json.load(f)
  with open(os.path.join(workdir, "results.json")) as f:
    actual = json.load(f)
  assert len(actual) == 6
  assert without_timings(actual) == without_timings(expected)
