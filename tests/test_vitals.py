"""Vital signs read from free text: phrasings, units, oxygen, consciousness, spans, refusals."""

from __future__ import annotations

import pytest

from engine.events import Vitals
from engine.vitals import Reading, VitalSigns, extract_vitals, fahrenheit_to_celsius, merge_vitals


def value(note: str, name: str):
    reading = getattr(extract_vitals(note), name)
    return None if reading is None else reading.value


def assert_spans(note: str, vs: VitalSigns) -> None:
    for name, reading in vs.readings().items():
        assert reading.span is not None, name
        start, end = reading.span
        assert note[start:end] == reading.text, name


# --- phrasings ----------------------------------------------------------------------

PHRASINGS = [
    # respiratory rate
    ("RR 22", "respiratory_rate", 22, "RR 22"),
    ("RR:22", "respiratory_rate", 22, "RR:22"),
    ("RR=22", "respiratory_rate", 22, "RR=22"),
    ("RR - 22", "respiratory_rate", 22, "RR - 22"),
    ("resp rate 22", "respiratory_rate", 22, "resp rate 22"),
    ("Respiratory rate 22 breaths/min.", "respiratory_rate", 22, "Respiratory rate 22 breaths/min"),
    ("respiratory rate of 22", "respiratory_rate", 22, "respiratory rate of 22"),
    ("breathing 22/min", "respiratory_rate", 22, "breathing 22/min"),
    ("resps 30", "respiratory_rate", 30, "resps 30"),
    ("tachypnoeic at 28", "respiratory_rate", 28, "tachypnoeic at 28"),
    ("breathing at 22 breaths per minute", "respiratory_rate", 22, "breathing at 22 breaths per minute"),
    ("counted 22 breaths per minute", "respiratory_rate", 22, "22 breaths per minute"),
    # SpO2
    ("SpO2 94%", "spo2", 94, "SpO2 94%"),
    ("SpO2 95 %", "spo2", 95, "SpO2 95 %"),
    ("SpO2: 95", "spo2", 95, "SpO2: 95"),
    ("sats 92%", "spo2", 92, "sats 92%"),
    ("O2 sat 94%", "spo2", 94, "O2 sat 94%"),
    ("O2 sats of 93 %", "spo2", 93, "O2 sats of 93 %"),
    ("oxygen saturation 94%", "spo2", 94, "oxygen saturation 94%"),
    ("saturating 96% on room air", "spo2", 96, "saturating 96%"),
    ("Obs stable, 97% on room air.", "spo2", 97, "97%"),
    ("98% RA", "spo2", 98, "98%"),
    # blood pressure
    ("BP 105/70", "systolic_bp", 105, "BP 105/70"),
    ("BP 105/70", "diastolic_bp", 70, "BP 105/70"),
    ("blood pressure 105 / 70 mmHg", "systolic_bp", 105, "blood pressure 105 / 70 mmHg"),
    ("B/P: 140/90", "systolic_bp", 140, "B/P: 140/90"),
    ("SBP 90", "systolic_bp", 90, "SBP 90"),
    ("systolic 88", "systolic_bp", 88, "systolic 88"),
    ("systolic blood pressure of 95 mmHg", "systolic_bp", 95, "systolic blood pressure of 95 mmHg"),
    ("pressure 132/84 mmHg", "systolic_bp", 132, "132/84 mmHg"),
    # pulse
    ("HR 104", "heart_rate", 104, "HR 104"),
    ("HR-104", "heart_rate", 104, "HR-104"),
    ("HR: 104 bpm", "heart_rate", 104, "HR: 104 bpm"),
    ("pulse 118", "heart_rate", 118, "pulse 118"),
    ("P 104", "heart_rate", 104, "P 104"),
    ("heart rate 104 bpm", "heart_rate", 104, "heart rate 104 bpm"),
    ("heart rate is 72", "heart_rate", 72, "heart rate is 72"),
    ("HR now 72", "heart_rate", 72, "HR now 72"),
    ("BP today 150/95", "systolic_bp", 150, "BP today 150/95"),
    ("tachycardic at 120", "heart_rate", 120, "tachycardic at 120"),
    ("irregular at 130 bpm", "heart_rate", 130, "130 bpm"),
    # temperature, Celsius
    ("T 38.3", "temperature_c", 38.3, "T 38.3"),
    ("T 38.3°C", "temperature_c", 38.3, "T 38.3°C"),
    ("temp 38.3", "temperature_c", 38.3, "temp 38.3"),
    ("Temp: 38.3 C", "temperature_c", 38.3, "Temp: 38.3 C"),
    ("temperature 39.4", "temperature_c", 39.4, "temperature 39.4"),
    ("temperature of 37 degrees C", "temperature_c", 37, "temperature of 37 degrees C"),
    ("febrile, 38.9 °C", "temperature_c", 38.9, "38.9 °C"),
    ("38.3C", "temperature_c", 38.3, "38.3C"),
    # temperature, Fahrenheit -> Celsius
    ("T 101.2 F", "temperature_c", 38.4, "T 101.2 F"),
    ("temp 101.2 °F", "temperature_c", 38.4, "temp 101.2 °F"),
    ("temperature 100.4F", "temperature_c", 38.0, "temperature 100.4F"),
    ("Temp 98.6 deg F", "temperature_c", 37.0, "Temp 98.6 deg F"),
    ("102.2°F at triage", "temperature_c", 39.0, "102.2°F"),
    ("temp 103", "temperature_c", 39.4, "temp 103"),  # no unit, too hot for Celsius
    # GCS
    ("GCS 15", "gcs", 15, "GCS 15"),
    ("GCS: 13/15", "gcs", 13, "GCS: 13/15"),
    ("GCS E4V5M6", "gcs", 15, "GCS E4V5M6"),
    ("E3 V4 M6", "gcs", 13, "E3 V4 M6"),
]


@pytest.mark.parametrize(("note", "name", "expected", "text"), PHRASINGS)
def test_phrasings(note, name, expected, text):
    vs = extract_vitals(note)
    reading = getattr(vs, name)
    assert reading is not None, f"{name} not found in {note!r}"
    assert reading.value == pytest.approx(expected)
    assert reading.text == text
    assert reading.source == "note"
    assert_spans(note, vs)


def test_integers_stay_integers_and_decimals_stay_decimals():
    vs = extract_vitals("RR 22, T 37.0")
    assert vs.respiratory_rate.value == 22 and isinstance(vs.respiratory_rate.value, int)
    assert vs.temperature_c.value == 37.0 and isinstance(vs.temperature_c.value, float)


@pytest.mark.parametrize(
    ("f", "c"),
    [(100.4, 38.0), (101.2, 38.4), (98.6, 37.0), (95.0, 35.0), (95.2, 35.1), (102.3, 39.1), (96.8, 36.0)],
)
def test_fahrenheit_conversion_rounds_half_up_to_a_tenth(f, c):
    assert fahrenheit_to_celsius(f) == c


# --- oxygen --------------------------------------------------------------------------

OXYGEN = [
    ("on 2 L/min oxygen", True, "on 2 L/min oxygen"),
    ("2L O2", True, "2L O2"),
    ("SpO2 93% on 2L O2", True, "on 2L O2"),
    ("on 28% venturi", True, "on 28% venturi"),
    ("on 40% O2", True, "on 40% O2"),
    ("via nasal cannula", True, "via nasal cannula"),
    ("15L NRB mask", True, "15L NRB mask"),
    ("NRB mask", True, "NRB mask"),
    ("on non-rebreather", True, "non-rebreather"),
    ("4 litres via face mask", True, "4 litres via face mask"),
    ("on supplemental oxygen", True, "on supplemental oxygen"),
    ("on high-flow nasal oxygen", True, "high-flow nasal oxygen"),
    ("on CPAP", True, "on CPAP"),
    ("FiO2 0.35", True, "FiO2 0.35"),
    ("FiO2 21%", False, "FiO2 21%"),
    ("on room air", False, "on room air"),
    ("on air", False, "on air"),
    ("SpO2 95% RA", False, "RA"),
    ("sats 97% on RA", False, "RA"),
    ("sats 98% OA", False, "OA"),
    ("SpO2 94% (on 2 L)", True, "on 2 L"),
    ("not on oxygen", False, "not on oxygen"),
    ("weaned off oxygen", False, "off oxygen"),
    ("no supplemental oxygen requirement", False, "no supplemental oxygen requirement"),
]


@pytest.mark.parametrize(("note", "on_oxygen", "text"), OXYGEN)
def test_oxygen(note, on_oxygen, text):
    vs = extract_vitals(note)
    assert vs.on_oxygen is not None, note
    assert vs.on_oxygen.value is on_oxygen
    assert vs.on_oxygen.text == text
    assert_spans(note, vs)


def test_oxygen_flow_and_device_and_saturation_together():
    note = "66-year-old with COPD, on 2 L/min oxygen via nasal cannula.\nRR 24, SpO2 93% on 2L O2, alert."
    vs = extract_vitals(note)
    assert vs.on_oxygen.value is True
    assert vs.spo2.value == 93
    assert vs.spo2.text == "SpO2 93%"


def test_rheumatoid_arthritis_is_not_room_air():
    vs = extract_vitals("History of RA on methotrexate. SpO2 94% on 2L O2.")
    assert vs.on_oxygen.value is True
    assert extract_vitals("Known RA, on methotrexate.").on_oxygen is None


def test_most_recent_oxygen_statement_wins():
    vs = extract_vitals("SpO2 88% on room air, now on 2L O2 with SpO2 94%.")
    assert vs.on_oxygen.value is True
    assert vs.spo2.value == 94
    vs = extract_vitals("Was on 2L O2 overnight. Weaned to room air, SpO2 96%.")
    assert vs.on_oxygen.value is False


# --- consciousness -------------------------------------------------------------------

CONSCIOUSNESS = [
    ("alert", "A", "alert"),
    ("Alert and oriented.", "A", "Alert and oriented"),
    ("alert & orientated x3", "A", "alert & orientated x3"),
    ("A&O x3", "A", "A&O x3"),
    ("A+Ox4", "A", "A+Ox4"),
    ("A&O x1", "C", "A&O x1"),
    ("confused", "C", "confused"),
    ("new confusion this morning", "C", "new confusion"),
    ("disoriented to time and place", "C", "disoriented"),
    ("acute confusion", "C", "acute confusion"),
    ("responds to voice", "V", "responds to voice"),
    ("responding only to voice", "V", "responding only to voice"),
    ("responds to pain", "P", "responds to pain"),
    ("responsive to painful stimuli", "P", "responsive to painful stimuli"),
    ("unresponsive", "U", "unresponsive"),
    ("no response to pain", "U", "no response to pain"),
    ("AVPU: V", "V", "AVPU: V"),
    ("ACVPU C", "C", "ACVPU C"),
    ("P on AVPU", "P", "P on AVPU"),
    ("GCS 15", "A", "GCS 15"),
    ("GCS 14", "C", "GCS 14"),
    ("GCS 8/15", "C", "GCS 8/15"),
]


@pytest.mark.parametrize(("note", "letter", "text"), CONSCIOUSNESS)
def test_consciousness(note, letter, text):
    vs = extract_vitals(note)
    assert vs.consciousness is not None, note
    assert vs.consciousness.value == letter
    assert vs.consciousness.text == text
    assert_spans(note, vs)


def test_gcs_below_15_overrides_alert_words():
    vs = extract_vitals("Alert, GCS 13.")
    assert vs.consciousness.value == "C"
    assert vs.consciousness.text == "GCS 13"
    assert vs.gcs.value == 13


def test_words_name_the_impairment_when_gcs_is_also_low():
    vs = extract_vitals("GCS 7, responds to pain only.")
    assert vs.consciousness.value == "P"
    assert vs.gcs.value == 7


def test_alert_words_stand_with_gcs_15():
    vs = extract_vitals("GCS 15, alert and oriented")
    assert vs.consciousness.value == "A"
    assert vs.consciousness.text == "alert and oriented"


def test_sepsis_alert_is_not_a_consciousness_level():
    assert extract_vitals("Sepsis alert called by triage nurse.").consciousness is None


@pytest.mark.parametrize("note", ["drowsy", "lethargic", "sleepy but rousable"])
def test_unmapped_words_give_no_consciousness(note):
    assert extract_vitals(note).consciousness is None


# --- negation and history: never invent ------------------------------------------------

NOTHING = [
    "No fever.",
    "Afebrile, no systemic symptoms.",
    "Denies fever or rigors.",
    "not confused",
    "No confusion.",
    "denies confusion",
    "No new confusion per wife.",
    "Confusion: no",
    "history of confusion with UTIs",
    "previous GCS 12 after head injury",
    "baseline SpO2 88%",
    "target sats 88-92%",
    "Previous BP 180/100",
    "Itchy red rash on the left forearm for 3 days after gardening. No fever, no systemic symptoms.",
    "Type 2 diabetes, T2DM on metformin.",
    "G2 P1, 38 weeks.",
    "85 F with a fall",  # age and sex, not a temperature
    "Plan: review in 2 days.",
    "HR 90s, BP 110s/70s",
    "temp 39C yesterday",
    "BP 140/90 at GP last week",
    "on 2L fluid restriction",
    "Hb 102 g/L, WCC 15.2, CRP 180, lactate 4.1, 2 L fluid given",
    "",
]


@pytest.mark.parametrize("note", NOTHING)
def test_nothing_is_invented(note):
    vs = extract_vitals(note)
    assert vs.readings() == {}, vs.readings()


@pytest.mark.parametrize("note", ["never on home oxygen", "denies being on oxygen", "No oxygen given."])
def test_negated_oxygen_is_never_read_as_oxygen(note):
    reading = extract_vitals(note).on_oxygen
    assert reading is None or reading.value is False


def test_negation_does_not_reach_across_a_clause():
    vs = extract_vitals("No fever, new confusion since this morning.")
    assert vs.consciousness.value == "C"
    vs = extract_vitals("No distress. Alert.")
    assert vs.consciousness.value == "A"


def test_fio2_percentage_is_not_a_saturation():
    vs = extract_vitals("FiO2 21% room air")
    assert vs.spo2 is None and vs.rejected == ()
    assert vs.on_oxygen.value is False


def test_negation_is_not_applied_to_numbers():
    assert extract_vitals("No acute distress RR 16").respiratory_rate.value == 16


def test_history_does_not_hide_current_values():
    vs = extract_vitals("Baseline SpO2 88%, today SpO2 84% on air.")
    assert vs.spo2.value == 84
    assert vs.spo2.text == "SpO2 84%"


# --- last mention wins, with its span ---------------------------------------------------


def test_last_value_wins_and_keeps_its_span():
    note = "On arrival HR 130, RR 28. After fluids HR 96, RR 20."
    vs = extract_vitals(note)
    assert vs.heart_rate.value == 96
    assert vs.respiratory_rate.value == 20
    assert vs.heart_rate.span == (note.rindex("HR 96"), note.rindex("HR 96") + len("HR 96"))
    assert_spans(note, vs)


def test_spans_point_at_the_evidence_in_a_longer_note():
    note = (
        "72-year-old man, 2 days of fever and productive cough, new confusion this morning per daughter.\n"
        "RR 26, SpO2 91% on room air, BP 92/58, pulse 118, temperature 39.4, confused."
    )
    vs = extract_vitals(note)
    assert_spans(note, vs)
    assert vs.consciousness.span[0] == note.rindex("confused")
    assert vs.as_dict()["heart_rate"] == {
        "value": 118,
        "source": "note",
        "text": "pulse 118",
        "span": [note.index("pulse 118"), note.index("pulse 118") + 9],
    }


# --- implausible numbers are refused -----------------------------------------------------

IMPLAUSIBLE = [
    ("RR 400", "respiratory_rate"),
    ("RR 0", "respiratory_rate"),
    ("SpO2 150%", "spo2"),
    ("sats 9%", "spo2"),
    ("HR 400", "heart_rate"),
    ("HR 5", "heart_rate"),
    ("BP 400/80", "systolic_bp"),
    ("BP 80/120", "systolic_bp"),  # diastolic above systolic
    ("T 52", "temperature_c"),
    ("T 38.3 F", "temperature_c"),  # 38.3 °F is not a living patient's temperature
    ("temp 120 F", "temperature_c"),
    ("GCS 2", "gcs"),
    ("GCS 16", "gcs"),
]


@pytest.mark.parametrize(("note", "name"), IMPLAUSIBLE)
def test_implausible_values_are_refused(note, name):
    vs = extract_vitals(note)
    assert getattr(vs, name) is None
    assert vs.rejected
    assert name in {n for n, _ in vs.rejected}
    assert vs.readings() == {}
    for _, reading in vs.rejected:
        assert note[reading.span[0] : reading.span[1]] == reading.text


def test_an_implausible_later_value_leaves_the_earlier_plausible_one():
    vs = extract_vitals("RR 22. RR 220 (typo).")
    assert vs.respiratory_rate.value == 22
    assert vs.rejected[0][1].text == "RR 220"


@pytest.mark.parametrize("note", ["sats 88-92%", "HR 100-110"])
def test_ranges_are_not_read_as_values(note):
    assert extract_vitals(note).readings() == {}


# --- the form --------------------------------------------------------------------------


def test_form_value_wins_over_the_note():
    note = "RR 18, SpO2 97% on air, HR 80, T 37.0, alert."
    merged = merge_vitals(
        extract_vitals(note), Vitals(respiratory_rate=24, on_oxygen=True, consciousness="C")
    )
    assert merged.respiratory_rate == Reading(24, "form", None, "24")
    assert merged.on_oxygen == Reading(True, "form", None, "True")
    assert merged.consciousness.value == "C" and merged.consciousness.source == "form"
    # untouched parameters keep the note's reading and span
    assert merged.heart_rate.source == "note"
    assert merged.heart_rate.span == (note.index("HR 80"), note.index("HR 80") + 5)


def test_form_fills_what_the_note_lacks():
    merged = merge_vitals(extract_vitals("Cough for a week."), Vitals(spo2=95, temperature_c=38.2))
    assert merged.spo2.value == 95 and merged.spo2.source == "form"
    assert merged.temperature_c.value == 38.2
    assert merged.respiratory_rate is None


@pytest.mark.parametrize(
    ("word", "letter"),
    [
        ("A", "A"),
        ("alert", "A"),
        ("Confused", "C"),
        ("new confusion", "C"),
        ("V", "V"),
        ("pain", "P"),
        ("U", "U"),
    ],
)
def test_form_consciousness_words(word, letter):
    merged = merge_vitals(VitalSigns(), Vitals(consciousness=word))
    assert merged.consciousness.value == letter


def test_implausible_form_values_are_refused_and_the_note_stays():
    merged = merge_vitals(extract_vitals("RR 20"), Vitals(respiratory_rate=400, consciousness="sleepy"))
    assert merged.respiratory_rate.value == 20 and merged.respiratory_rate.source == "note"
    assert merged.consciousness is None
    assert {name for name, _ in merged.rejected} == {"respiratory_rate", "consciousness"}


def test_no_form_returns_the_note_unchanged():
    vs = extract_vitals("RR 20")
    assert merge_vitals(vs, None) is vs
    assert merge_vitals(vs, Vitals()) == vs
