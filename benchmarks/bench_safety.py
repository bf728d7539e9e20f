"""How much the safety layer costs per answer, as ratios measured in one run.

review() runs on every result, so what matters is how its cost grows with the
note and the number of findings, and which part dominates. Absolute times on
a shared machine are noise; the ratios between cases measured side by side
are what to read.

    python benchmarks/bench_safety.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import record  # noqa: E402
from engine import safety  # noqa: E402
from engine.safety import evidence  # noqa: E402
from engine.schema import ModelAnswer, ModelFinding  # noqa: E402

TYPICAL_NOTE = (
    "58-year-old man with productive cough for 5 days, fever and right-sided chest pain.\n"
    "Obs: HR 112, RR 26, SpO2 90% on air, T 38.9, BP 100/60.\n"
    "No rash, no vomiting. Known asthma. Crackles at the right base.\n"
    "Plan: CXR, bloods, cultures."
)

FILLER = (
    "Day {i}: reviewed on the ward round. Eating and drinking, mobilising with a frame. "
    "Denies chest pain or palpitations. Bowels opened, no vomiting. Obs stable: HR {hr}, RR 18, SpO2 96% on air, "
    "T 37.{t}. Family updated by phone. Continue current plan and review bloods tomorrow.\n"
)


def long_note(chars: int = 20_000) -> str:
    parts = [TYPICAL_NOTE, "\n"]
    i = 0
    while sum(len(p) for p in parts) < chars:
        parts.append(FILLER.format(i=i, hr=70 + i % 20, t=i % 10))
        i += 1
    return "".join(parts)[:chars]


def answer(findings: list[tuple[str, str]]) -> ModelAnswer:
    return ModelAnswer(
        reasoning="Productive cough with fever, tachycardia and hypoxia. The patient has pneumonia.",
        summary="Diagnosis: community-acquired pneumonia",
        key_findings=[ModelFinding(finding=f, evidence=e) for f, e in findings],
        risk_level="High",
        recommendations=[
            "Give amoxicillin 500 mg PO tds.",
            "Obtain a chest x-ray.",
            "Escalate to a senior clinician.",
        ],
    )


TYPICAL = answer([("Fever 38.9", "T 38.9"), ("Tachycardia", "HR 112"), ("Hypoxia", "SpO2 90% on air")])
SIX = answer(
    [
        ("Fever 38.9", "T 38.9"),
        ("Tachycardia", "HR 112"),
        ("Hypoxia on air", "oxygen saturation ninety percent"),  # not verbatim: TF-IDF path
        ("HR 130", "HR 130"),  # unsupported number
        ("Chest pain on the left", "left chest pain"),  # laterality, not verbatim
        ("Crackles right base", "crackles heard at the R base"),  # not verbatim
    ]
)


def timeit(fn: Callable[[], object], repeat: int = 15) -> float:
    fn()  # warm (imports, regex caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fit_per_check(sentences: list[str], queries: list[str]) -> object:
    """How each streamed sentence was compared before the note was indexed once."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True)
    matrix = vectorizer.fit_transform(sentences + queries)
    return matrix[len(sentences) :] @ matrix[: len(sentences)].T


def main() -> None:
    note20k = long_note()
    sentences = safety.split_sentences(note20k)
    queries = [f"{f.finding} {f.evidence}" for f in SIX.key_findings]
    indexed = evidence.SentenceTfidf(sentences)  # what a streamed answer's sentence checks share

    cases = {
        "review, typical answer (3 verbatim findings), 0.3k note": lambda: safety.review(
            TYPICAL, TYPICAL_NOTE, []
        ),
        "review, typical answer, 20k note": lambda: safety.review(TYPICAL, note20k, []),
        "review, 6 findings (4 fuzzy), 0.3k note": lambda: safety.review(SIX, TYPICAL_NOTE, []),
        "review, 6 findings (4 fuzzy), 20k note": lambda: safety.review(SIX, note20k, []),
        "  check_findings only, 6 findings, 20k note": lambda: safety.check_findings(
            SIX.key_findings, note20k, []
        ),
        "  TF-IDF, a vectorizer fit per check, 20k note": lambda: fit_per_check(sentences, queries[:1]),
        "  TF-IDF, the note indexed once, 20k note": lambda: indexed.similarities(queries[:1]),
        "  sentence split only, 20k note": lambda: safety.split_sentences(note20k),
        "  reframe+medications of the answer text": lambda: (
            safety.reframe(SIX.reasoning),
            safety.reframe(SIX.summary),
            [safety.reframe(r) for r in SIX.recommendations],
            safety.flag_medications(SIX.reasoning + " " + " ".join(SIX.recommendations)),
        ),
        "  detect_injection, 20k note": lambda: safety.detect_injection(note20k),
    }
    times = {name: timeit(fn) for name, fn in cases.items()}
    base = times["review, typical answer (3 verbatim findings), 0.3k note"]
    full = times["review, 6 findings (4 fuzzy), 20k note"]
    fit_check = times["  TF-IDF, a vectorizer fit per check, 20k note"]
    indexed_check = times["  TF-IDF, the note indexed once, 20k note"]
    print(
        f"note sizes: typical {len(TYPICAL_NOTE)} chars, long {len(note20k)} chars ({len(sentences)} sentences)"
    )
    print(f"{'case':58} {'x typical':>10} {'share of 6/20k':>15}")
    for name, t in times.items():
        print(f"{name:58} {t / base:10.1f} {t / full:15.0%}")
    print(
        f"\nratio 6 findings/20k note vs typical: {full / base:.1f}x; "
        f"one TF-IDF check on the indexed note is {indexed_check / full:.0%} of that review."
    )
    per_check = indexed_check / fit_check
    print(
        f"one streamed sentence's TF-IDF check, note indexed once ÷ a vectorizer fit per check: {per_check:.3f}"
    )
    record("TF-IDF sentence check, indexed note ÷ fit per check", per_check, "below 1")
    record("safety review, 6 findings on a 20k note ÷ typical", full / base, "for reference")
    print(
        f"(absolute, for orientation only: typical review {base * 1e3:.2f} ms, 6 findings/20k note {full * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
