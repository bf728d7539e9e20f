"""The terminal front end: one screen, keyboard only, drawing engine events.

Clinical logic lives in `engine/`; this module sends `AnalysisRequest`s and
draws the events that come back. The model loads in the background while the
clinician types; inference runs in the engine's child process, so the event
loop only ever waits on a queue.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, TextArea

from engine.config import Settings, data_dir
from engine.drafts import Draft, load_draft, save_draft
from engine.events import (
    AnalysisRequest,
    Cancelled,
    Failed,
    FieldCompleted,
    FieldDelta,
    Finished,
    ImageAnalysed,
    ModelLoaded,
    ModelLoading,
    PhaseChanged,
    PromptPrepared,
    RiskScored,
    Timings,
    Token,
    Vitals,
)
from engine.schema import Assessment
from tui.messages import FindingSelected, FormChanged, ImagePathChecked, NoteLocked
from tui.screens import HELP_INTRO, HELP_OUTRO, HelpScreen, HistoryScreen
from tui.widgets.image_field import ImageField
from tui.widgets.note_editor import NoteEditor
from tui.widgets.result_card import Disclaimer, FindingList, ResultCard
from tui.widgets.status_bar import StatusBar, process_tree_rss_mb
from tui.widgets.stream_view import StreamView
from tui.widgets.vitals_form import VitalsForm

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.history import History

DRAFT_SAVE_DELAY_S = 0.4
LIVE_RISK_DELAY_S = 0.3
SPEED_REFRESH_S = 0.25
MEMORY_REFRESH_S = 2.0
NEW_CASE_CONFIRM_S = 3.0

FIELD_ORDER = ("reasoning", "summary", "key_findings", "risk_level", "recommendations")
FIELD_TITLES = {
    "reasoning": "Reasoning",
    "summary": "Summary",
    "key_findings": "Key findings",
    "risk_level": "Model's risk level",
    "recommendations": "Recommendations",
}

ACTION_HELP = {
    "run": "Run the assessment (waits for the model if it is still loading)",
    "cancel": "Cancel the running assessment; the note stays as it was",
    "export": "Export JSON and a Markdown handoff note under exports/ (path shown)",
    "copy_result": "Copy the handoff note to the clipboard (OSC 52, works over SSH)",
    "history": "Past assessments",
    "new_case": "New case: clear note, image and vitals (asks first if not assessed)",
    "findings": "Move to the findings: each one selects its evidence in the note",
    "help": "This help",
    "quit": "Quit (the draft is kept)",
}

PHASE_TEXT = {
    "queued": "queued behind another request",
    "loading": "waiting for the model to load",
    "image": "reading the image",
    "prompt": "model reading the note",
    "reasoning": "reasoning",
    "structuring": "writing the structured answer",
    "checking": "safety checks and risk rules",
}


@dataclass(frozen=True)
class CaseResult:
    """A finished assessment together with exactly what was analysed."""

    assessment: Assessment
    request: AnalysisRequest

    @property
    def vitals(self) -> dict[str, Any]:
        return asdict(self.request.vitals) if self.request.vitals else {}


class MedGemmaApp(App[int]):
    TITLE = "MedGemma clinical decision support"
    # Screen classes by width: at 80 columns the status bar drops its less urgent parts.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    # The image preview takes 8 rows: shown only when the terminal has them to spare.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    CSS = """
    #main {
        height: 1fr;
    }
    #case {
        width: 1fr;
        min-width: 38;
    }
    #output {
        width: 1fr;
    }
    #image {
        margin-top: 0;
    }
    #vitals {
        margin-top: 0;
        padding: 0 1 0 0;
    }
    #stream {
        height: 1fr;
    }
    #card {
        height: 2fr;
    }
    .-narrow #status-placement, .-narrow #status-memory {
        display: none;
    }
    .-tall #image.-valid #image-preview {
        display: block;
    }
    """

    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run"),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+s", "export", "Export", id="export"),
        Binding("ctrl+y", "copy_result", "Copy", id="copy"),
        Binding("f2", "history", "History", id="history"),
        Binding("ctrl+n", "new_case", "New", id="new_case"),
        Binding("f3", "findings", "Evidence", id="findings"),
        Binding("f1", "help", "Help", id="help"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        start_engine: bool = True,
        show_memory: bool = True,
        restore_draft: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.start_engine = start_engine
        self.show_memory = show_memory
        self.restore_draft = restore_draft
        self.engine: Engine | None = None
        self.running = False
        self.result: CaseResult | None = None
        self.last_error: str | None = None
        self.exported: tuple[str, str] | None = None
        self._history: History | None = None  # opened on first use
        self._draft_timer: Timer | None = None
        self._risk_timer: Timer | None = None
        self._new_case_armed_at = 0.0
        self._analysed_note = ""
        self._stream_section: str | None = None
        self._tokens = 0
        self._first_token_at: float | None = None
        self._speed_timer: Timer | None = None
        self._load_started = 0.0
        self._loading_timer: Timer | None = None
        self._model_ready = False
        self._shown_tokens = -1
        if settings.keys:
            self.set_keymap(settings.keys)

    # --- layout -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        draft = load_draft() if self.restore_draft else Draft()
        self._restored_form = draft.form
        with Horizontal(id="main"):
            with Vertical(id="case"):
                yield NoteEditor(draft.note, id="note")
                yield ImageField(draft.image_path, id="image")
                yield VitalsForm(id="vitals")
            with Vertical(id="output"):
                yield StreamView("Reasoning streams here when you run (Ctrl+R).", id="stream")
                yield ResultCard(id="card")
        yield Disclaimer()
        yield StatusBar(id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._apply_theme()
        if self._restored_form:
            self.query_one(VitalsForm).set_values(self._restored_form)
        self.query_one(NoteEditor).focus()
        self._schedule_live_risk(0.01)
        if self.start_engine:
            self.load_model()
        if self.show_memory:
            self.set_interval(MEMORY_REFRESH_S, self._refresh_memory)

    def _apply_theme(self) -> None:
        theme = self.settings.theme
        if theme and theme in self.available_themes:
            self.theme = theme
        elif theme in ("light", "dark"):
            self.theme = f"textual-{theme}"

    # --- model --------------------------------------------------------------------

    @work(group="load", exit_on_error=False)
    async def load_model(self) -> None:
        from engine.engine import Engine

        status = self.query_one(StatusBar)
        self.engine = Engine(self.settings)
        self._load_started = time.monotonic()
        self._loading_timer = self.set_interval(0.5, self._tick_loading)
        try:
            async for event in self.engine.load():
                if isinstance(event, ModelLoading):
                    name = os.path.basename(event.path)
                    status.set_loading_text(f"loading {name}{' (demo)' if event.demo else ''}…")
                elif isinstance(event, ModelLoaded):
                    self._model_ready = True
                    status.set_model(event.info, event.load_s)
                elif isinstance(event, Failed):
                    status.set_failed(event.message)
                    self.notify(event.message, title="Model not loaded", severity="error", timeout=10)
        except Exception as exc:  # noqa: BLE001 - the UI stays up whatever loading does
            status.set_failed(str(exc) or type(exc).__name__)
        finally:
            self._loading_timer.stop()

    def _tick_loading(self) -> None:
        if not self._model_ready:
            elapsed = time.monotonic() - self._load_started
            status = self.query_one(StatusBar)
            if not status.has_class("-failed"):
                text = status.model_text.split(" · ")[0]
                status.set_loading_text(f"{text} · {elapsed:.0f}s")

    def _refresh_memory(self) -> None:
        self.query_one(StatusBar).set_memory(process_tree_rss_mb())

    # --- running ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides a key from the footer while its action cannot apply, so the
        # footer lists what can be done now and still fits 80 columns.
        if action == "run" and self.running:
            return False
        if action == "cancel" and not self.running:
            return False
        if action in ("export", "copy_result") and self.result is None:
            return False
        if action == "findings" and not self.query_one(FindingList).findings:
            return False
        if action == "new_case" and self.running:
            return False
        return True

    def action_run(self) -> None:
        if self.running:
            self.notify("An assessment is already running; Esc cancels it.", severity="warning")
            return
        note = self.query_one(NoteEditor).text
        stream = self.query_one(StreamView)
        if not note.strip():
            stream.show_message("The note is empty: type or paste the patient note first.")
            self.notify("The note is empty: type or paste the patient note first.", severity="warning")
            return
        image = self.query_one(ImageField)
        if image.path and image.error:
            self.notify(f"Image: {image.error}", title="Fix or clear the image path", severity="error")
            return
        form = self.query_one(VitalsForm)
        if bad := form.bad_fields():
            self.notify(f"Not a number: {', '.join(bad)}", title="Check the vital signs", severity="error")
            return
        if not self.start_engine:
            self.notify("The model is not started in this session.", severity="warning")
            return
        request = AnalysisRequest(note=note, image_path=image.path or None, vitals=form.vitals())
        self.analyse(request)

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.query_one(NoteEditor).set_running(running)
        self.refresh_bindings()

    @work(exclusive=True, group="analysis", exit_on_error=False)
    async def analyse(self, request: AnalysisRequest) -> None:
        stream = self.query_one(StreamView)
        card = self.query_one(ResultCard)
        self._analysed_note = request.note
        self.result = None
        self.last_error = None
        self._stream_section = None
        self._tokens = 0
        self._first_token_at = None
        stream.remove_class("-error")
        stream.clear()
        stream.border_subtitle = ""
        card.show_pending()  # the rules' risk arrives as the first event
        self._set_running(True)
        self._shown_tokens = -1
        if not self._model_ready:
            self.query_one(StatusBar).set_phase(PHASE_TEXT["loading"])
        self._speed_timer = self.set_interval(SPEED_REFRESH_S, self._refresh_speed)
        try:
            assert self.engine is not None
            async for event in self.engine.run(request):
                self._draw(event, request)
        except Exception as exc:  # noqa: BLE001 - a failed run never takes the note with it
            self._show_failure(f"{type(exc).__name__}: {exc}")
        finally:
            self._speed_timer.stop()
            stream.flush()
            self._set_running(False)
            self._restore_note()

    def _draw(self, event: object, request: AnalysisRequest) -> None:
        stream = self.query_one(StreamView)
        status = self.query_one(StatusBar)
        if isinstance(event, Token):
            if self._first_token_at is None:
                self._first_token_at = time.monotonic()
            self._tokens += 1
        elif isinstance(event, FieldDelta):
            if event.name != self._stream_section:
                self._stream_section = event.name
                stream.heading(FIELD_TITLES.get(event.name, event.name))
            stream.append(event.text)
        elif isinstance(event, FieldCompleted):
            self._draw_field(event)
        elif isinstance(event, RiskScored):
            self.query_one(ResultCard).show_rule_risk(event.risk)
        elif isinstance(event, PhaseChanged):
            if event.phase != "structuring":  # the field being written says more
                status.set_phase(PHASE_TEXT.get(event.phase, event.phase))
        elif isinstance(event, ModelLoaded):
            self._model_ready = True
            status.set_model(event.info, event.load_s)
        elif isinstance(event, PromptPrepared):
            if event.note_truncated:
                self.notify(
                    f"The note was too long for the model's context: {event.dropped_note_tokens} tokens "
                    "were left out of what the model read.",
                    title="Note shortened for the model",
                    severity="warning",
                    timeout=10,
                )
        elif isinstance(event, ImageAnalysed):
            if event.error:
                self.notify(event.error, title="Image not analysed", severity="warning")
            elif event.findings:
                stream.heading("Image (similarity, not a diagnosis)")
                stream.append("\n".join(_image_line(finding) for finding in event.findings))
        elif isinstance(event, Finished):
            self._finish(event, request)
        elif isinstance(event, Failed):
            self._show_failure(event.message)
        elif isinstance(event, Cancelled):
            stream.clear()
            stream.show_message("Cancelled. The note is unchanged; edit it and run again with Ctrl+R.")
            stream.border_subtitle = "cancelled"
            status.set_phase("cancelled: the note is unchanged")
            self._refresh_speed(event.timings)

    def _draw_field(self, event: FieldCompleted) -> None:
        stream = self.query_one(StreamView)
        if event.name in FIELD_ORDER[:-1]:
            following = FIELD_ORDER[FIELD_ORDER.index(event.name) + 1]
            self.query_one(StatusBar).set_phase(f"writing {FIELD_TITLES[following].lower()}…")
        if event.name in ("reasoning", "summary"):
            return  # already streamed as text
        stream.heading(FIELD_TITLES.get(event.name, event.name))
        self._stream_section = event.name
        value = event.value
        if isinstance(value, list):
            lines = []
            for item in value:
                if isinstance(item, dict):
                    lines.append(f"• {item.get('finding', '')}  [{item.get('evidence', '')}]")
                else:
                    lines.append(f"• {item}")
            stream.append("\n".join(lines))
        else:
            stream.append(str(value))

    def _finish(self, event: Finished, request: AnalysisRequest) -> None:
        status = self.query_one(StatusBar)
        self._refresh_speed(event.timings)
        status.set_phase(f"done in {event.timings.total_s:.1f}s")
        assessment = event.assessment
        if assessment is None:
            self._show_failure("The model finished without a structured answer.")
            return
        self.result = CaseResult(assessment, request)
        self.query_one(ResultCard).show_assessment(assessment)
        self._save_history(self.result, event)

    def _show_failure(self, message: str) -> None:
        self.last_error = message
        stream = self.query_one(StreamView)
        stream.add_class("-error")
        stream.append(f"\n\n✗ {message}")
        stream.border_subtitle = "failed"
        self.query_one(StatusBar).set_phase("failed")
        self.notify(message, title="Assessment failed", severity="error", timeout=10)

    def _refresh_speed(self, timings: Timings | None = None) -> None:
        status = self.query_one(StatusBar)
        if timings is not None:
            status.set_speed(timings.generated_tokens, timings.tokens_per_s, timings.ttft_s)
            return
        if self._first_token_at is None or self._tokens < 2 or self._tokens == self._shown_tokens:
            return  # nothing new: no repaint
        self._shown_tokens = self._tokens
        elapsed = time.monotonic() - self._first_token_at
        status.set_speed(self._tokens, (self._tokens - 1) / elapsed if elapsed > 0 else 0.0, None)

    def action_cancel(self) -> None:
        if not self.running:
            return
        if self.engine is not None:
            self.engine.cancel()
        self.query_one(StatusBar).set_phase("cancelling…")

    def _restore_note(self) -> None:
        """The note goes back exactly as it was sent, editable, with the cursor in it."""
        editor = self.query_one(NoteEditor)
        if editor.text != self._analysed_note:
            editor.load_text(self._analysed_note)
        if self.focused is None or isinstance(self.focused, StreamView):
            editor.focus()

    @work(thread=True, group="history", exit_on_error=False)
    def _save_history(self, result: CaseResult, event: Finished) -> None:
        try:
            if self._history is None:
                from engine.history import History

                self._history = History()
            self._history.add(
                result.request.note,
                result.assessment,
                image_path=result.request.image_path,
                vitals=result.vitals,
                model=event.model.name if event.model else "",
                timings=event.timings.to_dict(),
            )
        except Exception as exc:  # noqa: BLE001 - a history failure is reported, not fatal
            self.call_from_thread(self.notify, f"History not saved: {exc}", severity="warning")

    # --- evidence -----------------------------------------------------------------

    @on(FindingSelected)
    def _show_evidence(self, message: FindingSelected) -> None:
        editor = self.query_one(NoteEditor)
        card = self.query_one(ResultCard)
        if self.result is not None and editor.text != self.result.request.note:
            editor.show_evidence(None)
            card.border_subtitle = "note edited since the run: evidence not shown"
        elif editor.show_evidence(message.span):
            card.border_subtitle = "evidence selected in the note"
        elif message.supported:
            card.border_subtitle = "evidence not located in the note"
        else:
            card.border_subtitle = "unsupported: no evidence in the note"

    def action_findings(self) -> None:
        findings = self.query_one(FindingList)
        if findings.findings:
            findings.focus()

    # --- drafts and live risk -----------------------------------------------------

    @on(TextArea.Changed, "#note")
    def _note_changed(self) -> None:
        self._schedule_draft_save()
        self._schedule_live_risk()

    @on(NoteLocked)
    def _note_locked(self) -> None:
        self.notify("The note is read-only while it is analysed; Esc cancels.", severity="warning", timeout=3)

    @on(FormChanged)
    def _form_changed(self) -> None:
        self._schedule_draft_save()
        self._schedule_live_risk()

    @on(ImagePathChecked)
    def _image_changed(self) -> None:
        self._schedule_draft_save()

    def current_draft(self) -> Draft:
        return Draft(
            note=self.query_one(NoteEditor).text,
            image_path=self.query_one(ImageField).path,
            form=self.query_one(VitalsForm).values(),
        )

    def _schedule_draft_save(self) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(DRAFT_SAVE_DELAY_S, self._save_draft_now)

    def _save_draft_now(self) -> None:
        try:
            draft = self.current_draft()
        except NoMatches:  # the app is closing; quit has saved the draft already
            return
        self._write_draft(draft)

    @work(thread=True, exclusive=True, group="draft", exit_on_error=False)
    def _write_draft(self, draft: Draft) -> None:
        try:
            save_draft(draft)
        except OSError as exc:
            self.call_from_thread(self.notify, f"Draft not saved: {exc}", severity="error")

    def _schedule_live_risk(self, delay: float = LIVE_RISK_DELAY_S) -> None:
        if self._risk_timer is not None:
            self._risk_timer.stop()
        self._risk_timer = self.set_timer(delay, self._score_live_risk)

    def _score_live_risk(self) -> None:
        if self.running or self.result is not None:
            return
        try:
            note, vitals = self.query_one(NoteEditor).text, self.query_one(VitalsForm).vitals()
        except NoMatches:  # the app is closing
            return
        self._live_risk(note, vitals)

    @work(exclusive=True, group="live-risk", exit_on_error=False)
    async def _live_risk(self, note: str, vitals: Vitals) -> None:
        from engine.risk import score_risk
        from engine.vitals import extract_vitals, merge_vitals

        try:
            risk = await asyncio.to_thread(
                lambda: score_risk(merge_vitals(extract_vitals(note[:200_000]), vitals))
            )
        except Exception:  # noqa: BLE001 - live scoring is a convenience; the run scores again
            return
        if not self.running and self.result is None:
            self.query_one(ResultCard).show_rule_risk(risk)

    # --- export, copy, history, new case, help ------------------------------------

    def action_export(self) -> None:
        if self.result is None:
            self.notify("Nothing to export yet: run an assessment first (Ctrl+R).", severity="warning")
            return
        self._export(self.result)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, result: CaseResult) -> None:
        from engine.history import export_assessment

        try:
            json_path, markdown_path = export_assessment(
                result.assessment, result.request.note, result.request.image_path, result.vitals
            )
        except OSError as exc:
            self.call_from_thread(self.notify, f"Export failed: {exc}", severity="error", timeout=10)
            return
        self.exported = (str(json_path), str(markdown_path))
        self.call_from_thread(self._exported, str(markdown_path), str(json_path))

    def _exported(self, markdown_path: str, json_path: str) -> None:
        self.query_one(StreamView).border_subtitle = f"exported: {markdown_path}"
        self.notify(f"{markdown_path}\n{json_path}", title="Exported", timeout=15)

    def action_copy_result(self) -> None:
        if self.result is None:
            self.notify("Nothing to copy yet: run an assessment first (Ctrl+R).", severity="warning")
            return
        from engine.history import handoff_markdown

        try:
            self.copy_to_clipboard(handoff_markdown(self.result.assessment, self.result.request.note))
        except Exception as exc:  # noqa: BLE001 - copying never crashes the app
            self.notify(f"Could not copy: {exc}", severity="warning")
            return
        self.notify("Handoff note copied (OSC 52: the terminal must allow clipboard access).")

    def action_history(self) -> None:
        from engine.history import History

        try:
            if self._history is None:
                self._history = History()
            entries = self._history.recent()
        except Exception as exc:  # noqa: BLE001
            self.notify(f"History unavailable: {exc}", severity="error")
            return
        self.push_screen(HistoryScreen(entries))

    def action_new_case(self) -> None:
        if self.running:
            self.notify("Cancel the running assessment first (Esc).", severity="warning")
            return
        draft = self.current_draft()
        now = time.monotonic()
        if draft.note.strip() and self.result is None and now - self._new_case_armed_at > NEW_CASE_CONFIRM_S:
            self._new_case_armed_at = now
            self.notify(
                "This note has not been assessed. Press Ctrl+N again to clear it.", severity="warning"
            )
            return
        self._new_case_armed_at = 0.0
        self.result = None
        self.query_one(NoteEditor).load_text("")
        self.query_one(ImageField).path = ""
        self.query_one(VitalsForm).clear()
        stream = self.query_one(StreamView)
        stream.clear()
        stream.border_subtitle = ""
        stream.remove_class("-error")
        self.query_one(ResultCard).show_pending()
        self.query_one(NoteEditor).focus()
        self._write_draft(Draft())
        self.refresh_bindings()

    def help_markdown(self) -> str:
        """Key table from the bindings as remapped by the config file."""
        rows = ["| Key | Action |", "|---|---|"]
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            keys = self._keymap.get(binding.id or "", binding.key)
            rows.append(
                f"| `{keys.replace(',', '` or `')}` | {ACTION_HELP.get(binding.action, binding.description)} |"
            )
        rows += ["| `ctrl+p` | Command palette: every action by name, themes |"]
        return HELP_INTRO + "\n".join(rows) + "\n" + HELP_OUTRO.format(exports=data_dir() / "exports")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_markdown()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Run assessment", "Analyse the note, image and vitals", self.action_run)
        yield SystemCommand("Cancel assessment", "Stop the running assessment", self.action_cancel)
        yield SystemCommand(
            "Export", "Write JSON and a Markdown handoff note under exports/", self.action_export
        )
        yield SystemCommand(
            "Copy result", "Copy the handoff note to the clipboard (OSC 52)", self.action_copy_result
        )
        yield SystemCommand("History", "Past assessments", self.action_history)
        yield SystemCommand("New case", "Clear the note, image and vitals", self.action_new_case)
        yield SystemCommand(
            "Show evidence", "Move to the findings; each selects its evidence", self.action_findings
        )
        yield SystemCommand("Help", "Keys and how to read the result", self.action_help)

    # --- shutdown -----------------------------------------------------------------

    async def action_quit(self) -> None:
        self._flush_draft()
        self.exit(0)

    def _flush_draft(self) -> None:
        try:
            save_draft(self.current_draft())
        except Exception:  # noqa: BLE001 - the debounced copy on disk is at most a moment old
            pass

    async def on_unmount(self) -> None:
        for timer in (self._draft_timer, self._risk_timer):
            if timer is not None:
                timer.stop()
        if self.engine is not None:
            self.engine.cancel()
            try:
                await asyncio.wait_for(self.engine.close(), 5)
            except Exception:  # noqa: BLE001
                pass
        if self._history is not None:
            self._history.close()


def _image_line(finding: Any) -> str:
    if isinstance(finding, dict):
        return f"• {finding.get('label', '?')}: {float(finding.get('probability', 0)):.0%}"
    return f"• {getattr(finding, 'label', finding)}: {float(getattr(finding, 'probability', 0)):.0%}"


def run_app(settings: Settings) -> int:
    """Run the terminal app until the clinician quits; returns the exit code."""
    from tui.terminal import run_with_safe_input

    return run_with_safe_input(MedGemmaApp(settings))
