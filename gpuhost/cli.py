"""The `gpuhost` command: what pyinfra's own CLI does not cover."""

from __future__ import annotations

import importlib
import sys

import typer

from gpuhost.errors import GpuhostError

# Each module defines register(app) and adds its own commands.
COMMAND_MODULES = [
    "gpuhost.commands.resolve",
    "gpuhost.commands.inspect",
    "gpuhost.commands.cloud_init",
    "gpuhost.commands.upgrade",
    "gpuhost.commands.mirror",
]

app = typer.Typer(
    help="Turn bare Linux servers into verified PyTorch-on-CUDA hosts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Keep `gpuhost` a group of subcommands even while only one exists."""


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command still being written: skip it
                continue
            raise
        module.register(app)


_register_commands()


def _is_usage_error(exc: Exception) -> bool:
    """Click's usage errors (typer may vendor its own click, so match by interface)."""
    return hasattr(exc, "format_message") and getattr(exc, "exit_code", None) == 2


def main() -> None:
    """Entry point: bad flags and user-facing errors become one stderr line and exit status 2."""
    try:
        code = app(standalone_mode=False)
    except GpuhostError as exc:
        print(f"gpuhost: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        if not exc.format_message():  # `gpuhost` alone: the help was shown
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = ("gpuhost " + ctx.command_path.split(" ", 1)[1] + " --help"
                 if ctx is not None and ctx.parent else "gpuhost --help")
        print(f"gpuhost: error: {exc.format_message()} (see {where})", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("gpuhost: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
