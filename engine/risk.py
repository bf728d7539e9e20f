"""Exact, rule-based risk: NEWS2 and qSOFA from the vital signs, and the final level.

NEWS2 follows the Royal College of Physicians chart (2017), SpO2 scale 1 only
(scale 2 needs a clinician's prescription, which a note cannot be trusted to
carry); supplemental oxygen adds 2 points. Bands:

* aggregate 0-4 with no single parameter scoring 3 -> "Low"
* a single parameter scoring 3 (aggregate 4 or less), or aggregate 5-6 -> "Moderate"
  (the chart's "low-medium" and "medium" both call for an urgent ward review)
* aggregate 7 or more -> "High"

Values between two chart rows. The chart is written in whole units (tenths for
temperature), so a value such as RR 20.5 or temperature 38.05 falls in a gap
between two rows. Such a value scores the higher of the two neighbouring rows:
RR 20.5 -> 2 (as RR 21), temperature 38.05 -> 1 (as 38.1), 35.05 -> 3 (as 35.0).
A value that cannot be placed exactly is resolved toward the safer, higher score.

Missing vitals. Only what is present is scored; nothing is assumed normal
and no value is invented. The partial aggregate is a lower bound (a missing
parameter can only add points), so the band from it is a lower bound too: it is
reported as the band, `news2.missing` names the absent parameters and `reasons`
says the score is partial. With no vital sign at all, score and band are None.

qSOFA: respiratory rate >= 22, altered mentation (consciousness other than A,
or GCS < 15), systolic BP <= 100; one point each. Scored from what is present;
None when none of the three is available.

Form and note. A value typed in the form fills what the note lacks. Where the
note gives a different value, the reading that scores higher (NEWS2 points,
then qSOFA points) is scored, so a typed value can never lower the risk the
note shows; the disagreement is kept in `Risk.conflicts` with both values and
which was used. Age and sex are compared as well, not scored.

`final_risk_level` combines the rule band with the model's level: the rule band
is a floor the model may raise but never lower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.notefacts import NoteFacts, read_note, sex_letter
from engine.schema import RISK_ORDER, FormNoteConflict, News2, Qsofa, Risk, RiskLevel
from engine.vitals import Reading, Value, VitalSigns, merge_vitals

if TYPE_CHECKING:
    from engine.events import Vitals

# (lowest, highest, points) rows of the chart, in order; None = unbounded
Rows = tuple[tuple[float | None, float | None, int], ...]

NEWS2_CHART: dict[str, Rows] = {
    "respiratory_rate": ((None, 8, 3), (9, 11, 1), (12, 20, 0), (21, 24, 2), (25, None, 3)),
    "spo2": ((None, 91, 3), (92, 93, 2), (94, 95, 1), (96, None, 0)),
    "systolic_bp": ((None, 90, 3), (91, 100, 2), (101, 110, 1), (111, 219, 0), (220, None, 3)),
    "heart_rate": ((None, 40, 3), (41, 50, 1), (51, 90, 0), (91, 110, 1), (111, 130, 2), (131, None, 3)),
    "temperature_c": ((None, 35.0, 3), (35.1, 36.0, 1), (36.1, 38.0, 0), (38.1, 39.0, 1), (39.1, None, 2)),
}

# the seven NEWS2 parameters, in chart order, with the labels reasons use
NEWS2_PARAMETERS: dict[str, str] = {
    "respiratory_rate": "RR",
    "spo2": "SpO2",
    "on_oxygen": "air or oxygen",
    "systolic_bp": "SBP",
    "heart_rate": "HR",
    "consciousness": "consciousness",
    "temperature_c": "temperature",
}
QSOFA_PARAMETERS = ("respiratory_rate", "altered_mentation", "systolic_bp")

OXYGEN_POINTS = 2


def chart_points(rows: Rows, value: float) -> int:
    """Points for `value` on one chart parameter; a value between rows takes the higher."""
    for i, (low, high, points) in enumerate(rows):
        if (low is None or value >= low) and (high is None or value <= high):
            return points
        following = rows[i + 1] if i + 1 < len(rows) else None
        if (
            following is not None
            and high is not None
            and following[0] is not None
            and high < value < following[0]
        ):
            return max(points, following[2])
    raise ValueError(f"{value} is outside the chart")  # unreachable: the rows are unbounded at both ends


def parameter_points(name: str, value: float | bool | str) -> int:
    """NEWS2 points of one parameter's value."""
    if name == "on_oxygen":
        return OXYGEN_POINTS if value is True else 0
    if name == "consciousness":
        return 0 if value == "A" else 3
    return chart_points(NEWS2_CHART[name], float(value))


def news2_band(score: int, points: dict[str, int]) -> RiskLevel:
    if score >= 7:
        return "High"
    if score >= 5 or any(p == 3 for p in points.values()):
        return "Moderate"
    return "Low"


def _shown(name: str, reading: Reading) -> str:
    value = reading.value
    if name == "on_oxygen":
        return "oxygen" if value is True else "air"
    if isinstance(value, float) and value.is_integer() and name != "temperature_c":
        value = int(value)
    label = NEWS2_PARAMETERS.get(name, name)
    if name == "spo2":
        return f"{label} {value}%"
    if name == "consciousness":
        return f"{label} {value}"
    if name == "temperature_c":
        return f"{label} {value} °C"
    return f"{label} {value}"


def score_news2(vitals: VitalSigns) -> tuple[News2, list[str]]:
    readings = vitals.readings()
    points: dict[str, int] = {}
    parts: list[str] = []
    for name in NEWS2_PARAMETERS:
        reading = readings.get(name)
        if reading is not None:
            points[name] = parameter_points(name, reading.value)
            parts.append(f"{_shown(name, reading)} → {points[name]}")
    missing = [name for name in NEWS2_PARAMETERS if name not in points]
    if not points:
        return News2(missing=missing), []

    score = sum(points.values())
    band = news2_band(score, points)
    reasons = [f"NEWS2 {score} ({band}{', partial' if missing else ''}): " + ", ".join(parts)]
    threes = [_shown(n, readings[n]) for n, p in points.items() if p == 3]
    if threes and score < 5:
        reasons.append(f"A single parameter scoring 3 ({', '.join(threes)}) sets at least Moderate")
    if missing:
        labels = ", ".join(NEWS2_PARAMETERS[n] for n in missing)
        reasons.append(
            f"NEWS2 is partial: {labels} not found; the score and band are a lower bound "
            "(a missing parameter can only add points)"
        )
    return News2(score=score, band=band, points=points, missing=missing), reasons


def score_qsofa(vitals: VitalSigns) -> tuple[Qsofa, list[str]]:
    points: dict[str, int] = {}
    parts: list[str] = []
    rr, sbp = vitals.respiratory_rate, vitals.systolic_bp
    if rr is not None:
        p = points["respiratory_rate"] = int(float(rr.value) >= 22)
        parts.append(f"{_shown('respiratory_rate', rr)} {'≥' if p else '<'} 22 → {p}")
    mentation: list[str] = []
    altered = False
    if vitals.consciousness is not None:
        altered |= vitals.consciousness.value != "A"
        mentation.append(f"consciousness {vitals.consciousness.value}")
    if vitals.gcs is not None:
        altered |= float(vitals.gcs.value) < 15
        mentation.append(f"GCS {vitals.gcs.value}")
    if mentation:
        points["altered_mentation"] = int(altered)
        state = "altered" if altered else "not altered"
        parts.append(f"mentation {state} ({', '.join(mentation)}) → {points['altered_mentation']}")
    if sbp is not None:
        p = points["systolic_bp"] = int(float(sbp.value) <= 100)
        parts.append(f"{_shown('systolic_bp', sbp)} {'≤' if p else '>'} 100 → {p}")
    missing = [name for name in QSOFA_PARAMETERS if name not in points]
    if not points:
        return Qsofa(missing=missing), []
    score = sum(points.values())
    text = f"qSOFA {score} of 3{' (partial)' if missing else ''}: " + ", ".join(parts)
    if missing:
        text += "; missing: " + ", ".join(m.replace("_", " ") for m in missing)
    return Qsofa(score=score, points=points, missing=missing), [text]


def score_risk(vitals: VitalSigns) -> Risk:
    """NEWS2 and qSOFA from `vitals`, with the values scored and the reasons."""
    news2, news2_reasons = score_news2(vitals)
    qsofa, qsofa_reasons = score_qsofa(vitals)
    reasons = news2_reasons + qsofa_reasons
    if news2.score is None and qsofa.score is None:
        reasons.append("No vital signs found in the note: NEWS2 and qSOFA not scored")
    elif news2.score is None:
        reasons.append("No NEWS2 parameter found: NEWS2 not scored")
    for name, reading in vitals.rejected:
        reasons.append(f"Ignored an implausible {name.replace('_', ' ')}: {reading.text!r}")
    return Risk(
        news2=news2,
        qsofa=qsofa,
        vitals=vitals.as_dict(),
        rule_level=news2.band,
        reasons=reasons,
    )


def _scores(name: str, value: Value) -> tuple[int, int]:
    """(NEWS2 points, qSOFA points) of one parameter's value: how much a reading raises the risk."""
    news2 = parameter_points(name, value) if name in NEWS2_PARAMETERS else 0
    if name == "respiratory_rate":
        qsofa = int(float(value) >= 22)
    elif name == "systolic_bp":
        qsofa = int(float(value) <= 100)
    elif name == "consciousness":
        qsofa = int(value != "A")
    else:
        qsofa = 0
    return news2, qsofa


def merge_form(facts: NoteFacts, form: Vitals | None) -> tuple[VitalSigns, list[FormNoteConflict]]:
    """The note's vitals with the form's on top; where the two disagree, the reading that scores higher.

    A form value fills what the note lacks. Where the note has a different value,
    the one that scores more (NEWS2 points, then qSOFA points) is scored, and the
    disagreement is returned with both values and which was used; on a tie the
    form's value is used. Age and sex are compared too; they are not scored.
    """
    merged = merge_vitals(facts.vitals, form)
    if form is None:
        return merged, []
    readings = merged.readings()
    conflicts: list[FormNoteConflict] = []
    for name, typed in merged.readings().items():
        written = getattr(facts.vitals, name)
        if typed.source != "form" or written is None or typed.value == written.value:
            continue
        form_scores, note_scores = _scores(name, typed.value), _scores(name, written.value)
        used = "note" if note_scores > form_scores else "form"
        readings[name] = written if used == "note" else typed
        label = NEWS2_PARAMETERS.get(name, name)
        if form_scores == note_scores:
            why = "both score the same, so the form's value is used"
        else:
            higher, lower = max(form_scores, note_scores), min(form_scores, note_scores)
            why = (
                f"the {used}'s value is used because it scores higher "
                f"(NEWS2 {higher[0]} vs {lower[0]}, qSOFA {higher[1]} vs {lower[1]})"
            )
        conflicts.append(
            FormNoteConflict(
                parameter=name,
                label=label,
                form=_shown(name, typed),
                note=written.text,
                used=used,
                reason=f"Form {_shown(name, typed)} and note '{written.text}' differ; {why}",
            )
        )
    conflicts.extend(_demographic_conflicts(facts, form))
    return VitalSigns(**readings, rejected=merged.rejected), conflicts


def _demographic_conflicts(facts: NoteFacts, form: Vitals) -> list[FormNoteConflict]:
    conflicts: list[FormNoteConflict] = []
    if form.age is not None and facts.age is not None and float(form.age) != facts.age.value:
        conflicts.append(
            FormNoteConflict(
                parameter="age",
                label="age",
                form=str(form.age),
                note=facts.age.text,
                reason=f"Form age {form.age} and note '{facts.age.text}' differ",
            )
        )
    typed_sex = sex_letter(form.sex) if form.sex else None
    if typed_sex is not None and facts.sex is not None and typed_sex != facts.sex.value:
        conflicts.append(
            FormNoteConflict(
                parameter="sex",
                label="sex",
                form=typed_sex,
                note=facts.sex.text,
                reason=f"Form sex {typed_sex} and note '{facts.sex.text}' differ",
            )
        )
    return conflicts


def risk_from_note(note: str | NoteFacts, form: Vitals | None) -> Risk:
    """The risk step of a run: vitals read from the note, the form's values on top, then scored.

    `note` is the note's text or the request's `NoteFacts`; text is read with `read_note`.
    Where form and note disagree, the reading that scores higher is scored; each
    disagreement is in `Risk.conflicts` and its reason in `Risk.reasons`.
    """
    facts = note if isinstance(note, NoteFacts) else read_note(note)
    vitals, conflicts = merge_form(facts, form)
    risk = score_risk(vitals)
    risk.conflicts = conflicts
    risk.reasons.extend(conflict.reason for conflict in conflicts)
    return risk


def final_risk_level(risk: Risk, model_level: RiskLevel | None) -> tuple[RiskLevel, list[str]]:
    """The level to show, and which rule or statement set it.

    The NEWS2 band is a floor: the model may raise the level, never lower it.
    With no rule band, the model's level is used. With neither, "Moderate" is
    returned: nothing is known, and "Low" would be a reassurance no rule or
    model gave, so the case is left for a clinician to review.
    """
    rule = risk.rule_level
    partial = " (partial vitals)" if risk.news2.missing and rule is not None else ""
    if rule is None and model_level is None:
        return "Moderate", [
            "No rule band or model level was available: Moderate is shown rather than an unsupported Low"
        ]
    if rule is None:
        assert model_level is not None
        return model_level, [f"No NEWS2 band (vital signs missing): the model's level {model_level} is used"]
    reasons = [f"NEWS2 band {rule}{partial} sets the floor"]
    if model_level is None:
        return rule, reasons
    if RISK_ORDER[model_level] > RISK_ORDER[rule]:
        reasons.append(f"the model raised the level from {rule} to {model_level}")
        return model_level, reasons
    if RISK_ORDER[model_level] < RISK_ORDER[rule]:
        reasons.append(f"the model's {model_level} was overruled by NEWS2 band {rule}")
    else:
        reasons.append(f"the model's level {model_level} agrees with NEWS2 band {rule}")
    return rule, reasons
