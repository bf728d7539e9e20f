"""One reading of the note: the risk rules and the evidence checks see the same vital signs.

Before `NoteFacts`, the evidence checks had their own vital-sign patterns, which took
every mention of a value (yesterday's, a baseline, an implausible one) and missed
Fahrenheit. The cases below are those where the two readings differed; the checks now
follow the reading the risk score uses.
"""

from __future__ import annotations

import pytest

from engine.notefacts import read_note
from engine.preview import preview_risk
from engine.risk import risk_from_note
from engine.safety import check_findings
from engine.schema import ModelFinding


def _checked(note: str, finding: str, evidence: str):
    [result], _ = check_findings([ModelFinding(finding=finding, evidence=evidence)], note, [])
    return result


def test_the_note_is_read_once_and_shared() -> None:
    note = "72M, cough. RR 26, SpO2 91% on air, HR 118, BP 96/60, T 38.9, new confusion."
    assert read_note(note) is read_note(note)
    facts = read_note(note)
    assert facts.vitals.respiratory_rate is not None and facts.vitals.respiratory_rate.value == 26
    start, end = facts.vitals.respiratory_rate.span or (0, 0)
    assert note[start:end] == "RR 26"
    assert [note[a:b] for a, b in facts.sentences][0] == "72M, cough."
    assert risk_from_note(facts, None) == risk_from_note(note, None) == preview_risk(note, None)


def test_negation_cues_are_indexed_by_clause() -> None:
    note = "No chest X-ray done. Cough for 3 days, but chest clear."
    facts = read_note(note)
    assert facts.is_negated(note.index("X-ray"))
    assert not facts.is_negated(note.index("Cough"))


@pytest.mark.parametrize(
    "note, finding, evidence, reason_part",
    [
        # a value from yesterday is not today's reading: the risk score uses HR 84
        ("HR 130 yesterday. Today HR 84, calm.", "Tachycardia", "HR 130", "the note records HR 84"),
        ("HR 130 yesterday. Today HR 84, calm.", "Heart rate 130", "heart rate 130", "HR 130 in the finding"),
        # a baseline is not the current state
        (
            "Baseline SpO2 88% on home oxygen. Today SpO2 95% on air.",
            "SpO2 88%",
            "SpO2 88%",
            "the note records SpO2 95",
        ),
        ("T 39.2 at home, now T 37.0.", "Fever", "T 39.2", "the note records temperature 37"),
        # Fahrenheit is converted, so a temperature in °F contradicts "afebrile"
        ("Temp 101.3F, cough.", "Afebrile", "Temp 101.3F", "the note records temperature 38.5"),
        # an implausible value is refused by the risk rules, so it supports nothing
        ("Pulse 400 (probably artefact). Cough.", "Tachycardia", "Pulse 400", "not found in the note"),
    ],
)
def test_findings_are_checked_against_the_reading_the_risk_score_uses(
    note: str, finding: str, evidence: str, reason_part: str
) -> None:
    result = _checked(note, finding, evidence)
    assert not result.supported
    assert reason_part in result.reason


def test_a_fever_in_fahrenheit_is_supported() -> None:
    result = _checked("Temp 101.3F, cough.", "Fever", "Temp 101.3F")
    assert result.supported, result.reason
