"""Form and note disagree: the conflict is flagged with both values, and the higher-scoring reading is used."""

from __future__ import annotations

from samples import sample_model_info

from engine.assessment import build
from engine.events import Timings, Vitals
from engine.jsonstream import JsonFieldStream
from engine.risk import risk_from_note

NOTE = "72M, cough and fever for 3 days. RR 26, SpO2 91% on air, BP 98/60, HR 118, T 38.9, new confusion."


def test_a_lower_form_value_cannot_lower_the_risk_the_note_shows() -> None:
    from_note = risk_from_note(NOTE, None)
    with_form = risk_from_note(NOTE, Vitals(respiratory_rate=20))
    assert (with_form.news2.score, with_form.qsofa.score) == (from_note.news2.score, from_note.qsofa.score)
    assert with_form.news2.points["respiratory_rate"] == 3
    [conflict] = with_form.conflicts
    assert (conflict.parameter, conflict.form, conflict.note, conflict.used) == (
        "respiratory_rate",
        "RR 20",
        "RR 26",
        "note",
    )
    assert any("the note's value is used because it scores higher" in reason for reason in with_form.reasons)


def test_a_higher_form_value_is_used_and_says_so() -> None:
    risk = risk_from_note("HR 80, RR 16 on air, alert.", Vitals(on_oxygen=True, heart_rate=80))
    [conflict] = risk.conflicts  # HR 80 equals the note: no conflict
    assert (conflict.parameter, conflict.form, conflict.note, conflict.used) == (
        "on_oxygen",
        "oxygen",
        "on air",
        "form",
    )
    assert risk.news2.points["on_oxygen"] == 2


def test_a_tie_uses_the_form_and_says_both_score_the_same() -> None:
    risk = risk_from_note("HR 60, alert.", Vitals(heart_rate=70))
    [conflict] = risk.conflicts
    assert conflict.used == "form" and "both score the same" in conflict.reason
    assert risk.vitals["heart_rate"]["source"] == "form"


def test_age_and_sex_are_compared_but_not_scored() -> None:
    risk = risk_from_note(NOTE, Vitals(sex="F", age=72))
    [conflict] = risk.conflicts
    assert (conflict.parameter, conflict.form, conflict.note, conflict.used) == ("sex", "F", "72M", None)
    assert (
        risk_from_note("45 year old woman, cough.", Vitals(sex="female", age=54)).conflicts[0].parameter
        == "age"
    )


def test_no_conflict_without_a_difference() -> None:
    assert risk_from_note(NOTE, Vitals(respiratory_rate=26, sex="M", age=72)).conflicts == []
    assert risk_from_note(NOTE, None).conflicts == []


def test_the_assessment_carries_a_conflict_flag_with_both_values() -> None:
    risk = risk_from_note(NOTE, Vitals(respiratory_rate=20))
    stream = JsonFieldStream()
    stream.feed(
        '{"reasoning":"r","summary":"Urgent review.","key_findings":[{"finding":"Tachycardia","evidence":"HR 118"}],'
        '"risk_level":"High","recommendations":["Urgent senior review."]}'
    )
    assessment = build(
        stream=stream,
        note=NOTE,
        risk=risk,
        image_findings=[],
        model=sample_model_info(),
        timings=Timings(),
        mean_logprob=None,
    )
    [flag] = [flag for flag in assessment.safety.flags if flag.kind == "form-note-conflict"]
    assert "form RR 20" in flag.text and "RR 26" in flag.text
    assert assessment.risk.conflicts[0].used == "note"
