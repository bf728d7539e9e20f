"""Age, sex and vital signs typed by the clinician; they feed the risk rules beside the note."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.content import Content
from textual.widgets import Checkbox, Input, Label

from engine import Vitals
from tui.messages import FormChanged

# field id, label, input type, restrict pattern, max length, tooltip
InputKind = Literal["integer", "number", "text"]  # Textual's Input types used here

FIELDS: tuple[tuple[str, str, InputKind, str | None, int], ...] = (
    ("age", "Age", "integer", None, 3),
    ("sex", "Sex", "text", r"[A-Za-z]*", 7),
    ("rr", "RR", "number", None, 5),
    ("spo2", "SpO₂", "number", None, 5),
    ("sbp", "SBP", "number", None, 5),
    ("hr", "HR", "number", None, 5),
    ("temp", "Temp", "number", None, 5),
    ("acvpu", "ACVPU", "text", r"[ACVPUacvpu]?", 1),
)
TOOLTIPS = {
    "age": "Age in years",
    "sex": "Sex (F, M or as recorded)",
    "rr": "Respiratory rate, breaths/min",
    "spo2": "Oxygen saturation, %",
    "sbp": "Systolic blood pressure, mmHg",
    "hr": "Heart rate, beats/min",
    "temp": "Temperature, °C (°F converted when above 45)",
    "acvpu": "Consciousness: A, C, V, P or U",
}
OXYGEN_FIELD = "o2"


class TickBox(Checkbox):
    """A checkbox that reads `[x]` when ticked and `[ ]` when not.

    Textual's own box draws the same `▐X▌` either way and tells the two apart by
    colour alone, which a 16-colour or NO_COLOR terminal does not show.
    """

    DEFAULT_CSS = """
    TickBox {
        & > .toggle--button {
            color: $foreground;
            background: transparent;
            text-style: not dim;
        }
        &.-on > .toggle--button {
            color: $text-success;
            background: transparent;
            text-style: bold;
        }
    }
    """

    @property
    def _button(self) -> Content:
        return Content.styled("[x]" if self.value else "[ ]", self.get_visual_style("toggle--button"))


class VitalsForm(Grid):
    """A compact 3-column grid of one-line fields; values are kept as typed."""

    DEFAULT_CSS = """
    VitalsForm {
        grid-size: 3;
        grid-gutter: 0 1;
        grid-rows: 1;
        height: 3;
    }
    VitalsForm > Horizontal {
        height: 1;
    }
    VitalsForm Label {
        width: 6;
        color: $text-muted;
    }
    VitalsForm Input {
        width: 1fr;
        background: $boost;
        /* The field's extent shows without colour too (16-colour and NO_COLOR terminals). */
        text-style: underline;
    }
    VitalsForm Input:focus {
        background: $primary 30%;
    }
    VitalsForm Input.-bad {
        color: $error;
        text-style: bold reverse;
    }
    VitalsForm Checkbox {
        width: 1fr;
    }
    """

    def compose(self) -> ComposeResult:
        for field_id, label, kind, restrict, max_length in FIELDS:
            with Horizontal():
                yield Label(label)
                field = Input(
                    id=f"vital-{field_id}",
                    type=kind,
                    restrict=restrict,
                    max_length=max_length,
                    compact=True,
                    tooltip=TOOLTIPS[field_id],
                    select_on_focus=False,
                )
                field.cursor_blink = False  # a blinking cursor writes to the terminal twice a second
                yield field
        with Horizontal():
            yield TickBox("on O₂", id=f"vital-{OXYGEN_FIELD}", compact=True, tooltip="Supplemental oxygen")

    def _input(self, field_id: str) -> Input:
        return self.query_one(f"#vital-{field_id}", Input)

    def values(self) -> dict[str, str]:
        """Raw text of every field, for the draft."""
        raw = {field_id: self._input(field_id).value for field_id, *_ in FIELDS}
        raw[OXYGEN_FIELD] = "1" if self.query_one(Checkbox).value else ""
        return raw

    def set_values(self, raw: dict[str, str]) -> None:
        with self.prevent(Input.Changed, Checkbox.Changed):
            for field_id, *_ in FIELDS:
                self._input(field_id).value = str(raw.get(field_id, ""))[:8]
            self.query_one(Checkbox).value = bool(raw.get(OXYGEN_FIELD))
        self._mark_bad()

    def clear(self) -> None:
        self.set_values({})

    def vitals(self) -> Vitals:
        """Typed values as engine `Vitals`; a value that is not a number is left out (and marked)."""
        raw = self.values()

        def number(field_id: str) -> float | None:
            try:
                return float(raw[field_id]) if raw[field_id].strip() else None
            except ValueError:
                return None

        age = number("age")
        return Vitals(
            respiratory_rate=number("rr"),
            spo2=number("spo2"),
            on_oxygen=True if raw[OXYGEN_FIELD] else None,
            systolic_bp=number("sbp"),
            heart_rate=number("hr"),
            temperature_c=number("temp"),
            consciousness=raw["acvpu"].strip().upper() or None,
            age=int(age) if age is not None else None,
            sex=raw["sex"].strip() or None,
        )

    def bad_fields(self) -> list[str]:
        bad = []
        for field_id, _label, kind, *_ in FIELDS:
            value = self._input(field_id).value.strip()
            if kind != "text" and value:
                try:
                    float(value)
                except ValueError:
                    bad.append(field_id)
        return bad

    def _mark_bad(self) -> None:
        bad = set(self.bad_fields())
        for field_id, *_ in FIELDS:
            self._input(field_id).set_class(field_id in bad, "-bad")

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Input.Changed | Checkbox.Changed) -> None:
        event.stop()
        self._mark_bad()
        widget_id = event.control.id or ""
        self.post_message(FormChanged(widget_id.removeprefix("vital-")))
