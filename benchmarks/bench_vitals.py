"""Relative cost of reading vitals and scoring risk, measured side by side.

Vitals are extracted and scored on every run, and again as the clinician types,
so this path must stay cheap next to simply touching the note's text. Absolute
times depend on the machine; the ratios to `str.lower()` over the same text
are what to compare between versions.

    python benchmarks/bench_vitals.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import record  # noqa: E402
from engine.risk import score_risk  # noqa: E402
from engine.vitals import extract_vitals  # noqa: E402

SHORT = (
    "72-year-old man, 2 days of fever and productive cough, new confusion this morning per daughter. "
    "Type 2 diabetes on metformin.\n"
    "RR 26, SpO2 91% on room air, BP 92/58, pulse 118, temperature 39.4, confused."
)
FILLER = (
    "Seen on the ward round. Chest clear on the right, reduced air entry at the left base. "
    "Abdomen soft, non-tender. Calves soft. Plan: continue antibiotics, review bloods in the morning, "
    "encourage oral intake, physiotherapy referral. Family updated by telephone. "
)


def long_note(chars: int) -> str:
    """About `chars` characters of narrative with the vitals at the end (the worst case for 'last wins')."""
    body = (FILLER * (chars // len(FILLER) + 1))[: chars - len(SHORT)]
    return body + SHORT


def per_call(fn, text: str, repeat: int = 3, budget_s: float = 0.15) -> float:
    """Best of `repeat` runs of about `budget_s` each, per call."""
    once = timeit.timeit(lambda: fn(text), number=1)
    number = max(1, int(budget_s / max(once, 1e-7)))
    return min(timeit.repeat(lambda: fn(text), repeat=repeat, number=number)) / number


def main() -> None:
    notes = {
        "short": SHORT,
        "2k": long_note(2_000),
        "20k": long_note(20_000),
        "obs-dense 20k": (SHORT + " ") * (20_000 // len(SHORT)),
    }
    cases = {
        "str.lower()": str.lower,
        "extract_vitals": extract_vitals,
        "extract+score": lambda text: score_risk(extract_vitals(text)),
    }
    # interleave the measurements so machine noise hits them alike
    results: dict[tuple[str, str], float] = {}
    for _ in range(2):
        for note_name, text in notes.items():
            for case_name, fn in cases.items():
                t = per_call(fn, text)
                key = (note_name, case_name)
                results[key] = min(results.get(key, t), t)

    print(f"{'note':<15}{'chars':>7}  {'call':<16}{'µs/call':>10}{'× lower()':>11}")
    for note_name, text in notes.items():
        base = results[(note_name, "str.lower()")]
        for case_name in cases:
            t = results[(note_name, case_name)]
            print(f"{note_name:<15}{len(text):>7}  {case_name:<16}{t * 1e6:>10.1f}{t / base:>11.0f}")
    short, long_ = results[("short", "extract+score")], results[("20k", "extract+score")]
    ratio_chars = len(notes["20k"]) / len(SHORT)
    record("vitals and rules, 20k note ÷ short note, per character", long_ / short / ratio_chars, "≤ 1.2")
    print(
        f"\n20k note vs short note: {long_ / short:.1f}x the time for {ratio_chars:.0f}x the characters "
        f"({'linear or better' if long_ / short <= ratio_chars * 1.2 else 'worse than linear'})"
    )


if __name__ == "__main__":
    main()
