"""Every suite: a broken test shows as early as it can.

- Order: in-process tests first, then tests that start processes (the CLI, vagrant, fact scripts,
  apt: their modules import subprocess), then the e2e tests (the lab). File order is kept within
  each group and a module's tests stay together, so a broken unit test fails in the first seconds
  even on a busy machine, and a plain `pytest` runs the fast tests before the lab.
- A failing test is named the moment it fails, not only in the summary at the end (pytest's
  progress alone prints an `F`).
"""

from __future__ import annotations

_config = None


def pytest_configure(config):
    global _config
    _config = config


def pytest_collection_modifyitems(session, config, items):
    def group(item) -> int:
        if item.get_closest_marker("e2e"):
            return 2
        module = getattr(item, "module", None)
        return 1 if getattr(module, "subprocess", None) is not None else 0
    items.sort(key=group)


def pytest_runtest_logreport(report):
    reporter = _config.pluginmanager.get_plugin("terminalreporter") if _config else None
    if not report.failed or reporter is None:
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    first_line = (crash.message.splitlines() or [""])[0] if crash else ""
    reporter.write_line("")
    reporter.write_line(f"FAILED {report.nodeid} ({report.when}): {first_line}", red=True, bold=True)
