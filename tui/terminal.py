"""Terminal input that no byte sequence can break, and an exit code that tells a crash.

Found on Textual 8.2.8, Linux driver, both inside Textual:

- Its input thread decodes stdin with a strict incremental UTF-8 decoder
  (`LinuxDriver.run_input_thread`). One byte that is not UTF-8 (0x9b, or the
  0xb0 of `39.1°C` from a Latin-1 PuTTY session) raises `UnicodeDecodeError`,
  the thread hands it to `App.panic`, and the app ends, with exit code 0.
- Its input parser (`XTermParser.parse`) reads an ESC inside a bracketed paste
  as the start of a key sequence: the text after the ESC is sent as key
  presses at once, ahead of the text before it, which arrives later as the
  paste. `AAA \\e[31mBBB CCC` became the note `^[31mBBB CCCAAA `.

`SafeInputDriver` decodes with `errors="replace"` (a bad byte becomes U+FFFD)
and, inside a bracketed paste, turns every ESC that does not end the paste into
the visible ␛ before the parser sees it, so the paste arrives whole, in order.
The note editor neutralises pasted text as before. Should the input thread still
fail, the app exits with code 1 and the traceback instead of Textual's `App.panic`
(which exits with 0). `run_with_safe_input` installs the driver.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from typing import Any

from rich.traceback import Traceback
from textual._loop import loop_last
from textual._parser import ParseError
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START, XTermParser
from textual.app import App
from textual.drivers.linux_driver import LinuxDriver

ESC = "\x1b"
VISIBLE_ESC = "\u241b"  # ␛, as engine.text.neutralise shows an ESC
EXIT_CRASHED = 1


class PasteEscapeGuard:
    """Rewrites decoded input so that an ESC inside a bracketed paste is text, not a key sequence.

    Input arrives in chunks of any size, so a paste marker can be split between
    two chunks: a possible end marker is held back until the next chunk shows
    whether it is one. Outside a paste nothing is held back or changed (a lone
    ESC there is the Escape key).
    """

    def __init__(self) -> None:
        self.in_paste = False
        self._held = ""  # inside a paste: a chunk's tail that may be the start of the end marker
        self._seen = ""  # outside a paste: the last characters, to find a start marker split in two

    def filter(self, data: str) -> str:
        out: list[str] = []
        data, self._held = self._held + data, ""
        position = 0
        while position < len(data):
            if not self.in_paste:
                position = self._skip_to_paste(data, position, out)
                continue
            escape = data.find(ESC, position)
            if escape < 0:
                out.append(data[position:])
                break
            out.append(data[position:escape])
            candidate = data[escape : escape + len(BRACKETED_PASTE_END)]
            if candidate == BRACKETED_PASTE_END:
                out.append(BRACKETED_PASTE_END)
                self.in_paste = False
                self._seen = ""
                position = escape + len(BRACKETED_PASTE_END)
            elif BRACKETED_PASTE_END.startswith(candidate):  # the chunk ends inside a possible end marker
                self._held = candidate
                break
            else:
                out.append(VISIBLE_ESC)
                position = escape + 1
        return "".join(out)

    def _skip_to_paste(self, data: str, position: int, out: list[str]) -> int:
        """Pass text through unchanged up to and including a paste start marker; return where it ended."""
        rest = data[position:]
        context = self._seen + rest
        start = context.find(BRACKETED_PASTE_START)
        if start < 0:
            out.append(rest)
            self._seen = context[-(len(BRACKETED_PASTE_START) - 1) :]
            return len(data)
        paste_begins = start + len(BRACKETED_PASTE_START) - len(self._seen)  # index in `rest`
        out.append(rest[:paste_begins])
        self.in_paste = True
        self._seen = ""
        return position + paste_begins


class SafeInputDriver(LinuxDriver):
    """Textual's Linux driver with the input thread above: bad bytes replaced, pastes kept in order.

    `_read_input` is Textual 8.2.8's `run_input_thread`, changed in two places
    (marked); a failure in it ends the app with exit code 1 instead of 0.
    """

    def run_input_thread(self) -> None:
        try:
            self._read_input()
        except Exception:
            # Textual would call App.panic, which exits with code 0: exit with an error code instead.
            self._app.call_later(self._app.exit, return_code=EXIT_CRASHED, message=Traceback())

    def _read_input(self) -> None:
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")(errors="replace").decode  # changed: was strict
        paste_guard = PasteEscapeGuard()  # changed: new

        def process_selector_events(
            selector_events: list[tuple[selectors.SelectorKey, int]], final: bool = False
        ) -> None:
            for last, (_selector_key, mask) in loop_last(selector_events):
                if mask & selectors.EVENT_READ:
                    unicode_data = decode(os.read(fileno, 1024 * 4), final=final and last)
                    if not unicode_data:
                        break  # stdin is piped and at its end
                    for event in parser.feed(paste_guard.filter(unicode_data)):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process_selector_events(selector.select(0.1))
            selector.unregister(self.fileno)
            process_selector_events(selector.select(0.1), final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass


def run_with_safe_input(app: App[Any]) -> int:
    """Run `app` with `SafeInputDriver` until it exits; return its exit code."""
    if app.driver_class is LinuxDriver:  # not on Windows, nor when TEXTUAL_DRIVER chose another
        app.driver_class = SafeInputDriver
    app.run()
    return app.return_code or 0
