"""Every suite: a failing test is named the moment it fails, not only in the summary at the end,
so `./dev test` shows a broken unit test within its first minute (pytest's progress alone prints an `F`)."""

from __future__ import annotations

_config = None


def pytest_configure(config):
    global _config
    _config = config


def pytest_runtest_logreport(report):
    reporter = _config.pluginmanager.get_plugin("terminalreporter") if _config else None
    if not report.failed or reporter is None:
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    first_line = (crash.message.splitlines() or [""])[0] if crash else ""
    reporter.write_line("")
    reporter.write_line(f"FAILED {report.nodeid} ({report.when}): {first_line}", red=True, bold=True)
