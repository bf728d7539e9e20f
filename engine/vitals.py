"""Vital signs read from a free-text note, with the evidence each value rests on.

`extract_vitals` finds respiratory rate, SpO2, air or oxygen, blood pressure,
pulse, temperature, consciousness (ACVPU) and GCS in the many ways clinicians
write them. Every value carries the exact text and character span it came
from, so a front end can highlight it and a reviewer can check it.
`merge_vitals` overlays the values typed into the form fields.

Rules the extractor keeps:

* Never invent a value. A parameter not written in the note stays None.
  "No fever" gives no temperature; "afebrile" gives none either.
* The last (most recent) plausible mention of a parameter wins, with its span.
* Implausible numbers (RR 400, SpO2 150, BP 40/90) are refused, not scored;
  they are kept in `VitalSigns.rejected` so the refusal can be shown.
* Mentions that are not the patient's current state are skipped: a cue such as
  "history of", "previous", "baseline", "target", "usual", "yesterday" or
  "at home" earlier in the same clause, or "yesterday", "last week", "ago",
  "at home", "at GP" later in it ("T 39 yesterday"). For word findings
  (consciousness, oxygen) a negation earlier in the same clause ("not
  confused", "denies confusion", "no new confusion") also skips the mention.
  A clause ends at . , ; ! ? or a line break, or at "but", "now", "however".
  Negation is not applied to numbers: "No acute distress RR 16" keeps RR 16.
* Temperatures in Fahrenheit ("101.2 F", "101.2 °F") are converted to Celsius
  and rounded half up to one decimal (the chart's resolution). A temperature
  written without a unit is read as Celsius from 25 to 45 and as Fahrenheit
  from 77 to 113, the only reading that is physically possible there.
* Consciousness is an ACVPU letter. Words map as: alert / alert and oriented
  / A&O x3 -> A; confused / new confusion / disoriented -> C; responds to
  voice -> V; responds to pain -> P; unresponsive / unconscious -> U.
  "Drowsy" and "lethargic" are not mapped: they have no agreed ACVPU letter.
* GCS is mapped to ACVPU as 15 -> A and 14 or below -> C ("new confusion").
  There is no validated one-to-one GCS-to-ACVPU table (the published
  correspondences, e.g. V ~ GCS 13 and P ~ GCS 8, are approximate), and NEWS2
  scores C, V, P and U alike (3 points), so C is the least specific letter
  that scores correctly. When the note has both words and a GCS, the worse of
  the two wins; if both are impaired, the words win (they say which of C, V,
  P or U). An "alert" note with GCS 13 therefore reads C, not A.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from engine.events import Vitals

Value = float | bool | str
ACVPU = ("A", "C", "V", "P", "U")


@dataclass(frozen=True, slots=True)
class Reading:
    """One value and the evidence for it."""

    value: Value
    source: Literal["note", "form"]
    span: tuple[int, int] | None  # character offsets in the note; None for form values
    text: str  # the exact matched text (note[span[0]:span[1]] for note values)


@dataclass(frozen=True, slots=True)
class VitalSigns:
    respiratory_rate: Reading | None = None
    spo2: Reading | None = None
    on_oxygen: Reading | None = None
    systolic_bp: Reading | None = None
    diastolic_bp: Reading | None = None
    heart_rate: Reading | None = None
    temperature_c: Reading | None = None
    consciousness: Reading | None = None  # "A", "C", "V", "P" or "U"
    gcs: Reading | None = None
    # (parameter, reading) pairs refused as implausible; never scored
    rejected: tuple[tuple[str, Reading], ...] = ()

    def readings(self) -> dict[str, Reading]:
        """The parameters present, by name, in field order."""
        out: dict[str, Reading] = {}
        for f in fields(self):
            if f.name == "rejected":
                continue
            reading = getattr(self, f.name)
            if reading is not None:
                out[f.name] = reading
        return out

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready: {parameter: {value, source, text, span}} for the present ones."""
        return {
            name: {
                "value": r.value,
                "source": r.source,
                "text": r.text,
                "span": list(r.span) if r.span is not None else None,
            }
            for name, r in self.readings().items()
        }


# --- plausibility ------------------------------------------------------------

PLAUSIBLE: dict[str, tuple[float, float]] = {
    "respiratory_rate": (2, 80),
    "spo2": (40, 100),
    "systolic_bp": (40, 300),
    "diastolic_bp": (10, 200),
    "heart_rate": (20, 250),
    "temperature_c": (25, 45),
    "gcs": (3, 15),
}
_FAHRENHEIT = (77, 113)


class _Implausible(Exception):
    """A number was found but cannot be a real reading."""


def _number(text: str) -> float:
    return float(text) if "." in text else int(text)


def _ranged(name: str) -> Callable[[dict[str, str | None]], Value]:
    low, high = PLAUSIBLE[name]

    def parse(g: dict[str, str | None]) -> Value:
        value = _number(g["v"] or "")
        if not low <= value <= high:
            raise _Implausible
        return value

    return parse


def _blood_pressure(part: str) -> Callable[[dict[str, str | None]], Value]:
    def parse(g: dict[str, str | None]) -> Value:
        sys_, dia = _number(g["v"] or ""), _number(g["d"] or "")
        (slo, shi), (dlo, dhi) = PLAUSIBLE["systolic_bp"], PLAUSIBLE["diastolic_bp"]
        if not (slo <= sys_ <= shi and dlo <= dia <= dhi and dia < sys_):
            raise _Implausible
        return sys_ if part == "systolic" else dia

    return parse


def fahrenheit_to_celsius(f: float) -> float:
    """Celsius rounded half up to one decimal, the NEWS2 chart's resolution."""
    c = (Decimal(str(f)) - 32) * 5 / 9
    return float(c.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _temperature(g: dict[str, str | None]) -> Value:
    value = _number(g["v"] or "")
    unit = (g.get("u") or "").lower()[:1]
    low, high = PLAUSIBLE["temperature_c"]
    if unit == "c" or (not unit and low <= value <= high):
        if not low <= value <= high:
            raise _Implausible
        return value
    if _FAHRENHEIT[0] <= value <= _FAHRENHEIT[1]:  # "F", or no unit and too hot for Celsius
        return fahrenheit_to_celsius(value)
    raise _Implausible


def _gcs(g: dict[str, str | None]) -> Value:
    if g.get("v"):
        return _ranged("gcs")(g)
    return int(g["e"] or 0) + int(g["vv"] or 0) + int(g["m"] or 0)


def _fio2(g: dict[str, str | None]) -> Value:
    fraction_text = g.get("f")
    fraction = float(fraction_text) if fraction_text else float(g["fp"] or 0) / 100
    if not 0.21 <= fraction <= 1.0:
        raise _Implausible
    return fraction > 0.21


def _const(value: Value) -> Callable[[dict[str, str | None]], Value]:
    return lambda g: value


def _letter(g: dict[str, str | None]) -> Value:
    return (g["v"] or "").upper()


# --- the pattern table ---------------------------------------------------------

# label-value separator: "RR 22", "RR:22", "RR=22", "HR-104", "RR of 22", "HR is 104", "BP today 150/95"
SEP = (
    r"\s*(?:(?:today|now|currently|on\s+arrival|on\s+admission|at\s+triage)\s*)?"
    r"(?:[:=\-–]\s*|(?:of|is|was|at|now)\s+)?"
)
# a number not part of a longer number, a range ("88-92") or a decade ("HR 90s")
NUM = r"(?P<v>\d{1,3}(?:\.\d+)?)(?!\d|\.\d|[-–]\d|\s+to\s+\d|s\b)"
L = r"(?<![\w/])"  # a label starts a word
FLOW = r"\d{1,2}(?:\.\d+)?\s*(?:L|litres?|liters?|lpm)(?:\s*(?:/|per\s+)min(?:ute)?)?"
DEVICE = (
    r"(?:nasal\s+(?:cannulae?|prongs|specs)|NC|NP|venturi(?:\s+mask)?"
    r"|(?:simple|hudson|face|oxygen|O2)\s*mask|non[-\s]?rebreath(?:er|ing|e)(?:\s+mask)?"
    r"|NRBM?(?:\s+mask)?|reservoir\s+mask|mask)"
)
O2 = r"(?:O2|oxygen)\b"


@dataclass(frozen=True, slots=True)
class _Alt:
    pattern: str
    parse: Callable[[dict[str, str | None]], Value]
    negatable: bool = False  # a negation earlier in the clause voids it


_TABLE: dict[str, tuple[_Alt, ...]] = {
    "respiratory_rate": (
        _Alt(
            rf"{L}(?:RR|resp(?:iratory|iration)?s?\.?(?:\s*rate)?|breathing(?:\s*rate)?|tachypnoeic|tachypneic)"
            rf"{SEP}{NUM}(?:\s*(?:breaths?\s*)?(?:/\s*min|per\s+min(?:ute)?))?",
            _ranged("respiratory_rate"),
        ),
        _Alt(rf"{NUM}\s*breaths?\s*(?:/\s*|per\s+)min(?:ute)?", _ranged("respiratory_rate")),
    ),
    "spo2": (
        _Alt(
            rf"{L}(?:Sp\s*O2|SpO₂|SaO2|O2\s*sat(?:uration)?s?|oxygen\s+sat(?:uration)?s?"
            rf"|sat(?:uration)?s?|saturating|pulse\s*ox(?:imetry)?){SEP}{NUM}(?:\s*%)?",
            _ranged("spo2"),
        ),
        # "94% on room air", "93% on 2L": a percentage on air or oxygen is a saturation
        _Alt(
            rf"(?<![\w.])(?<!FiO2\s)(?<!FiO2:\s){NUM}\s*%(?=\s*(?:on\s+(?:room\s+air|air\b|RA\b|{FLOW}|{O2})|RA\b|OA\b|room\s+air))",
            _ranged("spo2"),
        ),
    ),
    "on_oxygen": (
        _Alt(
            rf"{L}(?:not\s+on|off|no)\s+(?:supplemental\s+|supplementary\s+)?{O2}"
            r"(?:\s+requirement)?",
            _const(False),
        ),
        _Alt(r"(?:on|in|breathing|room)\s+(?:room\s+)?air\b", _const(False)),
        # "RA"/"OA" (room air, on air) only right after a saturation or "on": "RA" is also rheumatoid arthritis
        _Alt(r"(?:(?<=%)|(?<=%\s)|(?<=\bon\s))(?:RA|OA)\b", _const(False)),
        _Alt(
            rf"(?:on\s+)?{FLOW}\s*(?:of\s+|via\s+)?(?:supplemental\s+)?(?:{O2}|{DEVICE}\b)",
            _const(True),
            True,
        ),
        _Alt(rf"(?:on\s+)?\d{{2,3}}\s*%\s*(?:{O2}|FiO2|(?:via\s+)?{DEVICE}\b)", _const(True), True),
        # "SpO2 94% on 2 L": a flow alone, unless it is a fluid
        _Alt(
            rf"{L}on\s+{FLOW}\b(?!\s*(?:of\s+)?(?:fluids?|saline|water|restriction|fluid\s+restriction|dextrose|Hartmann))",
            _const(True),
            True,
        ),
        _Alt(rf"{L}FiO2{SEP}(?:(?P<f>0?\.\d+|1\.0)|(?P<fp>\d{{2,3}})\s*%)", _fio2),
        _Alt(
            r"(?:via\s+)?(?:nasal\s+(?:cannulae?|prongs|specs)|venturi(?:\s+mask)?"
            r"|(?:simple|hudson|face|oxygen|O2)\s+mask|non[-\s]?rebreath(?:er|ing|e)(?:\s+mask)?"
            r"|NRBM?\b(?:\s+mask)?|reservoir\s+mask|high[-\s]flow\s+(?:nasal\s+)?(?:oxygen|O2|cannulae?)"
            r"|HFNC|HFNO|optiflow)|on\s+(?:CPAP|BiPAP|NIV)\b",
            _const(True),
            True,
        ),
        _Alt(
            rf"{L}(?:on|receiving|requiring|requires|needing|given)\s+"
            rf"(?:supplemental\s+|supplementary\s+)?{O2}",
            _const(True),
            True,
        ),
    ),
    "systolic_bp": (
        _Alt(
            rf"{L}(?:BP|B/P|NIBP|ABP|blood\s+pressure){SEP}(?P<v>\d{{2,3}})\s*/\s*(?P<d>\d{{2,3}})(?!\d)"
            r"(?:\s*mm\s*Hg)?",
            _blood_pressure("systolic"),
        ),
        _Alt(r"(?<![\w/])(?P<v>\d{2,3})\s*/\s*(?P<d>\d{2,3})\s*mm\s*Hg", _blood_pressure("systolic")),
        _Alt(
            rf"{L}(?:SBP|systolic(?:\s+(?:BP|blood\s+pressure|pressure))?){SEP}{NUM}(?:\s*mm\s*Hg)?",
            _ranged("systolic_bp"),
        ),
    ),
    "diastolic_bp": (
        _Alt(
            rf"{L}(?:BP|B/P|NIBP|ABP|blood\s+pressure){SEP}(?P<v>\d{{2,3}})\s*/\s*(?P<d>\d{{2,3}})(?!\d)"
            r"(?:\s*mm\s*Hg)?",
            _blood_pressure("diastolic"),
        ),
        _Alt(r"(?<![\w/])(?P<v>\d{2,3})\s*/\s*(?P<d>\d{2,3})\s*mm\s*Hg", _blood_pressure("diastolic")),
        _Alt(
            rf"{L}(?:DBP|diastolic(?:\s+(?:BP|blood\s+pressure|pressure))?){SEP}{NUM}(?:\s*mm\s*Hg)?",
            _ranged("diastolic_bp"),
        ),
    ),
    "heart_rate": (
        _Alt(
            rf"{L}(?:HR|heart\s*rate|pulse(?:\s*rate)?|(?-i:P)|tachycardic|bradycardic){SEP}{NUM}"
            r"(?:\s*(?:bpm|beats?\s*(?:/\s*|per\s+)min(?:ute)?|/\s*min))?",
            _ranged("heart_rate"),
        ),
        _Alt(rf"(?<![\w.]){NUM}\s*(?:bpm|beats\s*(?:/\s*|per\s+)min(?:ute)?)", _ranged("heart_rate")),
    ),
    "temperature_c": (
        _Alt(
            rf"{L}(?:temp(?:erature)?s?\.?|(?-i:T)){SEP}{NUM}"
            r"(?:\s*(?:°|º|deg(?:rees?)?\.?)?\s*(?P<u>C|F|celsius|centigrade|fahrenheit)\b|\s*°)?",
            _temperature,
        ),
        # "38.3°C", "101.2 °F", "38.3 C": a bare "C"/"F" only after a decimal ("85 F" may be an age and sex)
        _Alt(
            rf"(?<![\w.]){NUM}\s*(?:°|º|deg(?:rees?)?\.?)\s*(?P<u>C|F|celsius|centigrade|fahrenheit)\b",
            _temperature,
        ),
        _Alt(r"(?<![\w.])(?P<v>\d{2,3}\.\d)\s*(?P<u>C|F)\b", _temperature),
    ),
    "consciousness": (
        _Alt(
            # the literal first keeps the scan fast; "sepsis alert" is a call, not a level
            r"alert(?<!\walert)(?<!sepsis\salert)(?<!trauma\salert)(?<!stroke\salert)(?<!code\salert)"
            r"(?<!medical\salert)(?:\s+(?:and|&)\s+orien(?:ta)?ted(?:\s*x\s*[34])?)?\b",
            _const("A"),
            True,
        ),
        _Alt(r"\bA\s*(?:&|\+|and)\s*O(?:\s*x\s*[34])?\b(?!\s*x\s*[12])|\bAOx\s*[34]\b", _const("A"), True),
        _Alt(r"\bA\s*(?:&|\+|and)?\s*O\s*x\s*[12]\b", _const("C"), True),
        _Alt(
            r"\b(?:(?:new|acute|new[-\s]onset)\s+)?(?:confusion|confused|disorien(?:ta)?t(?:ed|ion)|delirium|delirious)\b"
            r"(?!\s*[:\-–=]\s*(?:no|nil|none|absent|negative)\b)",
            _const("C"),
            True,
        ),
        _Alt(
            r"\b(?:respond(?:s|ing)?|responsive|rousable|opens\s+eyes)\s+(?:only\s+)?to\s+"
            r"(?:voice|verbal(?:\s+(?:stimuli|commands?))?|speech)",
            _const("V"),
            True,
        ),
        _Alt(
            r"\b(?:respond(?:s|ing)?|responsive|rousable|opens\s+eyes)\s+(?:only\s+)?to\s+"
            r"(?:pain(?:ful\s+stimul(?:us|i))?|painful\s+stimul(?:us|i)|pressure)",
            _const("P"),
            True,
        ),
        _Alt(
            r"\b(?:unresponsive|unrousable|unconscious|no\s+response\s+to\s+(?:voice\s+or\s+)?pain)\b",
            _const("U"),
            True,
        ),
        _Alt(r"\bA?C?VPU\s*(?:score\s*)?[:=\-–]?\s*(?P<v>(?-i:[ACVPU]))\b", _letter),
        _Alt(r"\b(?P<v>(?-i:[ACVPU]))\s+on\s+A?C?VPU\b", _letter),
    ),
    "gcs": (
        _Alt(rf"{L}GCS{SEP}(?P<v>\d{{1,2}})(?!\d)(?:\s*/\s*15)?", _gcs),
        _Alt(
            rf"{L}(?:GCS{SEP}\(?\s*)?E\s*(?P<e>[1-4])\s*,?\s*V\s*(?P<vv>[1-5])\s*,?\s*M\s*(?P<m>[1-6])\b\)?",
            _gcs,
        ),
    ),
}


class _Param:
    """One parameter's alternatives compiled into a single regex (one pass over the note)."""

    def __init__(self, name: str, alts: tuple[_Alt, ...]) -> None:
        self.name = name
        self.alts = alts
        parts, self.groups = [], []
        for i, alt in enumerate(alts):
            names = re.findall(r"\(\?P<(\w+)>", alt.pattern)
            renamed = re.sub(r"\(\?P<(\w+)>", rf"(?P<\g<1>_{i}>", alt.pattern)
            parts.append(f"(?P<alt_{i}>{renamed})")
            self.groups.append([(n, f"{n}_{i}") for n in names])
        self.regex = re.compile("|".join(parts), re.IGNORECASE)

    def matches(self, note: str) -> Iterator[tuple[re.Match[str], _Alt, dict[str, str | None]]]:
        for m in self.regex.finditer(note):
            i = int((m.lastgroup or "alt_0")[4:])
            groups = {short: m.group(full) for short, full in self.groups[i]}
            yield m, self.alts[i], groups


_PARAMS = tuple(_Param(name, alts) for name, alts in _TABLE.items())

# Cues that a mention is not the current state, looked for earlier in the same clause.
_NOT_CURRENT = re.compile(
    r"\b(?:history\s+of|h/o|hx\s+of|previous(?:ly)?|prior|baseline|usual(?:ly)?|normally|target"
    r"|yesterday|last\s+(?:admission|visit|week|month|year)|at\s+home|pre-?admission)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:no|not|denies|denied|denying|without|negative\s+for|nil|absence\s+of|free\s+of|never)\b",
    re.IGNORECASE,
)
# the same cues written after the value: "T 39 yesterday", "BP 140/90 at GP last week"
_NOT_CURRENT_AFTER = re.compile(
    r"\b(?:yesterday|last\s+(?:admission|visit|week|month|year|night)|ago|at\s+home"
    r"|at\s+(?:the\s+)?GP|pre-?admission)\b",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r"[.;,!?\n]|\b(?:but|now|however)\b", re.IGNORECASE)
_LOOKBACK = 60


def _clause_before(note: str, start: int) -> str:
    window = note[max(0, start - _LOOKBACK) : start]
    cut = 0
    for m in _CLAUSE_END.finditer(window):
        cut = m.end()
    return window[cut:]


def _clause_after(note: str, end: int) -> str:
    window = note[end : end + _LOOKBACK]
    stop = _CLAUSE_END.search(window)
    return window[: stop.start()] if stop else window


def _voided(note: str, start: int, end: int, alt: _Alt) -> bool:
    """The mention is negated or not the current state."""
    before = _clause_before(note, start)
    if _NOT_CURRENT.search(before) or (alt.negatable and _NEGATION.search(before)):
        return True
    return bool(_NOT_CURRENT_AFTER.search(_clause_after(note, end)))


def extract_vitals(note: str) -> VitalSigns:
    """Read the vital signs written in `note`; absent parameters stay None."""
    found: dict[str, Reading] = {}
    rejected: list[tuple[int, str, Reading]] = []
    for param in _PARAMS:
        last: Reading | None = None
        for m, alt, groups in param.matches(note):
            if _voided(note, m.start(), m.end(), alt):
                continue
            try:
                value = alt.parse(groups)
            except (_Implausible, ValueError):
                rejected.append((m.start(), param.name, Reading(m.group(0), "note", m.span(), m.group(0))))
                continue
            last = Reading(value, "note", m.span(), m.group(0))  # later mentions replace earlier ones
        if last is not None:
            found[param.name] = last

    found_c = found.get("consciousness")
    gcs = found.get("gcs")
    if gcs is not None:
        from_gcs = Reading("A" if gcs.value == 15 else "C", "note", gcs.span, gcs.text)
        if found_c is None or (found_c.value == "A" and from_gcs.value != "A"):
            found["consciousness"] = from_gcs
    rejected.sort(key=lambda r: r[0])
    return VitalSigns(**found, rejected=tuple((name, r) for _, name, r in rejected))


# --- form values ---------------------------------------------------------------

_CONSCIOUSNESS_WORDS = {
    "a": "A", "alert": "A",
    "c": "C", "confused": "C", "confusion": "C", "new confusion": "C",
    "v": "V", "voice": "V",
    "p": "P", "pain": "P",
    "u": "U", "unresponsive": "U",
}  # fmt: skip


def _format(value: Value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def merge_vitals(from_note: VitalSigns, form: Vitals | None) -> VitalSigns:
    """Overlay the form's values on the note's: a value typed in a form field wins.

    Form values are checked like note values: an implausible one (RR 400) is
    refused and listed in `rejected`, and the note's value, if any, stays.
    """
    if form is None:
        return from_note
    found = from_note.readings()
    rejected = list(from_note.rejected)
    typed: dict[str, Any] = {
        "respiratory_rate": form.respiratory_rate,
        "spo2": form.spo2,
        "on_oxygen": form.on_oxygen,
        "systolic_bp": form.systolic_bp,
        "heart_rate": form.heart_rate,
        "temperature_c": form.temperature_c,
        "consciousness": form.consciousness,
    }
    for name, value in typed.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        text = _format(value)
        if name == "consciousness":
            value = _CONSCIOUSNESS_WORDS.get(str(value).strip().lower())
        elif name == "on_oxygen":
            value = bool(value)
        else:
            low, high = PLAUSIBLE[name]
            value = value if low <= float(value) <= high else None
        if value is None:
            rejected.append((name, Reading(text, "form", None, text)))
            continue
        found[name] = Reading(value, "form", None, text)
    return VitalSigns(**found, rejected=tuple(rejected))
