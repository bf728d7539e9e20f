"""The result card: risk badge with its reasons, findings with their evidence status,
recommendations, confidence with its explanation, and the standing disclaimer."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from engine import DISCLAIMER, Assessment, Case, Finding, Risk, result_limits
from tui.messages import FindingSelected

LEVEL_CLASSES = {"High": "-high", "Moderate": "-moderate", "Low": "-low"}


class RiskBadge(Static):
    """Risk level as a word (never colour alone, so NO_COLOR and 16-colour terminals read it)."""

    DEFAULT_CSS = """
    RiskBadge {
        width: auto;
        padding: 0 1;
        text-style: bold;
        background: $panel;
        color: $text-muted;
    }
    RiskBadge.-high { background: $error; color: $text; }
    RiskBadge.-moderate { background: $warning; color: $background; }
    RiskBadge.-low { background: $success; color: $background; }
    RiskBadge.-provisional { text-style: bold italic; }
    RiskBadge.-incomplete { background: $panel; color: $warning; text-style: bold; }
    """

    def show(self, level: str | None, provisional: bool, incomplete: bool = False) -> None:
        """`incomplete`: NEWS2 from partial vitals, a lower bound; a Low is then never shown green."""
        if (level, provisional, incomplete) == getattr(self, "_shown", None):
            return  # unchanged: no repaint
        self._shown = (level, provisional, incomplete)
        for css_class in LEVEL_CLASSES.values():
            self.remove_class(css_class)
        reassuring = level == "Low" and incomplete
        if level in LEVEL_CLASSES and not reassuring:
            self.add_class(LEVEL_CLASSES[level])
        self.set_class(reassuring, "-incomplete")
        self.set_class(provisional, "-provisional")
        notes = [
            note for note, shown in (("rules only", provisional), ("NEWS2 INCOMPLETE", incomplete)) if shown
        ]
        if level is None:
            self.update("RISK: not scored")
        else:
            self.update(f"RISK: {level.upper()}" + (f" ({', '.join(notes)})" if notes else ""))


def news2_incomplete(risk: Risk) -> bool:
    return risk.news2.score is not None and bool(risk.news2.missing)


def finding_prompt(finding: Finding) -> Text:
    mark, style = ("✓", "bold green") if finding.supported else ("✗", "bold red")
    prompt = Text.assemble((mark + " ", style), finding.text)
    if not finding.supported:
        prompt.append(" — unsupported", style="italic")
    return prompt


class FindingList(OptionList):
    """Key findings; highlighting one shows its evidence in the note."""

    # OptionList sets its virtual size while it renders; Textual would then repaint it
    # all a second time, identically. Laid out again, not repainted.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=True, repaint=False)

    DEFAULT_CSS = """
    FindingList {
        height: auto;
        max-height: 8;
        border: none;
        padding: 0;
        background: transparent;
    }
    FindingList:focus {
        background-tint: $foreground 5%;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.findings: list[Finding] = []

    def show(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        self.clear_options()
        self.add_options(Option(finding_prompt(finding)) for finding in self.findings)
        self.display = bool(self.findings)
        if self.findings:
            with self.prevent(OptionList.OptionHighlighted):
                self.highlighted = 0

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if self.has_focus and 0 <= event.option_index < len(self.findings):
            self._announce(event.option_index)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._announce(event.option_index)

    def on_focus(self) -> None:
        if self.findings:
            self._announce(self.highlighted or 0)

    def _announce(self, index: int) -> None:
        finding = self.findings[index]
        self.post_message(FindingSelected(finding.text, finding.span, finding.supported))


class ResultCard(VerticalScroll):
    """Everything the clinician needs to judge the answer, in reading order."""

    # The card's virtual size follows its content's height after each layout. Textual
    # would repaint the whole card once more each time it changes (a new result: the
    # card drawn twice over a slow link); the parts that changed repaint themselves.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=True, repaint=False)

    assessment: Assessment | None
    _reasons_text: str | None = None  # what #risk-reasons shows: unchanged text is not repainted

    DEFAULT_CSS = """
    ResultCard {
        height: 2fr;
        border: round $primary 50%;
        border-title-color: $text-muted;
        padding: 0 1;
        scrollbar-size-vertical: 1;
        /* The scrollbar is always there: one appearing once a long result is drawn
           would re-wrap the card and repaint all of it a second time. */
        overflow-y: scroll;
    }
    ResultCard:focus-within {
        border: round $primary;
    }
    ResultCard .section {
        color: $text-muted;
        text-style: bold;
        margin-top: 1;
    }
    ResultCard #risk-reasons {
        color: $text-muted;
    }
    ResultCard #summary.-empty {
        color: $text-muted;
        text-style: italic;
    }
    ResultCard #safety {
        color: $warning;
    }
    ResultCard #limits {
        color: $warning;
        text-style: bold;
        display: none;
    }
    ResultCard #limits.-shown {
        display: block;
    }
    ResultCard.-pending .section, ResultCard.-pending #findings {
        display: none;
    }
    """

    def compose(self) -> ComposeResult:
        yield RiskBadge(id="risk-badge")
        yield Static(id="limits", markup=False)
        yield Static(id="risk-reasons", markup=False)
        yield Static("Run an assessment with Ctrl+R.", id="summary", classes="-empty", markup=False)
        yield Label("Key findings (F3: show evidence)", classes="section")
        yield FindingList(id="findings")
        yield Label("Recommendations", classes="section")
        yield Static(id="recommendations", markup=False)
        yield Label("Confidence", classes="section")
        yield Static(id="confidence", markup=False)
        yield Static(id="safety", markup=False)

    def on_mount(self) -> None:
        self.border_title = "Assessment"
        self.show_pending()

    def show_pending(self, risk: Risk | None = None) -> None:
        """No assessment yet: show what the rules alone say."""
        if self.has_class("-pending") and risk is None:
            return  # already pending; the rules' risk follows as its own event
        self.add_class("-pending")
        self.assessment = None
        self.query_one(FindingList).show([])
        self.query_one("#summary", Static).update("Run an assessment with Ctrl+R.")
        self.query_one("#summary").add_class("-empty")
        for widget_id in ("recommendations", "confidence", "safety"):
            self.query_one(f"#{widget_id}", Static).update("")
        self._show_limits([])
        self.show_rule_risk(risk)

    def show_rule_risk(self, risk: Risk | None) -> None:
        badge = self.query_one(RiskBadge)
        reasons = self.query_one("#risk-reasons", Static)
        if risk is None:
            badge.show(None, provisional=True)
            text = ""
        else:
            badge.show(risk.rule_level, provisional=True, incomplete=news2_incomplete(risk))
            text = "\n".join(f"• {reason}" for reason in risk.reasons)
        if text != self._reasons_text:
            self._reasons_text = text
            reasons.update(text)

    def clear(self) -> None:
        """Back to the card of a new case: no result, no rule risk, no border notes."""
        self.show_pending()
        self.show_rule_risk(None)
        self.border_title = "Assessment"
        self.border_subtitle = ""

    def show_summary_draft(self, text: str) -> None:
        summary = self.query_one("#summary", Static)
        summary.remove_class("-empty")
        summary.update(text)

    def show_assessment(self, assessment: Assessment, case: Case | None = None) -> None:
        with self.app.batch_update():  # one repaint for the whole card
            self._show_assessment(assessment, case)

    def _show_limits(self, lines: list[str]) -> None:
        """What the result leaves out, first on the card for as long as the result is shown."""
        limits = self.query_one("#limits", Static)
        limits.set_class(bool(lines), "-shown")
        limits.update("\n".join(f"⚠ {line}" for line in lines))

    def _show_assessment(self, assessment: Assessment, case: Case | None) -> None:
        self.remove_class("-pending")
        self.assessment = assessment
        self.query_one(RiskBadge).show(
            assessment.risk_level, provisional=False, incomplete=news2_incomplete(assessment.risk)
        )
        self._show_limits(result_limits(assessment, case))
        reasons = self.query_one("#risk-reasons", Static)
        self._reasons_text = (
            "\n".join(f"• {reason}" for reason in assessment.risk.reasons) or "• no rule-based reasons"
        )
        reasons.update(self._reasons_text)
        summary = self.query_one("#summary", Static)
        summary.set_class(not assessment.summary, "-empty")
        summary.update(assessment.summary or "(no summary)")
        findings = assessment.findings or [
            Finding(text=text, evidence="", supported=False, source="none")
            for text in assessment.key_findings
        ]
        self.query_one(FindingList).show(findings)
        self.query_one("#recommendations", Static).update(
            "\n".join(f"• {text}" for text in assessment.recommendations) or "(none)"
        )
        explanation = assessment.confidence_basis.get("explanation", "")
        self.query_one("#confidence", Static).update(
            f"{assessment.confidence:.2f}" + (f" — {explanation}" if explanation else "")
        )
        flags = assessment.safety.flags
        self.query_one("#safety", Static).update(
            ("Safety checks:\n" + "\n".join(f"⚠ {flag.kind}: {flag.text}" for flag in flags)) if flags else ""
        )
        self.scroll_home(animate=False)


class Disclaimer(Static):
    """Always on screen, whatever the card shows."""

    DEFAULT_CSS = """
    Disclaimer {
        height: 1;
        width: 1fr;
        content-align: center middle;
        text-style: bold;
        background: $warning 30%;
        color: $text;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(f"⚠ {DISCLAIMER}", markup=False, **kwargs)
