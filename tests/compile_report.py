"""``--jax-compile-report=N``: where the suite's time goes to JAX compilation.

Half the suite's time is compilation (tracing, lowering to StableHLO, XLA's compile),
and ``--durations`` cannot tell it from computation. With this option every test process
(each xdist worker included) listens to JAX's compile-duration events and attributes
them to the running test; the terminal summary then shows the totals, the ``N`` tests
with the most compile time and the ``N`` functions compiled for longest. A persistent
compilation cache hit counts as a (short) compile. Work in subprocesses that a test
starts (CLI runs, notebooks) is not seen.
"""

from __future__ import annotations

import collections
import time

import pytest

# JAX's event names (jax/_src/dispatch.py); the report's column for each
_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
}
_KEY = "jax_compile_report"


class CompileReport:
  """Per-test trace / lower / compile seconds and compile counts, and per-function totals."""

  def __init__(self, config: pytest.Config, top: int):
    import jax.monitoring

    self.config = config
    self.top = top
    self.current: str | None = None
    self.tests: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    self.functions: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter)
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, duration: float, **kwargs) -> None:
    column = _EVENTS.get(event)
    if column is None or self.current is None:
      return
    self.tests[self.current][column] += duration
    if column == "compile":
      self.tests[self.current]["programs"] += 1
      function = self.functions[str(kwargs.get("fun_name", "?"))]
      function["seconds"] += duration
      function["programs"] += 1

  @pytest.hookimpl(hookwrapper=True)
  def pytest_runtest_protocol(self, item, nextitem):
    self.current, start = item.nodeid, time.perf_counter()
    yield
    self.tests[item.nodeid]["wall"] += time.perf_counter() - start
    self.current = None

  def pytest_sessionfinish(self, session):
    if hasattr(self.config, "workeroutput"):  # an xdist worker: hand the counts over
      self.config.workeroutput[_KEY] = {
          "tests": {k: dict(v) for k, v in self.tests.items()},
          "functions": {k: dict(v) for k, v in self.functions.items()}}

  @pytest.hookimpl(optionalhook=True)
  def pytest_testnodedown(self, node, error):
    received = getattr(node, "workeroutput", {}).get(_KEY)
    if received:
      for name, counts in received["tests"].items():
        self.tests[name].update(counts)
      for name, counts in received["functions"].items():
        self.functions[name].update(counts)

  def pytest_terminal_summary(self, terminalreporter):
    if hasattr(self.config, "workeroutput"):
      return
    write = terminalreporter.write_line
    terminalreporter.section("JAX compilation (in the test processes; subprocesses not seen)")
    total = collections.Counter()
    for counts in self.tests.values():
      total.update(counts)
    compiling = total["trace"] + total["lower"] + total["compile"]
    share = compiling / total["wall"] if total["wall"] else 0.0
    write(f"tests {total['wall']:.1f} s: tracing {total['trace']:.1f} s, lowering "
          f"{total['lower']:.1f} s, XLA compile {total['compile']:.1f} s "
          f"({int(total['programs'])} programs): {100 * share:.0f} % compiling")
    write(f"{'wall s':>8} {'trace':>7} {'lower':>7} {'compile':>8} {'programs':>8}  test")
    ranked = sorted(self.tests.items(), key=lambda kv: -kv[1]["compile"])[:self.top]
    for name, c in ranked:
      write(f"{c['wall']:8.1f} {c['trace']:7.1f} {c['lower']:7.1f} {c['compile']:8.1f} "
            f"{int(c['programs']):8d}  {name}")
    write(f"{'compile s':>9} {'programs':>8}  function")
    ranked = sorted(self.functions.items(), key=lambda kv: -kv[1]["seconds"])[:self.top]
    for name, c in ranked:
      write(f"{c['seconds']:9.1f} {int(c['programs']):8d}  {name}")


def addoption(parser: pytest.Parser) -> None:
  parser.addoption("--jax-compile-report", type=int, default=0, metavar="N",
                   help="after the run, show JAX's compile time per test and per function "
                        "(the N largest of each); 0 (default) for none")


def register(config: pytest.Config) -> None:
  top = config.getoption("--jax-compile-report")
  if top < 0:
    raise pytest.UsageError(f"--jax-compile-report must be 0 or more, got {top}")
  if top:
    config.pluginmanager.register(CompileReport(config, top), "jax-compile-report")
