"""The checked stream and the result's limits as the app and the reports show them."""

from __future__ import annotations

from engine.report import Case, result_limits, to_markdown, to_text
from engine.risk import score_risk
from engine.schema import DISCLAIMER, Assessment, SafetyFlag
from engine.vitals import extract_vitals
from tests.tui_helpers import HostApp, wait_until
from tui.widgets.result_card import ResultCard, RiskBadge
from tui.widgets.stream_view import CHANGED_MARK, StreamView


async def test_draft_is_replaced_by_its_checked_form_and_a_changed_sentence_is_marked():
    app = HostApp(lambda: StreamView(id="stream"))
    async with app.run_test(size=(60, 12)) as pilot:
        stream = app.query_one(StreamView)
        stream.set_draft("Cough for 2 days. The patient has pneu")
        stream.flush()
        assert stream.shown_text == "Cough for 2 days. The patient has pneu"
        assert stream._draft_at == (0, 0)  # all of it is a draft: drawn dimmed
        stream.set_draft(stream.draft + "monia. Next")
        stream.commit_sentence("", "Cough for 2 days.", "Cough for 2 days.", changed=False)
        checked = "Findings may be consistent with pneumonia; requires clinical assessment."
        stream.commit_sentence(" ", "The patient has pneumonia.", checked, changed=True)
        await wait_until(
            pilot, lambda: "Next" in stream.shown_text and CHANGED_MARK.strip() in stream.shown_text
        )
        shown = stream.shown_text.replace("\n", " ")
        assert "The patient has pneumonia" not in shown
        assert stream.draft == " Next"
        assert stream.text == f"Cough for 2 days. {CHANGED_MARK}{checked} Next"
        line, cell = stream._draft_at
        assert stream._lines[line][cell:].strip() == "" or "Next" in stream._lines[line][cell:]


def _assessment(note: str, flags: list[SafetyFlag], demo: bool = True) -> Assessment:
    risk = score_risk(extract_vitals(note))
    return Assessment(
        summary="Fast heart rate.",
        key_findings=[],
        risk_level=risk.rule_level or "Low",
        confidence=0.3,
        recommendations=["Repeat a full set of observations"],
        clinical_notes=DISCLAIMER,
        risk=risk,
        safety={"flags": flags},
        model={"name": "gemma", "demo": demo},
    )


LIMIT_FLAGS = [
    SafetyFlag(kind="image-refused", text="image not analysed", detail="no image model is installed"),
    SafetyFlag(
        kind="note-truncated",
        text="patient note cut to fit the model's context",
        detail="6501 of 9000 note tokens were left out (context 4096 tokens)",
    ),
]


def test_limits_come_first_in_the_terminal_report_and_the_handoff():
    assessment = _assessment("HR 130.", LIMIT_FLAGS)
    case = Case("HR 130.", "/tmp/chest.png")
    limits = result_limits(assessment, case)
    assert limits[0].startswith("DEMO MODEL, NOT A MEDICAL MODEL")
    assert any("no image model is installed" in line for line in limits)
    assert any("6501 of 9000 note tokens" in line for line in limits)
    assert any(line.startswith("NEWS2 INCOMPLETE (1 of 7") for line in limits)
    for rendered in (to_text(assessment, case), to_markdown(assessment, case)):
        for line in limits:
            assert line in rendered
        assert rendered.index(limits[0]) < rendered.lower().index("situation")


async def test_card_states_the_limits_and_a_partial_low_news2_is_not_green():
    assessment = _assessment("HR 130.", LIMIT_FLAGS)
    app = HostApp(lambda: ResultCard(id="card"))
    async with app.run_test(size=(80, 40)) as pilot:
        card = app.query_one(ResultCard)
        card.show_rule_risk(assessment.risk)
        await pilot.pause()
        badge = app.query_one(RiskBadge)
        assert "INCOMPLETE" in str(badge.render()) and not badge.has_class("-low")
        card.show_assessment(assessment, Case("HR 130.", "/tmp/chest.png"))
        await pilot.pause()
        limits = str(card.query_one("#limits").render())
        assert "NOT A MEDICAL MODEL" in limits and "no image model is installed" in limits
        assert "6501 of 9000" in limits and "NEWS2 INCOMPLETE" in limits
        assert badge.has_class("-incomplete") and not badge.has_class("-low")
