"""Each widget in a small host app, with its own CSS, driven by keys through Pilot."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from textual.widgets import Input

from engine.events import Vitals
from engine.risk import score_risk
from engine.schema import DISCLAIMER, Assessment, Finding
from engine.vitals import extract_vitals
from tests.tui_helpers import HostApp, wait_until
from tui.messages import FindingSelected, FormChanged, ImagePathChecked
from tui.widgets.image_field import ImageField, complete_path
from tui.widgets.note_editor import NoteEditor, clean_pasted_text, offset_to_location
from tui.widgets.result_card import Disclaimer, FindingList, ResultCard, RiskBadge
from tui.widgets.stream_view import MAX_REDRAWS_PER_S, StreamView, wrap_text
from tui.widgets.vitals_form import VitalsForm

# --- note editor ------------------------------------------------------------------


def test_pasted_escape_sequences_become_visible_text():
    cleaned = clean_pasted_text("BP 90/60\x1b[2J\r\nHR 120\x07")
    assert "\x1b" not in cleaned and "\x07" not in cleaned
    assert cleaned.startswith("BP 90/60␛[2J\nHR 120")


def test_offset_to_location_counts_rows_and_columns():
    text = "ab\ncde\n\nf"
    assert offset_to_location(text, 0) == (0, 0)
    assert offset_to_location(text, 4) == (1, 1)
    assert offset_to_location(text, 8) == (3, 0)
    assert offset_to_location(text, 99) == (3, 1)


async def test_paste_into_note_keeps_text_and_neutralises_control_codes():
    app = HostApp(lambda: NoteEditor(id="note"))
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        editor.focus()
        await pilot.press("S", "p", "O", "2")
        from textual import events

        editor.post_message(events.Paste(" 88%\x1b]52;c;AAAA\x07 on air"))
        await wait_until(pilot, lambda: "on air" in editor.text)
        assert editor.text == "SpO2 88%␛]52;c;AAAA␇ on air"


async def test_evidence_span_is_selected_in_the_note():
    note = "Cough for 3 days.\nRR 28, SpO2 90% on room air."
    app = HostApp(lambda: NoteEditor(note, id="note"))
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        start = note.index("SpO2 90%")
        assert editor.show_evidence((start, start + len("SpO2 90%")))
        await pilot.pause()
        assert editor.selected_text == "SpO2 90%"
        assert editor.has_class("-evidence")
        assert not editor.show_evidence(None)
        assert not editor.show_evidence((5, 500))


async def test_running_note_is_locked_against_every_edit():
    app = HostApp(lambda: NoteEditor("fever", id="note"))
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        editor.focus()
        editor.set_running(True)
        await pilot.press("x", "backspace", "ctrl+x", "ctrl+z", "ctrl+u")
        from textual import events

        editor.post_message(events.Paste("pasted"))
        await pilot.pause()
        assert editor.text == "fever"
        editor.set_running(False)
        editor.move_cursor((0, 5))
        await pilot.press("!")
        assert editor.text == "fever!"


# --- image field ---------------------------------------------------------------------


def _png(path: Path, size=(40, 30)) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


async def test_bad_image_path_shows_inline_error(tmp_path):
    app = HostApp(lambda: ImageField(id="image"), (ImagePathChecked,))
    async with app.run_test() as pilot:
        field = app.query_one(ImageField)
        app.query_one(Input).focus()
        await pilot.press(*str(tmp_path / "missing.png"))
        await wait_until(pilot, lambda: field.has_class("-invalid"))
        assert "file not found" in str(app.query_one("#image-status").render())
        assert app.messages[-1].error is not None


async def test_text_file_renamed_png_is_refused(tmp_path):
    fake = tmp_path / "scan.png"
    fake.write_text("not an image")
    app = HostApp(lambda: ImageField(str(fake), id="image"))
    async with app.run_test() as pilot:
        field = app.query_one(ImageField)
        await wait_until(pilot, lambda: field.has_class("-invalid"))
        assert field.error


async def test_valid_image_is_accepted_and_previewed(tmp_path):
    image = _png(tmp_path / "wound.png")
    app = HostApp(lambda: ImageField(str(image), id="image", classes="-preview"))
    async with app.run_test() as pilot:
        field = app.query_one(ImageField)
        await wait_until(pilot, lambda: field.has_class("-valid"))
        preview = app.query_one("#image-preview")
        await wait_until(pilot, lambda: preview.size.height > 0)
        assert field.error is None and "wound.png" in str(app.query_one("#image-status").render())


def test_complete_path_extends_to_the_unique_match(tmp_path):
    _png(tmp_path / "chest_xray.png")
    (tmp_path / "notes").mkdir()
    assert complete_path(str(tmp_path / "che")) == str(tmp_path / "chest_xray.png")
    assert complete_path(str(tmp_path / "no")) == str(tmp_path / "notes") + "/"
    assert complete_path(str(tmp_path / "zzz")) is None
    assert complete_path("") is None


async def test_tab_completes_the_image_path(tmp_path):
    _png(tmp_path / "chest_xray.png")
    app = HostApp(lambda: ImageField(id="image"))
    async with app.run_test() as pilot:
        field = app.query_one(ImageField)
        app.query_one(Input).focus()
        await pilot.press(*str(tmp_path / "ch"))
        await wait_until(pilot, lambda: app.query_one(Input)._suggestion)
        await pilot.press("tab")
        await wait_until(pilot, lambda: field.path.endswith("chest_xray.png"))
        await wait_until(pilot, lambda: field.has_class("-valid"))


# --- vitals form ---------------------------------------------------------------------------


async def test_vitals_form_gives_engine_vitals():
    app = HostApp(lambda: VitalsForm(id="vitals"), (FormChanged,))
    async with app.run_test() as pilot:
        form = app.query_one(VitalsForm)
        form.query_one("#vital-rr").focus()
        await pilot.press("2", "6")
        form.query_one("#vital-acvpu").focus()
        await pilot.press("v")
        form.query_one("#vital-o2").focus()
        await pilot.press("space")
        await wait_until(pilot, lambda: form.vitals().on_oxygen)
        vitals = form.vitals()
        assert vitals == Vitals(respiratory_rate=26.0, on_oxygen=True, consciousness="V")
        assert {message.field_id for message in app.messages} >= {"rr", "acvpu", "o2"}


async def test_vitals_form_values_round_trip_for_drafts():
    raw = {
        "age": "71",
        "sex": "F",
        "rr": "22",
        "spo2": "93",
        "sbp": "101",
        "hr": "118",
        "temp": "38.4",
        "acvpu": "A",
        "o2": "1",
    }
    app = HostApp(lambda: VitalsForm(id="vitals"))
    async with app.run_test():
        form = app.query_one(VitalsForm)
        form.set_values(raw)
        assert form.values() == raw
        assert form.vitals().age == 71 and form.vitals().temperature_c == 38.4
        form.set_values({"rr": "1e"})
        assert form.bad_fields() == ["rr"] and form.vitals().respiratory_rate is None


# --- stream view ----------------------------------------------------------------------------


def test_wrap_text_keeps_paragraphs():
    assert wrap_text("one two three four", 9) == ["one two ", "three ", "four"] or all(
        len(line) <= 9 for line in wrap_text("one two three four", 9)
    )
    assert wrap_text("a\n\nb", 20) == ["a", "", "b"]


async def test_stream_redraws_are_throttled_with_a_trailing_update():
    app = HostApp(lambda: StreamView("waiting", id="stream"))
    async with app.run_test(size=(60, 12)) as pilot:
        stream = app.query_one(StreamView)
        words = [f"word{index} " for index in range(300)]
        import time

        started = time.monotonic()
        for word in words:
            stream.append(word)
        await wait_until(
            pilot,
            lambda: stream.shown_text.replace("\n", "").replace(" ", "") == "".join(words).replace(" ", ""),
        )
        elapsed = time.monotonic() - started
        assert stream.redraw_count <= MAX_REDRAWS_PER_S * elapsed + 2
        assert (
            stream.scroll_offset.y > 0
            and stream.scroll_offset.y + stream.scrollable_content_region.height >= len(stream._lines)
        )  # follows the tail


async def test_stream_headings_and_messages():
    app = HostApp(lambda: StreamView(id="stream"))
    async with app.run_test() as pilot:
        stream = app.query_one(StreamView)
        stream.heading("Reasoning")
        stream.append("fever and tachycardia")
        stream.flush()
        assert stream.shown_text.startswith("▸ Reasoning\nfever")
        stream.show_message("Cancelled.")
        await pilot.pause()
        assert stream.shown_text == "Cancelled."
        stream.clear()
        assert stream.shown_text == ""


# --- result card ------------------------------------------------------------------------------


def _assessment(note: str) -> Assessment:
    start = note.index("RR 28")
    risk = score_risk(extract_vitals(note))
    return Assessment(
        summary="Febrile, tachypnoeic adult.",
        key_findings=["Raised respiratory rate", "Chest pain"],
        risk_level="High",
        confidence=0.61,
        recommendations=["Repeat observations within 1 hour", "Senior review"],
        clinical_notes=f"Notes. {DISCLAIMER}",
        findings=[
            Finding(
                text="Raised respiratory rate", evidence="RR 28", supported=True, span=(start, start + 5)
            ),
            Finding(text="Chest pain", evidence="", supported=False, source="none"),
        ],
        risk=risk,
        confidence_basis={"explanation": "Confidence 0.61 = weighted parts."},
    )


async def test_result_card_shows_every_part_and_reports_evidence():
    note = "Fever. RR 28, SpO2 94%, HR 120."
    app = HostApp(lambda: ResultCard(id="card"), (FindingSelected,))
    async with app.run_test(size=(80, 40)) as pilot:
        card = app.query_one(ResultCard)
        assert "not scored" in str(app.query_one(RiskBadge).render())
        card.show_assessment(_assessment(note))
        await pilot.pause()
        assert "HIGH" in str(app.query_one(RiskBadge).render())
        assert app.query_one(RiskBadge).has_class("-high")
        findings = app.query_one(FindingList)
        prompts = [str(findings.get_option_at_index(i).prompt) for i in range(findings.option_count)]
        assert prompts[0].startswith("✓") and prompts[1].startswith("✗") and "unsupported" in prompts[1]
        assert "Senior review" in str(app.query_one("#recommendations").render())
        assert "0.61" in str(app.query_one("#confidence").render())
        findings.focus()
        await wait_until(pilot, lambda: app.messages)
        assert app.messages[-1].span == (note.index("RR 28"), note.index("RR 28") + 5)
        await pilot.press("down")
        await wait_until(pilot, lambda: app.messages[-1].text == "Chest pain")
        assert app.messages[-1].span is None and not app.messages[-1].supported


async def test_rule_risk_reasons_come_back_after_the_risk_was_cleared():
    # The same note run twice: pending (no risk) in between, then the same reasons again.
    risk = score_risk(extract_vitals("RR 30, SpO2 89%, BP 88/50, HR 135, confused"))
    assert risk.reasons
    app = HostApp(lambda: ResultCard(id="card"))
    async with app.run_test(size=(80, 40)) as pilot:
        card = app.query_one(ResultCard)
        reasons = app.query_one("#risk-reasons")
        card.show_rule_risk(risk)
        await pilot.pause()
        assert risk.reasons[0] in str(reasons.render())
        card.show_rule_risk(None)
        await pilot.pause()
        assert str(reasons.render()) == ""
        card.show_rule_risk(risk)
        await pilot.pause()
        assert risk.reasons[0] in str(reasons.render())


async def test_cleared_card_has_no_result_and_no_border_notes():
    note = "Fever. RR 28, SpO2 94%, HR 120."
    app = HostApp(lambda: ResultCard(id="card"))
    async with app.run_test(size=(80, 40)) as pilot:
        card = app.query_one(ResultCard)
        card.show_assessment(_assessment(note))
        card.border_subtitle = "evidence selected in the note"
        await pilot.pause()
        card.clear()
        await pilot.pause()
        assert card.assessment is None and card.has_class("-pending")
        assert card.border_subtitle == "" and card.border_title == "Assessment"
        assert "not scored" in str(app.query_one(RiskBadge).render())
        assert str(app.query_one("#risk-reasons").render()) == ""
        assert "Senior review" not in str(app.query_one("#recommendations").render())


async def test_disclaimer_text():
    app = HostApp(lambda: Disclaimer())
    async with app.run_test():
        assert DISCLAIMER in str(app.query_one(Disclaimer).render())
