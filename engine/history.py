"""Every run in SQLite, chained by hashes, and the files exported for a handoff.

The store lives in the data dir (`history.sqlite3`, 0600 with its `-wal` and
`-shm` files), in WAL mode so a reader never waits for the writer. Its schema
version is `PRAGMA user_version`; `MIGRATIONS` are applied inside one
`BEGIN IMMEDIATE` transaction, so two processes opening a new store at the same
moment cannot both migrate it.

One row per run, whatever its end: a run is inserted as `running` when it
starts, its streamed text is appended as it arrives (engine.audit), and when it
ends it is *sealed*: given the next place in the hash chain and a hash over its
content and the previous record's hash. A run left `running` by a process that
no longer exists (killed, power cut) is sealed as `interrupted`, with the text
it had written, the next time the store is opened. `verify` recomputes the
chain; purged records leave only their hash behind, so the chain still holds.

`export_assessment` writes a JSON file (the whole checked assessment) and a
Markdown handoff note (what a colleague reads, in SBAR order, rendered by
`engine.report` like the terminal report, disclaimer included) under
`<data dir>/exports/` and returns both paths so the front end can show them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from engine.config import data_dir
from engine.events import Vitals
from engine.files import atomic_write_text, create_private_file, make_private, private_dir
from engine.report import Case, form_vitals, to_markdown
from engine.schema import DISCLAIMER, Assessment

HISTORY_FILE = "history.sqlite3"
BUSY_TIMEOUT_S = 10.0
GENESIS_HASH = "0" * 64  # the "previous hash" of the first record

Status = Literal["running", "completed", "cancelled", "failed", "interrupted"]
FINAL_STATUSES: tuple[Status, ...] = ("completed", "cancelled", "failed", "interrupted")

MIGRATIONS: tuple[str, ...] = (
    # 1: one row per finished assessment
    """
    CREATE TABLE assessments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        note TEXT NOT NULL,
        image_path TEXT,
        vitals_json TEXT NOT NULL DEFAULT '{}',
        risk_level TEXT NOT NULL,
        summary TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        assessment_json TEXT NOT NULL
    );
    """,
    # 2: timings kept apart for benchmarks and audits; newest-first listing
    """
    ALTER TABLE assessments ADD COLUMN timings_json TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX assessments_created ON assessments (created_at DESC);
    """,
    # 3: every run, whatever its end, in one hash chain; finished assessments move in
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '',
        owner TEXT NOT NULL DEFAULT '',
        request_id TEXT NOT NULL DEFAULT '',
        mode TEXT NOT NULL DEFAULT 'assessment',
        note TEXT NOT NULL,
        note_sha256 TEXT NOT NULL,
        image_path TEXT,
        image_sha256 TEXT,
        vitals_json TEXT NOT NULL DEFAULT '{}',
        model TEXT NOT NULL DEFAULT '',
        model_path TEXT,
        model_sha256 TEXT,
        settings_json TEXT NOT NULL DEFAULT '{}',
        prompt_version TEXT NOT NULL DEFAULT '',
        streamed_text TEXT NOT NULL DEFAULT '',
        result_json TEXT,
        risk_level TEXT,
        summary TEXT,
        flags_json TEXT NOT NULL DEFAULT '[]',
        timings_json TEXT NOT NULL DEFAULT '{}',
        message TEXT,
        seq INTEGER UNIQUE,
        prev_hash TEXT,
        record_hash TEXT
    );
    INSERT INTO runs (id, started_at, ended_at, status, note, note_sha256, image_path, vitals_json,
                      model, result_json, risk_level, summary, timings_json)
        SELECT id, created_at, created_at, 'completed', note, sha256_hex(note), image_path, vitals_json,
               model, assessment_json, risk_level, summary, timings_json FROM assessments;
    DROP TABLE assessments;
    CREATE INDEX runs_started ON runs (started_at);
    CREATE INDEX runs_status ON runs (status);
    CREATE TABLE purged (
        seq INTEGER PRIMARY KEY,
        record_hash TEXT NOT NULL,
        purged_at TEXT NOT NULL
    );
    CREATE TABLE chain_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        record_hash TEXT NOT NULL
    );
    """,
)

# What a record's hash covers, in this order: everything it says about the run.
HASHED_COLUMNS = (
    "id",
    "started_at",
    "ended_at",
    "status",
    "origin",
    "request_id",
    "mode",
    "note",
    "note_sha256",
    "image_path",
    "image_sha256",
    "vitals_json",
    "model",
    "model_path",
    "model_sha256",
    "settings_json",
    "prompt_version",
    "streamed_text",
    "result_json",
    "risk_level",
    "summary",
    "flags_json",
    "timings_json",
    "message",
    "seq",
    "prev_hash",
)
RUN_COLUMNS = (*HASHED_COLUMNS, "owner", "record_hash")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now_text() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A finished assessment, as the app's history screen lists and reopens it."""

    id: int
    created_at: str
    note: str
    image_path: str | None
    vitals: dict[str, Any]
    risk_level: str
    summary: str
    model: str
    assessment: Assessment
    timings: dict[str, Any]

    @property
    def title(self) -> str:
        return note_title(self.note)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the audit trail holds it, whatever its status."""

    id: int
    started_at: str
    ended_at: str | None
    status: str
    origin: str
    note: str
    note_sha256: str
    image_path: str | None
    image_sha256: str | None
    vitals: dict[str, Any]
    model: str
    model_path: str | None
    model_sha256: str | None
    settings: dict[str, Any]
    prompt_version: str
    streamed_text: str
    result: dict[str, Any] | None
    risk_level: str | None
    flags: list[Any]
    timings: dict[str, Any]
    message: str | None
    seq: int | None
    record_hash: str | None

    @property
    def title(self) -> str:
        return note_title(self.note)

    def assessment(self) -> Assessment | None:
        """The checked assessment, when the run produced one this version can read."""
        if self.result is None:
            return None
        try:
            return Assessment.model_validate(self.result)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What `History.verify` found: how many records it checked and each problem in one line."""

    records: int
    purged: int
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def note_title(note: str) -> str:
    first_line = note.strip().splitlines()[0] if note.strip() else "(empty note)"
    return first_line[:60]


def history_path() -> Path:
    return data_dir() / HISTORY_FILE


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to date in one write transaction; returns the version reached.

    The version is read again once the write lock is held, so a second process
    that was waiting finds the work done instead of repeating it.
    """
    connection.create_function("sha256_hex", 1, sha256_text, deterministic=True)
    if connection.in_transaction:
        connection.commit()
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for script in MIGRATIONS[version:]:
            for statement in filter(str.strip, script.split(";")):
                connection.execute(statement)
        if version < len(MIGRATIONS):
            connection.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if need be) the store at `path`, safely beside other processes doing the same."""
    private_dir(path.parent)
    create_private_file(path)  # SQLite gives the -wal and -shm files the same mode
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    connection.execute("PRAGMA secure_delete = ON")  # a purged note is overwritten, not just unlinked
    _use_wal(connection)
    connection.execute("PRAGMA synchronous = NORMAL")
    migrate(connection)
    for suffix in ("-wal", "-shm"):
        make_private(path.with_name(path.name + suffix))
    return connection


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch to WAL once; a store already in WAL mode is left alone (it is a persistent setting)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            connection.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            # changing the journal mode needs the database to itself; another process is opening it too
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def process_owner(pid: int | None = None) -> str:
    """Who is writing a running record: the process id and its start time (pids are reused)."""
    pid = pid if pid is not None else os.getpid()
    return f"{pid}:{_process_start(pid)}"


def owner_alive(owner: str) -> bool:
    pid_text, _, started = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process with that id: not ours, so ours is gone
    return _process_start(pid) == started


def _process_start(pid: int) -> str:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat_line.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


class History:
    """The store of runs. Safe to share between threads; each process opens its own."""

    def __init__(self, path: Path | None = None, *, retention_days: int | None = None) -> None:
        self.path = path or history_path()
        self._connection = connect(self.path)
        self._lock = threading.RLock()
        self.recovered = self.mark_interrupted()
        self._seal_pending()
        self.purged_on_open = self.purge_older_than(retention_days) if retention_days else 0

    @property
    def version(self) -> int:
        return cast(int, self._connection.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its start."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    # --- recording a run ----------------------------------------------------------

    def start_run(
        self,
        note: str,
        *,
        origin: str = "",
        request_id: str = "",
        mode: str = "assessment",
        image_path: str | None = None,
        image_sha256: str | None = None,
        vitals: Mapping[str, Any] | None = None,
        model_path: str | None = None,
        model_sha256: str | None = None,
        settings: Mapping[str, Any] | None = None,
        prompt_version: str = "",
    ) -> int:
        """Insert a run as `running`; returns its id."""
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO runs (started_at, status, origin, owner, request_id, mode, note, note_sha256,"
                " image_path, image_sha256, vitals_json, model_path, model_sha256, settings_json,"
                " prompt_version) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now_text(),
                    origin,
                    process_owner(),
                    request_id,
                    mode,
                    note,
                    sha256_text(note),
                    image_path,
                    image_sha256,
                    _json(vitals or {}),
                    model_path,
                    model_sha256,
                    _json(settings or {}),
                    prompt_version,
                ),
            )
        row_id = cursor.lastrowid
        assert row_id is not None  # set by the INSERT
        return row_id

    def append_text(self, run_id: int, text: str) -> None:
        """Add streamed text to a running record (one small write; WAL makes it cheap)."""
        with self._lock:
            self._connection.execute(
                "UPDATE runs SET streamed_text = streamed_text || ? WHERE id = ? AND status = 'running'",
                (text, run_id),
            )

    def set_model(self, run_id: int, name: str, path: str, sha256: str | None) -> None:
        """Name the model a running record was served by; a path and hash already known are kept."""
        with self._lock:
            self._connection.execute(
                "UPDATE runs SET model = ?, model_path = COALESCE(model_path, ?),"
                " model_sha256 = COALESCE(model_sha256, ?) WHERE id = ? AND status = 'running'",
                (name, path, sha256, run_id),
            )

    def finish_run(
        self,
        run_id: int,
        status: Status,
        *,
        streamed_text: str | None = None,
        assessment: Assessment | None = None,
        timings: Mapping[str, Any] | None = None,
        message: str | None = None,
        model: str | None = None,
    ) -> None:
        """End a running record with its status and result, and seal it into the chain."""
        result_json = assessment.model_dump_json() if assessment is not None else None
        flags = [flag.model_dump(mode="json") for flag in assessment.safety.flags] if assessment else []
        with self._write() as connection:
            connection.execute(
                "UPDATE runs SET status = ?, ended_at = ?, streamed_text = COALESCE(?, streamed_text),"
                " result_json = ?, risk_level = ?, summary = ?, flags_json = ?, timings_json = ?,"
                " message = ?, model = COALESCE(?, model) WHERE id = ? AND status = 'running'",
                (
                    status,
                    now_text(),
                    streamed_text,
                    result_json,
                    assessment.risk_level if assessment else None,
                    assessment.summary if assessment else None,
                    _json(flags),
                    _json(timings or {}),
                    message,
                    model,
                    run_id,
                ),
            )
            self._seal(connection, run_id)

    def add(
        self,
        note: str,
        assessment: Assessment,
        image_path: str | None = None,
        vitals: dict[str, Any] | None = None,
        model: str = "",
        timings: dict[str, Any] | None = None,
    ) -> int:
        """Record a finished assessment in one step (for a run made outside the engine)."""
        run_id = self.start_run(note, image_path=image_path, vitals=vitals)
        self.finish_run(run_id, "completed", assessment=assessment, timings=timings, model=model)
        return run_id

    def mark_interrupted(self) -> int:
        """Seal every run left `running` by a process that is gone; returns how many."""
        rows = self._connection.execute("SELECT id, owner FROM runs WHERE status = 'running'").fetchall()
        orphans = [run_id for run_id, owner in rows if not owner_alive(owner)]
        for run_id in orphans:
            self.finish_run(
                run_id,
                "interrupted",
                message="the process ended before the run did; the text written until then is kept",
            )
        return len(orphans)

    # --- the hash chain -----------------------------------------------------------

    def _seal(self, connection: sqlite3.Connection, run_id: int) -> None:
        head = connection.execute("SELECT seq, record_hash FROM chain_head WHERE id = 1").fetchone()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        connection.execute(
            "UPDATE runs SET seq = ?, prev_hash = ? WHERE id = ? AND seq IS NULL", (seq, prev_hash, run_id)
        )
        row = connection.execute(
            f"SELECT {', '.join(HASHED_COLUMNS)} FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None or row[HASHED_COLUMNS.index("seq")] != seq:
            return  # already sealed
        record_hash = _record_hash(row)
        connection.execute("UPDATE runs SET record_hash = ? WHERE id = ?", (record_hash, run_id))
        connection.execute(
            "INSERT INTO chain_head (id, seq, record_hash) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, record_hash = excluded.record_hash",
            (seq, record_hash),
        )

    def _seal_pending(self) -> None:
        """Seal finished records that have no place in the chain yet (assessments kept before it)."""
        pending = self._connection.execute(
            "SELECT id FROM runs WHERE seq IS NULL AND status != 'running' ORDER BY id"
        ).fetchall()
        for (run_id,) in pending:
            with self._write() as connection:
                self._seal(connection, run_id)

    def verify(self) -> ChainReport:
        """Recompute every record's hash and link; any change, removal or reordering is a problem."""
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {', '.join(HASHED_COLUMNS)}, record_hash FROM runs WHERE seq IS NOT NULL ORDER BY seq"
            ).fetchall()
            tombstones = dict(self._connection.execute("SELECT seq, record_hash FROM purged").fetchall())
            head = self._connection.execute("SELECT seq, record_hash FROM chain_head WHERE id = 1").fetchone()
        records = {row[HASHED_COLUMNS.index("seq")]: row for row in rows}
        problems: list[str] = []
        previous = GENESIS_HASH
        last = head[0] if head else 0
        for seq in range(1, max([last, *records, *tombstones]) + 1):
            row = records.get(seq)
            if row is None:
                if seq not in tombstones:
                    problems.append(f"record {seq} of the chain is missing (removed without a purge)")
                    previous = ""
                    continue
                previous = tombstones[seq]
                continue
            run_id, stored_hash = row[0], row[-1]
            prev_hash = row[HASHED_COLUMNS.index("prev_hash")]
            if previous and prev_hash != previous:
                problems.append(f"run {run_id} (record {seq}) does not follow the record before it")
            if _record_hash(row[:-1]) != stored_hash:
                problems.append(f"run {run_id} (record {seq}) was changed after it was recorded")
            previous = stored_hash
        if head is not None and last and previous and previous != head[1]:
            problems.append("the last record is not the one the chain ends with")
        if head is None and (records or tombstones):
            problems.append("the chain's end marker is missing")
        return ChainReport(records=len(records), purged=len(tombstones), problems=tuple(problems))

    # --- reading ------------------------------------------------------------------

    def recent(self, limit: int = 100) -> list[HistoryEntry]:
        """Finished assessments, newest first (what the app's history screen lists)."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, started_at, note, image_path, vitals_json, risk_level, summary, model,"
                " result_json, timings_json FROM runs WHERE status = 'completed' AND result_json IS NOT NULL"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [entry for entry in map(_entry, rows) if entry is not None]

    def get(self, entry_id: int) -> HistoryEntry | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT id, started_at, note, image_path, vitals_json, risk_level, summary, model,"
                " result_json, timings_json FROM runs WHERE id = ? AND result_json IS NOT NULL",
                (entry_id,),
            ).fetchone()
        return _entry(row) if row else None

    def runs(self, limit: int = 100) -> list[RunRecord]:
        """Every run, whatever its status, newest first."""
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> RunRecord | None:
        with self._lock:
            row = self._connection.execute(
                f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        return _run(row) if row else None

    # --- purging ------------------------------------------------------------------

    def purge(self, before: datetime | None = None) -> int:
        """Delete the finished runs started before `before` (all of them when None); returns how many.

        Each purged record leaves its place and hash in the chain, nothing about the patient.
        """
        cutoff = before.astimezone() if before is not None else None
        with self._write() as connection:
            rows = connection.execute(
                "SELECT id, started_at, seq, record_hash FROM runs WHERE status != 'running'"
            ).fetchall()
            doomed = [row for row in rows if cutoff is None or _parse_time(row[1]) < cutoff]
            stamp = now_text()
            for run_id, _started, seq, record_hash in doomed:
                if seq is not None:
                    connection.execute(
                        "INSERT OR REPLACE INTO purged (seq, record_hash, purged_at) VALUES (?, ?, ?)",
                        (seq, record_hash, stamp),
                    )
                connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        if doomed:
            with self._lock:
                self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the notes leave the WAL too
        return len(doomed)

    def purge_older_than(self, days: int) -> int:
        return self.purge(datetime.now().astimezone() - timedelta(days=days))

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.astimezone()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _record_hash(row: tuple[Any, ...]) -> str:
    payload = json.dumps(dict(zip(HASHED_COLUMNS, row, strict=True)), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _entry(row: tuple[Any, ...]) -> HistoryEntry | None:
    try:
        assessment = Assessment.model_validate_json(row[8])
    except ValueError:
        return None  # a row written by a newer, incompatible version
    return HistoryEntry(
        id=row[0],
        created_at=row[1],
        note=row[2],
        image_path=row[3],
        vitals=json.loads(row[4] or "{}"),
        risk_level=row[5],
        summary=row[6],
        model=row[7],
        assessment=assessment,
        timings=json.loads(row[9] or "{}"),
    )


def _run(row: tuple[Any, ...]) -> RunRecord:
    value = dict(zip(RUN_COLUMNS, row, strict=True))
    return RunRecord(
        id=value["id"],
        started_at=value["started_at"],
        ended_at=value["ended_at"],
        status=value["status"],
        origin=value["origin"],
        note=value["note"],
        note_sha256=value["note_sha256"],
        image_path=value["image_path"],
        image_sha256=value["image_sha256"],
        vitals=json.loads(value["vitals_json"] or "{}"),
        model=value["model"],
        model_path=value["model_path"],
        model_sha256=value["model_sha256"],
        settings=json.loads(value["settings_json"] or "{}"),
        prompt_version=value["prompt_version"],
        streamed_text=value["streamed_text"],
        result=json.loads(value["result_json"]) if value["result_json"] else None,
        risk_level=value["risk_level"],
        flags=json.loads(value["flags_json"] or "[]"),
        timings=json.loads(value["timings_json"] or "{}"),
        message=value["message"],
        seq=value["seq"],
        record_hash=value["record_hash"],
    )


# --- export -------------------------------------------------------------------


def handoff_markdown(
    assessment: Assessment,
    note: str = "",
    when: str | None = None,
    *,
    image_path: str | None = None,
    vitals: Vitals | Mapping[str, Any] | None = None,
    image_error: str | None = None,
) -> str:
    """The Markdown handoff note a colleague reads, in SBAR order; it always carries the disclaimer."""
    case = Case(note=note, image_path=image_path, vitals=form_vitals(vitals), image_error=image_error)
    return to_markdown(assessment, case, when)


def export_assessment(
    assessment: Assessment,
    note: str,
    image_path: str | None = None,
    vitals: Vitals | Mapping[str, Any] | None = None,
    directory: Path | None = None,
    image_error: str | None = None,
) -> tuple[Path, Path]:
    """Write `<stamp>.json` and `<stamp>.md` under `exports/`; returns both paths."""
    directory = private_dir(directory) if directory else exports_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = directory / f"assessment-{stamp}"
    suffix = 1
    while base.with_suffix(".json").exists() or base.with_suffix(".md").exists():
        suffix += 1
        base = directory / f"assessment-{stamp}-{suffix}"
    payload = {
        "disclaimer": DISCLAIMER,
        "note": note,
        "image_path": image_path,
        "vitals": _vitals_dict(vitals),
        "assessment": assessment.model_dump(mode="json"),
    }
    json_path, markdown_path = base.with_suffix(".json"), base.with_suffix(".md")
    atomic_write_text(json_path, json.dumps(payload, indent=2, ensure_ascii=False))
    handoff = handoff_markdown(
        assessment, note, image_path=image_path, vitals=vitals, image_error=image_error
    )
    atomic_write_text(markdown_path, handoff)
    return json_path, markdown_path


def exports_dir() -> Path:
    return private_dir(data_dir() / "exports", tighten=True)


def purge_exports(before: datetime | None = None, directory: Path | None = None) -> int:
    """Delete exported files written before `before` (all when None); returns how many."""
    directory = directory or data_dir() / "exports"
    if not directory.is_dir():
        return 0
    cutoff = before.timestamp() if before is not None else None
    removed = 0
    for path in directory.iterdir():
        if path.is_file() and (cutoff is None or path.stat().st_mtime < cutoff):
            path.unlink()
            removed += 1
    return removed


def _vitals_dict(vitals: Vitals | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(vitals, Vitals):
        return dataclasses.asdict(vitals)
    return dict(vitals or {})
