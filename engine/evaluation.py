"""The model acceptance check behind `medgemma-tui eval`.

A clinic runs a set of cases whose answers are known through the real engine on
a chosen model file, and gets a report (Markdown and JSON) of how that model
behaves: how often its answer is valid JSON, whether its risk level agrees with
the NEWS2 band, what the safety layer had to flag, and how fast it runs.

Rule scores are exact by construction: NEWS2 and qSOFA come from the note by
rule, never from the model. A rule score that differs from the case's expected
value therefore means the vitals reader or the scorer is wrong, and the report
says so at the top, in capitals.

Safety flags are counted by their kind strings, so a kind the safety layer adds
later is still counted (in the per-kind totals, and in a column when its name
matches one of `FLAG_COLUMNS`).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from engine.config import Settings
from engine.engine import Engine
from engine.events import (
    AnalysisRequest,
    Cancelled,
    Failed,
    Finished,
    ModelLoaded,
    RiskScored,
    Vitals,
)
from engine.files import atomic_write_text
from engine.schema import RISK_ORDER, Assessment, Risk, RiskLevel

ACCEPTANCE_CASES = Path(__file__).resolve().parent / "data" / "acceptance_cases.jsonl"

LevelAgreement = Literal["agrees", "below band", "above band", "no model level", "no band"]
CaseOutcome = Literal["finished", "failed"]
# what follows a case: the next one, or a stop (cancelled, or the model could not be loaded)
NextStep = Literal["next", "cancelled", "no-model"]


class CaseFileError(ValueError):
    """The case file cannot be read or a case in it is malformed."""


# --- cases -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    """What is known about a case's answer. None: the note lacks the vitals to score."""

    news2: int | None
    qsofa: int | None
    band: RiskLevel | None


@dataclass(frozen=True, slots=True)
class EvalCase:
    id: str
    note: str
    expected: Expected
    image_path: str | None = None
    vitals: Vitals | None = None
    must_not_assert: tuple[str, ...] = ()  # words no key finding may state as present


def load_cases(path: Path = ACCEPTANCE_CASES) -> list[EvalCase]:
    """Cases from a JSONL file, one JSON object a line; an image path is relative to the file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"cannot read {path}: {exc}") from exc
    cases: list[EvalCase] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            cases.append(_case(json.loads(line), path.parent))
        except (ValueError, TypeError, KeyError) as exc:
            raise CaseFileError(f"{path.name} line {number}: {exc}") from exc
    if not cases:
        raise CaseFileError(f"{path} holds no cases")
    ids = [case.id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CaseFileError(f"{path.name}: case ids used twice: {', '.join(duplicates)}")
    return cases


def _case(raw: dict[str, Any], folder: Path) -> EvalCase:
    if not isinstance(raw, dict):
        raise TypeError("a case must be a JSON object")
    note = raw["note"]
    if not isinstance(note, str) or not note.strip():
        raise ValueError("'note' must be non-empty text")
    expected = raw.get("expected") or {}
    band = expected.get("band")
    if band is not None and band not in RISK_ORDER:
        raise ValueError(f"'band' must be one of {', '.join(RISK_ORDER)} or null, not {band!r}")
    image = raw.get("image")
    vitals = raw.get("vitals")
    words = raw.get("must_not_assert") or []
    if not all(isinstance(word, str) for word in words):
        raise TypeError("'must_not_assert' must be a list of words")
    return EvalCase(
        id=str(raw["id"]),
        note=note,
        expected=Expected(
            news2=_optional_int(expected.get("news2")),
            qsofa=_optional_int(expected.get("qsofa")),
            band=band,
        ),
        image_path=str(folder / image) if image else None,
        vitals=Vitals(**vitals) if vitals else None,
        must_not_assert=tuple(words),
    )


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an expected score must be a whole number or null, not {value!r}")
    return value


# --- flags ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagColumn:
    """A report column counting the safety flags whose kind `matches`."""

    key: str
    heading: str
    kinds: str  # which kinds it counts, for the report's legend
    matches: Callable[[str], bool]


FLAG_COLUMNS: tuple[FlagColumn, ...] = (
    FlagColumn(
        "diagnostic_reframed",
        "diagnostic statements reframed",
        "diagnostic-language",
        lambda kind: kind == "diagnostic-language",
    ),
    FlagColumn(
        "unsupported",
        "unsupported findings and results",
        "every kind starting unsupported- (unsupported-finding, unsupported-result)",
        lambda kind: kind.startswith("unsupported-"),
    ),
    FlagColumn(
        "contradicted",
        "findings the note contradicts",
        "contradicted-finding",
        lambda kind: kind == "contradicted-finding",
    ),
    FlagColumn(
        "injection",
        "injection flags",
        "every kind containing injection (prompt-injection, ...)",
        lambda kind: "injection" in kind,
    ),
    FlagColumn(
        "repetition",
        "repetition",
        "every kind containing repetition",
        lambda kind: "repetition" in kind,
    ),
    FlagColumn(
        "advice_contradicts_risk",
        "advice contradicting the risk",
        "advice-contradicts-risk",
        lambda kind: kind == "advice-contradicts-risk",
    ),
)


def column_counts(flag_counts: dict[str, int]) -> dict[str, int]:
    """Flag totals per report column, from totals per kind."""
    return {
        column.key: sum(n for kind, n in flag_counts.items() if column.matches(kind))
        for column in FLAG_COLUMNS
    }


# --- results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleScores:
    news2: int | None
    qsofa: int | None
    band: RiskLevel | None

    @classmethod
    def of(cls, risk: Risk) -> RuleScores:
        return cls(risk.news2.score, risk.qsofa.score, risk.news2.band)


@dataclass(frozen=True, slots=True)
class CaseResult:
    id: str
    outcome: CaseOutcome
    rules: RuleScores | None  # None: the engine failed before scoring
    expected: Expected
    valid_json: bool
    model_level: RiskLevel | None = None
    flag_counts: dict[str, int] = field(default_factory=dict)
    asserted: tuple[str, ...] = ()  # words of must_not_assert that a key finding states
    generated_tokens: int = 0
    tokens_per_s: float = 0.0
    ttft_s: float = 0.0
    total_s: float = 0.0
    error: str = ""

    @property
    def rule_mismatches(self) -> list[str]:
        """Each rule score that differs from the expected value, as 'NEWS2 got 5, expected 6'."""
        if self.rules is None:
            return []
        pairs = (
            ("NEWS2", self.rules.news2, self.expected.news2),
            ("qSOFA", self.rules.qsofa, self.expected.qsofa),
            ("band", self.rules.band, self.expected.band),
        )
        return [f"{name} got {got}, expected {want}" for name, got, want in pairs if got != want]

    @property
    def level_agreement(self) -> LevelAgreement:
        """The model's own level against the rule band (before the band raised it)."""
        band = self.rules.band if self.rules else None
        if band is None:
            return "no band"
        if self.model_level is None:
            return "no model level"
        difference = RISK_ORDER[self.model_level] - RISK_ORDER[band]
        return "agrees" if difference == 0 else "below band" if difference < 0 else "above band"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outcome": self.outcome,
            "error": self.error,
            "valid_json": self.valid_json,
            "rules": None
            if self.rules is None
            else {"news2": self.rules.news2, "qsofa": self.rules.qsofa, "band": self.rules.band},
            "expected": {
                "news2": self.expected.news2,
                "qsofa": self.expected.qsofa,
                "band": self.expected.band,
            },
            "rule_mismatches": self.rule_mismatches,
            "model_level": self.model_level,
            "level_vs_band": self.level_agreement,
            "flags": dict(sorted(self.flag_counts.items())),
            **column_counts(self.flag_counts),
            "asserted_forbidden_words": list(self.asserted),
            "generated_tokens": self.generated_tokens,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "time_to_first_token_s": round(self.ttft_s, 3),
            "total_s": round(self.total_s, 3),
        }


@dataclass(frozen=True, slots=True)
class ModelReport:
    """One model file's run over the cases; `complete` is False when it was stopped early."""

    model_path: str
    model: dict[str, Any]
    planned: int
    cases: tuple[CaseResult, ...]
    complete: bool
    error: str = ""  # why the run stopped early, other than a stop request

    @property
    def label(self) -> str:
        return str(self.model.get("file") or Path(self.model_path).name)

    def overall(self) -> dict[str, Any]:
        cases = self.cases
        finished = [c for c in cases if c.outcome == "finished"]
        agreement = Counter(c.level_agreement for c in cases)
        flags: Counter[str] = Counter()
        for case in cases:
            flags.update(case.flag_counts)
        speeds = [c.tokens_per_s for c in finished if c.tokens_per_s > 0]
        first_tokens = [c.ttft_s for c in finished if c.generated_tokens > 0]
        return {
            "cases_run": len(cases),
            "cases_planned": self.planned,
            "failed": len(cases) - len(finished),
            "valid_json": sum(c.valid_json for c in cases),
            "valid_json_rate": round(sum(c.valid_json for c in cases) / len(cases), 4) if cases else None,
            "rule_mismatches": sum(bool(c.rule_mismatches) for c in cases),
            "level_vs_band": {key: agreement.get(key, 0) for key in _AGREEMENTS},
            "flags": dict(sorted(flags.items())),
            **column_counts(dict(flags)),
            "asserted_forbidden_words": sum(len(c.asserted) for c in cases),
            "mean_tokens_per_s": round(statistics.fmean(speeds), 2) if speeds else None,
            "median_time_to_first_token_s": round(statistics.median(first_tokens), 3)
            if first_tokens
            else None,
            "mean_total_s": round(statistics.fmean(c.total_s for c in cases), 3) if cases else None,
            "total_s": round(sum(c.total_s for c in cases), 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "model": self.model,
            "complete": self.complete,
            "error": self.error,
            "overall": self.overall(),
            "cases": [case.to_dict() for case in self.cases],
        }


_AGREEMENTS: tuple[LevelAgreement, ...] = (
    "agrees",
    "below band",
    "above band",
    "no model level",
    "no band",
)


# --- running -------------------------------------------------------------------------

# on_progress(cases done, cases planned, the case now starting or just finished, its result if finished)
Progress = Callable[[int, int, str, CaseResult | None], None]


class Evaluation:
    """Runs cases through one engine on one model file. `cancel()` stops it; finished cases are kept."""

    def __init__(self, settings: Settings, cases: Sequence[EvalCase]) -> None:
        self.settings = settings
        self.cases = tuple(cases)
        self._engine = Engine(settings)
        self._stopped = False

    def cancel(self) -> None:
        self._stopped = True
        self._engine.cancel()

    async def run(self, on_progress: Progress | None = None) -> ModelReport:
        results: list[CaseResult] = []
        model: dict[str, Any] = {}
        error = ""
        try:
            for case in self.cases:
                if self._stopped:
                    break
                if on_progress:
                    on_progress(len(results), len(self.cases), case.id, None)
                result, loaded, next_step = await self._run_case(case)
                model = model or loaded
                if next_step == "cancelled" or self._stopped:
                    break  # the case was cut short: it is not counted
                if next_step == "no-model":
                    error = result.error
                    break
                results.append(result)
                if on_progress:
                    on_progress(len(results), len(self.cases), case.id, result)
        finally:
            await self._engine.close()
        path = str(self.settings.model_path) if self.settings.model_path else "embedded demo model"
        return ModelReport(
            model_path=path,
            model=model,
            planned=len(self.cases),
            cases=tuple(results),
            complete=len(results) == len(self.cases),
            error=error,
        )

    async def _run_case(self, case: EvalCase) -> tuple[CaseResult, dict[str, Any], NextStep]:
        request = AnalysisRequest(
            note=case.note,
            image_path=case.image_path,
            vitals=case.vitals,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
        )
        rules: RuleScores | None = None
        model: dict[str, Any] = {}
        events = self._engine.run(request)
        try:
            async for event in events:
                match event:
                    case RiskScored(risk=risk):
                        rules = RuleScores.of(risk)
                    case ModelLoaded(info=info):
                        model = info.to_dict()
                    case Finished(timings=timings, model=info, assessment=assessment):
                        model = info.to_dict()
                        result = CaseResult(
                            id=case.id,
                            outcome="finished",
                            rules=rules,
                            expected=case.expected,
                            valid_json=assessment is not None and assessment.complete,
                            model_level=assessment.risk.model_level if assessment else None,
                            flag_counts=_flag_counts(assessment),
                            asserted=_asserted_words(assessment, case.must_not_assert),
                            generated_tokens=timings.generated_tokens,
                            tokens_per_s=timings.tokens_per_s,
                            ttft_s=timings.ttft_s,
                            total_s=timings.total_s,
                        )
                        return result, model, "next"
                    case Cancelled():
                        return _failed(case, rules, "cancelled"), model, "cancelled"
                    case Failed(message=message, kind=kind, timings=timings):
                        total = timings.total_s if timings else 0.0
                        next_step: NextStep = "no-model" if kind == "bad-model" else "next"
                        return _failed(case, rules, message, total), model, next_step
        finally:
            # closed here, not whenever it is garbage-collected: the engine serves one request at a time
            if isinstance(events, AsyncGenerator):
                await events.aclose()
        return _failed(case, rules, "the engine ended without an answer"), model, "next"


def _failed(case: EvalCase, rules: RuleScores | None, message: str, total_s: float = 0.0) -> CaseResult:
    return CaseResult(
        id=case.id,
        outcome="failed",
        rules=rules,
        expected=case.expected,
        valid_json=False,
        total_s=total_s,
        error=message,
    )


def _flag_counts(assessment: Assessment | None) -> dict[str, int]:
    if assessment is None:
        return {}
    return dict(Counter(flag.kind for flag in assessment.safety.flags))


_NEGATION = re.compile(
    r"\b(?:no|not|denies|denied|without|negative\s+for|absent|absence\s+of|nil|free\s+of|never|ruled\s+out)\b",
    re.IGNORECASE,
)


def _asserted_words(assessment: Assessment | None, words: Sequence[str]) -> tuple[str, ...]:
    """The words a key finding states as present: named, and not negated earlier in that finding."""
    if assessment is None:
        return ()
    asserted: list[str] = []
    for word in words:
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        for finding in assessment.key_findings:
            match = pattern.search(finding)
            if match and not _NEGATION.search(finding[: match.start()]):
                asserted.append(word)
                break
    return tuple(asserted)


# --- the report -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportContext:
    case_set: str
    max_tokens: int
    started: datetime
    stopped_by: str = ""  # a signal's name when the run was interrupted


def report_json(reports: Sequence[ModelReport], context: ReportContext) -> dict[str, Any]:
    return {
        "complete": _complete(reports, context),
        "stopped_by": context.stopped_by or None,
        "started": context.started.isoformat(timespec="seconds"),
        "case_set": context.case_set,
        "max_tokens": context.max_tokens,
        "flag_columns": {column.key: column.kinds for column in FLAG_COLUMNS},
        "models": [report.to_dict() for report in reports],
    }


def _complete(reports: Sequence[ModelReport], context: ReportContext) -> bool:
    return not context.stopped_by and bool(reports) and all(report.complete for report in reports)


def report_markdown(reports: Sequence[ModelReport], context: ReportContext) -> str:
    lines = ["# Model acceptance check", ""]
    if not _complete(reports, context):
        done = ", ".join(f"{len(r.cases)} of {r.planned} cases on {r.label}" for r in reports) or "no case"
        why = f"stopped by {context.stopped_by}" if context.stopped_by else "stopped early"
        lines += [f"**INCOMPLETE: {why}; finished {done}.**", ""]
        lines += [f"**{r.label} stopped: {r.error}**" for r in reports if r.error]
        lines += [""] if any(r.error for r in reports) else []
    mismatched = [(r, c) for r in reports for c in r.cases if c.rule_mismatches]
    if mismatched:
        lines += [
            f"**RULE SCORE MISMATCH IN {len(mismatched)} CASE(S).** NEWS2 and qSOFA are computed by rule, "
            "so a difference from the expected value is a bug in the vitals reader or the scorer. "
            "Do not rely on this installation's risk scores until it is fixed.",
            "",
        ]
        lines += [f"- {c.id}: {'; '.join(c.rule_mismatches)}" for _, c in mismatched]
        lines.append("")
    lines += [
        f"Started {context.started.isoformat(timespec='seconds')} · case set `{context.case_set}` · "
        f"max tokens {context.max_tokens} · temperature 0",
        "",
        "ASSISTIVE ONLY - requires clinical validation. These figures describe a model file on "
        "synthetic cases; they do not validate it for clinical use.",
        "",
        "## Overall",
        "",
    ]
    lines += _overall_table(reports)
    if len(reports) > 1:
        lines += ["", "## Cases side by side", ""]
        lines += _side_by_side_table(reports)
    lines += ["", "## Cases", ""]
    for report in reports:
        if len(reports) > 1:
            lines += [f"### {report.label}", ""]
        lines += _case_table(report)
        lines.append("")
    lines += [
        "## How to read this",
        "",
        "- **valid JSON**: the model finished a structured answer that validates.",
        "- **rules**: NEWS2 / qSOFA / band computed by rule from the note; they must equal the expected values.",
        "- **model level vs band**: the level the model wrote against the NEWS2 band. Below band is unsafe "
        "(the app raises it to the band and flags it); above band is cautious.",
        "- **forbidden words**: words the case says no finding may assert (e.g. a symptom the note denies).",
        "- Flag columns count safety flags by kind:",
    ]
    lines += [f"  - {column.heading}: {column.kinds}" for column in FLAG_COLUMNS]
    lines.append("")
    return "\n".join(lines)


def _overall_table(reports: Sequence[ModelReport]) -> list[str]:
    figures = [report.overall() for report in reports]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("cases run", lambda f: f"{f['cases_run']} of {f['cases_planned']}"),
        ("engine failures", lambda f: str(f["failed"])),
        ("valid JSON", lambda f: f"{f['valid_json']}/{f['cases_run']} ({_percent(f['valid_json_rate'])})"),
        ("rule scores differing from expected", lambda f: _loud(f["rule_mismatches"])),
    ]
    rows += [(f"model level: {key}", _agreement_cell(key)) for key in _AGREEMENTS]
    rows += [(column.heading, _figure(column.key)) for column in FLAG_COLUMNS]
    rows += [
        ("forbidden words asserted", _figure("asserted_forbidden_words")),
        ("decode tok/s (mean)", _figure("mean_tokens_per_s")),
        ("time to first token, s (median)", _figure("median_time_to_first_token_s")),
        ("total per case, s (mean)", _figure("mean_total_s")),
        ("total, s", _figure("total_s")),
    ]
    header = "| | " + " | ".join(report.label for report in reports) + " |"
    lines = [header, "|---|" + "---|" * len(reports)]
    lines += [f"| {name} | " + " | ".join(cell(f) for f in figures) + " |" for name, cell in rows]
    return lines


def _agreement_cell(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda figures: str(figures["level_vs_band"][key])


def _figure(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda figures: "–" if figures[key] is None else str(figures[key])


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def _loud(count: int) -> str:
    return f"**{count} MISMATCH**" if count else "0"


def _side_by_side_table(reports: Sequence[ModelReport]) -> list[str]:
    """One row a case: the rule band, then each model's JSON validity, level and speed."""
    by_model = [{case.id: case for case in report.cases} for report in reports]
    case_ids = list(dict.fromkeys(case.id for report in reports for case in report.cases))
    headings = ["case", "rule band"] + [f"{report.label}: JSON · level · tok/s" for report in reports]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for case_id in case_ids:
        present = [results.get(case_id) for results in by_model]
        band = next((c.rules.band for c in present if c is not None and c.rules is not None), None)
        cells = [case_id, band or "–"]
        for case in present:
            if case is None:
                cells.append("not run")
            else:
                validity = "valid" if case.valid_json else "**invalid**"
                cells.append(f"{validity} · {case.model_level or '–'} · {case.tokens_per_s:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _case_table(report: ModelReport) -> list[str]:
    headings = ["case", "expected NEWS2/qSOFA/band", "rules", "valid JSON", "model level", "vs band"]
    headings += [column.heading for column in FLAG_COLUMNS]
    headings += ["forbidden words", "tokens", "tok/s", "TTFT s", "total s"]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for case in report.cases:
        columns = column_counts(case.flag_counts)
        expected = case.expected
        rules = "–" if case.rules is None else _scores(case.rules.news2, case.rules.qsofa, case.rules.band)
        if case.rule_mismatches:
            rules = f"**{rules} MISMATCH**"
        cells = [
            case.id if not case.error else f"{case.id} (failed: {_cell_text(case.error)})",
            _scores(expected.news2, expected.qsofa, expected.band),
            rules,
            "yes" if case.valid_json else "**no**",
            case.model_level or "–",
            case.level_agreement,
            *(str(columns[column.key]) for column in FLAG_COLUMNS),
            ", ".join(case.asserted) or "–",
            str(case.generated_tokens),
            f"{case.tokens_per_s:.1f}",
            f"{case.ttft_s:.2f}",
            f"{case.total_s:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _scores(news2: int | None, qsofa: int | None, band: str | None) -> str:
    def shown(value: object) -> str:
        return "–" if value is None else str(value)

    return f"{shown(news2)} / {shown(qsofa)} / {shown(band)}"


def _cell_text(text: str) -> str:
    return " ".join(text.replace("|", "/").split())[:120]


def write_report(reports: Sequence[ModelReport], context: ReportContext, folder: Path) -> tuple[Path, Path]:
    """Write `report.md` and `report.json` into `folder`; returns their paths."""
    markdown, data = folder / "report.md", folder / "report.json"
    atomic_write_text(markdown, report_markdown(reports, context))
    atomic_write_text(data, json.dumps(report_json(reports, context), indent=2, ensure_ascii=False) + "\n")
    return markdown, data
