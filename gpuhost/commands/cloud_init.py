"""`gpuhost cloud-init render`: user-data that makes a fresh VM a gpuhost host on first boot."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gpuhost.fleet.cloud_init import CloudInitSettings, load_host_data, render, with_target_gpus
from gpuhost.errors import UsageError

app = typer.Typer(help="cloud-init user-data that installs gpuhost and runs the deploy on first boot.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("render")
def render_command(
    data: Optional[Path] = typer.Option(None, "--data", metavar="FILE",
                                        help="YAML mapping of host data (the inventory keys: torch, target_gpus, ...)."),
    target_gpus: list[str] = typer.Option([], "--target-gpus", metavar="GPU",
                                          help="GPUs to plan for (golden images); repeat or comma-separate. "
                                               "Replaces target_gpus from --data."),
    package: str = typer.Option(..., "--package", metavar="SPEC",
                                help="gpuhost==X.Y.Z (with --index-url or --find-links) or a wheel URL "
                                     "(with --package-sha256). Required: the `gpuhost` on PyPI is another "
                                     "project, so no default can work."),
    package_sha256: Optional[str] = typer.Option(None, "--package-sha256", metavar="HEX",
                                                 help="sha256 of the wheel at --package URL."),
    index_url: Optional[str] = typer.Option(None, "--index-url", metavar="URL", help="pip index to install from."),
    find_links: list[str] = typer.Option([], "--find-links", metavar="URL",
                                         help="Wheelhouse URL for gpuhost and its dependencies; repeatable."),
    no_index: bool = typer.Option(False, "--no-index", help="Install only from --find-links (and the wheel URL)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE",
                                          help="Write the user-data to FILE instead of stdout."),
) -> None:
    """Print #cloud-config user-data: install gpuhost (pinned) in a venv, run deploys/gpu_host.py on @local.

    Exit status: 0 once the user-data is out; 2 for bad flags or host data (on stderr; nothing written).
    """
    host_data, source = {}, "host data"
    if data is not None:
        try:
            text = data.read_text()
        except OSError as exc:
            raise UsageError(f"--data {data}: cannot read it ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"--data {data} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                             f"{exc.start}): save it as UTF-8") from None
        source = f"--data {data}"
        host_data = load_host_data(text, source)
    host_data = with_target_gpus(host_data, target_gpus)
    settings = CloudInitSettings(host_data=host_data, package=package, package_sha256=package_sha256,
                                 index_url=index_url, find_links=tuple(find_links), no_index=no_index,
                                 data_source=source)
    user_data = render(settings)
    if output is None:
        typer.echo(user_data, nl=False)
    else:
        try:
            output.write_text(user_data)
        except OSError as exc:
            raise UsageError(f"--output {output}: cannot write it ({exc.strerror})") from None


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cloud-init")
