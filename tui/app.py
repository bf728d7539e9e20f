"""The terminal front end: one screen, keyboard only, drawing engine events.

The app composes the case view (which owns the run), the disclaimer, the status
bar and the footer; it holds the key bindings from `tui.actions`, the help and
history screens, and starts and stops the engine. The model loads in the
background while the clinician types; inference runs in the engine's child
process, so the event loop only ever waits on a queue.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.color import ColorSystem
from rich.console import RenderableType
from textual import events, on, work
from textual._compositor import ChopsUpdate
from textual.app import App, ComposeResult, SystemCommand
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from engine import ConfigError, Failed, ModelLoaded, ModelLoading, Settings, data_dir
from tui import actions
from tui.case_view import CaseView, Speed
from tui.messages import ModelReady
from tui.preferences import Preferences, load_preferences
from tui.screen_update import CellPreciseUpdate
from tui.screens import HELP_INTRO, HELP_OUTRO, HelpScreen, HistoryScreen, LockScreen
from tui.widgets.result_card import Disclaimer
from tui.widgets.status_bar import StatusBar, process_tree_rss_mb

if TYPE_CHECKING:
    from engine import Engine, HistoryEntry

MEMORY_REFRESH_S = 2.0
# Memory is read while the model loads or runs and for this long after: it moves only
# then, and an idle app must write nothing to the terminal (a slow link pays for each figure).
MEMORY_SETTLE_S = 10.0
LOADING_TICK_S = 0.5
EXIT_BAD_CONFIG = 2  # the command line's exit code for bad input
# Over a slow link the stream redraws at most this often (the default is StreamView's own).
LOW_BANDWIDTH_REDRAWS_PER_S = 4
IDLE_CHECK_S = 5.0  # how often the idle lock looks at the time since the last key
DRAFT_NOTICE_S = 20  # the restored draft's notice stays long enough to be read


class MedGemmaApp(App[int]):
    TITLE = "MedGemma clinical decision support"
    # Screen classes by width: at 80 columns the status bar drops its less urgent parts.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    # The image preview takes 8 rows: shown only when the terminal has them to spare.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    CSS = """
    .-tall #image.-valid #image-preview {
        display: block;
    }
    """

    BINDINGS = actions.bindings()

    def __init__(
        self,
        settings: Settings,
        *,
        start_engine: bool = True,
        show_memory: bool = True,
        restore_draft: bool = True,
        preferences: Preferences | None = None,
        low_bandwidth: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.preferences = preferences if preferences is not None else load_preferences()
        self.low_bandwidth = low_bandwidth or self.preferences.low_bandwidth
        if self.low_bandwidth:
            # 16 colours: an escape code per colour change is a few bytes, not 19 (24-bit).
            self.console._color_system = ColorSystem.STANDARD
            self.animation_level = "none"
        self.start_engine = start_engine
        self.show_memory = show_memory
        self.restore_draft = restore_draft
        self.engine: Engine | None = None
        self._load_started = 0.0
        self._loading_timer: Timer | None = None
        self._last_input_at = time.monotonic()
        self._loading = False
        self._memory_read_until = 0.0  # monotonic time; while loading or running it is read regardless
        if self.preferences.keys:
            self.set_keymap(self.preferences.keys)

    @property
    def case(self) -> CaseView:
        return self.query_one(CaseView)

    # --- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.start_engine:
            from engine import Engine

            self.engine = Engine(self.settings, origin="app")
        yield CaseView(self.engine, restore_draft=self.restore_draft, id="case-view")
        yield Disclaimer()
        yield StatusBar(id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if theme := self.preferences.theme_name(self.available_themes):
            self.theme = theme
        case, status = self.case, self.query_one(StatusBar)
        if self.low_bandwidth:
            case.use_low_bandwidth(LOW_BANDWIDTH_REDRAWS_PER_S)
        case.focus_note()
        self.watch(case, "phase", status.set_phase, init=False)
        self.watch(case, "speed", self._show_speed, init=False)
        for state in ("running", "result", "restored_draft"):
            self.watch(case, state, lambda _: self.refresh_bindings(), init=False)
        self.watch(case, "running", lambda _: self._read_memory_for_a_while(), init=False)
        if self.engine is not None:
            self.load_model()
        if self.show_memory:
            self._read_memory_for_a_while()
            self.set_interval(MEMORY_REFRESH_S, self._refresh_memory)
        self._announce_restored_draft()
        if self.preferences.idle_lock_minutes:
            self.set_interval(IDLE_CHECK_S, self._lock_when_idle)

    def _announce_restored_draft(self) -> None:
        """On a shared PC the draft may be someone else's: say what it is, how old, and how to drop it."""
        draft = self.case.restored_draft
        if draft is None:
            return
        key = self._keymap.get("discard_draft", "f4").split(",")[0].upper()
        self.notify(
            f"Restored the draft saved {draft.age_text()}: {', '.join(draft.contents())}. {key} discards it.",
            title="Draft restored",
            timeout=DRAFT_NOTICE_S,
        )

    def _show_speed(self, speed: Speed | None) -> None:
        if speed is not None:
            self.query_one(StatusBar).set_speed(speed.tokens, speed.tokens_per_s, speed.ttft_s)

    def _display(self, screen: Screen, renderable: RenderableType | None) -> None:
        # Partial updates are written from their first changed cell (see tui/screen_update.py).
        if isinstance(renderable, ChopsUpdate):
            renderable = CellPreciseUpdate.from_update(renderable)
        super()._display(screen, renderable)

    # --- model --------------------------------------------------------------------

    @work(group="load", exit_on_error=False)
    async def load_model(self) -> None:
        assert self.engine is not None
        status = self.query_one(StatusBar)
        self._load_started = time.monotonic()
        self._loading_timer = self.set_interval(LOADING_TICK_S, self._tick_loading)
        self._loading = True
        try:
            async for event in self.engine.load():
                match event:
                    case ModelLoading(path=path, demo=demo):
                        status.set_loading_text(
                            f"loading {os.path.basename(path)}{' (demo)' if demo else ''}…"
                        )
                    case ModelLoaded():
                        self._model_loaded(event)
                    case Failed(message=message):
                        status.set_failed(message)
                        self.notify(message, title="Model not loaded", severity="error", timeout=10)
        except Exception as exc:  # noqa: BLE001 - the UI stays up whatever loading does
            status.set_failed(str(exc) or type(exc).__name__)
        finally:
            self._loading_timer.stop()
            self._loading = False
            self._read_memory_for_a_while()

    @on(ModelReady)
    def _model_ready_during_run(self, message: ModelReady) -> None:
        self._model_loaded(message.event)

    def _model_loaded(self, event: ModelLoaded) -> None:
        self.case.model_ready = True
        self.query_one(StatusBar).set_model(event.info, event.load_s)

    def _tick_loading(self) -> None:
        if not self.case.model_ready:
            elapsed = time.monotonic() - self._load_started
            status = self.query_one(StatusBar)
            if not status.has_class("-failed"):
                text = status.model_text.split(" · ")[0]
                status.set_loading_text(f"{text} · {elapsed:.0f}s")

    def _read_memory_for_a_while(self) -> None:
        self._memory_read_until = time.monotonic() + MEMORY_SETTLE_S

    def _refresh_memory(self) -> None:
        if self._loading or self.case.running or time.monotonic() < self._memory_read_until:
            self.query_one(StatusBar).set_memory(process_tree_rss_mb())

    # --- actions (one table: tui/actions.py) --------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides a key from the footer while its action cannot apply, so the
        # footer lists what can be done now and still fits 80 columns.
        if isinstance(self.screen, LockScreen):
            return False  # every key unlocks; none acts on the hidden case
        try:
            return self.case.allows(action)
        except NoMatches:  # before compose or while closing: nothing to hide
            return True

    def action_discard_draft(self) -> None:
        self.case.discard_restored_draft()

    def action_lock(self) -> None:
        if not isinstance(self.screen, LockScreen):
            self.push_screen(LockScreen(), lambda _: self._input_seen())

    # --- the idle lock (a shared clinic PC) ---------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown | events.MouseScrollDown | events.MouseScrollUp):
            self._input_seen()
        await super().on_event(event)

    def _input_seen(self) -> None:
        self._last_input_at = time.monotonic()

    def _lock_when_idle(self) -> None:
        minutes = self.preferences.idle_lock_minutes
        if minutes and time.monotonic() - self._last_input_at >= minutes * 60:
            self.action_lock()

    def action_run(self) -> None:
        self.case.run_assessment()

    def action_cancel(self) -> None:
        self.case.cancel()

    def action_export(self) -> None:
        self.case.export()

    def action_copy_result(self) -> None:
        self.case.copy_result()

    def action_new_case(self) -> None:
        self.case.new_case()

    def action_findings(self) -> None:
        self.case.show_findings()

    def action_history(self) -> None:
        try:
            entries = self.case.open_history().recent()
        except Exception as exc:  # noqa: BLE001
            self.notify(f"History unavailable: {exc}", severity="error")
            return
        self.push_screen(HistoryScreen(entries), self._reopen)

    def _reopen(self, entry: HistoryEntry | None) -> None:
        if entry is not None:
            self.case.reopen(entry)

    def help_markdown(self) -> str:
        """Key table from the action table, with keys as remapped by the config file."""
        keys = actions.help_key_table(self._keymap)
        return HELP_INTRO + keys + HELP_OUTRO.format(exports=data_dir() / "exports")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_markdown()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for action in actions.palette_actions():
            assert action.palette_title is not None
            yield SystemCommand(
                action.palette_title, action.palette_help, getattr(self, f"action_{action.method}")
            )

    # --- shutdown -----------------------------------------------------------------

    async def action_quit(self) -> None:
        self.case.flush_draft()
        self.exit(0)

    async def on_unmount(self) -> None:
        if self.engine is not None:
            self.engine.cancel()
            try:
                await asyncio.wait_for(self.engine.close(), 5)
            except Exception:  # noqa: BLE001
                pass


def run_app(settings: Settings, *, low_bandwidth: bool = False) -> int:
    """Run the terminal app until the clinician quits; returns the exit code.

    `low_bandwidth` (or `low_bandwidth = true` in the config file) suits slow SSH links.
    """
    from tui.terminal import run_with_safe_input

    try:
        preferences = load_preferences()
    except ConfigError as exc:
        print(f"medgemma-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return run_with_safe_input(MedGemmaApp(settings, preferences=preferences, low_bandwidth=low_bandwidth))
