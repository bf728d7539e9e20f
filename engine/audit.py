"""The audit trail: every run the engine serves is written to the history store.

`Engine.run` gives each event of a run to a `RunRecorder`, so every front end
(the app, `analyze`, `demo`) is recorded without code of its own. The record is
inserted when the run starts (note and its hash, image and its hash, vital
signs, model file and its sha256, settings, prompt version), the streamed text is
appended about once a second, and the run's end seals it with its status:
completed, cancelled or failed; one left unfinished by a killed process becomes
`interrupted` the next time the store is opened (engine.history).

Recording never stops a run: if the store cannot be written, the run goes on
and `AuditTrail.problem` says why in one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from engine.config import ConfigError, Settings, cache_dir, load_file_config
from engine.events import AnalysisRequest, Cancelled, Event, Failed, Finished, ModelLoaded, Token
from engine.files import atomic_write_text
from engine.history import History, Status
from engine.prompts import PROMPT_VERSION
from models.info import ModelInfo

FLUSH_INTERVAL_S = 1.0  # streamed text reaches the disk at least this often
MODEL_HASHES_FILE = "model-sha256.json"
RECORD_ERRORS = (sqlite3.Error, OSError, ConfigError, ValueError)

_model_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, this process
_model_hashes_lock = threading.Lock()


def open_history() -> History:
    """The history store, with the config file's retention (`history_days`) applied on opening."""
    return History(retention_days=load_file_config().history_days)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(path: Path) -> str:
    """The model file's sha256, computed once per file version and kept in the cache dir.

    A model file is gigabytes: its hash is remembered by path, size and
    modification time, so only a changed file is read again.
    """
    from models.embedded import verified_sha256

    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _model_hashes_lock:
        if key in _model_hashes:
            return _model_hashes[key]
    known = verified_sha256(resolved) or _cached_hashes().get(_cache_key(key))
    if known is None:
        known = file_sha256(resolved)
        _remember_on_disk(key, known)
    with _model_hashes_lock:
        _model_hashes[key] = known
    return known


def _cache_key(key: tuple[str, int, int]) -> str:
    return f"{key[1]}:{key[2]}:{key[0]}"


def _cached_hashes() -> dict[str, str]:
    try:
        stored = json.loads((cache_dir() / MODEL_HASHES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, ConfigError):
        return {}
    return {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def _remember_on_disk(key: tuple[str, int, int], sha256: str) -> None:
    try:
        hashes = _cached_hashes()
        hashes[_cache_key(key)] = sha256
        atomic_write_text(cache_dir() / MODEL_HASHES_FILE, json.dumps(hashes, indent=1))
    except (OSError, ConfigError):
        pass  # only a cache: the hash is computed again next time


class AuditTrail:
    """Opens the history store on the first run and hands out a recorder per run."""

    def __init__(self, settings: Settings, origin: str, enabled: bool = True) -> None:
        self.settings = settings
        self.origin = origin
        self.enabled = enabled
        self.problem: str | None = None  # why runs are not being recorded, in one line
        self._history: History | None = None

    def _store(self) -> History | None:
        if self._history is None and self.enabled and self.problem is None:
            try:
                self._history = open_history()
            except RECORD_ERRORS as exc:
                self.fail(exc)
        return self._history

    def fail(self, exc: BaseException) -> None:
        self.problem = f"runs are not being recorded in the history: {exc}"

    async def begin(self, request: AnalysisRequest, loaded: ModelInfo | None) -> RunRecorder:
        """Insert the run as `running` and return its recorder (a silent one when recording is off)."""
        history = await asyncio.to_thread(self._store)
        if history is None:
            return RunRecorder(self, None, None)
        try:
            run_id = await asyncio.to_thread(self._insert, history, request, loaded)
        except RECORD_ERRORS as exc:
            self.fail(exc)
            return RunRecorder(self, None, None)
        return RunRecorder(self, history, run_id)

    def _insert(self, history: History, request: AnalysisRequest, loaded: ModelInfo | None) -> int:
        model_path = self.settings.model_path or (Path(loaded.path) if loaded else None)
        image_sha256 = None
        if request.image_path:
            try:
                image_sha256 = file_sha256(Path(request.image_path).expanduser())
            except OSError:
                pass  # the engine reports the unreadable image; the record keeps its path
        settings = {
            **self.settings.describe(),
            "mode": request.mode,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        return history.start_run(
            request.note,
            origin=self.origin,
            request_id=request.id,
            mode=request.mode,
            image_path=request.image_path,
            image_sha256=image_sha256,
            vitals=dataclasses.asdict(request.vitals) if request.vitals else {},
            model_path=str(model_path) if model_path else None,
            model_sha256=_model_sha256_or_none(model_path),
            settings=settings,
            prompt_version=PROMPT_VERSION if request.mode == "assessment" else "",
        )

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None


class RunRecorder:
    """Writes one run's events to its record: text batched about once a second, then its end."""

    def __init__(self, trail: AuditTrail, history: History | None, run_id: int | None) -> None:
        self.trail = trail
        self.history = history
        self.run_id = run_id
        self._pending: list[str] = []
        self._flushed_at = time.monotonic()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._ended = False

    def see(self, event: Event) -> None:
        if self.history is None or self._ended:
            return
        match event:
            case Token(text=text):
                self._pending.append(text)
                self._flush_soon()
            case ModelLoaded(info=info):
                self._write(self._set_model, info)
            case Finished(text=text, timings=timings, model=model, assessment=assessment):
                self._end(
                    "completed",
                    text=text,
                    assessment=assessment,
                    timings=timings.to_dict(),
                    model=model.name,
                )
            case Cancelled(partial_text=text, timings=timings):
                self._end("cancelled", text=text, timings=timings.to_dict() if timings else None)
            case Failed(message=message, partial_text=text, timings=timings):
                self._end(
                    "failed", text=text, timings=timings.to_dict() if timings else None, message=message
                )

    def close(self) -> None:
        """The stream ended: a run with no end of its own (the reader stopped early) is interrupted."""
        if self.history is not None and not self._ended:
            self._end("interrupted", message="the run was stopped before it ended")

    # --- writing -----------------------------------------------------------------

    def _flush_soon(self) -> None:
        waited = time.monotonic() - self._flushed_at
        if waited >= FLUSH_INTERVAL_S:
            self.flush()
        elif self._flush_timer is None:  # text that waits is written within a second of the last write
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(FLUSH_INTERVAL_S - waited, self.flush)

    def flush(self) -> None:
        """Append the text that arrived since the last write."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._flushed_at = time.monotonic()
        if self._pending and not self._ended:
            text, self._pending = "".join(self._pending), []
            self._write(self._append, text)

    def _end(self, status: Status, *, text: str | None = None, **details: Any) -> None:
        self.flush()
        self._ended = True
        self._write(self._finish, status, text, details)

    def _append(self, text: str) -> None:
        assert self.history is not None and self.run_id is not None
        self.history.append_text(self.run_id, text)

    def _set_model(self, info: ModelInfo) -> None:
        assert self.history is not None and self.run_id is not None
        self.history.set_model(self.run_id, info.name, info.path, _model_sha256_or_none(Path(info.path)))

    def _finish(self, status: Status, text: str | None, details: dict[str, Any]) -> None:
        assert self.history is not None and self.run_id is not None
        self.history.finish_run(self.run_id, status, streamed_text=text or None, **details)

    def _write(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except RECORD_ERRORS as exc:
            self.trail.fail(exc)
            self.history = None


def _model_sha256_or_none(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return model_sha256(path)
    except OSError:
        return None  # the engine says why the model cannot be read
