"""One rendering of an assessment, in SBAR order, for the terminal and for the handoff.

`report_sections` turns a checked assessment and the case it was made from into
sections: first what the result leaves out (a demo model, an image not analysed,
a note cut to fit, a NEWS2 from partial vitals), then Situation (risk level, NEWS2 and qSOFA with their points, the key
concern), Background (note, form vitals, age and sex, image), Assessment
(summary, findings with their evidence, the model's level against the rules,
confidence), Recommendation, then the safety flags and the notes. `render` lays
the same sections out in one of two styles: `TERMINAL` (the headless report) and
`MARKDOWN` (the handoff file and the clipboard copy). Everything rendered passes
through the terminal neutraliser, so a note or path cannot carry escape sequences
into a terminal or a Markdown file someone later prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from engine.events import Vitals
from engine.risk import NEWS2_PARAMETERS
from engine.schema import DISCLAIMER, Assessment, Risk
from engine.text import neutralise

SUPPORTED, UNSUPPORTED = "supported", "NOT SUPPORTED by the note"
DEMO_LINE = "DEMO MODEL, NOT A MEDICAL MODEL: its answers are for trying the tool only, never for care"
QSOFA_LABELS = {"respiratory_rate": "RR", "altered_mentation": "altered mentation", "systolic_bp": "SBP"}
FORM_LABELS = {
    "respiratory_rate": ("RR", "/min"),
    "spo2": ("SpO2", "%"),
    "systolic_bp": ("SBP", " mmHg"),
    "heart_rate": ("HR", "/min"),
    "temperature_c": ("temperature", " °C"),
}

LineKind = Literal["text", "item", "quote"]


@dataclass(frozen=True, slots=True)
class Case:
    """What the assessment was made from, as the clinician gave it."""

    note: str = ""
    image_path: str | None = None
    vitals: Vitals | None = None
    image_error: str | None = None  # why an image given has no findings, when known


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    kind: LineKind = "item"
    depth: int = 0  # items nest: a finding's evidence sits under the finding


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Style:
    """How sections are laid out; the content is the same in every style."""

    title: str
    heading: str  # format string with {title}
    item: str
    indent: str  # one level of nesting
    quote_open: str
    quote_close: str
    quote_line: str
    emphasis: str  # format string with {text}
    uppercase_headings: bool = False
    base_depth: int = 0  # the terminal indents every item once under its heading


TERMINAL = Style(
    title="{text}",
    heading="\n{title}",
    item="- ",
    indent="  ",
    quote_open="",
    quote_close="",
    quote_line="  | ",
    emphasis="*** {text} ***",
    uppercase_headings=True,
    base_depth=1,
)
MARKDOWN = Style(
    title="# {text}",
    heading="\n## {title}\n",
    item="- ",
    indent="  ",
    quote_open="```text",
    quote_close="```",
    quote_line="",
    emphasis="**{text}**",
)


def form_vitals(value: Vitals | Mapping[str, Any] | None) -> Vitals | None:
    """Form vitals from a `Vitals` or its stored dict form (history and exports keep dicts)."""
    if value is None or isinstance(value, Vitals):
        return value
    known = {f.name for f in fields(Vitals)}
    return Vitals(**{key: item for key, item in value.items() if key in known})


def result_limits(assessment: Assessment, case: Case | None = None) -> list[str]:
    """What the result leaves out or cannot vouch for, in words, shown first wherever it is shown.

    Read from the assessment's flags, and from its risk, model and case, so a result
    stored before these flags existed states the same limits.
    """
    flags = {flag.kind: flag for flag in assessment.safety.flags}
    lines: list[str] = []
    if assessment.model.get("demo") or "demo-model" in flags:
        lines.append(DEMO_LINE)
    image_flag = flags.get("image-refused")
    if image_flag is not None:
        lines.append(f"Image given but NOT analysed: {image_flag.detail}")
    elif case is not None and case.image_path and not assessment.image_findings:
        lines.append(f"Image given but NOT analysed: {_image_reason(case)}")
    truncated = flags.get("note-truncated")
    if truncated is not None:
        lines.append(f"Note cut to fit the model's context: {truncated.detail}")
    news2 = assessment.risk.news2
    if news2.score is not None and news2.missing:
        missing = ", ".join(NEWS2_PARAMETERS.get(name, name) for name in news2.missing)
        lines.append(
            f"NEWS2 INCOMPLETE ({len(NEWS2_PARAMETERS) - len(news2.missing)} of {len(NEWS2_PARAMETERS)} "
            f"parameters; missing {missing}): {news2.score} is a lower bound, not reassurance"
        )
    if "repetition" in flags:
        lines.append(f"Answer stopped early: {flags['repetition'].detail}")
    return lines


def report_sections(assessment: Assessment, case: Case) -> list[Section]:
    limits = tuple(Line(text) for text in result_limits(assessment, case))
    return [
        *([Section("Not considered or incomplete", limits)] if limits else []),
        Section("Situation", tuple(_situation(assessment))),
        Section("Background", tuple(_background(assessment, case))),
        Section("Assessment", tuple(_assessment(assessment))),
        Section("Recommendation", tuple(Line(text) for text in assessment.recommendations or ["(none)"])),
        Section("Safety flags", tuple(_flags(assessment))),
        Section("Notes", (Line(_notes(assessment), "text"),)),
    ]


def render(assessment: Assessment, case: Case, style: Style, when: str | None = None) -> str:
    """The whole report in `style`: header, the SBAR sections, the disclaimer last."""
    when = when or datetime.now().astimezone().isoformat(timespec="minutes")
    out = [style.title.format(text="Clinical decision support: assessment (SBAR)"), ""]
    out.append(style.emphasis.format(text=DISCLAIMER))
    out.append("")
    out.append(f"{style.indent * style.base_depth}{style.item}Generated: {when}")
    model = assessment.model.get("name") or assessment.model.get("file")
    if model:
        demo = " (DEMO, not a medical model)" if assessment.model.get("demo") else ""
        out.append(f"{style.indent * style.base_depth}{style.item}Model: {model}{demo}")
    for section in report_sections(assessment, case):
        title = section.title.upper() if style.uppercase_headings else section.title
        out.append(style.heading.format(title=title))
        out.extend(_layout(section.lines, style))
    out += ["", style.emphasis.format(text=DISCLAIMER), ""]
    return neutralise("\n".join(out))


def to_text(assessment: Assessment, case: Case | None = None) -> str:
    """The terminal report (`medgemma-tui analyze` without --json)."""
    return render(assessment, case or Case(), TERMINAL)


def to_markdown(assessment: Assessment, case: Case | None = None, when: str | None = None) -> str:
    """The Markdown handoff a colleague reads (export and clipboard)."""
    return render(assessment, case or Case(), MARKDOWN, when)


# --- sections -----------------------------------------------------------------


def _situation(a: Assessment) -> list[Line]:
    risk = a.risk
    incomplete = (
        " (NEWS2 incomplete: a lower bound)" if risk.news2.missing and risk.news2.score is not None else ""
    )
    lines = [Line(f"Risk level: {a.risk_level}{incomplete}"), _news2_line(risk), _qsofa_line(risk)]
    lines.append(Line(f"Key concern: {_key_concern(a)}"))
    return lines


def _news2_line(risk: Risk) -> Line:
    news2 = risk.news2
    if news2.score is None:
        return Line("NEWS2: not scored (no NEWS2 parameter found)")
    parts = [f"{_shown(name, risk.vitals.get(name, {}))} → {points}" for name, points in news2.points.items()]
    partial = ", partial" if news2.missing else ""
    text = f"NEWS2: {news2.score} ({news2.band}{partial}): " + ", ".join(parts)
    if news2.missing:
        text += "; missing: " + ", ".join(NEWS2_PARAMETERS.get(name, name) for name in news2.missing)
    return Line(text)


def _qsofa_line(risk: Risk) -> Line:
    qsofa = risk.qsofa
    if qsofa.score is None:
        return Line("qSOFA: not scored (no qSOFA parameter found)")
    parts = []
    for name, points in qsofa.points.items():
        reading = risk.vitals.get(name)
        parts.append(f"{_shown(name, reading) if reading else QSOFA_LABELS.get(name, name)} → {points}")
    text = f"qSOFA: {qsofa.score} of 3: " + ", ".join(parts)
    if qsofa.missing:
        text += "; missing: " + ", ".join(QSOFA_LABELS.get(name, name) for name in qsofa.missing)
    return Line(text)


def _shown(name: str, reading: Mapping[str, Any]) -> str:
    """A scored value as the chart names it: "RR 23", "SpO2 94%", "air"."""
    value = reading.get("value")
    if name == "on_oxygen":
        return "oxygen" if value is True else "air"
    if isinstance(value, float) and value.is_integer() and name != "temperature_c":
        value = int(value)
    label = NEWS2_PARAMETERS.get(name, name)
    unit = {"spo2": "%", "temperature_c": " °C"}.get(name, "")
    source = " (form)" if reading.get("source") == "form" else ""
    return f"{label} {value}{unit}{source}"


def _key_concern(a: Assessment) -> str:
    supported = [finding.text for finding in a.findings if finding.supported]
    if supported:
        return supported[0]
    scored = a.risk.news2.points
    if scored and max(scored.values()) > 0:
        top = max(scored.values())
        names = [name for name, points in scored.items() if points == top]
        shown = ", ".join(_shown(name, a.risk.vitals.get(name, {})) for name in names)
        return f"{shown} (NEWS2 {top} each); no finding the note supports"
    return "none stated: no finding the note supports and no abnormal vital sign"


def _background(a: Assessment, case: Case) -> list[Line]:
    lines = [Line("Note (as analysed):", "item")]
    lines += [Line(text, "quote") for text in (case.note or "(not recorded)").splitlines() or [""]]
    vitals = case.vitals
    # These are the form's values; a note that states age and sex is quoted above.
    age = vitals.age if vitals and vitals.age is not None else None
    sex = vitals.sex if vitals and vitals.sex else None
    if age is None and sex is None:
        lines.append(Line("Age and sex: not entered in the form"))
    else:
        shown_age = "not entered" if age is None else age
        lines.append(Line(f"Age: {shown_age}; sex: {sex or 'not entered'}"))
    lines.append(Line(f"Form vitals: {_form_text(vitals)}"))
    if not case.image_path:
        lines.append(Line("Image: none given"))
    elif a.image_findings:
        lines.append(Line(f"Image: {case.image_path} (image-text similarity, not a diagnosis)"))
        lines += [Line(f"{f.label}: {f.probability:.0%}", "item", 1) for f in a.image_findings]
    else:
        lines.append(Line(f"Image: {case.image_path}"))
        lines.append(Line(f"no image findings: {_image_reason(case)}", "item", 1))
    return lines


def _form_text(vitals: Vitals | None) -> str:
    if vitals is None:
        return "none entered (vital signs were read from the note)"
    parts = []
    for name, (label, unit) in FORM_LABELS.items():
        value = getattr(vitals, name)
        if value is not None:
            shown = int(value) if isinstance(value, float) and value.is_integer() else value
            parts.append(f"{label} {shown}{unit}")
        if name == "spo2" and vitals.on_oxygen is not None:
            parts.append("on oxygen" if vitals.on_oxygen else "on air")
    if vitals.consciousness:
        parts.append(f"consciousness {vitals.consciousness}")
    return ", ".join(parts) or "none entered (vital signs were read from the note)"


def _image_reason(case: Case) -> str:
    if case.image_error:
        return case.image_error
    from engine.imaging import check_image

    return check_image(case.image_path) or "the image was not analysed (no reason was recorded)"


def _assessment(a: Assessment) -> list[Line]:
    lines = [Line("Summary:"), Line(a.summary or "(none)", "item", 1), Line("Findings:")]
    for finding in a.findings:
        mark = SUPPORTED if finding.supported else UNSUPPORTED
        lines.append(Line(f"[{mark}] {finding.text}", "item", 1))
        if finding.evidence:
            lines.append(Line(f'evidence ({finding.source}): "{finding.evidence}"', "item", 2))
    if not a.findings:
        lines += [Line(text, "item", 1) for text in a.key_findings] or [Line("(none)", "item", 1)]
    risk = a.risk
    lines.append(
        Line(
            f"Risk level: model {risk.model_level or 'gave none'}, "
            f"rules (NEWS2 band) {risk.rule_level or 'none'}, shown {a.risk_level}"
        )
    )
    lines += [Line(reason, "item", 1) for reason in _other_reasons(risk)]
    explanation = a.confidence_basis.get("explanation")
    lines.append(Line(f"Confidence: {a.confidence:.2f}" + (f" — {explanation}" if explanation else "")))
    return lines


def _other_reasons(risk: Risk) -> list[str]:
    """The rule reasons not already shown as the NEWS2 and qSOFA lines."""
    shown = (f"NEWS2 {risk.news2.score} (", f"qSOFA {risk.qsofa.score} of 3")
    return [reason for reason in risk.reasons if not reason.startswith(shown)]


def _flags(a: Assessment) -> list[Line]:
    if not a.safety.flags:
        return [Line("(none)")]
    return [
        Line(f"{flag.kind}: {flag.text}" + (f" ({flag.detail})" if flag.detail else ""))
        for flag in a.safety.flags
    ]


def _notes(a: Assessment) -> str:
    """The clinical notes without their disclaimer, which closes the whole report."""
    return a.clinical_notes.replace(DISCLAIMER, "").strip() or "(none)"


# --- layout -------------------------------------------------------------------


def _layout(lines: tuple[Line, ...], style: Style) -> list[str]:
    out: list[str] = []
    quoting = False
    for line in lines:
        if line.kind == "quote" and not quoting:
            out += [style.quote_open] if style.quote_open else []
            quoting = True
        elif line.kind != "quote" and quoting:
            out += [style.quote_close] if style.quote_close else []
            quoting = False
        if line.kind == "quote":
            text = line.text.replace("```", "ʼʼʼ") if style.quote_open.startswith("```") else line.text
            out.append(style.quote_line + text)
        elif line.kind == "item":
            out.append(style.indent * (line.depth + style.base_depth) + style.item + line.text)
        else:
            out.append(line.text)
    if quoting and style.quote_close:
        out.append(style.quote_close)
    return out
