"""Free text checked sentence by sentence as it streams, and the loop detector."""

from __future__ import annotations

from engine.textcheck import NOT_IN_NOTE, RepetitionGuard, SentenceStream, StreamChecks, check_sentence

NOTE = (
    "72 year old man, cough and fever for 2 days, now short of breath. RR 26, SpO2 91% on room air, "
    "BP 95/60, HR 118, temperature 38.9. New confusion this morning."
)


def _feed_in_pieces(stream: SentenceStream, text: str, size: int = 3) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for start in range(0, len(text), size):
        out += stream.feed(text[start : start + size])
    return out + stream.finish()


def test_sentences_come_out_whole_once_the_next_has_begun():
    stream = SentenceStream()
    assert stream.feed("Temperature 38.") == []  # "38." may go on: "38.9"
    assert stream.feed("9 today") == []
    assert stream.feed(". ") == []  # it ends only when the next sentence begins
    assert stream.feed("Seen by Dr. ") == [("", "Temperature 38.9 today.")]
    assert stream.feed("Smith") == []  # "Dr." ends no sentence
    assert stream.draft == "Seen by Dr. Smith"
    assert stream.finish() == [(" ", "Seen by Dr. Smith")]


def test_spacing_and_sentences_rebuild_the_text_exactly():
    text = "First line.\n\nSecond one! Third?  Fourth without a stop"
    pieces = _feed_in_pieces(SentenceStream(), text)
    assert "".join(before + sentence for before, sentence in pieces) == text


def test_a_diagnosis_is_reframed_and_flagged():
    text, flags = check_sentence("The patient has pneumonia.", NOTE)
    assert text != "The patient has pneumonia." and "may be consistent with pneumonia" in text
    assert [flag.kind for flag in flags] == ["diagnostic-language"]


def test_a_medication_statement_is_flagged():
    text, flags = check_sentence("Give amoxicillin 500 mg three times daily.", NOTE)
    assert "medication" in {flag.kind for flag in flags}


def test_an_invented_result_is_marked_and_flagged_but_a_number_from_the_note_is_not():
    text, flags = check_sentence("The white blood cell count is 12.5.", NOTE)
    assert text.startswith(NOT_IN_NOTE) and "unsupported-claim" in {flag.kind for flag in flags}
    text, flags = check_sentence("The respiratory rate is 26 and SpO2 is 91%.", NOTE)
    assert text == "The respiratory rate is 26 and SpO2 is 91%." and not flags
    text, flags = check_sentence("Consider a chest X-ray.", NOTE)  # advice, not a claim
    assert text == "Consider a chest X-ray." and not flags
    assert check_sentence("2.", NOTE) == ("2.", [])  # a list number


def test_stream_checks_send_checked_sentences_and_gather_their_flags():
    checks = StreamChecks(NOTE)
    text = "Cough and fever noted. The patient has pneumonia. Monitor closely."
    events = [event for start in range(0, len(text), 4) for event in checks.feed("", text[start : start + 4])]
    events += checks.finish_all()
    assert [event.raw for event in events] == [
        "Cough and fever noted.",
        "The patient has pneumonia.",
        "Monitor closely.",
    ]
    assert [event.changed for event in events] == [False, True, False]
    assert events[1].flags[0].kind == "diagnostic-language"
    assert "pneumonia." not in checks.text("").replace("consistent with pneumonia", "")
    assert [flag.kind for flag in checks.flags()] == ["diagnostic-language"]


def test_a_third_copy_of_a_sentence_stops_the_text_and_is_not_shown():
    checks = StreamChecks(NOTE)
    sentence = "The chest X-ray confirms pneumonia. "
    events = []
    for _ in range(5):
        events += checks.feed("", sentence)
    events += checks.finish_all()
    assert checks.looping
    assert len(events) == 2  # the third copy ended the text
    assert [flag.kind for flag in checks.flags()][-1] == "repetition"


def test_list_numbers_may_recur():
    guard = RepetitionGuard()
    assert not any(guard.sentence("1.") for _ in range(5))


def test_a_loop_without_full_stops_is_caught_and_ordinary_text_is_not():
    guard = RepetitionGuard()
    assert not any(
        guard.text(piece) for piece in "Fever, cough and breathlessness for two days, with".split(" ")
    )
    looping = RepetitionGuard()
    assert any(looping.text("pneumonia and sepsis, ") for _ in range(4))
    assert "pneumonia and sepsis" in looping.reason
    dashes = RepetitionGuard()
    assert not dashes.text("-" * 60)  # a rule of dashes is layout, not a loop


def test_streamed_advice_that_contradicts_a_high_band_is_withheld_and_flagged():
    note = "72M, confused. RR 26, SpO2 91% on air, BP 92/58, HR 118, T 39.4."
    checks = StreamChecks(note, rule_band="High")
    sentences = checks.feed("", "Discharge home without review. ") + checks.finish("")
    assert "Discharge home" not in checks.text("")
    assert sentences and sentences[0].changed
    assert [flag.kind for flag in checks.flags()][0] == "advice-contradicts-risk"
    # the same advice under a Low band is left to the clinician
    low = StreamChecks("Sore throat for 2 days. RR 14, HR 72, T 37.0.", rule_band="Low")
    low.feed("", "Discharge home without review. ")
    low.finish("")
    assert "Discharge home" in low.text("")
