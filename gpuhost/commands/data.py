"""`gpuhost data status`: what in the vendor data is out of date, from the data's own dates.

Lists every citation of the data files by age (the date it was read), the unverified ones with
their reason, and the driver branches whose end of life has passed or is near. Exit status 1
when a citation is older than --max-age days or the newest LTS or production branch (what the
default policies plan) is past its end of life, so CI can run it.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from importlib import resources

import typer

from gpuhost import yamlfile
from gpuhost.plan.matrix import DATA_FILES, load_matrix

FILES = ([("gpuhost.plan", f"data/{name}") for name in DATA_FILES]
         + [("gpuhost.driver", "data/driver_sources.yaml"), ("gpuhost.containers", "data/container_repos.yaml")])


def citations() -> list[dict]:
    """Every citation of every data file: {file, id, cite, read, verified, reason}."""
    rows = []
    for package, path in FILES:
        data = yamlfile.load(resources.files(package).joinpath(path).read_text())
        for name, cite in (data.get("citations") or {}).items():
            rows.append({"file": path.split("/")[-1], "id": name, **cite})
    return sorted(rows, key=lambda r: r["read"])


def status(today: date, max_age: int) -> dict:
    rows = citations()
    stale = [r for r in rows if (today - date.fromisoformat(r["read"])).days > max_age]
    branches = load_matrix().branches
    newest = {max(b.branch for b in branches if b.kind == kind) for kind in ("lts", "production")}
    ended, ending = [], []
    for b in branches:
        if b.end_of_life is None:
            continue
        eol = date.fromisoformat(b.end_of_life)
        (ended if eol < today else ending if eol - today <= timedelta(days=180) else []).append(
            {"branch": b.branch, "kind": b.kind, "end_of_life": b.end_of_life})
    return {"today": today.isoformat(), "max_age_days": max_age, "citations": rows, "stale": stale,
            "unverified": [r for r in rows if not r["verified"]], "ended": ended, "ending": ending,
            "ended_lts": [b for b in ended if b["branch"] in newest]}  # what the default policies plan


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="The vendor data: sources, ages, end-of-life dates.", no_args_is_help=True)

    @data_app.command("status")
    def data_status(
        max_age: int = typer.Option(120, "--max-age", help="Days after which a citation is to be re-read."),
        today: str = typer.Option(None, "--today", help="Judge as of this date (YYYY-MM-DD)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """List the data's citations by age, the unverified ones, and branches past or near end of life."""
        result = status(date.fromisoformat(today) if today else date.today(), max_age)
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{'READ':<11} {'AGE':>4}  {'OK':<3} {'FILE':<20} CITATION")
            for r in result["citations"]:
                age = (date.fromisoformat(result["today"]) - date.fromisoformat(r["read"])).days
                print(f"{r['read']:<11} {age:>4}  {'yes' if r['verified'] else 'no':<3} {r['file']:<20} {r['id']}"
                      + ("" if r["verified"] else f": {r['reason']}"))
            for b in result["ended"]:
                print(f"ended: R{b['branch']} ({b['kind']}) reached end of life on {b['end_of_life']}")
            for b in result["ending"]:
                print(f"ending: R{b['branch']} ({b['kind']}) reaches end of life on {b['end_of_life']}")
            print(f"{len(result['stale'])} citation(s) older than {max_age} days, "
                  f"{len(result['unverified'])} unverified, {len(result['ended'])} branch(es) past end of life")
        if result["stale"] or result["ended_lts"]:
            raise typer.Exit(1)

    app.add_typer(data_app, name="data")
