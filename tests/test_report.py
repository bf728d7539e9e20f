"""The one report of an assessment: SBAR sections for the terminal, the handoff and the copy.

The assessments here are built by the engine's real builder from a model answer
written out as JSON (the answer the model would stream), real rule-based risk
and the real safety layer; only the model run itself is left out.
"""

from __future__ import annotations

import json

import pytest
from samples import sample_model_info

from engine import Case, Vitals, handoff_markdown, to_markdown, to_text
from engine.assessment import build
from engine.config import data_dir
from engine.events import Timings
from engine.history import export_assessment
from engine.jsonstream import JsonFieldStream
from engine.report import report_sections
from engine.risk import risk_from_note
from engine.schema import DISCLAIMER, Assessment, ImageFinding
from models.info import ModelInfo

NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, BP 118/74, T 38.4, alert."
FORM = Vitals(heart_rate=112.0, on_oxygen=False, age=67, sex="F")
ANSWER = {
    "reasoning": "Tachypnoea and fever with a productive cough.",
    "summary": "Older woman with cough, fever and a raised respiratory rate.",
    "key_findings": [
        {"finding": "Raised respiratory rate", "evidence": "RR 23"},
        {"finding": "Diagnosis is pneumonia", "evidence": "X-ray shows consolidation"},
    ],
    "risk_level": "Low",
    "recommendations": ["Senior review within 1 hour", "Repeat observations in 1 hour"],
}
SBAR = ("Situation", "Background", "Assessment", "Recommendation", "Safety flags")


def _model() -> ModelInfo:
    return sample_model_info(file_name="gemma.gguf")


def _assessment(
    note: str = NOTE, form: Vitals | None = FORM, images: list[ImageFinding] | None = None
) -> Assessment:
    stream = JsonFieldStream()
    stream.feed(json.dumps(ANSWER))
    return build(
        stream=stream,
        note=note,
        risk=risk_from_note(note, form),
        image_findings=images or [],
        model=_model(),
        timings=Timings(),
        mean_logprob=-0.2,
    )


def _positions(text: str, headings: tuple[str, ...]) -> list[int]:
    return [text.index(heading) for heading in headings]


def test_markdown_handoff_is_in_sbar_order_with_flags_and_the_disclaimer_last():
    markdown = to_markdown(_assessment(), Case(NOTE, None, FORM))
    positions = _positions(markdown, tuple(f"## {title}\n" for title in SBAR))
    assert positions == sorted(positions)
    assert markdown.rstrip().endswith(f"**{DISCLAIMER}**")
    assert markdown.index(f"**{DISCLAIMER}**") < positions[0]  # and at the top
    flags = markdown[positions[-1] :]
    assert "- diagnostic-language: Diagnosis is pneumonia" in flags
    assert "- risk-raised: model said Low" in flags and "- demo-model: gemma.gguf" in flags


def test_situation_has_news2_and_qsofa_with_points_and_what_is_missing():
    note = "Cough. RR 23, SpO2 94% on air, T 38.4."
    markdown = to_markdown(_assessment(note, None), Case(note))
    situation = markdown[markdown.index("## Situation") : markdown.index("## Background")]
    assert "- Risk level: Low" in situation  # NEWS2 band Low, and the model said Low
    assert (
        "- NEWS2: 4 (Low, partial): RR 23 → 2, SpO2 94% → 1, air → 0, temperature 38.4 °C → 1; "
        "missing: SBP, HR, consciousness" in situation
    )
    assert "- qSOFA: 1 of 3: RR 23 → 1; missing: altered mentation, SBP" in situation
    assert "- Key concern: Raised respiratory rate" in situation


def test_form_values_are_marked_and_shown_with_age_and_sex():
    markdown = to_markdown(_assessment(), Case(NOTE, None, FORM))
    assert "HR 112 (form) → 2" in markdown
    background = markdown[markdown.index("## Background") : markdown.index("## Assessment")]
    assert "- Age: 67; sex: F" in background
    assert "- Form vitals: on air, HR 112/min" in background
    assert f"```text\n{NOTE}\n```" in background
    assert "- Image: none given" in background


def test_image_findings_or_the_reason_there_are_none(tmp_path):
    finding = ImageFinding(label="consolidation", probability=0.62)
    with_findings = to_markdown(_assessment(images=[finding]), Case(NOTE, "/scans/chest.png", FORM))
    assert "- Image: /scans/chest.png (image-text similarity, not a diagnosis)" in with_findings
    assert "  - consolidation: 62%" in with_findings

    given_reason = to_markdown(
        _assessment(), Case(NOTE, "/scans/chest.png", FORM, "no image model is installed")
    )
    assert "  - no image findings: no image model is installed" in given_reason

    missing = tmp_path / "gone.png"
    found_reason = to_markdown(_assessment(), Case(NOTE, str(missing), FORM))
    assert f"  - no image findings: file not found: {missing}" in found_reason


def test_assessment_section_shows_evidence_support_levels_and_confidence():
    markdown = to_markdown(_assessment(), Case(NOTE, None, FORM))
    section = markdown[markdown.index("## Assessment") : markdown.index("## Recommendation")]
    assert "  - Older woman with cough, fever and a raised respiratory rate." in section
    assert '  - [supported] Raised respiratory rate\n    - evidence (note): "RR 23"' in section
    assert "  - [NOT SUPPORTED by the note] Findings may be consistent with pneumonia" in section
    assert "- Risk level: model Low, rules (NEWS2 band) Moderate, shown Moderate" in section
    assert "the model's Low was overruled by NEWS2 band Moderate" in section
    assert "- Confidence: 0." in section and "token probability" in section
    recommendation = markdown[markdown.index("## Recommendation") : markdown.index("## Safety flags")]
    assert "- Senior review within 1 hour\n- Repeat observations in 1 hour" in recommendation


def test_terminal_report_and_handoff_carry_the_same_lines():
    assessment, case = _assessment(), Case(NOTE, None, FORM)
    text, markdown = to_text(assessment, case), to_markdown(assessment, case)
    positions = _positions(text, tuple(f"\n{title.upper()}\n" for title in SBAR))
    assert positions == sorted(positions)
    assert text.rstrip().endswith(f"*** {DISCLAIMER} ***")
    for section in report_sections(assessment, case):
        for line in section.lines:
            assert line.text in text and line.text in markdown, line.text


def test_escape_sequences_in_the_note_cannot_reach_a_terminal():
    note = NOTE + " \x1b[2J\x1b]52;c;cHduZWQ=\x07"
    for rendered in (to_text(_assessment(note), Case(note)), to_markdown(_assessment(note), Case(note))):
        assert "\x1b" not in rendered and "\x07" not in rendered and "␛[2J" in rendered


@pytest.mark.parametrize("stored", [FORM, {"heart_rate": 112.0, "on_oxygen": False, "age": 67, "sex": "F"}])
def test_handoff_takes_form_vitals_as_the_app_and_history_keep_them(stored):
    markdown = handoff_markdown(_assessment(), NOTE, "2026-01-01T10:00", image_path=None, vitals=stored)
    assert "- Generated: 2026-01-01T10:00" in markdown and "- Age: 67; sex: F" in markdown


def test_export_writes_the_sbar_handoff_with_the_form_and_image():
    json_path, markdown_path = export_assessment(_assessment(), NOTE, "/scans/chest.png", FORM)
    assert markdown_path.parent == data_dir() / "exports"
    payload = json.loads(json_path.read_text())
    assert payload["vitals"]["age"] == 67 and payload["image_path"] == "/scans/chest.png"
    markdown = markdown_path.read_text()
    assert "## Situation" in markdown and "- Age: 67; sex: F" in markdown
    assert "- Image: /scans/chest.png" in markdown and "no image findings: file not found" in markdown
