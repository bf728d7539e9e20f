"""NEWS2, qSOFA and the final risk level, edge by edge."""

from __future__ import annotations

import pytest

from engine.events import Vitals
from engine.risk import final_risk_level, news2_band, parameter_points, score_risk
from engine.schema import Risk
from engine.vitals import Reading, VitalSigns, extract_vitals, merge_vitals


def _r(value) -> Reading:
    return Reading(value, "form", None, str(value))


def vitals(**values) -> VitalSigns:
    return VitalSigns(**{k: _r(v) for k, v in values.items()})


NORMAL = dict(
    respiratory_rate=16,
    spo2=97,
    on_oxygen=False,
    systolic_bp=128,
    heart_rate=78,
    consciousness="A",
    temperature_c=36.8,
)


# --- every band edge of every NEWS2 parameter, both sides -----------------------

EDGES = [
    # respiratory rate: <=8:3, 9-11:1, 12-20:0, 21-24:2, >=25:3
    ("respiratory_rate", 3, 3), ("respiratory_rate", 8, 3), ("respiratory_rate", 9, 1),
    ("respiratory_rate", 11, 1), ("respiratory_rate", 12, 0), ("respiratory_rate", 20, 0),
    ("respiratory_rate", 21, 2), ("respiratory_rate", 24, 2), ("respiratory_rate", 25, 3),
    ("respiratory_rate", 60, 3),
    # SpO2 scale 1: <=91:3, 92-93:2, 94-95:1, >=96:0
    ("spo2", 70, 3), ("spo2", 91, 3), ("spo2", 92, 2), ("spo2", 93, 2), ("spo2", 94, 1),
    ("spo2", 95, 1), ("spo2", 96, 0), ("spo2", 100, 0),
    # air or oxygen
    ("on_oxygen", True, 2), ("on_oxygen", False, 0),
    # systolic BP: <=90:3, 91-100:2, 101-110:1, 111-219:0, >=220:3
    ("systolic_bp", 60, 3), ("systolic_bp", 90, 3), ("systolic_bp", 91, 2), ("systolic_bp", 100, 2),
    ("systolic_bp", 101, 1), ("systolic_bp", 110, 1), ("systolic_bp", 111, 0), ("systolic_bp", 219, 0),
    ("systolic_bp", 220, 3), ("systolic_bp", 260, 3),
    # pulse: <=40:3, 41-50:1, 51-90:0, 91-110:1, 111-130:2, >=131:3
    ("heart_rate", 30, 3), ("heart_rate", 40, 3), ("heart_rate", 41, 1), ("heart_rate", 50, 1),
    ("heart_rate", 51, 0), ("heart_rate", 90, 0), ("heart_rate", 91, 1), ("heart_rate", 110, 1),
    ("heart_rate", 111, 2), ("heart_rate", 130, 2), ("heart_rate", 131, 3), ("heart_rate", 180, 3),
    # consciousness: A:0; C, V, P, U:3
    ("consciousness", "A", 0), ("consciousness", "C", 3), ("consciousness", "V", 3),
    ("consciousness", "P", 3), ("consciousness", "U", 3),
    # temperature: <=35.0:3, 35.1-36.0:1, 36.1-38.0:0, 38.1-39.0:1, >=39.1:2
    ("temperature_c", 33.0, 3), ("temperature_c", 35.0, 3), ("temperature_c", 35.1, 1),
    ("temperature_c", 36.0, 1), ("temperature_c", 36.1, 0), ("temperature_c", 38.0, 0),
    ("temperature_c", 38.1, 1), ("temperature_c", 39.0, 1), ("temperature_c", 39.1, 2),
    ("temperature_c", 41.0, 2),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "points"), EDGES)
def test_each_chart_edge(name, value, points):
    assert parameter_points(name, value) == points
    # the same value scored through score_risk, alone and among normal vitals
    alone = score_risk(vitals(**{name: value}))
    assert alone.news2.points == {name: points}
    assert alone.news2.score == points
    full = score_risk(vitals(**{**NORMAL, name: value}))
    assert full.news2.score == points
    assert full.news2.missing == []


# Values between two chart rows take the higher of the two rows.
BETWEEN_ROWS = [
    ("respiratory_rate", 8.5, 3), ("respiratory_rate", 11.5, 1), ("respiratory_rate", 20.5, 2),
    ("respiratory_rate", 24.5, 3),
    ("spo2", 91.5, 3), ("spo2", 93.5, 2), ("spo2", 95.5, 1),
    ("systolic_bp", 90.5, 3), ("systolic_bp", 100.5, 2), ("systolic_bp", 110.5, 1),
    ("systolic_bp", 219.5, 3),
    ("heart_rate", 40.5, 3), ("heart_rate", 50.5, 1), ("heart_rate", 90.5, 1), ("heart_rate", 110.5, 2),
    ("heart_rate", 130.5, 3),
    ("temperature_c", 35.05, 3), ("temperature_c", 36.05, 1), ("temperature_c", 38.05, 1),
    ("temperature_c", 39.05, 2), ("temperature_c", 38.04, 1), ("temperature_c", 37.99, 0),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "points"), BETWEEN_ROWS)
def test_values_between_rows_take_the_higher_row(name, value, points):
    assert parameter_points(name, value) == points


# --- bands ------------------------------------------------------------------------

BANDS = [
    # (changes from NORMAL, aggregate, band)
    ({}, 0, "Low"),
    ({"heart_rate": 95, "temperature_c": 38.5, "spo2": 94, "systolic_bp": 105}, 4, "Low"),
    ({"spo2": 90}, 3, "Moderate"),  # a single 3, aggregate 3
    ({"spo2": 90, "heart_rate": 95}, 4, "Moderate"),  # a single 3, aggregate 4
    ({"respiratory_rate": 22, "heart_rate": 95, "temperature_c": 38.5, "spo2": 94}, 5, "Moderate"),
    ({"respiratory_rate": 22, "on_oxygen": True, "heart_rate": 95, "spo2": 94}, 6, "Moderate"),
    ({"respiratory_rate": 22, "on_oxygen": True, "heart_rate": 115, "spo2": 94}, 7, "High"),
    ({"respiratory_rate": 25, "spo2": 91, "consciousness": "C"}, 9, "High"),
]


@pytest.mark.parametrize(("changes", "score", "band"), BANDS)
def test_band_edges(changes, score, band):
    risk = score_risk(vitals(**{**NORMAL, **changes}))
    assert risk.news2.score == score
    assert risk.news2.band == band
    assert risk.rule_level == band


@pytest.mark.parametrize(
    ("score", "points", "band"),
    [
        (4, {"a": 1, "b": 1, "c": 2}, "Low"),
        (3, {"a": 3}, "Moderate"),
        (4, {"a": 3, "b": 1}, "Moderate"),
        (5, {"a": 2, "b": 2, "c": 1}, "Moderate"),
        (6, {"a": 2, "b": 2, "c": 2}, "Moderate"),
        (7, {"a": 3, "b": 2, "c": 2}, "High"),
        (7, {"a": 2, "b": 2, "c": 2, "d": 1}, "High"),
    ],
)
def test_news2_band_rules(score, points, band):
    assert news2_band(score, points) == band


def test_single_three_is_named_in_reasons():
    risk = score_risk(vitals(**{**NORMAL, "spo2": 90}))
    assert any("single parameter scoring 3" in r and "SpO2 90%" in r for r in risk.reasons)


# --- missing vitals ---------------------------------------------------------------


def test_no_vitals_scores_nothing():
    risk = score_risk(VitalSigns())
    assert risk.news2.score is None and risk.news2.band is None
    assert risk.qsofa.score is None
    assert risk.rule_level is None
    assert risk.vitals == {}
    assert "No vital signs found in the note: NEWS2 and qSOFA not scored" in risk.reasons
    assert set(risk.news2.missing) == {
        "respiratory_rate", "spo2", "on_oxygen", "systolic_bp", "heart_rate", "consciousness", "temperature_c",
    }  # fmt: skip


def test_partial_vitals_score_what_is_present_and_say_so():
    risk = score_risk(vitals(respiratory_rate=26, heart_rate=120))
    assert risk.news2.score == 5
    assert risk.news2.points == {"respiratory_rate": 3, "heart_rate": 2}
    assert risk.news2.band == "Moderate"
    assert risk.news2.missing == ["spo2", "on_oxygen", "systolic_bp", "consciousness", "temperature_c"]
    assert risk.reasons[0].startswith("NEWS2 5 (Moderate, partial): RR 26 → 3, HR 120 → 2")
    partial = [r for r in risk.reasons if r.startswith("NEWS2 is partial")]
    assert partial and "SpO2" in partial[0] and "temperature" in partial[0] and "lower bound" in partial[0]
    # the values scored are exactly those given, nothing invented
    assert set(risk.vitals) == {"respiratory_rate", "heart_rate"}


def test_full_reason_lists_every_parameter():
    risk = score_risk(
        vitals(**{**NORMAL, "respiratory_rate": 24, "spo2": 93, "on_oxygen": True, "heart_rate": 96})
    )
    assert risk.news2.score == 7 and risk.news2.band == "High"
    assert risk.reasons[0] == (
        "NEWS2 7 (High): RR 24 → 2, SpO2 93% → 2, oxygen → 2, SBP 128 → 0, HR 96 → 1, "
        "consciousness A → 0, temperature 36.8 °C → 0"
    )


# --- qSOFA ------------------------------------------------------------------------

QSOFA = [
    ({"respiratory_rate": 21}, 0, {"respiratory_rate": 0}),
    ({"respiratory_rate": 22}, 1, {"respiratory_rate": 1}),
    ({"systolic_bp": 101}, 0, {"systolic_bp": 0}),
    ({"systolic_bp": 100}, 1, {"systolic_bp": 1}),
    ({"consciousness": "A"}, 0, {"altered_mentation": 0}),
    ({"consciousness": "C"}, 1, {"altered_mentation": 1}),
    ({"consciousness": "U"}, 1, {"altered_mentation": 1}),
    ({"gcs": 15}, 0, {"altered_mentation": 0}),
    ({"gcs": 14}, 1, {"altered_mentation": 1}),
    ({"consciousness": "A", "gcs": 14}, 1, {"altered_mentation": 1}),
    ({"respiratory_rate": 22, "systolic_bp": 100, "consciousness": "V"}, 3,
     {"respiratory_rate": 1, "altered_mentation": 1, "systolic_bp": 1}),
    ({"respiratory_rate": 21, "systolic_bp": 101, "consciousness": "A"}, 0,
     {"respiratory_rate": 0, "altered_mentation": 0, "systolic_bp": 0}),
]  # fmt: skip


@pytest.mark.parametrize(("values", "score", "points"), QSOFA)
def test_qsofa_edges(values, score, points):
    risk = score_risk(vitals(**values))
    assert risk.qsofa.score == score
    assert risk.qsofa.points == points
    assert risk.qsofa.missing == [
        p for p in ("respiratory_rate", "altered_mentation", "systolic_bp") if p not in points
    ]


def test_qsofa_none_without_its_parameters():
    risk = score_risk(vitals(spo2=95, heart_rate=80))
    assert risk.qsofa.score is None
    assert risk.news2.score == 1


def test_qsofa_reason():
    risk = score_risk(vitals(respiratory_rate=24, systolic_bp=95, consciousness="A"))
    assert (
        "qSOFA 2 of 3: RR 24 ≥ 22 → 1, mentation not altered (consciousness A) → 0, SBP 95 ≤ 100 → 1"
        in risk.reasons
    )


# --- from the note, end to end ------------------------------------------------------

NOTES = [
    # (note, news2, band, qsofa)
    (
        "45-year-old man with right lower abdominal pain for 1 day, nausea, anorexia.\n"
        "RR 22, SpO2 95% on air, BP 105/70, HR 104, T 38.3, alert and oriented.",
        6, "Moderate", 1,
    ),
    (
        "30-year-old woman with known asthma, wheeze and chest tightness since last night, using salbutamol "
        "every 2 hours.\nRR 18, SpO2 90% on room air, BP 120/80, HR 88, T 37.0, alert.",
        3, "Moderate", 0,
    ),
    (
        "66-year-old with COPD exacerbation, on 2 L/min oxygen via nasal cannula. Increased sputum, breathless "
        "on minimal exertion.\nRR 24, SpO2 93% on 2L O2, BP 138/76, HR 96, T 37.6, alert.",
        7, "High", 1,
    ),
    (
        "Itchy red rash on the left forearm for 3 days after gardening. No fever, no systemic symptoms. "
        "No known allergies.",
        None, None, None,
    ),
    (
        "58-year-old woman with a persistent dry cough for 2 weeks. No fever. History of seasonal allergies, uses "
        "cetirizine intermittently. Non-smoker.\nObs: RR 16, SpO2 97% on room air, BP 128/82, HR 78, temp 36.8 C, "
        "alert.",
        0, "Low", 0,
    ),
    (
        "72-year-old man, 2 days of fever and productive cough, new confusion this morning per daughter. Type 2 "
        "diabetes on metformin.\nRR 26, SpO2 91% on room air, BP 92/58, pulse 118, temperature 39.4, confused.",
        15, "High", 3,
    ),
    (
        "Resp rate 12 breaths/min, O2 sats 96 % on RA, blood pressure 111 / 70 mmHg, heart rate 51 bpm, "
        "temperature 97.0 F, GCS 15/15.",
        # 97.0 F = 36.1 C
        0, "Low", 0,
    ),
    (
        "Unresponsive on arrival, GCS 6. RR 8, sats 88% on 15L non-rebreather, BP 85/40, HR 40, T 34.9.",
        3 + 3 + 2 + 3 + 3 + 3 + 3, "High", 2,  # RR 8 is not >= 22
    ),
]  # fmt: skip


@pytest.mark.parametrize(("note", "score", "band", "qsofa"), NOTES)
def test_notes_end_to_end(note, score, band, qsofa):
    risk = score_risk(extract_vitals(note))
    assert (risk.news2.score, risk.news2.band, risk.qsofa.score) == (score, band, qsofa)
    assert risk.rule_level == band
    for entry in risk.vitals.values():
        start, end = entry["span"]
        assert note[start:end] == entry["text"]


def test_form_values_are_scored_with_form_source():
    note = "RR 18, SpO2 97% on air, BP 130/80, HR 80, T 37.0, alert."
    merged = merge_vitals(extract_vitals(note), Vitals(respiratory_rate=26, consciousness="confused"))
    risk = score_risk(merged)
    assert risk.news2.points["respiratory_rate"] == 3
    assert risk.news2.points["consciousness"] == 3
    assert risk.news2.score == 6
    assert risk.vitals["respiratory_rate"]["source"] == "form"
    assert risk.vitals["heart_rate"]["source"] == "note"


def test_implausible_values_are_reported_not_scored():
    risk = score_risk(extract_vitals("RR 400, HR 80"))
    assert risk.news2.points == {"heart_rate": 0}
    assert any("implausible" in r and "RR 400" in r for r in risk.reasons)


# --- final level ------------------------------------------------------------------


def _risk(band) -> Risk:
    return Risk(rule_level=band, news2={"band": band, "score": None if band is None else 1})


FINAL = [
    # (rule band, model level, final, a phrase the reasons must contain)
    ("High", "Low", "High", "the model's Low was overruled by NEWS2 band High"),
    ("High", "Moderate", "High", "the model's Moderate was overruled by NEWS2 band High"),
    ("High", "High", "High", "NEWS2 band High sets the floor"),
    ("High", None, "High", "NEWS2 band High sets the floor"),
    ("Moderate", "Low", "Moderate", "the model's Low was overruled by NEWS2 band Moderate"),
    ("Moderate", "High", "High", "the model raised the level from Moderate to High"),
    ("Low", "Low", "Low", "NEWS2 band Low sets the floor"),
    ("Low", "Moderate", "Moderate", "the model raised the level from Low to Moderate"),
    ("Low", "High", "High", "the model raised the level from Low to High"),
    ("Low", None, "Low", "NEWS2 band Low sets the floor"),
    (None, "Low", "Low", "the model's level Low is used"),
    (None, "High", "High", "the model's level High is used"),
    (None, None, "Moderate", "No rule band or model level was available"),
]


@pytest.mark.parametrize(("band", "model", "final", "phrase"), FINAL)
def test_final_level(band, model, final, phrase):
    level, reasons = final_risk_level(_risk(band), model)
    assert level == final
    assert any(phrase in r for r in reasons), reasons


@pytest.mark.parametrize("band", ["Low", "Moderate", "High"])
@pytest.mark.parametrize("model", ["Low", "Moderate", "High", None])
def test_final_level_never_below_the_band(band, model):
    from engine.schema import RISK_ORDER

    level, _ = final_risk_level(_risk(band), model)
    assert RISK_ORDER[level] == max(RISK_ORDER[band], RISK_ORDER[model] if model else 0)


def test_final_level_says_when_the_band_is_partial():
    risk = score_risk(vitals(respiratory_rate=26))
    level, reasons = final_risk_level(risk, "Low")
    assert level == "Moderate"
    assert reasons[0] == "NEWS2 band Moderate (partial vitals) sets the floor"
