"""The `gpuhost` command: what pyinfra's own CLI does not cover."""

from __future__ import annotations

import signal
import sys


def _interrupted_while_starting(signum, frame):
    """Ctrl-C while the commands are still being imported: the same line and status as later."""
    print("gpuhost: interrupted", file=sys.stderr, flush=True)
    raise SystemExit(130)


signal.signal(signal.SIGINT, _interrupted_while_starting)  # until main() runs (start-up takes ~0.5 s)

import importlib  # noqa: E402

import typer  # noqa: E402
from typer.core import TyperArgument, TyperCommand, TyperGroup  # noqa: E402

import gpuhost  # noqa: E402
from gpuhost.errors import GpuhostError  # noqa: E402

# Each module defines register(app) and adds its own commands.
COMMAND_MODULES = [
    "gpuhost.commands.resolve",
    "gpuhost.commands.inspect",
    "gpuhost.commands.cloud_init",
    "gpuhost.commands.upgrade",
    "gpuhost.commands.health_sync",
    "gpuhost.commands.keys",
    "gpuhost.commands.monitoring",
    "gpuhost.commands.data",
    "gpuhost.commands.workspaces",
    "gpuhost.commands.mirror",
]

app = typer.Typer(
    help="Turn bare Linux servers into verified PyTorch-on-CUDA hosts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"gpuhost {gpuhost.__version__}")
        raise typer.Exit(0)


@app.callback()
def _group(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                        help="Print gpuhost's version and exit.")) -> None:
    """Keep `gpuhost` a group of subcommands even while only one exists."""


class OnePlaceholderStyle:
    """One placeholder style in every help page and usage line: a flag shows none, an option its
    metavar or its name in capitals (--limit HOST, --driver VERSION), an argument its name in
    capitals (`gpuhost inspect [OPTIONS] INVENTORY`), never typer's `<bool>`, `<str>`, `{inventory}`."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument):
                param.metavar = param.metavar or param.name.upper()
                param.display_type_rich = lambda ctx: None  # the name says it: no `<str>` beside it
            elif getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
            elif not param.metavar:
                param.metavar = param.name.upper()
        return params

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                typer_pieces = param.get_usage_pieces(ctx)
                name = param.metavar + ("..." if param.nargs != 1 else "")
                name = name if param.required else f"[{name}]"
                pieces = [name if piece in typer_pieces else piece for piece in pieces]
        return pieces


class GpuhostCommand(OnePlaceholderStyle, TyperCommand):
    pass


class GpuhostGroup(OnePlaceholderStyle, TyperGroup):
    pass


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command still being written: skip it
                continue
            raise
        module.register(app)
    typers = [app] + [group.typer_instance for group in app.registered_groups if group.typer_instance]
    for info in [app.info, *app.registered_groups]:  # typer's default is a placeholder, not a class
        if not isinstance(info.cls, type):
            info.cls = GpuhostGroup
    for each in typers:
        for command in each.registered_commands:
            if command.cls in (None, TyperCommand):  # typer fills in its own class
                command.cls = GpuhostCommand


_register_commands()


def _is_usage_error(exc: Exception) -> bool:
    """Click's usage errors (typer may vendor its own click, so match by interface)."""
    return hasattr(exc, "format_message") and getattr(exc, "exit_code", None) == 2


def main() -> None:
    """Entry point: bad flags and user-facing errors become one stderr line and exit status 2."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, KeyboardInterrupt below
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
        message = exc.format_message()
        param = getattr(exc, "param", None)
        if type(exc).__name__ == "MissingParameter" and getattr(param, "help", None):  # what to give, and how
            message = f"{message.rstrip('.')}: {' '.join(param.help.split())}"
        print(f"gpuhost: error: {message} (see {where})", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("gpuhost: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
