"""Sentence boundaries in clinical text.

What it handles: full stops inside numbers ("38.5"), common clinical and
Latin abbreviations ("e.g.", "approx.", "b.d.", "y.o."), titles ("Dr."),
initials, quoted sentence ends, and line breaks that end a line of a list
("HR 104\nBP 90/60") but not a sentence wrapped over two lines.

What it does not handle: abbreviations outside its list followed by a capital
letter are taken as sentence ends; text without any punctuation or line break
is one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engine.schema import SafetyFlag

# Tokens that end with a period without ending a sentence (compared lowercase,
# inner dots kept: "e.g", "i.e").
ABBREVIATIONS = frozenset(
    """
    e.g eg i.e ie approx appx dr mr mrs ms prof vs etc no nos fig st cf al wt ht temp resp
    hx dx tx rx sx fx pt pts yo y.o mins min hrs hr sec secs mo mos wk wks yr yrs ca c.f
    b.d t.d.s q.d.s o.d p.o i.v i.m s.c p.r.n mg ml max est abd ext neg pos dept ref vol pp
    inc ltd jr sr sq sats obs rr bp o.e o/e c/o h/o
    """.split()
)
# Titles and "e.g."/"i.e." never end a sentence; other abbreviations do when a capital follows.
TITLES = frozenset("dr mr mrs ms prof st jr sr e.g eg i.e ie vs cf viz".split())

_BOUNDARY = re.compile(r"[.!?]+|\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.group() == "\n":
            before = text[start : m.start()].rstrip()
            after = text[end:].lstrip(" \t")
            blank = after.startswith("\n") or not after
            starts_new = bool(after) and (after[0].isupper() or after[0].isdigit() or after[0] in "-*•#>[(")
            ends_stop = bool(before) and before[-1] in ".!?:;"
            if not (blank or starts_new or ends_stop or not before):
                continue
            _add_span(text, start, m.start(), spans)
            start = end
            continue
        # a run of . ! ?
        nxt = text[end] if end < n else ""
        if nxt and not nxt.isspace() and nxt not in "\"')]”’":
            continue  # "38.5", "e.g.fever", "U.K."
        if nxt and nxt in "\"')]”’":
            end += 1
        rest = text[end:].lstrip()
        if m.group().endswith(".") and m.group() == "." and rest:
            word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[start : m.start()])
            token = word.group(1).lower() if word else ""
            if token in TITLES or (len(token) == 1 and token.isalpha() and m.start() - start > 1):
                continue
            if token in ABBREVIATIONS and not rest[0].isupper():
                continue
            if rest[0].islower():
                continue  # "approx. five", "e.g. fever"
        _add_span(text, start, end, spans)
        start = end
    _add_span(text, start, n, spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, robust to "e.g.", "approx.", "Dr.", "38.5"."""
    return [text[a:b] for a, b in sentence_spans(text)]


def replace_sentences(
    text: str, replacement: Callable[[str], tuple[str, SafetyFlag] | None]
) -> tuple[str, list[SafetyFlag]]:
    """`text` with each sentence that `replacement` answers for swapped for its new text.

    Everything else (other sentences, whitespace, line breaks) is kept byte for byte.
    """
    flags: list[SafetyFlag] = []
    pieces: list[str] = []
    last = 0
    for a, b in sentence_spans(text):
        replaced = replacement(text[a:b])
        if replaced is None:
            continue
        new, flag = replaced
        pieces.extend([text[last:a], new])
        last = b
        flags.append(flag)
    if not flags:
        return text, []
    pieces.append(text[last:])
    return "".join(pieces), flags
