"""No input ends in a traceback, and no string from a model file reaches the terminal raw.

Every bad input is fed to the real command line in a subprocess: one line on
stderr, exit status 2. The hostile model is the real demo GGUF with only its
`general.name` rewritten, so llama.cpp loads and runs it as usual.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, collect
from vision_fixtures import make_onnx_model_dir, structured_images

from engine.config import ConfigError, Settings, max_threads
from engine.engine import Engine
from engine.events import AnalysisRequest, Finished, ImageAnalysed, ModelLoaded
from engine.history import export_assessment
from models.gguf import read_gguf

pytestmark = pytest.mark.timeout(600)

NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert."
HOSTILE = "\x1b]0;OWNED\x07\x1b[2J Gemma \u009b31m"
RAW_CONTROLS = ("\x1b", "\x07", "\u009b")
ROOT = os.geteuid() == 0  # root reads and writes whatever the file modes say


def cli(
    *args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None, timeout: float = 400
):
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("medgemma-tui:")]
    assert len(errors) == 1, stderr
    return errors[0]


# --- bad input: one line and exit status 2 ---------------------------------------


@pytest.mark.parametrize(
    "options, words",
    [
        (["--threads", "100000"], f"--threads must be between 1 and {max_threads()}"),
        (["--threads", "-1"], "--threads must be between 1"),
        (["--threads", "0"], "--threads must be between 1"),
        (["--ctx", "0"], "--ctx must be at least 256"),
        (["--ctx", "2e9"], "--ctx: invalid int value"),
        (["--ctx", "2000000000"], "ctx must be between 256 and 32768 (the model's trained context)"),
        (["--gpu-layers", "-1"], "--gpu-layers must be 'auto' or 0 or more"),
        (["--gpu-layers", "100000"], "gpu-layers must be 'auto' or between 0 and 19 (the model's layers)"),
        (["--temperature", "nan"], "--temperature must be a number between 0 and 2"),
        (["--temperature", "inf"], "--temperature must be a number between 0 and 2"),
        (["--temperature", "-0.5"], "--temperature must be a number between 0 and 2"),
        (["--max-tokens", "0"], "--max-tokens must be at least 1"),
        (["--max-tokens", "5000"], "max-tokens must be between 1 and 4096 (the context)"),
        (["--ubatch", "128"], "--ubatch must be at least 256 tokens"),
        (["--batch", "256"], "--batch must be at least ubatch (512 tokens)"),
    ],
)
def test_out_of_range_options_are_one_line_and_exit_2(options, words):
    result = cli("analyze", "--note", "-", *options, stdin=NOTE)
    assert result.returncode == 2
    assert words in one_error_line(result)


@pytest.mark.parametrize(
    "config, words",
    [
        ("threads = 100000\n", "threads must be between 1"),
        ("ctx = 0\n", "ctx must be at least 256"),
        ("gpu_layers = -1\n", "gpu-layers must be 'auto' or 0 or more"),
        ("temperature = nan\n", "temperature must be a number between 0 and 2"),
        ("temperature = inf\n", "temperature must be a number between 0 and 2"),
        ("max_tokens = 0\n", "max-tokens must be at least 1"),
        ("ctx = 2000000000\n", "ctx must be between 256 and 32768"),
        ("ubatch = 64\n", "ubatch must be at least 256 tokens"),
        ("batch = 1024\nubatch = 2048\n", "batch must be at least ubatch (2048 tokens)"),
    ],
)
def test_the_config_file_keeps_to_the_same_rules(tmp_path, config, words):
    path = tmp_path / "config.toml"
    path.write_text(config)
    result = cli("analyze", "--note", "-", stdin=NOTE, env={"MEDGEMMA_TUI_CONFIG": str(path)})
    assert result.returncode == 2
    line = one_error_line(result)
    assert words in line
    assert "--" not in line.split(words)[0]  # named as the config file's setting, not a flag


def test_the_rules_are_one_function_for_both_sources():
    with pytest.raises(ConfigError, match="^--threads"):
        Settings.resolve(threads=-1)
    settings = Settings.resolve(threads=1, ctx=256, gpu_layers="0", temperature=2.0, max_tokens=1)
    assert (settings.threads, settings.ctx, settings.gpu_layers, settings.temperature) == (1, 256, 0, 2.0)
    settings.check_model_file()  # the limits themselves are allowed


def test_batch_sizes_reach_the_model_loader(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("batch = 1024\nubatch = 256\n")
    monkeypatch.setenv("MEDGEMMA_TUI_CONFIG", str(path))
    assert (Settings.resolve().batch, Settings.resolve().ubatch) == (1024, 256)
    settings = Settings.resolve(ubatch=512)  # the command line wins over the file
    assert (settings.batch, settings.ubatch) == (1024, 512)
    assert settings.describe()["ubatch"] == 512


def test_batch_sizes_given_on_the_command_line_are_what_llama_cpp_uses():
    result = cli(
        "analyze",
        "--note",
        "-",
        "--json",
        "--max-tokens",
        "8",
        "--batch",
        "1024",
        "--ubatch",
        "256",
        stdin=NOTE,
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["model"]
    assert (model["n_batch"], model["n_ubatch"]) == (1024, 256)  # read back from the llama.cpp context


def test_a_config_path_that_is_a_folder(tmp_path):
    result = cli("analyze", "--note", "-", stdin=NOTE, env={"MEDGEMMA_TUI_CONFIG": str(tmp_path)})
    assert result.returncode == 2
    assert "is a folder, not a file" in one_error_line(result)


@pytest.mark.skipif(ROOT, reason="root can read a file with mode 000")
def test_an_unreadable_config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("threads = 2\n")
    path.chmod(0)
    result = cli("analyze", "--note", "-", stdin=NOTE, env={"MEDGEMMA_TUI_CONFIG": str(path)})
    assert result.returncode == 2
    assert "cannot be read" in one_error_line(result)


def test_a_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "data-file"
    path.write_text("")
    for command in (["analyze", "--note", "-"], ["demo"]):
        result = cli(*command, stdin=NOTE, env={"MEDGEMMA_TUI_DATA_DIR": str(path)})
        assert result.returncode == 2
        assert "is a file, not a folder" in one_error_line(result)


def test_doctor_reports_a_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "data-file"
    path.write_text("")
    result = cli("doctor", env={"MEDGEMMA_TUI_DATA_DIR": str(path)})
    out = result.stdout.decode()
    assert b"Traceback" not in result.stderr
    assert result.returncode == 1  # a problem was found and reported
    assert "PROBLEM: the data dir" in out and "is a file, not a folder" in out


@pytest.mark.skipif(ROOT, reason="root can write into a read-only folder")
def test_a_read_only_data_dir(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    existing = parent / "data"
    existing.mkdir()
    parent.chmod(0o500)
    existing.chmod(0o500)
    try:
        for data in (existing, parent / "not-yet"):
            result = cli("analyze", "--note", "-", stdin=NOTE, env={"MEDGEMMA_TUI_DATA_DIR": str(data)})
            assert result.returncode == 2
            assert str(data) in one_error_line(result)
            doctor = cli("doctor", env={"MEDGEMMA_TUI_DATA_DIR": str(data)})
            assert b"Traceback" not in doctor.stderr and b"PROBLEM" in doctor.stdout
    finally:
        parent.chmod(0o700)
        existing.chmod(0o700)


def test_an_endless_note_file_is_refused_without_reading_it_all():
    result = cli("analyze", "--note", "/dev/zero", timeout=120)
    assert result.returncode == 2
    assert "longer than the limit of 200,000 characters" in one_error_line(result)


def test_endless_stdin_is_refused_without_reading_it_all():
    process = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "analyze", "--note", "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    written = 0
    try:
        while process.poll() is None and written < 1 << 30:  # stops at 1 GiB, far past the limit
            try:
                process.stdin.write(b"x" * 65536)
                written += 65536
            except BrokenPipeError:
                break
    finally:
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
    stderr = process.stderr.read()
    process.wait(60)
    assert process.returncode == 2
    assert written < 16 << 20, "the process stopped reading soon after the limit"
    assert b"longer than the limit" in stderr and b"Traceback" not in stderr


def test_a_bad_option_is_one_line_not_a_usage_block():
    result = cli("analyze", "--note", "-", "--threads", "many", stdin=NOTE)
    assert result.returncode == 2
    assert "--threads: invalid int value" in one_error_line(result)
    assert len(result.stderr.decode().splitlines()) == 1


# --- strings from model files ----------------------------------------------------


def hostile_gguf(source: Path, target: Path, name: str) -> Path:
    """A copy of `source` whose general.name is `name`, the tensor data moved to stay aligned."""
    data = source.read_bytes()
    version, tensor_count, kv_count = struct.unpack_from("<IQQ", data, 4)
    offset, out = 24, bytearray(data[:24])
    from models.gguf import _read_string, _read_value  # walking the header as the reader does

    alignment = 32
    for _ in range(kv_count):
        key, value_at = _read_string(data, offset)
        (value_type,) = struct.unpack_from("<I", data, value_at)
        value, end = _read_value(data, value_at + 4, value_type)
        if key == "general.alignment":
            alignment = int(value)
        if key == "general.name":
            encoded = name.encode()
            out += data[offset : value_at + 4] + struct.pack("<Q", len(encoded)) + encoded
        else:
            out += data[offset:end]
        offset = end
    infos_start = offset
    for _ in range(tensor_count):  # tensor infos: name, dims, type, offset into the data
        _, offset = _read_string(data, offset)
        (n_dims,) = struct.unpack_from("<I", data, offset)
        offset += 4 + 8 * n_dims + 12
    out += data[infos_start:offset]
    old_start = (offset + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    out += data[old_start:]
    target.write_bytes(bytes(out))
    return target


@pytest.fixture
def hostile_model(tmp_path, gemma_path) -> Path:
    path = hostile_gguf(gemma_path, tmp_path / "hostile.gguf", HOSTILE)
    assert read_gguf(path).name.startswith("␛]0;OWNED␇␛[2J")  # read back, neutralised
    return path


def assert_no_raw_controls(text: str) -> None:
    for control in RAW_CONTROLS:
        assert control not in text, f"raw {control!r} in output"


def test_the_hostile_name_is_shown_harmlessly_by_analyze(hostile_model):
    result = cli("analyze", "--note", "-", "--model", str(hostile_model), "--max-tokens", "40", stdin=NOTE)
    assert result.returncode == 0, result.stderr
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert_no_raw_controls(stdout + stderr)
    assert "model: ␛]0;OWNED␇␛[2J Gemma \ufffd31m" in stderr


def test_the_hostile_name_is_harmless_in_json(hostile_model):
    result = cli(
        "analyze", "--note", "-", "--model", str(hostile_model), "--max-tokens", "40", "--json", stdin=NOTE
    )
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout.decode() + result.stderr.decode())
    assert "\\u001b" not in result.stdout.decode()  # not even as a JSON escape
    payload = json.loads(result.stdout)
    assert payload["model"]["name"] == "␛]0;OWNED␇␛[2J Gemma \ufffd31m"


def test_the_hostile_name_is_harmless_in_doctor(hostile_model):
    result = cli("doctor", "--model", str(hostile_model))
    assert result.returncode == 0, result.stdout
    assert_no_raw_controls(result.stdout.decode() + result.stderr.decode())
    assert "␛]0;OWNED␇␛[2J" in result.stdout.decode()


async def test_hostile_names_and_labels_are_harmless_in_the_export(tmp_path, hostile_model):
    labels = ["normal \x1b[2J", "pneumonia\u009b1m", "effusion\x07"]
    images = structured_images(len(labels), seed=3)
    vision_dir = make_onnx_model_dir(tmp_path / "vision", labels, images)
    image = tmp_path / "xray.png"
    images[1].save(image)
    engine = Engine(Settings.resolve(model=str(hostile_model), vision_model=str(vision_dir), threads=2))
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, image_path=str(image), max_tokens=200)))
    finally:
        await engine.close()
    loaded = next(e for e in events if isinstance(e, ModelLoaded))
    assert loaded.info.name == "␛]0;OWNED␇␛[2J Gemma \ufffd31m"
    analysed = next(e for e in events if isinstance(e, ImageAnalysed))
    assert {f.label for f in analysed.findings} == {"normal ␛[2J", "pneumonia\ufffd1m", "effusion␇"}
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.assessment is not None
    json_path, markdown_path = export_assessment(
        finished.assessment, NOTE, image_path=str(image), directory=tmp_path / "exports"
    )
    for path in (json_path, markdown_path):
        text = path.read_text(encoding="utf-8")
        assert_no_raw_controls(text)
        assert "\\u001b" not in text
    assert "␛]0;OWNED␇␛[2J" in markdown_path.read_text(encoding="utf-8")
