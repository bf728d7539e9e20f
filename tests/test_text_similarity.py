"""The note's n-grams are counted once per note; the similarities stay scikit-learn's own."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from engine.notefacts import read_note
from engine.safety import evidence
from engine.safety.evidence import SentenceTfidf, check_findings
from engine.schema import ModelFinding


def sklearn_similarities(sentences: list[str], queries: list[str]) -> np.ndarray:
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True)
    matrix = vectorizer.fit_transform(sentences + queries)
    return (matrix[len(sentences) :] @ matrix[: len(sentences)].T).toarray()


CASES = [
    (
        ["67-year-old woman, productive cough for 3 days.", "RR 23, SpO2 94% on air, HR 102.", "Alert."],
        ["productive cough 3 days", "Oxygen saturation 94% on room air", "no cough"],
    ),
    (
        ["Temp 39.1°C, rigors.", "Ödem der Beine, beidseits.", "BP 88/50 mmHg!!", "a"],
        ["fever with rigors 39.1", "bilateral leg oedema", "hypotension 88/50", "zzzz qqqq"],
    ),
    (["cough cough cough cough, and more cough."], ["cough", "the cough is persistent and wet"]),
]


@pytest.mark.parametrize(("sentences", "queries"), CASES)
def test_similarities_equal_a_vectorizer_fit_on_sentences_and_queries(sentences, queries):
    ours = SentenceTfidf(sentences).similarities(queries)
    assert ours.shape == (len(queries), len(sentences))
    np.testing.assert_allclose(ours, sklearn_similarities(sentences, queries), atol=1e-6)


def test_one_index_serves_queries_of_different_batches():
    sentences, queries = CASES[0]
    index = SentenceTfidf(sentences)
    for query in queries:  # the streamed answer asks one sentence at a time
        np.testing.assert_allclose(
            index.similarities([query]), sklearn_similarities(sentences, [query]), atol=1e-6
        )
    assert not index.similarities([]).size


def test_a_note_checked_sentence_after_sentence_is_indexed_once(monkeypatch):
    facts = read_note("Productive cough for 3 days. SpO2 94% on air. Pleuritic chest pain on the left.")
    built = []
    real = evidence._NoteIndex
    monkeypatch.setattr(evidence, "_NoteIndex", lambda f: built.append(f) or real(f))
    for claim in [
        "a cough that has lasted three days",
        "oxygen saturation of 94 percent on air",
        "left chest pain",
    ]:
        [finding], _ = check_findings(
            [ModelFinding.model_construct(finding=claim, evidence=claim)], facts.note, [], facts
        )
        assert finding.evidence and finding.evidence in facts.note, claim  # located in the note
    assert built == [facts]
    other = read_note("No cough. Afebrile.")
    check_findings(
        [ModelFinding.model_construct(finding="a cough", evidence="a cough")], other.note, [], other
    )
    assert built == [facts, other]
