"""The answer is parsed once, as it streams: the parser's fields are the assessment.

Pure tests, no model: the JSON is written here so that every edge (escapes,
surrogate pairs, cut-offs) is certain to occur.
"""

from __future__ import annotations

import json

import pytest
from samples import sample_model_info

from engine import assessment
from engine.events import Timings
from engine.jsonstream import JsonFieldStream
from engine.risk import score_risk
from engine.schema import DISCLAIMER
from engine.text import neutralise
from engine.vitals import extract_vitals, merge_vitals

NOTE = "Cough and fever for 3 days. RR 24, SpO2 95% on air, BP 118/76, HR 104, T 38.6, alert."
ANSWER = {
    "reasoning": "Fever with tachypnoea; consider a chest infection.",
    "summary": "Possible lower respiratory tract infection.",
    "key_findings": [
        {"finding": "Fever", "evidence": "T 38.6"},
        {"finding": "Tachypnoea", "evidence": "RR 24"},
    ],
    "risk_level": "Moderate",
    "recommendations": ["Consider a chest X-ray.", "Repeat observations in 1 hour."],
}
INFO = sample_model_info(name="m", file_name="m.gguf", demo=False)
CONTROL = {chr(code) for code in range(0x20) if chr(code) not in "\n\t"} | {"\x7f"}
CONTROL |= {chr(code) for code in range(0x80, 0xA0)}


def fed(text: str, piece: int = 3) -> tuple[JsonFieldStream, list]:
    """Feed `text` in pieces the way the engine does (each piece neutralised once)."""
    stream, updates = JsonFieldStream(), []
    for start in range(0, len(text), piece):
        updates += stream.feed(neutralise(text[start : start + piece]))
    return stream, updates


def built(stream: JsonFieldStream, **kwargs):
    risk = score_risk(merge_vitals(extract_vitals(NOTE), None))
    return assessment.build(
        stream=stream,
        note=NOTE,
        risk=risk,
        image_findings=[],
        model=INFO,
        timings=Timings(),
        mean_logprob=-0.2,
        **kwargs,
    )


@pytest.mark.parametrize("piece", [1, 2, 5, 64])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_fields_equal_a_full_parse_whatever_the_piece_size(piece, ascii_only):
    answer = {**ANSWER, "summary": 'Ωmega 😀 "quoted" back\\slash / tab\tend'}
    stream, updates = fed(json.dumps(answer, ensure_ascii=ascii_only), piece)
    assert stream.complete
    assert stream.fields == answer
    completed = {u.name: u.value for u in updates if u.complete}
    assert completed == answer
    streamed = "".join(u.delta for u in updates if u.name == "summary")
    assert streamed == answer["summary"]


def test_the_assessment_is_built_from_the_parser_fields_not_the_text():
    stream, _ = fed(json.dumps(ANSWER))
    stream.fields["summary"] = "Changed after parsing."  # the text still says otherwise
    result = built(stream)
    assert result.complete is True
    assert result.summary.startswith("Changed after parsing")
    assert result.key_findings == ["Fever", "Tachypnoea"]
    assert result.recommendations == ANSWER["recommendations"]
    assert result.risk.model_level == "Moderate"


def test_escapes_that_decode_to_control_characters_come_out_neutralised():
    hostile = {
        **ANSWER,
        "reasoning": "Clear \u001b[2J the screen \u009b31m and ring \u0007, CR \r, DEL \u007f.",
        "key_findings": [{"finding": "Bell \u0007", "evidence": "RR 24 \u001b]0;title\u0007"}],
        "recommendations": ["Consider \u001b[31mred\u001b[0m text."],
    }
    text = json.dumps(hostile)  # the escapes travel as \\u001b etc.
    assert not CONTROL & set(text)
    stream, updates = fed(text, piece=4)
    assert stream.complete
    strings = [u.delta for u in updates] + [json.dumps(u.value, ensure_ascii=False) for u in updates]
    strings.append(json.dumps(stream.fields, ensure_ascii=False))
    for value in strings:
        assert not CONTROL & set(value), value
    assert stream.fields["reasoning"] == neutralise(hostile["reasoning"])
    assert "␛[2J" in stream.fields["reasoning"]
    result = built(stream)
    dumped = result.model_dump_json()
    assert "\\u001b" not in dumped and "\\u0007" not in dumped and "\\u009b" not in dumped
    assert not CONTROL & set(result.reasoning + " ".join(result.recommendations))


def test_a_lone_surrogate_becomes_the_replacement_character():
    stream, _ = fed('{"reasoning": "a \\ud83d b", "summary": "\\ude00", "risk_level": "Low"}')
    assert stream.fields["reasoning"] == "a \ufffd b"
    assert stream.fields["summary"] == "\ufffd"
    stream.fields["reasoning"].encode("utf-8")  # printable: no lone surrogate left


def test_every_cut_off_point_gives_a_partial_assessment_never_a_crash():
    text = json.dumps(ANSWER)
    for end in range(0, len(text), 7):
        stream, _ = fed(text[:end])
        assert not stream.complete
        result = built(stream, hit_token_limit=True)
        assert result.complete is False
        assert any(flag.kind == "incomplete" for flag in result.safety.flags)
        assert DISCLAIMER in result.clinical_notes
    stream, _ = fed(text)
    assert built(stream).complete is True


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(ANSWER) + " trailing words",
        "Sure! " + json.dumps(ANSWER),
        json.dumps(ANSWER) + json.dumps(ANSWER),
        json.dumps({**ANSWER, "risk_level": "Extreme"}),
        json.dumps({**ANSWER, "extra": 1}),
        json.dumps(ANSWER).replace('"Moderate"', "Moderate"),
    ],
    ids=["trailing-text", "leading-text", "two-objects", "bad-level", "extra-field", "bare-word"],
)
def test_anything_but_one_valid_object_is_incomplete(text):
    stream, _ = fed(text)
    result = built(stream)
    assert result.complete is False
    assert any(flag.kind == "incomplete" for flag in result.safety.flags)
