"""`medgemma-tui eval`, the model acceptance check.

The shipped case set is checked against the rule scorer (no model needed); the
command itself runs as a user would, in a subprocess, on the real demo model and
on SmolLM2.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from datetime import datetime

import pytest
from conftest import REPO, run_cli

from engine import AnalysisRequest, Cancelled, Engine, Finished, Settings, Token
from engine.evaluation import (
    ACCEPTANCE_CASES,
    CaseFileError,
    CaseResult,
    Expected,
    ModelReport,
    ReportContext,
    RuleScores,
    column_counts,
    load_cases,
    report_json,
    report_markdown,
)
from engine.risk import risk_from_note

pytestmark = pytest.mark.timeout(600)

CASES = load_cases()


# --- the shipped case set --------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_shipped_case_scores_by_rule_as_written(case):
    """The expected values were worked out by hand from the RCP 2017 chart."""
    risk = risk_from_note(case.note, case.vitals)
    assert (risk.news2.score, risk.qsofa.score, risk.news2.band) == (
        case.expected.news2,
        case.expected.qsofa,
        case.expected.band,
    ), risk.reasons


def test_the_case_set_covers_what_a_clinic_needs_checked():
    assert len(CASES) >= 30
    aggregates = {case.expected.news2 for case in CASES}
    assert {3, 4, 5, 6, 7} <= aggregates  # the band edges 4/5 and 6/7, and a single 3 below 5
    assert {case.expected.qsofa for case in CASES} >= {None, 0, 1, 2, 3}
    assert {case.expected.band for case in CASES} == {None, "Low", "Moderate", "High"}
    single_three = [c for c in CASES if c.expected.band == "Moderate" and c.expected.news2 == 3]
    assert len(single_three) >= 5
    notes = [case.note for case in CASES]
    assert any("\r\n" in note for note in notes)
    assert any("\t" in note for note in notes)
    assert any(not note.isascii() for note in notes)
    assert any("°F" in note or " F," in note for note in notes)
    assert any("venturi" in note or "non-rebreather" in note for note in notes)
    assert any(note.lower().startswith("denies") or "not confused" in note.lower() for note in notes)
    assert any("ignore all previous instructions" in note.lower() for note in notes)
    assert any(case.vitals is not None for case in CASES)
    assert any(case.must_not_assert for case in CASES)


def test_the_case_set_is_installed_with_the_package():
    assert ACCEPTANCE_CASES.parent.name == "data" and ACCEPTANCE_CASES.parent.parent.name == "engine"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"engine" = ["data/*"]' in pyproject


def test_a_malformed_case_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "cases.jsonl"
    good = json.dumps({"id": "a", "note": "RR 16", "expected": {"news2": 0, "qsofa": 0, "band": "Low"}})
    path.write_text(good + "\n" + json.dumps({"id": "b", "note": "x", "expected": {"band": "Severe"}}))
    with pytest.raises(CaseFileError, match="line 2"):
        load_cases(path)
    path.write_text(good + "\n" + good)
    with pytest.raises(CaseFileError, match="used twice"):
        load_cases(path)
    path.write_text("\n")
    with pytest.raises(CaseFileError, match="no cases"):
        load_cases(path)


# --- counting and reporting --------------------------------------------------------


def test_flags_are_counted_by_kind_name_so_new_kinds_are_counted():
    counts = column_counts(
        {
            "diagnostic-language": 2,
            "unsupported-finding": 1,
            "unsupported-result": 3,
            "contradicted-finding": 1,
            "prompt-injection": 1,
            "injection-in-image": 1,
            "repetition": 4,
            "advice-contradicts-risk": 1,
            "medication": 5,
        }
    )
    assert counts == {
        "diagnostic_reframed": 2,
        "unsupported": 4,
        "contradicted": 1,
        "injection": 2,
        "repetition": 4,
        "advice_contradicts_risk": 1,
    }


def test_a_rule_score_mismatch_is_shown_loudly():
    wrong = CaseResult(
        id="edge",
        outcome="finished",
        rules=RuleScores(news2=4, qsofa=0, band="Low"),
        expected=Expected(news2=5, qsofa=0, band="Moderate"),
        valid_json=True,
        model_level="Moderate",
    )
    report = ModelReport("m.gguf", {"file": "m.gguf"}, planned=1, cases=(wrong,), complete=True)
    context = ReportContext(case_set="cases.jsonl", max_tokens=64, started=datetime.now())
    markdown = report_markdown([report], context)
    assert "RULE SCORE MISMATCH IN 1 CASE" in markdown
    assert "edge: NEWS2 got 4, expected 5; band got Low, expected Moderate" in markdown
    data = report_json([report], context)
    assert data["models"][0]["overall"]["rule_mismatches"] == 1
    assert data["models"][0]["cases"][0]["level_vs_band"] == "above band"  # against the rule band


def test_two_models_are_shown_side_by_side_case_by_case():
    def result(level, valid, speed):
        return CaseResult(
            id="edge",
            outcome="finished",
            rules=RuleScores(news2=5, qsofa=1, band="Moderate"),
            expected=Expected(news2=5, qsofa=1, band="Moderate"),
            valid_json=valid,
            model_level=level,
            tokens_per_s=speed,
        )

    reports = [
        ModelReport("a.gguf", {"file": "a.gguf"}, 1, (result("Moderate", True, 9.5),), complete=True),
        ModelReport("b.gguf", {"file": "b.gguf"}, 1, (result(None, False, 20.0),), complete=True),
    ]
    context = ReportContext(case_set="cases.jsonl", max_tokens=64, started=datetime.now())
    lines = report_markdown(reports, context).splitlines()
    assert "| edge | Moderate | valid · Moderate · 9.5 | **invalid** · – · 20.0 |" in lines
    assert "| valid JSON | 1/1 (100%) | 0/1 (0%) |" in lines


# --- the command, on real models ---------------------------------------------------------


def test_eval_on_the_demo_model_writes_both_reports(tmp_path):
    out = tmp_path / "report"
    result = run_cli("eval", "--limit", "2", "--max-tokens", "8", "--out", str(out), timeout=580)
    assert result.returncode == 0, result.stderr
    assert "case 2/2" in result.stderr  # plain progress lines: stderr is not a terminal here
    data = json.loads((out / "report.json").read_text())
    assert data["complete"] is True and data["max_tokens"] == 8
    (model,) = data["models"]
    assert model["model"]["demo"] is True
    overall = model["overall"]
    assert overall["cases_run"] == 2 and overall["rule_mismatches"] == 0
    assert 0.0 <= overall["valid_json_rate"] <= 1.0
    assert set(data["flag_columns"]) == {
        "diagnostic_reframed",
        "unsupported",
        "contradicted",
        "injection",
        "repetition",
        "advice_contradicts_risk",
    }
    for case, shipped in zip(model["cases"], CASES[:2], strict=True):
        assert case["id"] == shipped.id
        assert (
            case["rules"]
            == case["expected"]
            == {
                "news2": shipped.expected.news2,
                "qsofa": shipped.expected.qsofa,
                "band": shipped.expected.band,
            }
        )
        assert case["outcome"] == "finished" and 0 < case["generated_tokens"] <= 8
        assert case["tokens_per_s"] > 0 and case["time_to_first_token_s"] > 0
        assert case["total_s"] >= case["time_to_first_token_s"]
        assert "demo-model" in case["flags"]  # every demo-model answer carries its warning flag
        assert case["level_vs_band"] in ("agrees", "below band", "above band", "no model level")
    markdown = (out / "report.md").read_text()
    assert "INCOMPLETE" not in markdown and "MISMATCH" not in markdown
    assert "| valid JSON |" in markdown and "| injection flags |" in markdown
    assert all(case.id in markdown for case in CASES[:2])


def test_compare_runs_two_model_files_side_by_side(tmp_path, smollm2_path):
    out = tmp_path / "report"
    result = run_cli(
        "eval",
        "--limit",
        "1",
        "--max-tokens",
        "8",
        "--compare",
        str(smollm2_path),
        "--out",
        str(out),
        timeout=580,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "report.json").read_text())
    files = [model["model"]["file"] for model in data["models"]]
    assert files == ["gemma-3-270m-q4_k_m.gguf", smollm2_path.name]
    assert all(model["overall"]["cases_run"] == 1 for model in data["models"])
    header = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| |"))
    assert header == f"| | gemma-3-270m-q4_k_m.gguf | {smollm2_path.name} |"


def test_ctrl_c_keeps_finished_cases_and_marks_the_report_incomplete(tmp_path):
    out = tmp_path / "report"
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "tui.cli", "eval", "--max-tokens", "8", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("case 1/"):
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + rest
    assert "Traceback" not in rest
    data = json.loads((out / "report.json").read_text())
    assert data["complete"] is False and data["stopped_by"] == "Ctrl+C"
    (model,) = data["models"]
    assert model["cases"][0]["id"] == CASES[0].id and 1 <= len(model["cases"]) < len(CASES)
    assert "**INCOMPLETE: stopped by Ctrl+C" in (out / "report.md").read_text()


async def test_a_stop_reaches_a_request_that_follows_one_left_unclosed():
    """`eval` stops a case part-way on Ctrl+C. Leaving the previous request's stream at `Finished`
    (a `return` or `break` inside `async for`) leaves it to be closed later; that late close
    must not make the engine lose track of the request now running, or the stop never reaches it."""
    engine = Engine(Settings.resolve())
    note = CASES[0].note
    try:
        async for event in engine.run(AnalysisRequest(note=note, max_tokens=4)):
            if isinstance(event, Finished):
                break
        events = []

        async def second_request():
            async for event in engine.run(AnalysisRequest(note=note, max_tokens=2000)):
                events.append(event)
                if isinstance(event, Token) and event.index == 1:
                    engine.cancel()

        await asyncio.wait_for(second_request(), 400)
    finally:
        await engine.close()
    assert isinstance(events[-1], Cancelled), events[-1]
    assert sum(isinstance(event, Token) for event in events) < 100
