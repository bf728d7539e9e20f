"""Bad terminal input never kills the app: the real program, fed raw bytes through a pseudo-terminal.

The bytes are what a terminal really sends: a lone 0x9b, Latin-1 text from a
PuTTY session set to Latin-1, and a paste with an escape sequence in it, typed
and inside bracketed paste markers. What the note became is read from the
draft file the app saves while the clinician types.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events
from textual._xterm_parser import XTermParser

from tui.terminal import EXIT_CRASHED, VISIBLE_ESC, PasteEscapeGuard

REPO = Path(__file__).resolve().parent.parent
PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"
CTRL_Q = b"\x11"
REPLACEMENT = "\ufffd"


class TerminalSession:
    """The program running on the slave side of a pseudo-terminal; this side types and reads the screen."""

    def __init__(self, argv: list[str], data_dir: Path) -> None:
        self.data_dir = data_dir
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO))
        env.pop("NO_COLOR", None)
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True
        )
        os.close(slave)
        self._screen = bytearray()
        self._reader = threading.Thread(target=self._read_screen, daemon=True)
        self._reader.start()

    def _read_screen(self) -> None:
        # Drained all the time: a program whose terminal output is not read blocks on its next write.
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the program has exited and closed the terminal
                return
            if not chunk:
                return
            self._screen.extend(chunk)

    @property
    def screen(self) -> str:
        return self._screen.decode("utf-8", "replace")

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def running(self) -> bool:
        return self.process.poll() is None

    def draft_note(self) -> str | None:
        try:
            return json.loads((self.data_dir / "draft.json").read_text(encoding="utf-8"))["note"]
        except (OSError, ValueError, KeyError):  # not written yet
            return None

    def wait_for(self, what: str, predicate: Callable[[], object], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not within {timeout:.0f}s; running={self.running()}, "
                    f"draft note={self.draft_note()!r}; screen ends with:\n{self.screen[-3000:]}"
                )
            time.sleep(0.1)

    def wait_for_exit(self, timeout: float = 30) -> int:
        """The exit code, once the program has exited and everything it printed has been read."""
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
        os.close(self.master)


def _start(argv: list[str], data_dir: Path) -> TerminalSession:
    session = TerminalSession(argv, data_dir)
    # 60 s: the app starts on the 2 shared cores while other tests may be running.
    session.wait_for("the app shows the note editor", lambda: "Patient note" in session.screen, 60)
    return session


@pytest.fixture
def app_session(isolated_data_dir):
    session = _start([sys.executable, "-m", "tui.cli"], isolated_data_dir)
    yield session
    session.close()


@pytest.mark.parametrize(
    ("sent", "expected_note"),
    [
        pytest.param(b"abc\x9bdef", f"abc{REPLACEMENT}def", id="typed-0x9b"),
        pytest.param(b"Temp 39.1\xb0C", f"Temp 39.1{REPLACEMENT}C", id="typed-latin1"),
        pytest.param(PASTE_START + b"abc\x9bdef" + PASTE_END, f"abc{REPLACEMENT}def", id="pasted-0x9b"),
        pytest.param(
            PASTE_START + b"Temp 39.1\xb0C" + PASTE_END, f"Temp 39.1{REPLACEMENT}C", id="pasted-latin1"
        ),
        pytest.param(
            PASTE_START + b"AAA \x1b[31mBBB CCC" + PASTE_END,
            f"AAA {VISIBLE_ESC}[31mBBB CCC",
            id="pasted-escape-in-order",
        ),
    ],
)
def test_bad_input_reaches_the_note_and_the_app_keeps_running(app_session, sent, expected_note):
    app_session.type(sent)
    app_session.wait_for(
        "the note is saved as expected", lambda: app_session.draft_note() == expected_note, 30
    )
    assert app_session.running()
    app_session.type(CTRL_Q)
    assert app_session.wait_for_exit() == 0


def test_typed_escape_sequence_keeps_the_text_in_order(app_session):
    # Typed (no paste markers) the escape sequence arrives as a key sequence, which
    # Textual's parser consumes; the text around it must keep its order and no ESC may reach the note.
    app_session.type(b"AAA \x1b[31mBBB CCC")
    app_session.wait_for("the note is saved", lambda: "CCC" in (app_session.draft_note() or ""), 30)
    note = app_session.draft_note() or ""
    assert note.startswith("AAA ") and note.endswith("BBB CCC") and "\x1b" not in note
    assert app_session.running()
    app_session.type(CTRL_Q)
    assert app_session.wait_for_exit() == 0


# The real program with one part made to fail, as a crash would: the failure is injected
# by replacing a function before the app starts, since nothing in the app fails on purpose.
FAILING_INPUT_THREAD = """
import sys
import tui.terminal

def fail(self, data):
    raise RuntimeError("simulated input failure")

tui.terminal.PasteEscapeGuard.filter = fail
from tui.cli import main
sys.exit(main([]))
"""

FAILING_KEY_HANDLER = """
import sys
from textual.widgets import TextArea

async def fail(self, event):
    raise RuntimeError("simulated handler failure")

TextArea._on_key = fail
from tui.cli import main
sys.exit(main([]))
"""


@pytest.mark.parametrize(
    ("program", "message"),
    [
        pytest.param(FAILING_INPUT_THREAD, "simulated input failure", id="input-thread"),
        pytest.param(FAILING_KEY_HANDLER, "simulated handler failure", id="key-handler"),
    ],
)
def test_a_crashing_app_exits_non_zero(isolated_data_dir, program, message):
    session = _start([sys.executable, "-c", program], isolated_data_dir)
    try:
        session.type(b"x")
        assert session.wait_for_exit() == EXIT_CRASHED
        assert message in session.screen  # the traceback is shown, not swallowed
    finally:
        session.close()


# --- the paste guard alone: every way the terminal may split its input into reads -------------


def _filtered_in_chunks(guard: PasteEscapeGuard, stream: str, cut: int) -> str:
    return guard.filter(stream[:cut]) + guard.filter(stream[cut:])


def test_paste_guard_makes_an_escape_inside_a_paste_visible_wherever_the_input_is_split():
    stream = "x\x1b[200~AAA \x1b[31mBBB \x1b[201~CCC\x1b[201~\x1b[Ay"
    expected = f"x\x1b[200~AAA {VISIBLE_ESC}[31mBBB \x1b[201~CCC\x1b[201~\x1b[Ay"
    for cut in range(len(stream) + 1):
        assert _filtered_in_chunks(PasteEscapeGuard(), stream, cut) == expected, cut


def test_paste_guard_leaves_input_outside_a_paste_alone():
    guard = PasteEscapeGuard()
    assert guard.filter("\x1b") == "\x1b"  # the Escape key is delivered at once, not held back
    assert guard.filter("\x1b[A\x1b[31m") == "\x1b[A\x1b[31m"
    assert not guard.in_paste


def test_paste_guard_output_gives_textual_one_paste_in_order():
    parser = XTermParser()
    guard = PasteEscapeGuard()
    messages = list(parser.feed(guard.filter("\x1b[200~AAA \x1b[31mBBB CCC\x1b[201~")))
    assert [type(message) for message in messages] == [events.Paste]
    assert messages[0].text == f"AAA {VISIBLE_ESC}[31mBBB CCC"
