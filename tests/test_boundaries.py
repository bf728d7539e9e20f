"""The layers keep to their side: front ends use the declared engine API, and the
command line loads heavy libraries only for the commands that need them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

import engine
from engine.engine import MAX_NOTE_CHARS
from engine.events import RiskScored, Vitals

pytestmark = pytest.mark.timeout(600)

HEAVY = ("llama_cpp", "onnxruntime", "PIL", "torch")
FORBIDDEN_IN_TUI = ("models", "llama_cpp")
NOTE = "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert."


def _imported_names(path) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in `path`, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _forbidden_imports(path) -> list[str]:
    """Every import of a forbidden package in `path`."""
    return [
        f"{path}:{line}: {name}"
        for line, name in _imported_names(path)
        if name.split(".")[0] in FORBIDDEN_IN_TUI
    ]


def _engine_internals(path) -> list[str]:
    """Imports of engine submodules in `path`: front ends use `from engine import ...` only."""
    return [f"{path}:{line}: {name}" for line, name in _imported_names(path) if name.startswith("engine.")]


def test_tui_imports_nothing_from_models_or_llama_cpp():
    files = sorted((REPO / "tui").rglob("*.py"))
    assert len(files) >= 10  # the walk really sees the front ends
    offenders = [hit for path in files for hit in _forbidden_imports(path)]
    assert offenders == []


def test_tui_reaches_the_engine_only_through_its_declared_api():
    offenders = [hit for path in sorted((REPO / "tui").rglob("*.py")) for hit in _engine_internals(path)]
    assert offenders == []


def test_the_import_check_catches_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from models.images import load_image\n    import llama_cpp.llama\n")
    hits = _forbidden_imports(sample)
    assert [hit.split(": ")[1] for hit in hits] == ["models.images", "llama_cpp.llama"]


def _modules_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; return the modules it ended with."""
    script = (
        textwrap.dedent(code) + "\nimport json, sys\nprint('MODULES=' + json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=500
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("MODULES=")]
    assert lines, result.stdout + result.stderr
    return json.loads(lines[-1].removeprefix("MODULES="))


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY]


def test_importing_the_engine_api_is_light():
    modules = _modules_after("import engine")
    assert "engine" in modules and "engine.engine" not in modules
    assert _heavy(modules) == []


def test_every_declared_name_resolves_without_heavy_libraries():
    modules = _modules_after("import engine\nfor name in engine.__all__: getattr(engine, name)")
    assert "engine.engine" in modules and "engine.doctor" in modules
    assert _heavy(modules) == []


def test_unknown_names_are_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'score_risk'"):
        _ = engine.score_risk


def test_help_loads_no_heavy_library():
    modules = _modules_after(
        """
        from tui.cli import main
        try:
            main(["--help"])
        except SystemExit as exit:
            assert exit.code == 0
        """
    )
    assert "tui.cli" in modules
    assert _heavy(modules) == []
    assert "models.export_vision" not in modules and "models.probe" not in modules


def test_analyze_loads_no_onnxruntime_pil_or_torch(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    modules = _modules_after(
        f"""
        from tui.cli import main
        assert main(["analyze", "--note", {str(note)!r}, "--max-tokens", "12"]) == 0
        """
    )
    assert "engine.engine" in modules and "engine.report" in modules  # it really ran and reported
    assert [name for name in _heavy(modules) if not name.startswith("llama_cpp")] == []


@pytest.mark.parametrize("tool, option", [("export-vision", "--out"), ("train-probe", "--model-dir")])
def test_tool_commands_show_their_own_help(tool, option):
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", tool, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: medgemma-tui {tool}") and option in result.stdout


def test_tool_commands_refuse_bad_arguments_with_status_2():
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "train-probe", "--images", "x"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2 and "--model-dir" in result.stderr


# --- the live risk preview ------------------------------------------------------


async def test_preview_risk_is_the_risk_the_engine_scores():
    from conftest import collect

    vitals = Vitals(heart_rate=125.0, consciousness="V", age=67, sex="F")
    run = engine.Engine(engine.Settings.resolve(threads=2))
    try:
        events = await collect(run.run(engine.AnalysisRequest(note=NOTE, vitals=vitals, max_tokens=4)))
    finally:
        await run.close()
    scored = [event.risk for event in events if isinstance(event, RiskScored)]
    assert len(scored) == 1
    preview = engine.preview_risk(NOTE, vitals)
    assert preview == scored[0]
    assert preview.news2.points["heart_rate"] == 2 and preview.vitals["heart_rate"]["source"] == "form"
    assert preview.qsofa.points["altered_mentation"] == 1


def test_preview_risk_reads_only_what_the_engine_accepts():
    padding = "x" * (MAX_NOTE_CHARS - 20)
    inside = engine.preview_risk(NOTE[:40] + padding[40:] + " RR 30", None)
    beyond = engine.preview_risk(padding + " " * 30 + "RR 30, HR 150", None)
    assert inside.news2.points == {"respiratory_rate": 3}
    assert beyond.news2.score is None  # past the cap, as the engine would refuse to read it
