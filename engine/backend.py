"""How the engine reaches a language model: one narrow interface.

`ModelBackend` is all the engine asks of a model: load it, generate for a job
as a stream of `engine.wire` replies, cancel, close. `LocalWorkerBackend`
runs llama.cpp in a child process on this machine; a model server would be a
second implementation, and front ends would not change.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
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
            await worker.stop()


class _Mailbox:
    """Replies waiting for the engine. Filled on the event loop itself, so no locks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._replies: deque[wire.Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, reply: wire.Reply) -> None:
        self._replies.append(reply)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> wire.Reply:
        while not self._replies:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._replies.popleft()


class _WorkerProcess:
    """One worker process, its replies read by the event loop as they arrive.

    Tokens arrive at decode speed, and on a machine whose cores llama.cpp keeps
    busy every CPU cycle this process spends per token is taken from decoding.
    The loop watches the pipe itself: one wake-up per reply, and no reader
    thread to hand over from.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        _start_resource_tracker()
        context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=worker_main, args=(child_conn, os.getpid()), daemon=True, name="medgemma-worker"
        )
        self.process.start()
        child_conn.close()
        self.mailbox = _Mailbox(loop)
        self._loop = loop
        self._send_lock = threading.Lock()
        self._watching = True
        loop.add_reader(self.conn.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        try:
            self.mailbox.put(_receive(self.conn))  # a reply is written whole, so this does not block
        except (EOFError, OSError):
            self._stop_watching()
            ended = self._loop.run_in_executor(None, self.process.join, 5)
            ended.add_done_callback(lambda _: self.mailbox.put(wire.WorkerDied(self.process.exitcode)))

    def _stop_watching(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self.conn.fileno())

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

    async def stop(self, timeout: float = 3.0) -> None:
        self._stop_watching()
        await asyncio.to_thread(self._end_process, timeout)

    def _end_process(self, timeout: float) -> None:
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
