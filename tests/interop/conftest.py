"""pytest plumbing for the Synapse interop tests.

* A failing test whose fixtures include an object with a ``failure_sections()`` method
  (the interop tests' ``interop`` fixture) gets those sections -- the requests it made and
  the last lines of every server's log -- appended to its failure report.
* Lines added to the session-wide ``interop_summary`` list (timings, the answers Synapse
  gave to hostile leaves) are printed in the terminal summary, also under ``-q`` and when
  everything passes.
"""

from __future__ import annotations

import os
from typing import Any, Generator

import pytest

_SUMMARY = pytest.StashKey[list]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # With MXL_REQUIRE_INTEROP=1 (as `make test` sets), a skipped interop test is a failure:
    # in the test suite Synapse must really be installed and every flow must really run.
    if os.environ.get("MXL_REQUIRE_INTEROP") == "1" and report.skipped:
        report.outcome = "failed"
    if not report.failed:
        return
    seen: set[int] = set()
    for value in getattr(item, "funcargs", {}).values():
        sections = getattr(value, "failure_sections", None)
        if not callable(sections) or id(value) in seen:
            continue
        seen.add(id(value))
        try:
            for title, text in sections():
                report.sections.append((title, text))
        except Exception as e:  # diagnostics must never hide the real failure
            report.sections.append(("interop diagnostics", f"could not collect: {e!r}"))


@pytest.fixture(scope="session")
def interop_summary(pytestconfig: pytest.Config) -> list:
    """Lines to print in the terminal summary."""
    return pytestconfig.stash.setdefault(_SUMMARY, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_SUMMARY, None)
    if not lines:
        return
    terminalreporter.section("Synapse interop summary")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """With MXL_REQUIRE_INTEROP=1 (as `make test` sets), a module skipped at import is a failure."""
    if os.environ.get("MXL_REQUIRE_INTEROP") == "1" and report.skipped:
        report.outcome = "failed"

