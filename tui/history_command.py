"""`medgemma-tui history`: list, show, export, purge and verify the recorded runs.

    medgemma-tui history                      the newest runs, one line each
    medgemma-tui history show ID              one run: what was asked, what the model wrote, how it ended
    medgemma-tui history export ID --format md|json
    medgemma-tui history purge --before 2026-01-31 | --all
    medgemma-tui history verify               recompute the hash chain

Every stored string is neutralised before it is printed: a note or a model's
text cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path

from engine import (
    DISCLAIMER,
    Case,
    ConfigError,
    History,
    RunRecord,
    atomic_write_text,
    exports_dir,
    handoff_markdown,
    neutralise,
    open_history,
    purge_exports,
    to_text,
)

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2


def add_history_parser(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser("history", help="list, show, export, purge or verify the recorded runs")
    actions = history.add_subparsers(dest="history_action", metavar="ACTION")
    listing = actions.add_parser("list", help="the newest runs, one line each (the default)")
    listing.add_argument("--limit", type=int, default=50, help="how many runs (default 50)")
    show = actions.add_parser("show", help="one run in full")
    show.add_argument("id", type=int)
    export = actions.add_parser("export", help="write one run's handoff note (md) or record (json)")
    export.add_argument("id", type=int)
    export.add_argument("--format", choices=["md", "json"], default="md")
    export.add_argument("--out", type=Path, help="folder to write to (default: the exports folder)")
    purge = actions.add_parser("purge", help="delete runs and exported files")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", help="delete what was recorded before this date (YYYY-MM-DD)")
    which.add_argument("--all", action="store_true", help="delete every finished run and export")
    actions.add_parser("verify", help="check that no record was changed or removed")


def run_history(args: argparse.Namespace) -> int:
    action = args.history_action or "list"
    try:
        before = _date(args.before) if action == "purge" and args.before else None
        history = open_history()
    except (ConfigError, OSError, ValueError) as exc:
        print(f"medgemma-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if action == "list":
            return _list(history, getattr(args, "limit", 50))
        if action == "show":
            return _show(history, args.id)
        if action == "export":
            return _export(history, args.id, args.format, args.out)
        if action == "purge":
            return _purge(history, before)
        return _verify(history)
    except OSError as exc:
        print(f"medgemma-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        history.close()


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        raise ValueError(f"--before takes a date such as 2026-01-31, not {text!r}") from None


def _list(history: History, limit: int) -> int:
    runs = history.runs(limit)
    if history.recovered:
        print(f"{history.recovered} run(s) left unfinished by a stopped process are now marked interrupted")
    if not runs:
        print("no runs recorded yet")
        return EXIT_OK
    print(f"{'ID':>5}  {'started':<16}  {'status':<11}  {'from':<8}  {'risk':<8}  note")
    for run in runs:
        risk = run.risk_level or "-"
        print(
            f"{run.id:>5}  {run.started_at[:16].replace('T', ' '):<16}  {run.status:<11}  "
            f"{run.origin or '-':<8}  {risk:<8}  {neutralise(run.title)}"
        )
    return EXIT_OK


def _find(history: History, run_id: int) -> RunRecord | None:
    run = history.run(run_id)
    if run is None:
        print(f"medgemma-tui: no run {run_id} in the history (see `medgemma-tui history`)", file=sys.stderr)
    return run


def _show(history: History, run_id: int) -> int:
    run = _find(history, run_id)
    if run is None:
        return EXIT_BAD_INPUT
    rows = {
        "run": str(run.id),
        "status": run.status + (f": {run.message}" if run.message else ""),
        "from": run.origin or "-",
        "started": run.started_at,
        "ended": run.ended_at or "-",
        "model": f"{run.model or '-'} ({run.model_path or 'path unknown'})",
        "model sha256": run.model_sha256 or "-",
        "prompt version": run.prompt_version or "-",
        "settings": json.dumps(run.settings, ensure_ascii=False),
        "note sha256": run.note_sha256,
        "image": f"{run.image_path} (sha256 {run.image_sha256 or 'not read'})" if run.image_path else "-",
        "vitals": json.dumps({k: v for k, v in run.vitals.items() if v is not None}, ensure_ascii=False),
        "timings": json.dumps(run.timings),
        "chain record": f"{run.seq} {run.record_hash}" if run.seq else "not sealed yet",
    }
    for label, value in rows.items():
        print(f"{label:<15} {neutralise(value)}")
    print("\nNote:\n" + neutralise(run.note))
    print("\nWhat the model wrote:\n" + (neutralise(run.streamed_text) or "(nothing)"))
    assessment = run.assessment()
    if assessment is not None:
        print("\nChecked assessment:\n" + neutralise(to_text(assessment, Case(run.note, run.image_path))))
    return EXIT_OK


def _export(history: History, run_id: int, form: str, folder: Path | None) -> int:
    run = _find(history, run_id)
    if run is None:
        return EXIT_BAD_INPUT
    path = (folder or exports_dir()) / f"run-{run.id}.{form}"
    atomic_write_text(path, _json_export(run) if form == "json" else _markdown_export(run))
    print(path)
    return EXIT_OK


def _json_export(run: RunRecord) -> str:
    payload = {"disclaimer": DISCLAIMER, "run": dataclasses.asdict(run)}
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _markdown_export(run: RunRecord) -> str:
    assessment = run.assessment()
    if assessment is not None:
        return handoff_markdown(
            assessment, run.note, when=run.started_at, image_path=run.image_path, vitals=run.vitals
        )
    lines = [
        f"# Run {run.id}: {run.status}, no checked assessment",
        "",
        f"**{DISCLAIMER}**",
        "",
        f"Started {run.started_at}; {run.message or 'the run ended without a checked result'}.",
        "",
        "## Note",
        "",
        "```text",
        run.note.replace("```", "'''"),
        "```",
        "",
        "## What the model wrote (unchecked)",
        "",
        "```text",
        (run.streamed_text or "(nothing)").replace("```", "'''"),
        "```",
        "",
    ]
    return "\n".join(lines)


def _purge(history: History, before: datetime | None) -> int:
    records = history.purge(before)
    files = purge_exports(before)
    scope = f"recorded before {before.date().isoformat()}" if before else "all"
    print(f"purged {records} run(s) and {files} exported file(s) ({scope})")
    return EXIT_OK


def _verify(history: History) -> int:
    report = history.verify()
    if report.intact:
        print(
            f"history intact: {report.records} record(s) verified"
            + (f", {report.purged} purged on purpose" if report.purged else "")
        )
        return EXIT_OK
    for problem in report.problems:
        print(f"medgemma-tui: {problem}", file=sys.stderr)
    print(f"history NOT intact: {len(report.problems)} problem(s)", file=sys.stderr)
    return EXIT_PROBLEM
