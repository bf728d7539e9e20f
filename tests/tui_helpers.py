"""Shared helpers for the TUI tests: a poller instead of fixed sleeps, and a host app per widget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widget import Widget


async def wait_until(
    pilot: Pilot, predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.05
):
    """Poll `predicate` while the app runs; return its first truthy value or fail after `timeout` s.

    Polls with a plain sleep. `pilot.pause()` here made the model worker (a separate
    process sharing the 2 cores) run over 20 times slower while it was being polled.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout:.1f}s: {getattr(predicate, '__name__', predicate)}"
            )
        await asyncio.sleep(step)


class HostApp(App):
    """Mounts one widget (with its own DEFAULT_CSS) and records the messages it posts."""

    def __init__(self, widget_factory: Callable[[], Widget], message_types: tuple[type, ...] = ()) -> None:
        super().__init__()
        self.widget_factory = widget_factory
        self.message_types = message_types
        self.messages: list[object] = []

    def compose(self) -> ComposeResult:
        yield self.widget_factory()

    async def _on_message(self, message) -> None:  # noqa: ANN001 - every message that reaches the app
        if self.message_types and isinstance(message, self.message_types):
            self.messages.append(message)
        await super()._on_message(message)
