"""Invented results: a test, imaging or lab result that the note does not contain."""

from __future__ import annotations

import pytest

from engine.safety import check_findings, check_text, flag_invented_results, review
from engine.schema import ModelAnswer, ModelFinding

NOTE = (
    "72M, cough and fever for 3 days, productive sputum. RR 26, SpO2 91% on air, BP 98/60, "
    "HR 118, T 38.9, new confusion. No X-ray available at this clinic. CRP 80."
)

INVENTED = [
    "The patient's imaging studies include a chest X-ray, which confirms pneumonia.",
    "Chest X-ray shows right lower lobe consolidation.",
    "CXR: bilateral infiltrates.",
    "WBC 12.5.",
    "He has a white blood cell count of 12.5%.",
    "Troponin raised.",
    "Troponin is raised, suggesting cardiac strain.",
    "Blood cultures were positive for Streptococcus.",
    "Lactate 4.2 mmol/L.",
    "The ECG is normal.",
    "Echo showed poor left ventricular function.",
    "Hb 9 g/dL.",
    "Urine dipstick positive for nitrites.",
    "Malaria RDT negative.",
    "Elevated procalcitonin supports a bacterial cause.",
]
LEFT_ALONE = [
    "Order a chest X-ray.",
    "Consider checking troponin.",
    "Repeat lactate if hypotensive.",
    "Send blood cultures before antibiotics.",
    "Get an ECG.",
    "Monitor sodium and potassium.",
    "CRP is elevated.",  # the note records CRP 80
    "Fever and cough for 3 days.",
    "SpO2 91% on air.",
    "Blood cultures were taken.",
]


@pytest.mark.parametrize("sentence", INVENTED)
def test_a_result_the_note_does_not_contain_is_replaced_and_flagged(sentence: str) -> None:
    checked, flags = flag_invented_results(sentence, NOTE)
    assert [flag.kind for flag in flags] == ["unsupported-result"]
    assert flags[0].text == sentence
    assert checked.startswith("The note records no ") and "requires confirmation" in checked


@pytest.mark.parametrize("sentence", LEFT_ALONE)
def test_plans_and_results_the_note_contains_are_left_alone(sentence: str) -> None:
    assert flag_invented_results(sentence, NOTE) == (sentence, [])


def test_a_negated_mention_in_the_note_is_no_source() -> None:
    # the note says "No X-ray available": a chest X-ray result still has no source
    checked, flags = flag_invented_results("X-ray shows consolidation.", NOTE)
    assert flags and "X-ray" in flags[0].detail
    with_film = NOTE + " CXR: right lower lobe consolidation."
    assert flag_invented_results("Chest X-ray shows consolidation.", with_film)[1] == []


def test_the_other_sentences_are_kept_byte_for_byte() -> None:
    text = "Fever and cough.\nWBC 12.5.  Urgent review."
    checked, _ = flag_invented_results(text, NOTE)
    assert checked.startswith("Fever and cough.\nThe note records no white cell count result")
    assert checked.endswith("requires confirmation.  Urgent review.")


def test_a_finding_with_an_invented_result_is_kept_out_of_the_findings() -> None:
    findings = [
        ModelFinding(finding="Chest X-ray confirms pneumonia", evidence="chest X-ray confirms pneumonia"),
        ModelFinding(finding="White blood cell count of 12.5", evidence="WBC 12.5"),
        ModelFinding(finding="Tachycardia", evidence="HR 118"),
    ]
    results, flags = check_findings(findings, NOTE, [])
    assert [r.supported for r in results] == [False, False, True]
    assert "pneumonia" not in results[0].text and "12.5" not in results[1].text
    assert [flag.kind for flag in flags] == ["unsupported-result", "unsupported-result"]


def test_the_summary_never_carries_an_invented_result() -> None:
    answer = ModelAnswer(
        reasoning="Chest X-ray confirms pneumonia. Tachycardic.",
        summary="Troponin raised. Needs review.",
        key_findings=[ModelFinding(finding="Tachycardia", evidence="HR 118")],
        risk_level="High",
        recommendations=["Order a chest X-ray."],
    )
    checked = review(answer, NOTE, [])
    assert "raised" not in checked.summary and "Needs review." in checked.summary
    assert "confirms" not in checked.reasoning
    assert checked.recommendations == ["Order a chest X-ray."]
    assert sum(flag.kind == "unsupported-result" for flag in checked.flags) == 2


def test_check_text_replaces_results_before_reframing() -> None:
    checked, flags = check_text("A chest X-ray confirms pneumonia. The patient has sepsis.", NOTE)
    assert "The note records no chest X-ray result" in checked
    assert "Findings may be consistent with sepsis" in checked
    assert [flag.kind for flag in flags] == ["unsupported-result", "diagnostic-language"]
