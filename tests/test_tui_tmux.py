"""The real program in a real terminal (tmux), driven the way a person would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine.schema import DISCLAIMER

TMUX = shutil.which("tmux")
PROGRAM = Path(sys.executable).parent / "medgemma-tui"


SOCKET = f"medgemma-test-{uuid.uuid4().hex[:8]}"  # a private tmux server, apart from anyone else's


def _tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TMUX, "-L", SOCKET, *args], check=check, capture_output=True, text=True, timeout=10
    )


def _wait_for_screen(session: str, predicate, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session).stdout
        if predicate(screen):
            return screen
        time.sleep(0.25)
    raise AssertionError(f"screen never matched within {timeout}s; last screen:\n{screen}")


@pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (apt-get install -y tmux); .ci/run installs it"
)
@pytest.mark.skipif(not PROGRAM.exists(), reason=f"console script missing: {PROGRAM} (pip install -e .)")
def test_real_program_in_tmux(isolated_data_dir):
    session = f"medgemma-{uuid.uuid4().hex[:8]}"
    env = {
        "MEDGEMMA_TUI_DATA_DIR": str(isolated_data_dir),
        "MEDGEMMA_TUI_CONFIG": os.environ["MEDGEMMA_TUI_CONFIG"],
        "TERM": "xterm-256color",
    }
    exports = " ".join(f"{key}={value}" for key, value in env.items())
    _tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", f"env {exports} {PROGRAM}")
    try:
        _wait_for_screen(session, lambda screen: "Patient note" in screen, 30)
        _wait_for_screen(session, lambda screen: "DEMO" in screen, 120)  # model loaded
        _tmux("send-keys", "-t", session, "-l", "Fever, RR 28, SpO2 90% on air, HR 125, BP 92/55, confused.")
        _wait_for_screen(session, lambda screen: "HR 125" in screen, 10)
        _tmux("send-keys", "-t", session, "C-r")
        _wait_for_screen(session, lambda screen: "Reasoning" in screen and "▸" in screen, 120)
        screen = _wait_for_screen(session, lambda screen: "done in" in screen, 400)
        assert DISCLAIMER in screen and "RISK: HIGH" in screen and "rules only" not in screen
        _tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 15
        while (
            time.monotonic() < deadline and _tmux("has-session", "-t", session, check=False).returncode == 0
        ):
            time.sleep(0.2)
        assert _tmux("has-session", "-t", session, check=False).returncode != 0, "the program did not quit"
    finally:
        _tmux("kill-server", check=False)
