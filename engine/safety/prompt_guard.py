"""Prompt guard: instruction-like text in a note is shown, and model control tokens neutralised.

What it catches (`scan_note`, `detect_injection`, `injection_markers`):
instruction overrides ("ignore previous instructions"), role changes ("you
are now", "act as a"), role headers ("system:", "model:"), requests for a
definitive diagnosis or to drop the disclaimer, a fake end of the note ("END
OF PATIENT NOTE", ">>>"), JSON that imitates the answer ('"risk_level":',
'"recommendations":'), and special tokens written in the note: turn markers
of the common chat templates and Gemma's other control tokens
(``<start_of_image>``, ``<pad>``, ``<mask>``, ``<unusedN>``...). Each match
gets a ``prompt-injection`` flag with its character span. The text a marker
governs (its sentence, or for a marker that fakes the prompt's structure the
rest of its paragraph) is the injected region: a finding whose evidence lies
there counts as unsupported.

`strip_control_tokens` neutralises those special tokens in the note: the
ASCII brackets of a marker are swapped for look-alike characters,
``<start_of_turn>`` becomes ``‹start_of_turn›`` (U+2039/U+203A) and ``[INST]``
becomes ``［INST］`` (U+FF3B/U+FF3D). The text stays readable but can no
longer be tokenised as a control token, so it cannot break the prompt's
framing. The worker also tokenizes the note with special tokens off, so a
control token of the loaded model's vocabulary outside this list is still
read as plain text.

What it does not catch: instructions in other languages, paraphrases outside
the patterns ("please now behave as..."), and text that persuades without
instructing. The flags show such text; they do not prove a note is clean.

This module is what the prompt builder imports; it does not load the rest of
the safety layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.schema import SafetyFlag

CONTROL_TOKENS = (
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    "[INST]",
    "[/INST]",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<s>",
    "</s>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
    "<pad>",
    "<mask>",
    "<unk>",
    "<unused0>",
)
# Special tokens a note may imitate: turn and role markers of the common chat
# templates, and the other control tokens of Gemma's vocabulary (image, padding,
# mask, the unused slots). The worker also tokenizes the note with special
# tokens off, so a control token outside this list still reaches the model as
# plain text.
_SPECIAL_NAMES = (
    r"start_of_turn|end_of_turn|start_of_image|end_of_image|image_soft_token|bos|eos|pad|mask|unk|s"
    r"|unused\d{1,4}"
)
_CONTROL_RE = re.compile(
    rf"<\s*/?\s*(?:{_SPECIAL_NAMES})\s*>|\[\s*/?\s*INST\s*\]|<\|[a-z_]{{1,40}}\|>",
    re.IGNORECASE,
)
_LOOKALIKE = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "\uff3b", "]": "\uff3d"})

# The fields of the assessment the model writes: a note that writes them is imitating the answer.
_ANSWER_FIELDS = r"reasoning|summary|key_findings|risk_level|recommendations|finding|evidence|clinical_notes"

# Kinds of marker that fake the prompt's structure: what follows them, to the end of the
# paragraph, is treated as injected text. The others govern their own sentence only.
_STRUCTURAL = frozenset({"model control token", "role header", "fake end of note", "answer imitation"})

_INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx, re.IGNORECASE))
    for label, rx in (
        (
            "instruction override",
            r"\b(?:ignore|disregard|forget|override|skip)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+the\s+)*(?:previous|prior|above|earlier|preceding|system|original|safety)?\s*(?:instructions?|prompts?|rules?|guidelines?|directions?|context|messages?)\b",
        ),
        ("instruction override", r"\bdisregard\s+(?:the\s+|everything\s+|all\s+)?(?:above|previous|prior)\b"),
        ("instruction override", r"\bforget\s+(?:everything|all)\b"),
        (
            "role change",
            r"\byou\s+are\s+now\b|\bact\s+as\s+(?:a|an)\b|\bpretend\s+(?:to\s+be|you\s+are)\b|\bfrom\s+now\s+on\b",
        ),
        ("role header", r"(?:^|\n|[\[<|#])\s*(?:system|assistant|developer|model|user)\s*:"),
        ("new instructions", r"\bnew\s+instructions?\s*:|###\s*instruction"),
        (
            "asks for a definitive diagnosis",
            r"\bstate\s+(?:the|a|your)\s+(?:final\s+|definitive\s+)?diagnosis\b|\bgive\s+(?:a|the)\s+definitive\s+diagnosis\b",
        ),
        (
            "asks to drop safety text",
            r"\b(?:do\s+not|don't|never)\s+(?:include|add|show|print|mention)\s+(?:the\s+|any\s+)?(?:disclaimer|warning|safety)|\bwithout\s+(?:the\s+|any\s+)?disclaimer\b|\b(?:omit|remove|drop)\s+(?:the\s+)?disclaimer\b",
        ),
        (
            "asks to reveal the prompt",
            r"\b(?:reveal|print|show|repeat)\s+(?:your|the)\s+(?:system\s+)?prompt\b",
        ),
        ("model control token", _CONTROL_RE.pattern),
        (
            "fake end of note",
            r"\bend\s+of\s+(?:the\s+)?(?:patient\s+)?(?:note|record|data|input)\b|<<<|>>>|</\s*note\s*>",
        ),
        ("answer imitation", rf"[\"'“”]\s*(?:{_ANSWER_FIELDS})\s*[\"'“”]\s*:"),
    )
)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_PARAGRAPH_END = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class InjectionMarker:
    """Instruction-like text found in a note.

    `span` is the matched text; `region` the text it governs, which is treated
    as injected: its own sentence, or for a marker that fakes the prompt's
    structure (a turn marker, a fake end of note, JSON that imitates the
    answer) everything after it to the end of the paragraph.
    """

    label: str
    span: tuple[int, int]
    region: tuple[int, int]
    text: str


def injection_markers(note: str) -> list[InjectionMarker]:
    """Every instruction-like match in `note`, in order; overlapping matches once."""
    note = note or ""
    found: list[InjectionMarker] = []
    for label, rx in _INJECTION_PATTERNS:
        for m in rx.finditer(note):
            if any(a <= m.start() < b for a, b in (marker.span for marker in found)):
                continue
            start = m.start() + len(m.group()) - len(m.group().lstrip())
            if label in _STRUCTURAL:
                stop = _PARAGRAPH_END.search(note, m.end())
                region_end = stop.start() if stop else len(note)
            else:
                stop = _SENTENCE_END.search(note, m.end())
                region_end = stop.end() if stop else len(note)
            found.append(InjectionMarker(label, (start, m.end()), (start, region_end), m.group().strip()))
    return sorted(found, key=lambda marker: marker.span)


def injected_regions(note: str) -> list[tuple[int, int]]:
    """The character ranges of `note` governed by instruction-like text."""
    return [marker.region for marker in injection_markers(note)]


def detect_injection(note: str) -> list[SafetyFlag]:
    """`prompt-injection` flags for instruction-like text in the note (one per match)."""
    return [flag(marker) for marker in injection_markers(note)]


def flag(marker: InjectionMarker) -> SafetyFlag:
    """The `prompt-injection` flag of one marker."""
    start, end = marker.span
    return SafetyFlag(
        kind="prompt-injection",
        text=marker.text,
        detail=f"Instruction-like text in the note ({marker.label}) at characters {start}-{end}; "
        "treated as note content only, not as an instruction. Findings that rest on it count as unsupported.",
    )


def scan_note(note: str) -> list[SafetyFlag]:
    """The prompt-injection flags of a note, for a front end to show before the run starts."""
    return detect_injection(note)


def strip_control_tokens(note: str) -> str:
    """Neutralise model control tokens: ASCII brackets swapped for look-alikes (‹ › ［ ］)."""
    return _CONTROL_RE.sub(lambda m: m.group().translate(_LOOKALIKE), note or "")
