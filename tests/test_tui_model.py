"""The app end to end on the real gemma-3-270m demo model, driven by keys."""

from __future__ import annotations

import time

from engine.config import Settings
from engine.history import History
from engine.schema import DISCLAIMER
from tests.tui_helpers import wait_until
from tui.app import MedGemmaApp
from tui.screens import HistoryScreen
from tui.widgets.note_editor import NoteEditor
from tui.widgets.result_card import FindingList, ResultCard, RiskBadge
from tui.widgets.status_bar import StatusBar
from tui.widgets.stream_view import StreamView

NOTE = (
    "72 y man, cough and fever 2 days. RR 26, SpO2 91% on room air, BP 95/60, HR 118, T 38.9. New confusion."
)


async def test_stream_cancel_and_run_again_on_the_real_model():
    app = MedGemmaApp(Settings.resolve(), show_memory=False)
    started = time.monotonic()
    async with app.run_test(size=(120, 40)) as pilot:
        case = app.case
        editor = app.query_one(NoteEditor)
        stream = app.query_one(StreamView)
        card = app.query_one(ResultCard)
        assert time.monotonic() - started < 5  # interactive while the model loads
        await pilot.press(*NOTE)
        assert editor.text == NOTE

        # Requested before (or just as) the model is ready: the run waits for it.
        await pilot.press("ctrl+r")
        assert case.running and editor.locked
        first = await wait_until(pilot, lambda: len(stream.shown_text), timeout=120)
        await wait_until(pilot, lambda: len(stream.shown_text) > first, timeout=120)
        assert case.result is None  # the text grew before any result arrived
        assert "HIGH" in str(app.query_one(RiskBadge).render())  # rule risk, first event

        # Esc: what the model wrote stays on screen, marked as cancelled; the note is untouched.
        partial = stream.text
        await pilot.press("escape")
        await wait_until(pilot, lambda: not case.running, timeout=60)
        assert editor.text == NOTE and not editor.locked
        assert stream.text.startswith(partial)
        assert "Cancelled" in stream.shown_text and stream.border_subtitle == "cancelled"
        assert case.result is None and case.outcome == "cancelled"

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: case.result is not None or case.last_error, timeout=400)
        assert case.result is not None, case.last_error
        assessment = case.result.assessment
        assert editor.text == NOTE
        badge = str(app.query_one(RiskBadge).render())
        assert assessment.risk_level.upper() in badge and "rules only" not in badge
        assert assessment.risk_level == "High"  # NEWS2 band is the floor
        findings = app.query_one(FindingList)
        assert findings.option_count == len(assessment.findings or assessment.key_findings) > 0
        assert DISCLAIMER in assessment.clinical_notes
        assert card.assessment is assessment
        assert "tok/s" in app.query_one(StatusBar).speed and "DEMO" in app.query_one(StatusBar).text
        visible = "".join(str(widget.render()) for widget in app.screen.query("Disclaimer"))
        assert DISCLAIMER in visible

        # Evidence: a finding located in the note selects its span there.
        located = [i for i, finding in enumerate(findings.findings) if finding.span]
        if located:
            await pilot.press("f3")
            for _ in range(located[0]):
                await pilot.press("down")
            span = findings.findings[located[0]].span
            await wait_until(pilot, lambda: editor.selected_text == NOTE[span[0] : span[1]])
            editor.focus()

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: case.exported, timeout=10)
        assert all(path.endswith((".json", ".md")) for path in case.exported)
        await wait_until(pilot, lambda: History().recent(), timeout=10)
        assert History().recent()[0].note == NOTE

        # Run again and cancel: the previous result, its card and its keys stay, and the screen says so.
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: case.running and len(stream.shown_text) > 0, timeout=120)
        assert case.result is not None and card.assessment is assessment
        await pilot.press("escape")
        await wait_until(pilot, lambda: not case.running, timeout=60)
        assert case.result is not None and case.result.assessment is assessment
        assert card.assessment is assessment and "previous result" in str(card.border_subtitle)
        assert "previous result" in app.query_one(StatusBar).phase
        assert app.check_action("export", ()) and app.check_action("copy_result", ())
        await pilot.press("ctrl+y")  # Copy from the note (the editor's redo key must not win)
        assert app.clipboard.startswith("# Clinical decision support") and NOTE in app.clipboard
        assert len(History().recent()) == 1  # a cancelled run makes no history entry

        # A case reopened from history and run again makes a new entry.
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: editor.text == "")
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        app.screen.dismiss(app.screen.entries[0])  # what the history screen does on Enter
        await wait_until(pilot, lambda: case.result is not None and editor.text == NOTE)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(History().recent()) == 2 or case.last_error, timeout=400)
        assert History().recent()[0].note == NOTE and case.outcome == "done", case.last_error
