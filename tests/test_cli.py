"""The headless CLI run as a user would: a real subprocess on the real demo model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli

from engine.schema import DISCLAIMER, Assessment

pytestmark = pytest.mark.timeout(600)

NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert."


def streaming_analyze(note_file, max_tokens: int, stderr: int) -> subprocess.Popen:
    """`analyze` in text mode, unbuffered, its stdout read as it streams."""
    command = [sys.executable, "-u", "-m", "tui.cli", "analyze", "--note", str(note_file), "--mode", "text"]
    return subprocess.Popen(
        [*command, "--max-tokens", str(max_tokens)], stdout=subprocess.PIPE, stderr=stderr, cwd=REPO
    )


@pytest.fixture
def note_file(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text(NOTE)
    return path


def test_text_mode_streams_to_stdout_and_says_demo_on_stderr(note_file):
    result = run_cli("analyze", "--note", str(note_file), "--mode", "text", "--max-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 5
    assert "DEMO MODEL" in result.stderr and "not a medical model" in result.stderr
    assert "tok/s" in result.stderr


def test_stream_is_flushed_sentence_by_sentence(note_file):
    process = streaming_analyze(note_file, 120, stderr=subprocess.DEVNULL)
    arrivals = []
    try:
        while True:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            arrivals.append((time.perf_counter(), chunk.decode("utf-8", "replace")))
    finally:
        process.wait(timeout=300)
    assert process.returncode == 0
    streamed = [text for _, text in arrivals if "Safety flags" not in text]
    assert len(streamed) >= 3, "output should arrive a sentence at a time, not once at the end"
    # every piece that arrived ends where a sentence ends: nothing unchecked was printed
    from engine.safety import sentence_spans

    full = "".join(streamed)
    sentence_ends = {end for _, end in sentence_spans(full)}
    position = 0
    for text in streamed[:-1]:
        position += len(text)
        assert len(full[:position].rstrip()) in sentence_ends, (full[:position], streamed)


def test_json_prints_exactly_the_assessment_object(note_file):
    result = run_cli("analyze", "--note", str(note_file), "--json", "--max-tokens", "500")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assessment = Assessment.model_validate(payload)
    assert DISCLAIMER in assessment.clinical_notes
    assert assessment.risk.news2.score == 5 and assessment.risk.qsofa.score == 1
    assert payload["model"]["demo"] is True
    assert payload["model"]["architecture"] == "gemma3" and payload["model"]["quantization"] == "Q4_K_M"
    assert {"threads", "gpu_layers", "file"} <= payload["model"].keys()
    assert payload["timings"]["generated_tokens"] > 0
    assert "Reasoning (model, checked sentence by sentence)" in result.stderr  # the stream moved to stderr


def test_text_mode_json_carries_checked_text_flags_and_the_disclaimer(note_file):
    result = run_cli("analyze", "--note", str(note_file), "--mode", "text", "--json", "--max-tokens", "60")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {"text", "raw_text", "safety", "clinical_notes", "model", "timings"} <= payload.keys()
    assert DISCLAIMER in payload["clinical_notes"] and "not a medical model" in payload["clinical_notes"]
    kinds = [flag["kind"] for flag in payload["safety"]["flags"]]
    assert "demo-model" in kinds
    assert payload["raw_text"].strip() and payload["text"].strip()


def test_text_mode_output_ends_with_its_flags_and_the_disclaimer(note_file):
    result = run_cli("analyze", "--note", str(note_file), "--mode", "text", "--max-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert "Safety flags:" in result.stdout and "- demo-model:" in result.stdout
    assert result.stdout.rstrip().endswith(f"*** {DISCLAIMER} ***")


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda tmp: tmp / "missing.png", "file not found"),
        (lambda tmp: _write(tmp / "not-an-image.png", "plain text, not pixels"), "not a recognised image"),
    ],
)
def test_bad_image_exits_2_in_one_line_before_any_model_loads(note_file, tmp_path, make, words):
    started = time.perf_counter()
    result = run_cli("analyze", "--note", str(note_file), "--json", "--image", str(make(tmp_path)))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert "loading" not in result.stderr and time.perf_counter() - started < 30


def test_an_image_text_mode_cannot_analyse_is_stated_in_the_json(note_file, tmp_path):
    from PIL import Image

    image = tmp_path / "chest.png"
    Image.new("L", (64, 64), 128).save(image)
    result = run_cli(
        "analyze",
        "--note",
        str(note_file),
        "--mode",
        "text",
        "--json",
        "--max-tokens",
        "8",
        "--image",
        str(image),
    )
    assert result.returncode == 0, result.stderr
    flags = json.loads(result.stdout)["safety"]["flags"]
    refused = [flag for flag in flags if flag["kind"] == "image-refused"]
    assert refused and "does not analyse images" in refused[0]["detail"]


def _write(path, text: str):
    path.write_text(text)
    return path


def test_note_from_stdin():
    result = run_cli("analyze", "--note", "-", "--mode", "text", "--max-tokens", "8", stdin=NOTE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize(
    "args, stdin, words",
    [
        (["analyze", "--note", "/nonexistent/note.txt"], None, "cannot read the note"),
        (["analyze", "--note", "-"], "   \n", "note is empty"),
        (["analyze", "--note", "-", "--model", "/nonexistent/model.gguf"], NOTE, "model file not found"),
        (["analyze", "--note", "-", "--gpu-layers", "many"], NOTE, "--gpu-layers"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, stdin, words):
    result = run_cli(*args, stdin=stdin)
    assert result.returncode == 2, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("medgemma-tui:")]
    assert len(errors) == 1 and words in errors[0], result.stderr


def test_bad_config_file_exits_2(tmp_path, monkeypatch):
    config = tmp_path / "bad.toml"
    config.write_text("threads = 'many'\n")
    monkeypatch.setenv("MEDGEMMA_TUI_CONFIG", str(config))
    result = run_cli("analyze", "--note", "-", stdin=NOTE)
    assert result.returncode == 2 and "threads" in result.stderr


def test_ctrl_c_stops_cleanly_with_130_and_keeps_the_text(note_file):
    process = streaming_analyze(note_file, 600, stderr=subprocess.PIPE)
    received = b""
    while len(received.split()) < 6:
        chunk = os.read(process.stdout.fileno(), 256)
        assert chunk, "the stream ended before it could be interrupted"
        received += chunk
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert (received + rest).startswith(received) and len(received + rest) >= len(received)
    assert b"cancelled" in stderr and b"Traceback" not in stderr


def test_escape_sequences_are_neutralised_before_the_terminal(tmp_path):
    note = tmp_path / "hostile.txt"
    note.write_text("Cough \x1b[2J\x1b]52;c;cHduZWQ=\x07 for 2 days. RR 16, HR 80, alert. \x1b[?1049h")
    result = run_cli("analyze", "--note", str(note), "--max-tokens", "300")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "  | Cough ␛[2J␛]52;c;cHduZWQ=␇ for 2 days." in result.stdout  # the note, quoted harmlessly
    headings = [
        result.stdout.index(f"\n{title}\n")
        for title in ("SITUATION", "BACKGROUND", "ASSESSMENT", "RECOMMENDATION")
    ]
    assert headings == sorted(headings)  # the terminal report is the SBAR report
    assert "  - NEWS2: 0 (Low, partial): RR 16 → 0, HR 80 → 0, consciousness A → 0" in result.stdout


def test_demo_streams_the_bundled_cases():
    result = run_cli("demo", "--max-tokens", "60", "--mode", "text")
    assert result.returncode == 0, result.stderr
    cases = sorted(path.stem for path in (REPO / "examples").glob("*.json"))
    for case in cases:
        assert f"=== case {case} ===" in result.stderr
    assert "DEMO MODEL" in result.stderr


def test_doctor_reports_versions_hardware_model_and_advice():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for words in (
        "llama-cpp-python",
        "GPU offload",
        "threads",
        "memory",
        "gemma3",
        "Q4_K_M",
        "magic ok",
        "medgemma-4b-it",
        "mmproj",
        "MEDGEMMA_TUI_MODEL",
    ):
        assert words in out, words


def test_doctor_reports_a_broken_model(tmp_path):
    broken = tmp_path / "x.gguf"
    broken.write_text("nope")
    result = run_cli("doctor", "--model", str(broken))
    assert result.returncode == 1
    assert "PROBLEM" in result.stdout and "not a GGUF" in result.stdout
