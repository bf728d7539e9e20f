"""Prompt guard: instruction-like text in a note is shown, and model control tokens neutralised.

What it catches (`detect_injection`): instruction overrides ("ignore previous
instructions"), role changes ("you are now", "act as a"), role headers
("system:"), requests for a definitive diagnosis or to drop the disclaimer,
and model turn markers written in the note. Each match gets a
``prompt-injection`` flag with its character span.

`strip_control_tokens` neutralises model turn markers written in the note: the
ASCII brackets of a marker are swapped for look-alike characters,
``<start_of_turn>`` becomes ``‹start_of_turn›`` (U+2039/U+203A) and ``[INST]``
becomes ``［INST］`` (U+FF3B/U+FF3D). The text stays readable but can no
longer be tokenised as a control token, so it cannot break the prompt's
framing.

What it does not catch: instructions in other languages, paraphrases outside
the patterns ("please now behave as..."), and text that persuades without
instructing. The flags show such text; they do not prove a note is clean.

This module is what the prompt builder imports; it does not load the rest of
the safety layer.
"""

from __future__ import annotations

import re

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
)
_CONTROL_RE = re.compile(
    r"<\s*/?\s*(?:start_of_turn|end_of_turn|bos|eos|s)\s*>|\[\s*/?\s*INST\s*\]|<\|[a-z_]{1,40}\|>",
    re.IGNORECASE,
)
_LOOKALIKE = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "\uff3b", "]": "\uff3d"})

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
        ("role header", r"(?:^|\n|[\[<|#])\s*(?:system|assistant|developer)\s*:"),
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
    )
)


def detect_injection(note: str) -> list[SafetyFlag]:
    """`prompt-injection` flags for instruction-like text in the note (one per match)."""
    flags: list[SafetyFlag] = []
    seen: set[tuple[int, int]] = set()
    for label, rx in _INJECTION_PATTERNS:
        for m in rx.finditer(note or ""):
            if any(a <= m.start() < b for a, b in seen):
                continue
            seen.add(m.span())
            flags.append(
                SafetyFlag(
                    kind="prompt-injection",
                    text=m.group().strip(),
                    detail=f"Instruction-like text in the note ({label}) at characters {m.start()}-{m.end()}; "
                    "treated as note content only, not as an instruction.",
                )
            )
    return flags


def strip_control_tokens(note: str) -> str:
    """Neutralise model turn markers: ASCII brackets swapped for look-alikes (‹ › ［ ］)."""
    return _CONTROL_RE.sub(lambda m: m.group().translate(_LOOKALIKE), note or "")
