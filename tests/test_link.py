"""Over a slow link: the real program, under a pseudo-terminal, writes nothing while idle,
takes a burst of keys whole and in order, and its line-by-line repaint of the note leaves
a real terminal showing exactly the note.

Byte budgets per keystroke, token and case are measured by benchmarks/bench_link.py,
not asserted here: they depend on the terminal size and the machine's load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from benchmarks.bench_tui import PtyApp
from tui.app import MEMORY_SETTLE_S

REPO = Path(__file__).resolve().parent.parent
COLUMNS, ROWS = 120, 40
# Start-up has settled once the status bar has stopped reading memory (it does for
# MEMORY_SETTLE_S after the model loads, while the figure still climbs) and nothing
# has been written for QUIET_S.
QUIET_S = 3.0
IDLE_WINDOW_S = 4.0


@pytest.mark.parametrize("args", [(), ("--low-bandwidth",)], ids=["default", "low-bandwidth"])
def test_idle_output_is_zero_bytes_once_start_up_settles(args):
    program = PtyApp(args=args)
    try:
        program.wait_for("Patient note", 60)
        program.wait_for("DEMO", 180)  # the real demo model is loaded
        time.sleep(MEMORY_SETTLE_S)
        assert program.wait_until_quiet(QUIET_S, timeout=30), "still writing long after the model loaded"
        before = program.total
        time.sleep(IDLE_WINDOW_S)
        assert program.total - before == 0, "the app wrote to the terminal with nothing changing"
    finally:
        program.close()


def test_a_burst_of_keys_arrives_whole_and_in_order():
    """60 characters written at once, as tmux send-keys or a fast typist over SSH delivers them."""
    from tui.drafts import load_draft

    burst = "Fever and cough for 2 days, SpO2 91% on air; RR 26 (HR 118)."
    program = PtyApp()
    try:
        program.wait_for("Patient note", 60)
        program.wait_for("DEMO", 180)
        program.wait_until_quiet(0.5, timeout=30)
        program.send(burst)
        time.sleep(1)  # the first repaint
        program.wait_until_quiet(1.0, timeout=30)  # the screen may write the note piecewise
    finally:
        program.close()  # Ctrl+Q saves the draft
    assert load_draft().note == burst


TMUX = shutil.which("tmux")
SOCKET = f"medgemma-link-{uuid.uuid4().hex[:8]}"


def _tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TMUX or "tmux", "-L", SOCKET, *args], check=check, capture_output=True, text=True, timeout=10
    )


def _note_rows(screen: str) -> list[str]:
    """The text inside the note editor's border, row by row (right edge trimmed)."""
    rows = []
    lines = screen.splitlines()
    top = next(index for index, line in enumerate(lines) if "Patient note" in line)
    for line in lines[top + 1 :]:
        if line.lstrip().startswith("╰"):
            break
        inner = line.split("│")[1] if line.count("│") >= 2 else ""
        rows.append(inner.strip())
    return rows


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install -y tmux)")
def test_line_by_line_repaint_leaves_exactly_the_note_on_a_real_terminal(isolated_data_dir):
    """Typing, wrapping, a new line, deletions and an undo: tmux's screen holds the note, no stale cells."""
    session = f"link-{uuid.uuid4().hex[:8]}"
    env = {
        "MEDGEMMA_TUI_DATA_DIR": str(isolated_data_dir),
        "MEDGEMMA_TUI_CONFIG": os.environ["MEDGEMMA_TUI_CONFIG"],
        "TERM": "xterm-256color",
        "PYTHONPATH": str(REPO),
    }
    exports = " ".join(f"{key}={value}" for key, value in env.items())
    command = f"cd {REPO} && env {exports} {sys.executable} -m tui.cli"
    _tmux("new-session", "-d", "-s", session, "-x", str(COLUMNS), "-y", str(ROWS), command)

    def screen() -> str:
        return _tmux("capture-pane", "-p", "-t", session).stdout

    def settle_on(predicate, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = screen()
            if predicate(shown):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"screen never matched; last screen:\n{shown}")

    try:
        settle_on(lambda shown: "Patient note" in shown, 60)
        settle_on(lambda shown: "DEMO" in shown, 180)  # loaded: the keys are not racing the load
        sentence = "Fever and cough for two days, short of breath on walking to the door"  # wraps
        _tmux("send-keys", "-t", session, "-l", sentence)
        settle_on(lambda shown: "door" in shown)
        # One key at a time, as a person types (a burst of keys is a different matter).
        for key in ["Enter", *"RR 26 SpO2 91x", "BSpace", "Up", "End", *["BSpace"] * 5, "."]:
            _tmux("send-keys", "-t", session, *(["-l", key] if len(key) == 1 else [key]))
            time.sleep(0.1)
        expected_text = sentence[:-5] + ".\nRR 26 SpO2 91"
        shown = settle_on(lambda shown: "to the." in shown and "91x" not in shown, 30)
        typed = " ".join(row for row in _note_rows(shown) if row)
        assert typed.replace(" ", "") == expected_text.replace("\n", "").replace(" ", ""), shown
        assert "91x" not in shown and "door" not in shown

        _tmux("send-keys", "-t", session, *["C-z"] * 12)  # undo every edit: the placeholder is back
        shown = settle_on(lambda shown: "Type or paste the patient note" in shown)
        rows = _note_rows(shown)
        assert rows[0].startswith("Type or paste the patient note") and not any(rows[1:]), shown
    finally:
        _tmux("kill-server", check=False)


def _doctor(ssh_connection: str | None) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SSH_CONNECTION", None)
    if ssh_connection is not None:
        env["SSH_CONNECTION"] = ssh_connection
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "doctor"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_doctor_suggests_low_bandwidth_only_over_ssh():
    over_ssh = _doctor("10.0.0.2 52144 10.0.0.1 22")
    assert "over SSH" in over_ssh and "--low-bandwidth" in over_ssh and "low_bandwidth = true" in over_ssh
    local = _doctor(None)
    assert "--low-bandwidth" not in local and "local" in local


async def test_low_bandwidth_from_the_config_file_sets_redraws_preview_animations_and_colours(
    tmp_path,
):
    from rich.color import ColorSystem

    from engine import Settings
    from tui.app import LOW_BANDWIDTH_REDRAWS_PER_S, MedGemmaApp
    from tui.preferences import load_preferences
    from tui.widgets.image_field import ImageField
    from tui.widgets.stream_view import MAX_REDRAWS_PER_S, StreamView

    config = Path(os.environ["MEDGEMMA_TUI_CONFIG"])
    config.write_text("low_bandwidth = true\n")
    preferences = load_preferences()
    assert preferences.low_bandwidth
    settings = Settings.resolve()  # the engine accepts the front end's key in the same file
    lean = MedGemmaApp(settings, start_engine=False, show_memory=False, preferences=preferences)
    async with lean.run_test(size=(COLUMNS, ROWS)):
        assert lean.query_one(StreamView).max_redraws_per_s == LOW_BANDWIDTH_REDRAWS_PER_S == 4
        assert lean.query_one(ImageField).show_preview is False
        assert lean.animation_level == "none"
        assert lean.console._color_system == ColorSystem.STANDARD

    config.write_text("")
    plain = MedGemmaApp(settings, start_engine=False, show_memory=False, preferences=load_preferences())
    async with plain.run_test(size=(COLUMNS, ROWS)):
        assert plain.query_one(StreamView).max_redraws_per_s == MAX_REDRAWS_PER_S
        assert plain.query_one(ImageField).show_preview is True
