"""How the engine reaches a language model: one narrow interface.

`ModelBackend` is all the engine asks of a model: load it, generate for a job
as a stream of `engine.wire` replies, cancel, close. `LocalWorkerBackend`
runs llama.cpp in a child process on this machine; a model server would be a
second implementation, and front ends would not change.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import threading
from collections import deque
from collections.abc import AsyncGenerator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Protocol

from engine import wire
from engine.worker import worker_main
from models.info import ModelInfo

if TYPE_CHECKING:
    from models.llm import LoadSpec


class ModelBackend(Protocol):
    @property
    def info(self) -> ModelInfo | None:
        """The loaded model; None before a load, after a failed one, or once the model is lost."""

    async def load(self, spec: LoadSpec) -> wire.Loaded | wire.LoadFailed | wire.WorkerDied:
        """Load the model (replacing any loaded one)."""

    def generate(self, job: wire.Job) -> AsyncGenerator[wire.JobReply, None]:
        """Run one job: `PromptReady`, `Tokens`..., then exactly one of `Done`, `Cancelled`,
        `Error` or `WorkerDied`. Closing the iterator early cancels the job."""

    def cancel(self, job_id: str) -> None:
        """Ask the job to stop; its stream then ends with `Cancelled`. Unknown ids are ignored."""

    async def close(self) -> None:
        """Release the model."""


class LocalWorkerBackend:
    """llama.cpp in a child process (see engine.worker), started on the first load."""

    def __init__(self) -> None:
        self._worker: _WorkerProcess | None = None
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo | None:
        return self._info if self._worker and self._worker.alive else None

    @property
    def pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    async def load(self, spec: LoadSpec) -> wire.Loaded | wire.LoadFailed | wire.WorkerDied:
        if self._worker is None or not self._worker.alive:
            self._worker = _WorkerProcess(asyncio.get_running_loop())
        worker = self._worker
        self._info = None
        worker.send(wire.Load(spec))
        while True:
            match await worker.mailbox.get():
                case wire.Loaded(info=info) as loaded:
                    self._info = info
                    return loaded
                case wire.LoadFailed() as failed:
                    return failed
                case wire.WorkerDied() as died:
                    self._worker = None
                    return died
                case _:
                    continue  # left over from an earlier job

    async def generate(self, job: wire.Job) -> AsyncGenerator[wire.JobReply, None]:
        worker = self._worker
        if worker is None or not worker.alive or not worker.send(wire.Run(job)):
            self._worker, self._info = None, None
            yield wire.WorkerDied(worker.process.exitcode if worker else None)
            return
        ended = False
        try:
            while not ended:
                match await worker.mailbox.get():
                    case wire.WorkerDied() as died:
                        self._worker, self._info = None, None
                        ended = True
                        yield died
                    case wire.PromptReady(job_id=job.id) | wire.Tokens(job_id=job.id) as progress:
                        yield progress
                    case (
                        wire.Done(job_id=job.id)
                        | wire.Cancelled(job_id=job.id)
                        | wire.Error(job_id=job.id) as end
                    ):
                        ended = True
                        yield end
                    case _:
                        continue  # left over from a cancelled job, or not a job's
        finally:
            if not ended and worker.alive:
                worker.send(wire.Cancel(job.id))  # the consumer stopped reading early

    def cancel(self, job_id: str) -> None:
        if self._worker:
            self._worker.send(wire.Cancel(job_id))

    async def close(self) -> None:
        if self._worker:
            worker, self._worker, self._info = self._worker, None, None
            await asyncio.to_thread(worker.stop)


class _Mailbox:
    """Replies from the reader thread to the event loop, waking the loop only when it waits.

    Tokens arrive at decode speed; one loop wake-up per token costs the parent
    process CPU that llama.cpp's threads would otherwise use. Replies that
    arrive while the loop is busy are simply picked up on its next `get`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._replies: deque[wire.Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wake_pending = False

    def put(self, replies: list[wire.Reply]) -> None:
        """Called on the reader thread."""
        with self._lock:
            self._replies.extend(replies)
            if self._waiter is None or self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop has closed
            pass

    def _wake(self) -> None:
        with self._lock:
            waiter, self._waiter, self._wake_pending = self._waiter, None, False
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> wire.Reply:
        while True:
            with self._lock:
                if self._replies:
                    return self._replies.popleft()
                waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None


class _WorkerProcess:
    """One worker process and the thread that reads its replies."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        _start_resource_tracker()
        context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=worker_main, args=(child_conn,), daemon=True, name="medgemma-worker"
        )
        self.process.start()
        child_conn.close()
        self.mailbox = _Mailbox(loop)
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True, name="medgemma-worker-reader").start()

    def _read(self) -> None:
        while True:
            try:
                replies = [_receive(self.conn)]
                while self.conn.poll():  # take what else is already there in the same hand-over
                    replies.append(_receive(self.conn))
            except (EOFError, OSError):
                self.process.join(timeout=5)
                self.mailbox.put([wire.WorkerDied(self.process.exitcode)])
                return
            self.mailbox.put(replies)

    def send(self, message: wire.Command) -> bool:
        with self._send_lock:
            try:
                self.conn.send(message)
                return True
            except (BrokenPipeError, OSError):
                return False

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self, timeout: float = 3.0) -> None:
        self.send(wire.Stop())
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


def _receive(conn: Connection) -> wire.Reply:
    reply: wire.Reply = conn.recv()
    return reply


def _start_resource_tracker() -> None:
    """Start multiprocessing's helper with the real stderr.

    Full-screen front ends (Textual) replace sys.stderr with an object whose
    fileno() is -1, and the helper would otherwise be started with it.
    """
    from multiprocessing import resource_tracker

    saved = sys.stderr
    try:
        if sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = saved
