"""Each widget in a small host app, with its own CSS, driven by keys through Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from rich.cells import cell_len
from rich.style import Style
from samples import sample_model_info
from textual.app import App
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList

from engine.config import Settings
from engine.events import Vitals
from engine.history import History, HistoryEntry
from engine.risk import score_risk
from engine.schema import DISCLAIMER, Assessment, Finding
from engine.vitals import extract_vitals
from tests.test_tui_snapshots import show_in_sixteen_colours
from tests.tui_helpers import HostApp, wait_until
from tui.app import MedGemmaApp
from tui.messages import FindingSelected, FormChanged, ImagePathChecked
from tui.screens import HelpScreen, HistoryScreen, ScrollingMarkdown
from tui.widgets.image_field import ImageField, complete_path
from tui.widgets.note_editor import NoteEditor, clean_pasted_text, offset_to_location
from tui.widgets.result_card import Disclaimer, FindingList, ResultCard, RiskBadge
from tui.widgets.status_bar import MODEL_MAX_WIDTH, PARTS_ON_LINE, StatusBar, part_width, parts_that_fit
from tui.widgets.stream_view import MAX_REDRAWS_PER_S, StreamView, wrap_text
from tui.widgets.vitals_form import TickBox, VitalsForm

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


async def test_note_editor_leaves_ctrl_y_to_the_app_and_redoes_with_ctrl_shift_z():
    class CopyHost(HostApp):
        BINDINGS = [("ctrl+y", "copy_result", "Copy")]
        copies = 0

        def action_copy_result(self) -> None:
            self.copies += 1

    app = CopyHost(lambda: NoteEditor(id="note"))
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        editor.focus()
        await pilot.press("a", "b", "ctrl+y")
        await wait_until(pilot, lambda: app.copies == 1)
        assert editor.text == "ab"
        await pilot.press("ctrl+z")
        await wait_until(pilot, lambda: editor.text == "")
        await pilot.press("ctrl+shift+z")
        await wait_until(pilot, lambda: editor.text == "ab")


def cells_of(app: App, widget) -> list[tuple[str, Style]]:
    """Each character the widget shows on its first row, with the style it is drawn in."""
    region = widget.region
    row = app.screen._compositor.render_strips()[region.y]
    cells, x = [], 0
    for segment in row:
        for character in segment.text:
            if region.x <= x < region.right:
                cells.append((character, segment.style or Style()))
            x += cell_len(character)
    return cells


TERMINALS = ["dark", "light", "16-colour", "NO_COLOR"]


@pytest.mark.parametrize("terminal", TERMINALS)
async def test_form_fields_and_o2_box_are_legible_without_colour(terminal, monkeypatch):
    if terminal == "NO_COLOR":
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = HostApp(lambda: Vertical(ImageField(id="image"), VitalsForm(id="vitals")))
    if terminal == "16-colour":
        show_in_sixteen_colours(app)
    async with app.run_test(size=(80, 8)) as pilot:
        app.theme = "textual-light" if terminal == "light" else "textual-dark"
        await pilot.pause()
        fields = list(app.query(Input))
        assert len(fields) == 9
        for field in fields:
            # Empty fields are marked by an underline in a colour apart from their background.
            for _character, style in cells_of(app, field):
                assert style.underline, f"{field.id} has no underline on {terminal}"
                assert style.color != style.bgcolor, f"{field.id} underline invisible on {terminal}"
        box = app.query_one("#vital-o2", TickBox)
        assert "".join(character for character, _ in cells_of(app, box)).startswith("[ ] on O₂")
        box.focus()
        await pilot.press("space")
        await wait_until(pilot, lambda: box.value)
        await pilot.pause()
        assert "".join(character for character, _ in cells_of(app, box)).startswith("[x] on O₂")


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


# --- help and history screens ----------------------------------------------------------------


def screen_lines(app: App) -> list[str]:
    """The text of every row on the terminal, as the user sees it now."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


async def test_help_key_table_scrolls_into_view_at_80x24():
    app = MedGemmaApp(Settings.resolve(), start_engine=False, show_memory=False, restore_draft=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        last_row = "Command palette"  # the key table's last row (ctrl+p)
        await wait_until(pilot, lambda: "Keys" in "".join(screen_lines(app)))
        assert not any(last_row in line for line in screen_lines(app))
        help_text = app.focused
        assert isinstance(help_text, ScrollingMarkdown)
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: help_text.scroll_y > 0)
        await pilot.press("end")
        await wait_until(pilot, lambda: any(last_row in line for line in screen_lines(app)))
        await pilot.press("home")
        await wait_until(pilot, lambda: help_text.scroll_y == 0)
        assert not any(last_row in line for line in screen_lines(app))
        await pilot.press("down")
        await wait_until(pilot, lambda: help_text.scroll_y == 1)


class HistoryHost(App):
    """Pushes the history screen the way the app does, recording what it is dismissed with."""

    def __init__(self, entries: list[HistoryEntry]) -> None:
        super().__init__()
        self.entries = entries
        self.results: list[HistoryEntry | None] = []

    def open_history(self) -> None:
        self.push_screen(HistoryScreen(self.entries), self.results.append)


def _history_entries(count: int) -> list[HistoryEntry]:
    history = History()
    long_note = "Fever, RR 28.\n" + "\n".join(f"Line {number}: observation charted." for number in range(60))
    for number in range(count):
        history.add(f"Case {number}\n{long_note}", _assessment(long_note), vitals={"rr": 20 + number})
    entries = history.recent()
    history.close()
    return entries


async def test_enter_on_a_history_entry_dismisses_with_it_and_escape_with_none():
    entries = _history_entries(3)
    app = HistoryHost(entries)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_history()
        await wait_until(pilot, lambda: isinstance(app.focused, OptionList))
        assert "Enter reopens" in str(app.screen.query_one("#history-hint", Label).render())
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.results)
        assert app.results == [entries[1]] and not isinstance(app.screen, HistoryScreen)
        app.open_history()
        await wait_until(pilot, lambda: isinstance(app.focused, OptionList))
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(app.results) == 2)
        assert app.results[1] is None and not isinstance(app.screen, HistoryScreen)


async def test_history_detail_scrolls_from_the_keyboard_and_enter_there_reopens():
    entries = _history_entries(2)
    app = HistoryHost(entries)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_history()
        await wait_until(pilot, lambda: isinstance(app.focused, OptionList))
        detail = app.screen.query_one("#history-detail", ScrollingMarkdown)
        await wait_until(pilot, lambda: detail.max_scroll_y > 0)
        await pilot.press("right")
        assert app.focused is detail
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: detail.scroll_y > 0)
        await pilot.press("left")
        assert isinstance(app.focused, OptionList)
        await pilot.press("tab")
        assert app.focused is detail
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.results)
        assert app.results == [entries[0]]


# --- status bar ------------------------------------------------------------------------------


def _finished_run_status(bar: StatusBar) -> None:
    """The status bar as a finished run on the demo model leaves it."""
    info = sample_model_info(name="gemma-3-270m-it", chat_template=True, prompt_format="embedded-template")
    bar.set_model(info)
    bar.set_phase("done in 12.3s")
    bar.set_speed(1234, 45.6, 0.42)
    bar.set_memory(812.0)


PART_TEXTS = {
    "model": "gemma-3-270m-it",
    "demo": "DEMO",
    "phase": "done in 12.3s",
    "speed": "1234 tok 45.6 tok/s",
    "ttft": "TTFT 0.42s",
    "placement": "2 threads · GPU 0 layers",
    "memory": "812 MB",
}


@pytest.mark.parametrize(
    ("columns", "hidden"),
    [(80, {"placement", "memory"}), (100, {"memory"}), (120, set())],
)
async def test_status_bar_shows_each_part_whole_or_not_at_all(columns, hidden):
    app = HostApp(lambda: StatusBar(id="status"))
    async with app.run_test(size=(columns, 3)) as pilot:
        bar = app.query_one(StatusBar)
        _finished_run_status(bar)
        await pilot.pause()
        line = screen_lines(app)[0]
        for part, text in PART_TEXTS.items():
            if part in hidden:
                assert text not in line, f"{part} should give way at {columns} columns"
                assert not bar.query_one(f"#status-{part}").display
            else:
                assert text in line, f"{part} cut or missing at {columns} columns: {line!r}"
        shown_in_line_order = [PART_TEXTS[part] for part in PARTS_ON_LINE if part not in hidden]
        assert [text.strip() for text in bar.text.split(" │ ")] == shown_in_line_order


async def test_status_bar_gives_way_to_a_longer_phase_and_takes_the_part_back():
    app = HostApp(lambda: StatusBar(id="status"))
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(StatusBar)
        _finished_run_status(bar)
        await pilot.pause()
        assert "TTFT 0.42s" in screen_lines(app)[0]
        bar.set_phase("writing the structured answer")
        await pilot.pause()
        line = screen_lines(app)[0]
        assert "writing the structured answer" in line and "TTFT" not in line
        assert "1234 tok 45.6 tok/s" in line
        bar.set_phase("done in 12.3s")
        await pilot.pause()
        assert "TTFT 0.42s" in screen_lines(app)[0]


def test_parts_that_fit_drops_the_least_useful_first():
    texts = {"model": "m" * 10, "phase": "p" * 10, "speed": "s" * 10, "memory": "x" * 4}
    assert parts_that_fit(texts, 36) == {"model", "phase", "speed"}
    assert parts_that_fit(texts, 42) == {"model", "phase", "speed", "memory"}
    assert parts_that_fit(texts, 30) == {"model", "phase", "memory"}
    assert part_width("model", "m" * 80) == MODEL_MAX_WIDTH


def _written(update) -> str:
    from rich.console import Console

    return update.render_segments(Console(color_system=None, force_terminal=True, width=40))


def test_a_partial_update_is_written_from_its_first_changed_cell():
    from rich.segment import Segment
    from textual.strip import Strip

    from tui.screen_update import CellPreciseUpdate, character_start

    row = Strip([Segment("│ "), Segment("fever 中文 end"), Segment(" │")])  # cells 0..18; 中文 at 8..11
    assert [character_start(row, cell) for cell in (0, 7, 8, 9, 10, 11, 12)] == [0, 7, 8, 8, 10, 10, 12]
    chops = [{0: row}]
    # Cells 4..7 changed ("ver "): Textual writes from the chop's first cell, this from cell 4.
    update = CellPreciseUpdate(chops, [(0, 4, 8)], [[row.cell_length]])
    assert _written(update) == "\x1b[1;5Hver "
    # A span starting on the right half of a wide character is written from its left half.
    assert _written(CellPreciseUpdate(chops, [(0, 9, 12)], [[row.cell_length]])) == "\x1b[1;9H中文"
    # A chop that starts where the span ends has nothing to write, not even a cursor move.
    second = Strip([Segment("x")])
    two_chops = [{0: row, row.cell_length: second}]
    written = _written(CellPreciseUpdate(two_chops, [(0, 0, row.cell_length)], [[row.cell_length, 20]]))
    assert written == "\x1b[1;1H│ fever 中文 end │"
