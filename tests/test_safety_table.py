"""Diagnostic language and risk-contradicting advice on sentences like small models write.

The sentences are of the kind SmolLM2-135M-Instruct and gemma-3-270m produce on the
example notes: fluent, confident, often stating a diagnosis as fact. Each table is
read both ways: what must be reframed, and what must be left alone.
"""

from __future__ import annotations

import pytest

from engine.safety import check_text, diagnostic_statements, flag_contradicting_advice, reframe, review
from engine.schema import ModelAnswer, ModelFinding

MUST_REFRAME = [
    "The patient has pneumonia.",
    "The patient has a viral cold.",
    "She has a cold.",
    "He has a cold and needs rest.",
    "Sepsis.",
    "Pneumonia.",
    "Severe community-acquired pneumonia.",
    "Viral illness.",
    "- Pneumonia",
    "Pneumonia is present.",
    "Sepsis is present in this patient.",
    "Bilateral pneumonia is evident.",
    "There is pneumonia in the right lower lobe.",
    "There is clear evidence of sepsis.",
    "The diagnosis is pneumonia.",
    "Diagnosis: community-acquired pneumonia.",
    "The patient is suffering from malaria.",
    "The patient is diagnosed with sepsis.",
    "This is a case of appendicitis.",
    "The symptoms are consistent with asthma exacerbation.",
    "The clinical picture confirms meningitis.",
    "This patient definitely has sepsis.",
    "The patient presents with pneumonia and sepsis.",
    "He has developed cellulitis of the left leg.",
    "Sepsis has been ruled out.",
    "The patient does not have meningitis.",
    "The patient's condition is pneumonia.",
    "The child has bronchiolitis.",
    "The diagnosis of pneumonia is confirmed.",
    "Urinary tract infection is present.",
]

LEAVE_ALONE = [
    "Findings may be consistent with pneumonia; requires clinical assessment.",
    "Possible sepsis.",
    "Sepsis?",
    "Pneumonia is possible.",
    "Consider pneumonia in the differential.",
    "Sepsis cannot be excluded.",
    "The patient has a fever and a productive cough.",
    "He has cold hands and feet.",
    "The patient has a cold and clammy skin.",
    "Crackles are present at the right base.",
    "Consolidation is present on examination.",
    "Fever.",
    "Tachycardia.",
    "Known asthma.",
    "History of diabetes.",
    "The patient has a history of asthma.",
    "There is no evidence of pneumonia.",
    "Respiratory rate is raised at 26 breaths per minute.",
    "The oxygen saturation is 91% on air.",
    "Assess for sepsis using local criteria.",
    "Obtain blood cultures and a lactate.",
    "The patient has had a stroke in the past.",
]


@pytest.mark.parametrize("sentence", MUST_REFRAME)
def test_must_reframe(sentence: str) -> None:
    new, flags = reframe(sentence)
    assert [flag.kind for flag in flags] == ["diagnostic-language"], new
    assert "requires clinical assessment" in new
    assert diagnostic_statements(new) == []


@pytest.mark.parametrize("sentence", LEAVE_ALONE)
def test_must_leave_alone(sentence: str) -> None:
    assert reframe(sentence) == (sentence, [])


def test_the_tables_are_large_enough() -> None:
    assert len(MUST_REFRAME) + len(LEAVE_ALONE) >= 40


ADVICE_UNDER_HIGH = [
    "Discharge home without review.",
    "The patient can be discharged with oral antibiotics.",
    "No further action is needed.",
    "Routine follow-up in clinic.",
    "Reassure the patient and family.",
    "Follow up with the GP in two weeks.",
    "Send the patient home with safety-netting advice.",
    "Manage at home with paracetamol and fluids.",
    "No need for admission.",
]
ADVICE_LEFT_ALONE = [
    "Do not discharge.",
    "Not safe for discharge.",
    "Review before discharge.",
    "Discharge is not appropriate at this stage.",
    "Purulent discharge from the wound.",
    "Nasal discharge for 3 days.",
    "Admit for IV antibiotics and urgent senior review.",
    "Reassess observations within one hour.",
]


@pytest.mark.parametrize("sentence", ADVICE_UNDER_HIGH)
def test_advice_that_lowers_care_is_withheld_under_a_high_or_moderate_band(sentence: str) -> None:
    for band in ("High", "Moderate"):
        new, flags = flag_contradicting_advice(sentence, band)
        assert [flag.kind for flag in flags] == ["advice-contradicts-risk"]
        assert (
            new.startswith("Advice that lowers the level of care was withheld")
            and f"NEWS2 band {band}" in new
        )
    assert flag_contradicting_advice(sentence, "Low") == (sentence, [])
    assert flag_contradicting_advice(sentence, None) == (sentence, [])


@pytest.mark.parametrize("sentence", ADVICE_LEFT_ALONE)
def test_advice_that_keeps_care_is_left_alone(sentence: str) -> None:
    assert flag_contradicting_advice(sentence, "High") == (sentence, [])


NOTE = "72M, cough and fever. RR 26, SpO2 91% on air, BP 98/60, HR 118, T 38.9, new confusion."


def test_contradicting_advice_is_flagged_first_and_kept_out_of_the_summary() -> None:
    answer = ModelAnswer(
        reasoning="The patient has a viral cold.",
        summary="The patient has a viral cold. Discharge home without review.",
        key_findings=[ModelFinding(finding="Tachycardia", evidence="HR 118")],
        risk_level="Low",
        recommendations=["Discharge home without review", "Paracetamol 1 g qds."],
    )
    checked = review(answer, NOTE, [], rule_band="High")
    assert checked.flags[0].kind == "advice-contradicts-risk"
    assert "Discharge" not in checked.summary and "viral cold" not in checked.summary.replace(
        "consistent with viral cold", ""
    )
    assert checked.recommendations[0].startswith("Advice that lowers the level of care was withheld")
    kinds = [flag.kind for flag in checked.flags]
    assert kinds.index("diagnostic-language") > kinds.index("advice-contradicts-risk")
    assert kinds[-1] == "medication"


def test_check_text_takes_the_band_for_free_text() -> None:
    text, flags = check_text("Reassure and discharge. The patient has a cold.", NOTE, "Moderate")
    assert [flag.kind for flag in flags] == ["advice-contradicts-risk", "diagnostic-language"]
    assert "Reassure" not in text
