"""The app end to end on the real gemma-3-270m demo model, driven by keys."""

from __future__ import annotations

import time

from engine.config import Settings
from engine.history import History
from engine.schema import DISCLAIMER
from tests.tui_helpers import wait_until
from tui.app import MedGemmaApp
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
        editor = app.query_one(NoteEditor)
        stream = app.query_one(StreamView)
        assert time.monotonic() - started < 5  # interactive while the model loads
        await pilot.press(*NOTE)
        assert editor.text == NOTE

        # Requested before (or just as) the model is ready: the run waits for it.
        await pilot.press("ctrl+r")
        assert app.running and editor.locked
        first = await wait_until(pilot, lambda: len(stream.shown_text), timeout=120)
        await wait_until(pilot, lambda: len(stream.shown_text) > first, timeout=120)
        assert app.result is None  # the text grew before any result arrived
        assert "HIGH" in str(app.query_one(RiskBadge).render())  # rule risk, first event

        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.running, timeout=60)
        assert editor.text == NOTE and not editor.locked
        assert "Cancelled" in stream.shown_text and app.result is None

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.result is not None or app.last_error, timeout=400)
        assert app.result is not None, app.last_error
        assessment = app.result.assessment
        assert editor.text == NOTE
        badge = str(app.query_one(RiskBadge).render())
        assert assessment.risk_level.upper() in badge and "rules only" not in badge
        assert assessment.risk_level == "High"  # NEWS2 band is the floor
        findings = app.query_one(FindingList)
        assert findings.option_count == len(assessment.findings or assessment.key_findings) > 0
        assert DISCLAIMER in assessment.clinical_notes
        assert app.query_one(ResultCard).assessment is assessment
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

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.exported, timeout=10)
        assert all(path.endswith((".json", ".md")) for path in app.exported)
        await pilot.press("ctrl+y")  # OSC 52 copy never crashes, even headless
        await wait_until(pilot, lambda: History().recent(), timeout=10)
        assert History().recent()[0].note == NOTE
