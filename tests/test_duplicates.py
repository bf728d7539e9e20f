"""Exact and near-duplicate findings and recommendations are dropped, with the count in a flag."""

from __future__ import annotations

from engine.safety import review
from engine.safety.duplicates import is_duplicate, unique_indices
from engine.schema import ModelAnswer, ModelFinding

NOTE = "72M, cough and fever for 3 days. RR 26, SpO2 91% on air, BP 98/60, HR 118, T 38.9, new confusion."


def test_exact_and_near_duplicates_are_found() -> None:
    texts = [
        "Monitor vital signs closely.",
        "monitor vital signs closely",
        "Monitor the vital signs closely.",
        "Fever",
        "Fever and cough",
        "Urgent senior review.",
    ]
    assert unique_indices(texts) == [0, 3, 4, 5]
    assert not is_duplicate("Admit to hospital", ["arrange inpatient care"])


def test_the_demo_models_six_identical_findings_become_one_with_a_flag() -> None:
    same = ModelFinding(finding="Respiratory rate of 26", evidence="RR 26")
    answer = ModelAnswer(
        reasoning="See findings.",
        summary="Urgent review.",
        key_findings=[same] * 6,
        risk_level="High",
        recommendations=["Urgent senior review."] * 4 + ["Urgent senior review"],
    )
    checked = review(answer, NOTE, [])
    assert len(checked.findings) == 1 and checked.recommendations == ["Urgent senior review."]
    [flag] = [flag for flag in checked.flags if flag.kind == "repetition"]
    assert "5 findings and 4 recommendations" in flag.detail
    assert checked.supported_share == 1.0  # repeats do not count as extra support


def test_no_flag_without_repetition() -> None:
    answer = ModelAnswer(
        reasoning="r",
        summary="s",
        key_findings=[ModelFinding(finding="Tachycardia", evidence="HR 118")],
        risk_level="High",
        recommendations=["Urgent senior review.", "Repeat observations in one hour."],
    )
    assert all(flag.kind != "repetition" for flag in review(answer, NOTE, []).flags)
