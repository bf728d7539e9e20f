"""The engine's API: everything a front end may use, and nothing more.

    from engine import AnalysisRequest, Engine, Finished, Settings

Front ends (`tui/`) import from here only; they never reach into `models/` or
llama.cpp. Importing `engine` is light: each name is loaded from its module the
first time it is used (PEP 562), so `import engine` pulls in neither llama.cpp
nor onnxruntime, PIL or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.audit import open_history
    from engine.config import (
        FRONT_END_KEYS,
        ConfigError,
        Settings,
        config_error,
        config_path,
        data_dir,
        data_dir_problem,
        read_config_table,
    )
    from engine.doctor import (
        DoctorFacts,
        FileFacts,
        HardwareFacts,
        ImageModelFacts,
        ModelFileFacts,
        SoftwareFacts,
        gather_facts,
    )
    from engine.engine import MAX_NOTE_CHARS, Engine
    from engine.evaluation import (
        ACCEPTANCE_CASES,
        CaseFileError,
        CaseResult,
        EvalCase,
        Evaluation,
        ModelReport,
        ReportContext,
        load_cases,
        write_report,
    )
    from engine.events import (
        AnalysisRequest,
        Cancelled,
        CheckedText,
        Event,
        Failed,
        FieldCompleted,
        FieldDelta,
        Finished,
        ImageAnalysed,
        ModelLoaded,
        ModelLoading,
        NoteScreened,
        Phase,
        PhaseChanged,
        PromptPrepared,
        RiskScored,
        SentenceChecked,
        Timings,
        Token,
        Vitals,
    )
    from engine.files import atomic_write_text
    from engine.history import (
        ChainReport,
        History,
        HistoryEntry,
        RunRecord,
        export_assessment,
        exports_dir,
        handoff_markdown,
        purge_exports,
    )
    from engine.imaging import check_image, preview_thumbnail
    from engine.notefacts import NoteFacts, read_note
    from engine.preview import preview_risk
    from engine.report import Case, render, report_sections, result_limits, to_markdown, to_text
    from engine.safety.prompt_guard import scan_note
    from engine.schema import DISCLAIMER, Assessment, Finding, ImageFinding, Risk, SafetyFlag
    from engine.text import neutralise
    from engine.tools import TOOLS, run_tool
    from models.embedded import DEMO_MODEL_WARNING
    from models.info import ModelInfo

# public name -> the module that defines it
_SOURCES: dict[str, str] = {
    # configuration
    "Settings": "engine.config",
    "ConfigError": "engine.config",
    "data_dir": "engine.config",
    "config_path": "engine.config",
    "data_dir_problem": "engine.config",
    # the config file's keys that belong to front ends (theme, key bindings)
    "FRONT_END_KEYS": "engine.config",
    "read_config_table": "engine.config",
    "config_error": "engine.config",
    # untrusted text made safe for a terminal, and files written whole or not at all
    "neutralise": "engine.text",
    "atomic_write_text": "engine.files",
    # the engine, its requests and its events
    "Engine": "engine.engine",
    "MAX_NOTE_CHARS": "engine.engine",
    "AnalysisRequest": "engine.events",
    "Vitals": "engine.events",
    "Timings": "engine.events",
    "Phase": "engine.events",
    "Event": "engine.events",
    "ModelLoading": "engine.events",
    "ModelLoaded": "engine.events",
    "PhaseChanged": "engine.events",
    "PromptPrepared": "engine.events",
    "Token": "engine.events",
    "FieldDelta": "engine.events",
    "FieldCompleted": "engine.events",
    "NoteScreened": "engine.events",
    "RiskScored": "engine.events",
    "ImageAnalysed": "engine.events",
    "Finished": "engine.events",
    "Failed": "engine.events",
    "Cancelled": "engine.events",
    "SentenceChecked": "engine.events",
    "CheckedText": "engine.events",
    "ModelInfo": "models.info",
    "DEMO_MODEL_WARNING": "models.embedded",
    # what a front end draws
    "Assessment": "engine.schema",
    "Risk": "engine.schema",
    "Finding": "engine.schema",
    "ImageFinding": "engine.schema",
    "SafetyFlag": "engine.schema",
    "DISCLAIMER": "engine.schema",
    # the live risk preview and image checking, while the case is typed
    "preview_risk": "engine.preview",
    # one reading of the note, and its instruction-like text, before the run
    "NoteFacts": "engine.notefacts",
    "read_note": "engine.notefacts",
    "scan_note": "engine.safety.prompt_guard",
    "check_image": "engine.imaging",
    "preview_thumbnail": "engine.imaging",
    # history, export and the one report renderer
    "History": "engine.history",
    "HistoryEntry": "engine.history",
    # the audit trail: every run recorded, the chain that shows nothing was changed, purging
    "RunRecord": "engine.history",
    "ChainReport": "engine.history",
    "open_history": "engine.audit",
    "purge_exports": "engine.history",
    "exports_dir": "engine.history",
    "export_assessment": "engine.history",
    "handoff_markdown": "engine.history",
    "Case": "engine.report",
    "report_sections": "engine.report",
    "result_limits": "engine.report",
    "render": "engine.report",
    "to_text": "engine.report",
    "to_markdown": "engine.report",
    # installation checks and the image-model tools
    "gather_facts": "engine.doctor",
    "DoctorFacts": "engine.doctor",
    "SoftwareFacts": "engine.doctor",
    "HardwareFacts": "engine.doctor",
    "FileFacts": "engine.doctor",
    "ModelFileFacts": "engine.doctor",
    "ImageModelFacts": "engine.doctor",
    "TOOLS": "engine.tools",
    "run_tool": "engine.tools",
    # the model acceptance check: known cases through the engine, and its report
    "ACCEPTANCE_CASES": "engine.evaluation",
    "CaseFileError": "engine.evaluation",
    "CaseResult": "engine.evaluation",
    "EvalCase": "engine.evaluation",
    "Evaluation": "engine.evaluation",
    "ModelReport": "engine.evaluation",
    "ReportContext": "engine.evaluation",
    "load_cases": "engine.evaluation",
    "write_report": "engine.evaluation",
}

__all__ = [
    "ACCEPTANCE_CASES",
    "DISCLAIMER",
    "DEMO_MODEL_WARNING",
    "FRONT_END_KEYS",
    "MAX_NOTE_CHARS",
    "TOOLS",
    "AnalysisRequest",
    "Assessment",
    "Cancelled",
    "Case",
    "ChainReport",
    "CheckedText",
    "CaseFileError",
    "CaseResult",
    "ConfigError",
    "DoctorFacts",
    "Engine",
    "EvalCase",
    "Evaluation",
    "Event",
    "Failed",
    "FieldCompleted",
    "FieldDelta",
    "FileFacts",
    "Finding",
    "Finished",
    "HardwareFacts",
    "History",
    "HistoryEntry",
    "ImageAnalysed",
    "ImageFinding",
    "ImageModelFacts",
    "ModelFileFacts",
    "ModelInfo",
    "ModelLoaded",
    "ModelLoading",
    "NoteFacts",
    "ModelReport",
    "Phase",
    "PhaseChanged",
    "PromptPrepared",
    "ReportContext",
    "Risk",
    "NoteScreened",
    "RiskScored",
    "RunRecord",
    "SafetyFlag",
    "SentenceChecked",
    "Settings",
    "SoftwareFacts",
    "Timings",
    "Token",
    "Vitals",
    "atomic_write_text",
    "check_image",
    "config_error",
    "config_path",
    "data_dir",
    "data_dir_problem",
    "export_assessment",
    "exports_dir",
    "gather_facts",
    "handoff_markdown",
    "load_cases",
    "neutralise",
    "open_history",
    "preview_risk",
    "purge_exports",
    "preview_thumbnail",
    "read_note",
    "read_config_table",
    "render",
    "report_sections",
    "result_limits",
    "run_tool",
    "scan_note",
    "to_markdown",
    "to_text",
    "write_report",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
