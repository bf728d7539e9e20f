"""The case on screen and the run that assesses it.

`CaseView` composes the note editor, image field, vitals form, the stream of the
model's reasoning and the result card. It owns the run: its state lives in
reactives (running, phase, result, outcome of the last run, speed) whose
watchers redraw the widgets, and engine events are drawn by one `match`.

A run replaces the result on the card only when it produces one: cancelled or
failed, it leaves the previous result, its card and its Export and Copy keys
in place, and says so.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import var
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import TextArea

from engine import (
    AnalysisRequest,
    Assessment,
    Cancelled,
    Case,
    Failed,
    FieldCompleted,
    FieldDelta,
    Finished,
    ImageAnalysed,
    ModelLoaded,
    NoteScreened,
    PhaseChanged,
    PromptPrepared,
    RiskScored,
    SentenceChecked,
    Timings,
    Token,
    Vitals,
    preview_risk,
)
from tui.drafts import Draft, load_draft, save_draft
from tui.messages import FindingSelected, FormChanged, ImagePathChecked, ModelReady, NoteLocked
from tui.widgets.image_field import ImageField
from tui.widgets.note_editor import NoteEditor
from tui.widgets.result_card import FindingList, ResultCard
from tui.widgets.stream_view import StreamView
from tui.widgets.vitals_form import VitalsForm

if TYPE_CHECKING:
    from engine import Engine, History, HistoryEntry

DRAFT_SAVE_DELAY_S = 0.4
LIVE_RISK_DELAY_S = 0.3
NEW_CASE_CONFIRM_S = 3.0
# The status bar's speed follows the tokens once a second: a repaint of it per token
# would cost about 50 bytes to the terminal each (over slow SSH links).
SPEED_UPDATES_PER_S = 1

CHECKED_FIELDS = ("reasoning", "summary")  # streamed as a draft, then sentence by sentence checked
FIELD_ORDER = ("reasoning", "summary", "key_findings", "risk_level", "recommendations")
FIELD_TITLES = {
    "reasoning": "Reasoning",
    "summary": "Summary",
    "key_findings": "Key findings",
    "risk_level": "Model's risk level",
    "recommendations": "Recommendations",
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

# How each vital sign is named in the form, for reopening a past case.
FORM_FIELDS = {
    "respiratory_rate": "rr",
    "spo2": "spo2",
    "on_oxygen": "o2",
    "systolic_bp": "sbp",
    "heart_rate": "hr",
    "temperature_c": "temp",
    "consciousness": "acvpu",
    "age": "age",
    "sex": "sex",
}

Outcome = Literal["", "done", "cancelled", "failed", "reopened"]


@dataclass(frozen=True)
class CaseResult:
    """A finished assessment together with exactly what was analysed."""

    assessment: Assessment
    request: AnalysisRequest
    image_error: str | None = None  # why a given image has no findings

    @property
    def vitals(self) -> dict[str, Any]:
        return asdict(self.request.vitals) if self.request.vitals else {}


@dataclass(frozen=True)
class Speed:
    tokens: int
    tokens_per_s: float
    ttft_s: float | None = None

    @classmethod
    def from_timings(cls, timings: Timings) -> Speed:
        return cls(timings.generated_tokens, timings.tokens_per_s, timings.ttft_s)


def form_values(vitals: dict[str, Any]) -> dict[str, str]:
    """Stored vitals (as `Vitals` fields) as the text the form's fields show."""
    values: dict[str, str] = {}
    for name, field_id in FORM_FIELDS.items():
        value = vitals.get(name)
        if value is None or value is False:
            continue
        if value is True:
            values[field_id] = "1"
        elif isinstance(value, float):
            values[field_id] = f"{value:g}"
        else:
            values[field_id] = str(value)
    return values


def vitals_from_dict(vitals: dict[str, Any]) -> Vitals | None:
    known = {name: value for name, value in vitals.items() if name in FORM_FIELDS}
    return Vitals(**known) if known else None


def set_border_subtitle(widget: Widget, text: str) -> None:
    """Setting a border subtitle repaints the whole widget, even to the same text: only on a change."""
    if (widget.border_subtitle or "") != text:
        widget.border_subtitle = text


class CaseView(Widget):
    """Note, image, vitals, the streaming reasoning and the result card; owns the run."""

    DEFAULT_CSS = """
    CaseView {
        height: 1fr;
    }
    CaseView #main {
        height: 1fr;
    }
    CaseView #case {
        width: 1fr;
        min-width: 38;
    }
    CaseView #output {
        width: 1fr;
    }
    CaseView #image {
        margin-top: 0;
    }
    CaseView #vitals {
        margin-top: 0;
        padding: 0 1 0 0;
    }
    CaseView #stream {
        height: 1fr;
    }
    CaseView #card {
        height: 2fr;
    }
    """

    # `var`: the view itself draws nothing, its watchers (and the app's) redraw the parts
    # that show it. No watcher runs at start: the widgets are composed in the initial state.
    running: var[bool] = var(False, init=False)
    phase: var[str] = var("", init=False)  # what the run is doing, in words
    result: var[CaseResult | None] = var(None, init=False)  # the result on the card
    outcome: var[Outcome] = var("", init=False)  # how the last run ended
    speed: var[Speed | None] = var(None, init=False)  # from the token events, SPEED_UPDATES_PER_S at most
    model_ready: var[bool] = var(False, init=False)
    # a draft from the last session, until it is edited, run or discarded (F4)
    restored_draft: var[Draft | None] = var(None, init=False)

    def __init__(self, engine: Engine | None, *, restore_draft: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.restore_draft = restore_draft
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
        self._image_error: str | None = None
        self._speed_shown_at = 0.0

    # --- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        draft = load_draft() if self.restore_draft else Draft()
        self._restored_form = draft.form
        self.restored_draft = None if draft.is_empty() else draft
        with Horizontal(id="main"):
            with Vertical(id="case"):
                yield NoteEditor(draft.note, id="note")
                yield ImageField(draft.image_path, id="image")
                yield VitalsForm(id="vitals")
            with Vertical(id="output"):
                yield StreamView("Reasoning streams here when you run (Ctrl+R).", id="stream")
                yield ResultCard(id="card")

    def on_mount(self) -> None:
        if self._restored_form:
            self.query_one(VitalsForm).set_values(self._restored_form)
        self._schedule_live_risk(0.01)

    def use_low_bandwidth(self, redraws_per_s: int) -> None:
        """Fewer stream redraws and no image preview: for slow links."""
        self.query_one(StreamView).max_redraws_per_s = redraws_per_s
        self.query_one(ImageField).show_preview = False

    def focus_note(self) -> None:
        self.query_one(NoteEditor).focus()

    # --- state drawn by watchers -------------------------------------------------

    def watch_running(self, running: bool) -> None:
        self.query_one(NoteEditor).set_running(running)

    def watch_outcome(self, outcome: Outcome) -> None:
        stream = self.query_one(StreamView)
        stream.set_class(outcome == "failed", "-error")
        set_border_subtitle(stream, outcome if outcome in ("cancelled", "failed", "reopened") else "")

    # --- what can be done now ----------------------------------------------------

    def allows(self, action: str) -> bool:
        """Whether a case action applies now (the footer hides it otherwise)."""
        if action in ("run", "new_case"):
            return not self.running
        if action == "discard_draft":
            return self.restored_draft is not None and not self.running
        if action == "cancel":
            return self.running
        if action in ("export", "copy_result"):
            return self.result is not None
        if action == "findings":
            return bool(self.query_one(FindingList).findings)
        return True

    # --- running -------------------------------------------------------------------

    def run_assessment(self) -> None:
        if self.running:
            self.notify("An assessment is already running; Esc cancels it.", severity="warning")
            return
        note = self.query_one(NoteEditor).text
        if not note.strip():
            self.query_one(StreamView).show_message(
                "The note is empty: type or paste the patient note first."
            )
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
        if self.engine is None:
            self.notify("The model is not started in this session.", severity="warning")
            return
        self.analyse(AnalysisRequest(note=note, image_path=image.path or None, vitals=form.vitals()))

    @work(exclusive=True, group="analysis", exit_on_error=False)
    async def analyse(self, request: AnalysisRequest) -> None:
        assert self.engine is not None
        stream = self.query_one(StreamView)
        self._begin(request)
        try:
            async for event in self.engine.run(request):
                self._draw(event, request)
        except Exception as exc:  # noqa: BLE001 - a failed run never takes the note with it
            self._show_failure(f"{type(exc).__name__}: {exc}")
        finally:
            stream.flush()
            self.running = False
            self._restore_note()
            self._warn_if_not_recorded()

    def _begin(self, request: AnalysisRequest) -> None:
        self.restored_draft = None  # run: it is this clinician's case now
        self._analysed_note = request.note
        self.last_error = None
        self._stream_section = None
        self._tokens = 0
        self._first_token_at = None
        self._speed_shown_at = 0.0
        self._image_error = None
        self.outcome = ""
        self.query_one(StreamView).clear()
        card = self.query_one(ResultCard)
        if self.result is None:
            card.show_pending()  # the rules' risk arrives as the first event
        else:
            card.border_subtitle = "previous result: the new run replaces it when it finishes"
        self.running = True
        self.phase = "" if self.model_ready else PHASE_TEXT["loading"]

    def _draw(self, event: object, request: AnalysisRequest) -> None:
        stream = self.query_one(StreamView)
        match event:
            case Token():
                self._count_token()
            case FieldDelta(name=name, text=text):
                if name != self._stream_section:
                    self._stream_section = name
                    stream.heading(FIELD_TITLES.get(name, name))
                if name in CHECKED_FIELDS:
                    stream.set_draft(stream.draft + text)  # dimmed until the sentence is checked
                else:
                    stream.append(text)
            case SentenceChecked(field=name, before=before, raw=raw, text=text, changed=changed) if (
                name in CHECKED_FIELDS
            ):
                stream.commit_sentence(before, raw, text, changed)
            case FieldCompleted():
                self._draw_field(event)
            case NoteScreened(flags=flags):
                self.notify(
                    "; ".join(flag.text for flag in flags)
                    + ". The note is treated as patient data, and findings resting on that text are not trusted.",
                    title="The note contains instruction-like text",
                    severity="warning",
                    timeout=15,
                )
            case RiskScored(risk=risk):
                if self.result is None:  # a result on the card stays until a new one replaces it
                    self.query_one(ResultCard).show_rule_risk(risk)
            case PhaseChanged(phase=phase):
                if phase != "structuring":  # the field being written says more
                    self.phase = PHASE_TEXT.get(phase, phase)
            case ModelLoaded():
                self.model_ready = True
                self.post_message(ModelReady(event))
            case PromptPrepared(note_truncated=True, dropped_note_tokens=dropped):
                self.notify(
                    f"The note was too long for the model's context: {dropped} tokens "
                    "were left out of what the model read.",
                    title="Note shortened for the model",
                    severity="warning",
                    timeout=10,
                )
            case ImageAnalysed(error=str() as error):
                self._image_error = error
                self.notify(error, title="Image not analysed", severity="warning")
            case ImageAnalysed(findings=findings) if findings:
                stream.heading("Image (similarity, not a diagnosis)")
                stream.append("\n".join(_image_line(finding) for finding in findings))
            case Finished():
                self._finish(event, request)
            case Failed(message=message):
                self._show_failure(message)
            case Cancelled(timings=timings):
                self._show_cancelled(timings)

    def _count_token(self) -> None:
        now = time.monotonic()
        if self._first_token_at is None:
            self._first_token_at = now
        self._tokens += 1
        elapsed = now - self._first_token_at
        if self._tokens >= 2 and elapsed > 0 and now - self._speed_shown_at >= 1 / SPEED_UPDATES_PER_S:
            self._speed_shown_at = now
            self.speed = Speed(self._tokens, (self._tokens - 1) / elapsed)

    def _draw_field(self, event: FieldCompleted) -> None:
        stream = self.query_one(StreamView)
        if event.name in FIELD_ORDER[:-1]:
            following = FIELD_ORDER[FIELD_ORDER.index(event.name) + 1]
            self.phase = f"writing {FIELD_TITLES[following].lower()}…"
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
        self.query_one(StreamView).set_draft("")  # what was never checked (a loop cut off) is not kept
        self.speed = Speed.from_timings(event.timings)
        self.phase = f"done in {event.timings.total_s:.1f}s"
        if event.assessment is None:
            self._show_failure("The model finished without a structured answer.")
            return
        result = CaseResult(event.assessment, request, self._image_error)
        self._show_result(result)
        self.outcome = "done"

    def _warn_if_not_recorded(self) -> None:
        """The engine records every run in the history; say so when it could not."""
        if self.engine is not None and self.engine.audit.problem:
            self.notify(self.engine.audit.problem, title="History not saved", severity="warning")

    def _show_result(self, result: CaseResult) -> None:
        self.result = result
        card = self.query_one(ResultCard)
        request = result.request
        card.show_assessment(
            result.assessment, Case(request.note, request.image_path, request.vitals, result.image_error)
        )
        set_border_subtitle(card, "")

    def _show_failure(self, message: str) -> None:
        self.last_error = message
        stream = self.query_one(StreamView)
        stream.append(f"\n\n✗ {message}")
        self.outcome = "failed"
        self.phase = "failed" + self._previous_result_kept("failed")
        self.notify(message, title="Assessment failed", severity="error", timeout=10)

    def _show_cancelled(self, timings: Timings | None) -> None:
        stream = self.query_one(StreamView)
        written = "what the model wrote is kept above; " if stream.text else ""
        stream.append(f"\n\n■ Cancelled: {written}the note is unchanged. Edit it and run again with Ctrl+R.")
        self.outcome = "cancelled"
        self.phase = "cancelled: the note is unchanged" + self._previous_result_kept("cancelled")
        if timings is not None:
            self.speed = Speed.from_timings(timings)

    def _previous_result_kept(self, how: str) -> str:
        """Say on the card, and return for the status line, that the card still shows the last result."""
        if self.result is None:
            return ""
        self.query_one(ResultCard).border_subtitle = f"previous result (the last run {how})"
        return "; the card shows the previous result"

    def cancel(self) -> None:
        if not self.running:
            return
        if self.engine is not None:
            self.engine.cancel()
        self.phase = "cancelling…"

    def _restore_note(self) -> None:
        """The note goes back exactly as it was sent, editable, with the cursor in it."""
        editor = self.query_one(NoteEditor)
        if editor.text != self._analysed_note:
            editor.load_text(self._analysed_note)
        if self.app.focused is None or isinstance(self.app.focused, StreamView):
            editor.focus()

    # --- history ------------------------------------------------------------------

    def open_history(self) -> History:
        if self._history is None:
            from engine import open_history

            self._history = open_history()  # the config's retention applies
        return self._history

    def reopen(self, entry: HistoryEntry) -> None:
        """Put a past case back: note, image path and vitals in the editor and form, its result on the card."""
        if self.running:
            self.notify("Cancel the running assessment first (Esc).", severity="warning")
            return
        request = AnalysisRequest(
            note=entry.note, image_path=entry.image_path, vitals=vitals_from_dict(entry.vitals)
        )
        editor = self.query_one(NoteEditor)
        editor.load_text(entry.note)
        self.query_one(ImageField).path = entry.image_path or ""
        self.query_one(VitalsForm).set_values(form_values(entry.vitals))
        self.query_one(StreamView).show_message(
            f"Reopened from history ({entry.created_at[:16].replace('T', ' ')}). "
            "The card shows the stored result; Ctrl+R assesses the case again."
        )
        self._show_result(CaseResult(entry.assessment, request))
        self.outcome = "reopened"
        self.phase = ""
        self._schedule_draft_save()
        editor.focus()

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

    def show_findings(self) -> None:
        findings = self.query_one(FindingList)
        if findings.findings:
            findings.focus()

    # --- drafts and live risk -----------------------------------------------------

    @on(TextArea.Changed, "#note")
    def _note_changed(self) -> None:
        if self.restored_draft is not None and self.query_one(NoteEditor).text != self.restored_draft.note:
            self.restored_draft = None  # the clinician works on it now: F4 no longer discards it
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
            self.app.call_from_thread(self.notify, f"Draft not saved: {exc}", severity="error")

    def flush_draft(self) -> None:
        """Write the draft now (on quit); the debounced copy on disk is at most a moment old anyway."""
        try:
            save_draft(self.current_draft())
        except Exception:  # noqa: BLE001
            pass

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
        try:
            risk = await asyncio.to_thread(preview_risk, note, vitals)
        except Exception:  # noqa: BLE001 - live scoring is a convenience; the run scores again
            return
        if not self.running and self.result is None:
            self.query_one(ResultCard).show_rule_risk(risk)

    # --- export, copy, new case -----------------------------------------------------

    def export(self) -> None:
        if self.result is None:
            self.notify("Nothing to export yet: run an assessment first (Ctrl+R).", severity="warning")
            return
        self._export(self.result)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, result: CaseResult) -> None:
        from engine import export_assessment

        try:
            json_path, markdown_path = export_assessment(
                result.assessment,
                result.request.note,
                result.request.image_path,
                result.vitals,
                image_error=result.image_error,
            )
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"Export failed: {exc}", severity="error", timeout=10)
            return
        self.exported = (str(json_path), str(markdown_path))
        self.app.call_from_thread(self._exported, str(markdown_path), str(json_path))

    def _exported(self, markdown_path: str, json_path: str) -> None:
        self.query_one(StreamView).border_subtitle = f"exported: {markdown_path}"
        self.notify(f"{markdown_path}\n{json_path}", title="Exported", timeout=15)

    def copy_result(self) -> None:
        if self.result is None:
            self.notify("Nothing to copy yet: run an assessment first (Ctrl+R).", severity="warning")
            return
        from engine import handoff_markdown

        result = self.result
        try:
            handoff = handoff_markdown(
                result.assessment,
                result.request.note,
                image_path=result.request.image_path,
                vitals=result.vitals,
                image_error=result.image_error,
            )
            self.app.copy_to_clipboard(handoff)
        except Exception as exc:  # noqa: BLE001 - copying never crashes the app
            self.notify(f"Could not copy: {exc}", severity="warning")
            return
        self.notify("Handoff note copied (OSC 52: the terminal must allow clipboard access).")

    def new_case(self) -> None:
        if self.running:
            self.notify("Cancel the running assessment first (Esc).", severity="warning")
            return
        now = time.monotonic()
        unassessed = self.query_one(NoteEditor).text.strip() and self.result is None
        if unassessed and now - self._new_case_armed_at > NEW_CASE_CONFIRM_S:
            self._new_case_armed_at = now
            what = " and ".join(self.current_draft().contents())
            self.notify(
                f"This note has not been assessed. Press Ctrl+N again to discard {what}.",
                severity="warning",
            )
            return
        self._new_case_armed_at = 0.0
        self.clear_case()

    def discard_restored_draft(self) -> None:
        """F4: the draft left by the last session goes, without asking (it was announced)."""
        if self.restored_draft is None or self.running:
            return
        discarded = ", ".join(self.restored_draft.contents())
        self.clear_case()
        self.notify(f"Discarded the restored draft: {discarded}.", timeout=5)

    def clear_case(self) -> None:
        """An empty case: note, image path, vitals, stream and card cleared, and the draft on disk too."""
        self.restored_draft = None
        self.result = None
        self.outcome = ""
        self.phase = ""
        self.query_one(NoteEditor).load_text("")
        self.query_one(ImageField).path = ""
        self.query_one(VitalsForm).clear()
        stream = self.query_one(StreamView)
        stream.clear()
        stream.border_subtitle = ""
        self.query_one(ResultCard).clear()
        self.query_one(NoteEditor).focus()
        self._write_draft(Draft())

    def on_unmount(self) -> None:
        for timer in (self._draft_timer, self._risk_timer):
            if timer is not None:
                timer.stop()
        if self._history is not None:
            self._history.close()


def _image_line(finding: Any) -> str:
    if isinstance(finding, dict):
        return f"• {finding.get('label', '?')}: {float(finding.get('probability', 0)):.0%}"
    return f"• {getattr(finding, 'label', finding)}: {float(getattr(finding, 'probability', 0)):.0%}"
