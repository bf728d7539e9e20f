"""Stop signals end a headless run cleanly, and the model worker never outlives its parent.

Each test runs the real command line on the real demo model in a subprocess and
sends it real signals.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO

from engine import wire
from engine.worker import worker_main

pytestmark = pytest.mark.timeout(600)

NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert."


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "tui.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )


def read_until_words(stream, words: int) -> bytes:
    received = b""
    while len(received.split()) < words:
        chunk = os.read(stream.fileno(), 256)
        assert chunk, "the stream ended before it could be interrupted"
        received += chunk
    return received


@pytest.fixture
def note_file(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text(NOTE)
    return path


@pytest.mark.parametrize("stop_signal, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_keeps_the_text_and_says_so_in_one_line(note_file, stop_signal, status):
    process = start("analyze", "--note", str(note_file), "--mode", "text", "--max-tokens", "600")
    received = read_until_words(process.stdout, 6)
    process.send_signal(stop_signal)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert b"Traceback" not in stderr
    stopped = [line for line in stderr.decode().splitlines() if "cancelled" in line or "stopped" in line]
    assert len(stopped) == 1, stderr
    assert stopped[0].startswith(f"cancelled by {stop_signal.name}; ")
    assert stopped[0].endswith("characters of generated text kept above")
    assert len((received + rest).split()) >= 6  # what was generated stays on stdout


def test_sigterm_in_json_mode_prints_a_partial_object(note_file):
    process = start("analyze", "--note", str(note_file), "--json", "--max-tokens", "600")
    received = b""  # in --json mode the stream goes to stderr, after the loading lines
    heading = b"(model, checked sentence by sentence):"
    while heading not in received or len(received.split(heading)[1].split()) < 4:
        chunk = os.read(process.stderr.fileno(), 256)
        assert chunk, "the stream ended before it could be interrupted"
        received += chunk
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert b"Traceback" not in stderr
    payload = json.loads(stdout)
    assert payload["complete"] is False and payload["stopped_by"] == "SIGTERM"
    assert payload["partial_text"].strip()


def test_two_quick_ctrl_c_are_not_a_traceback(note_file):
    process = start("analyze", "--note", str(note_file), "--mode", "text", "--max-tokens", "600")
    read_until_words(process.stdout, 4)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has installed a handler for `signum` (Linux: /proc/PID/status SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signum - 1)))


def test_a_signal_before_the_model_runs_is_one_line(note_file):
    process = start("analyze", "--note", str(note_file), "--mode", "text")
    # A signal that lands while Python itself is still starting ends it with the default
    # action; wait until the command line has taken the signal, then stop it while it is
    # still reading the note or loading the model.
    deadline = time.monotonic() + 60
    while not _catches(process.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert b"Traceback" not in stderr
    assert len([line for line in stderr.decode().splitlines() if "SIGTERM" in line]) == 1


def _worker_of(parent: psutil.Process, timeout: float = 300) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in parent.children():
            command = " ".join(child.cmdline())
            if "multiprocessing" in command and "resource_tracker" not in command:
                return child
        time.sleep(0.1)
    raise AssertionError("no worker process appeared")


def test_the_worker_dies_with_its_parent_during_a_long_prompt(tmp_path):
    # about 20,000 tokens of note: llama.cpp needs many seconds to read it on this machine
    long_note = tmp_path / "long.txt"
    long_note.write_text(" ".join([NOTE] * 700))
    process = start(
        "analyze", "--note", str(long_note), "--mode", "text", "--ctx", "32768", "--max-tokens", "16"
    )
    try:
        worker = _worker_of(psutil.Process(process.pid))
        loaded = b""
        while b"model:" not in loaded:
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, "the run ended before the model loaded"
            loaded += chunk
        time.sleep(1.5)  # well into the prompt
        assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
        assert worker.cpu_percent(interval=0.5) > 50, "the worker should be busy reading the prompt"
        process.kill()
        killed_at = time.monotonic()
        gone, _ = psutil.wait_procs([worker], timeout=2)
        assert gone, "the worker outlived its parent by more than 2 s"
        assert time.monotonic() - killed_at < 2
    finally:
        process.kill()
        process.wait(30)


def test_the_worker_stops_when_its_pipe_closes():
    """The pipe watch alone (the parent stays alive, so the kernel's watch never fires)."""
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    process = context.Process(target=worker_main, args=(child_conn, os.getpid()), daemon=True)
    process.start()
    child_conn.close()
    try:
        conn.send("ping")  # not a command: the answer shows the worker is up and reading
        assert conn.poll(60)
        assert conn.recv() == wire.Error(None, "internal", "unknown command str")
        conn.close()
        process.join(2)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)
