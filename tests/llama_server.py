"""A real llama-server for tests and benchmarks, built by scripts/build_llama_server.sh.

The binary is found through MEDGEMMA_TUI_LLAMA_SERVER (CI sets it to what the
build script printed), else in the script's default cache directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

ENV_BINARY = "MEDGEMMA_TUI_LLAMA_SERVER"
BUILT_VERSION = "0.3.36"


def llama_server_binary() -> Path | None:
    """The llama-server binary, or None when it has not been built here."""
    named = os.environ.get(ENV_BINARY)
    if named:
        return Path(named)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = cache / "medgemma-tui" / f"llama-server-{BUILT_VERSION}" / "bin" / "llama-server"
    return default if default.exists() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LlamaServer:
    """llama-server on a free localhost port with one model; stop() ends it."""

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        slots: int = 2,
        slot_ctx: int = 4096,
        threads: int = 2,
        extra_args: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = model.parent / f"llama-server-{self.port}.log"
        command = [
            str(binary),
            "-m", str(model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-np", str(slots),
            "-c", str(slots * slot_ctx),
            "--swa-full",
            "-fa", "off",  # the local runtime's attention: same numerics, so greedy answers can be compared
            "-t", str(threads),
            "--no-webui",
            *extra_args,
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> LlamaServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}): {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server was not ready within {timeout:.0f}s: {self.log_tail()}")

    def slots_processing(self) -> list[bool]:
        return [bool(slot["is_processing"]) for slot in httpx.get(f"{self.url}/slots", timeout=5).json()]

    def erase_slots(self) -> None:
        """Forget every slot's cached prompt, so the next request reads its prompt from scratch."""
        for slot in range(len(self.slots_processing())):
            httpx.post(f"{self.url}/slots/{slot}?action=erase", timeout=10).raise_for_status()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
