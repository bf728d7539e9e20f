"""The GGUF runtime on the real models: metadata, prompt formats, threads, GPU choice, grammar."""

from __future__ import annotations

import struct
import threading

import pytest

from engine.schema import ModelAnswer
from models.gguf import GgufError, read_gguf
from models.hardware import choose_gpu_layers, physical_cores
from models.llm import GrammarError, LlamaRuntime, LoadSpec, ModelLoadError, build_grammar, format_gemma_turns

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def gemma(gemma_path):
    runtime = LlamaRuntime(LoadSpec(str(gemma_path), n_ctx=2048))
    yield runtime
    runtime.close()


def test_gguf_metadata_of_the_demo_model(gemma_path):
    info = read_gguf(gemma_path)
    assert info.architecture == "gemma3"
    assert info.size_label == "270M"
    assert info.quantization == "Q4_K_M"
    assert info.context_length == 32768
    assert info.chat_template is None  # verified: this GGUF carries no template


def test_gguf_metadata_of_smollm2(smollm2_path):
    info = read_gguf(smollm2_path)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert "<|im_start|>" in info.chat_template


def test_gguf_reader_refuses_foreign_and_broken_files(tmp_path, gemma_path):
    cases = {
        "missing.gguf": None,
        "empty.gguf": b"",
        "text.gguf": b"hello, I am text\n",
        "bad-version.gguf": b"GGUF" + struct.pack("<IQQ", 99, 0, 0),
        "absurd-counts.gguf": b"GGUF" + struct.pack("<IQQ", 3, 10**9, 10**9),
        "cut-header.gguf": gemma_path.read_bytes()[:2000],
    }
    messages = {}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(GgufError) as error:
            read_gguf(path)
        messages[name] = str(error.value)
    assert "not found" in messages["missing.gguf"]
    assert "empty" in messages["empty.gguf"]
    assert "no GGUF magic" in messages["text.gguf"]
    assert "version 99" in messages["bad-version.gguf"]
    assert "implausible" in messages["absurd-counts.gguf"]
    assert "truncated" in messages["cut-header.gguf"]
    with pytest.raises(GgufError, match="directory"):
        read_gguf(tmp_path)


def test_runtime_reports_metadata_threads_and_gpu_choice(gemma):
    info = gemma.info
    assert info.architecture == "gemma3" and info.quantization == "Q4_K_M"
    assert info.n_ctx == 2048
    assert info.threads == physical_cores()
    assert info.gpu_layers == (-1 if info.gpu_offload_supported else 0)
    assert "auto" in info.gpu_layers_reason
    assert info.prompt_format == "gemma-turns" and info.chat_template is False


def test_gemma_turn_format_is_applied_when_the_template_is_missing(gemma):
    messages = [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": "Note: cough."},
    ]
    prompt = gemma.format_prompt(messages)
    assert prompt == ("<start_of_turn>user\nBe careful.\n\nNote: cough.<end_of_turn>\n<start_of_turn>model\n")
    tokens = gemma.tokenize(prompt)
    start_of_turn = gemma.llm.tokenize(b"<start_of_turn>", add_bos=False, special=True)
    assert len(start_of_turn) == 1, "turn markers must be single special tokens"
    assert tokens[0] == gemma.llm.token_bos() and tokens[1] == start_of_turn[0]
    assert tokens.count(start_of_turn[0]) == 2
    # What llama-cpp-python would do on its own: the silent Llama-2 fallback we avoid.
    assert gemma.llm.chat_format == "llama-2"
    assert "[INST]" not in prompt


def test_system_text_survives_when_there_is_no_user_turn():
    assert format_gemma_turns([{"role": "system", "content": "Only rules."}]) == (
        "<start_of_turn>user\nOnly rules.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_embedded_chat_template_is_used_when_present(smollm2_path):
    runtime = LlamaRuntime(LoadSpec(str(smollm2_path), n_ctx=1024))
    try:
        assert runtime.info.prompt_format == "embedded-template"
        prompt = runtime.format_prompt([{"role": "user", "content": "Hello"}])
        assert "<|im_start|>user\nHello<|im_end|>" in prompt
        assert prompt.endswith("<|im_start|>assistant\n")
        pieces = list(runtime.stream(runtime.tokenize(prompt), max_tokens=8, cancel=threading.Event()))
        assert pieces and "".join(p.text for p in pieces).strip()
    finally:
        runtime.close()


def test_gpu_layer_choice():
    assert choose_gpu_layers("auto", True).layers == -1
    assert choose_gpu_layers("auto", False).layers == 0
    assert choose_gpu_layers(None, True).layers == -1
    assert choose_gpu_layers("12", True).layers == 12
    fallback = choose_gpu_layers(12, False)
    assert fallback.layers == 0 and "no GPU offload" in fallback.reason
    with pytest.raises(ValueError, match="auto"):
        choose_gpu_layers("lots", True)


def test_threads_override(gemma_path):
    runtime = LlamaRuntime(LoadSpec(str(gemma_path), threads=1, n_ctx=512))
    try:
        assert runtime.info.threads == 1 and runtime.info.n_ctx == 512
    finally:
        runtime.close()


def test_runtime_refuses_a_non_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        LlamaRuntime(LoadSpec(str(path)))


def test_grammar_is_really_built_for_the_answer_schema():
    grammar = build_grammar(ModelAnswer.generation_schema())
    for name in ("reasoning", "summary", "key_findings", "risk_level", "recommendations"):
        assert f'\\"{name}\\"' in grammar
    # bounded: no open-ended repetition, so a looping model must still terminate
    assert "*" not in grammar and "+" not in grammar
    # no raw control characters inside strings: the answer stays valid JSON
    assert 'char ::= [^"\\\\\\x7F\\x00-\\x1F]' in grammar


def test_grammar_conversion_failure_is_an_error_not_plain_json():
    with pytest.raises(GrammarError):
        build_grammar({"type": "object", "properties": {"x": {"$ref": "#/definitions/missing"}}})


PNEUMONIA_NOTE = (
    "72 year old man, cough and fever for 2 days, now short of breath. RR 26, SpO2 91% on room air, "
    "BP 95/60, HR 118, temperature 38.9. New confusion this morning. Crackles at the right base."
)


def _decode(runtime, prompt, tokens, anti_repetition, grammar=None) -> str:
    pieces = runtime.stream(
        prompt, max_tokens=tokens, cancel=threading.Event(), grammar=grammar, anti_repetition=anti_repetition
    )
    return "".join(piece.text for piece in pieces)


def _most_repeated_sentence(text: str) -> int:
    from collections import Counter

    from engine.safety import split_sentences

    sentences = [" ".join(s.lower().split()) for s in split_sentences(text)]
    counts = Counter(s for s in sentences if len(s.split()) >= 3)  # not list numbers ("1.")
    return max(counts.values(), default=0)


@pytest.mark.timeout(600)
def test_dry_sampler_keeps_smollm2_from_repeating_a_sentence(smollm2_path):
    from engine.prompts import PromptContext, build_messages
    from models.llm import ANTI_REPETITION, NO_ANTI_REPETITION

    runtime = LlamaRuntime(LoadSpec(str(smollm2_path), n_ctx=2048, threads=1))
    try:
        prompt = runtime.tokenize(
            runtime.format_prompt(build_messages(PNEUMONIA_NOTE, PromptContext(), "text"))
        )
        without = _decode(runtime, prompt, 400, NO_ANTI_REPETITION)
        with_dry = _decode(runtime, prompt, 400, ANTI_REPETITION)
    finally:
        runtime.close()
    # Greedy SmolLM2 loops on this note. DRY breaks the exact loop; it does not stop a tiny
    # model from coming back to a short sentence now and then, which the engine's loop
    # detector ends (tests/test_engine.py).
    repeats_without, repeats_with = _most_repeated_sentence(without), _most_repeated_sentence(with_dry)
    assert repeats_without > 3, without
    assert repeats_with < repeats_without, (repeats_with, repeats_without, with_dry)


def test_dry_sampler_and_the_lazy_grammar_still_give_a_valid_answer(gemma):
    import json

    from engine.prompts import PromptContext, build_messages
    from models.llm import ANTI_REPETITION

    prompt = gemma.tokenize(
        gemma.format_prompt(build_messages(PNEUMONIA_NOTE, PromptContext(), "assessment"))
    )
    grammar = build_grammar(ModelAnswer.generation_schema())
    text = _decode(gemma, prompt, 1024, ANTI_REPETITION, grammar)
    ModelAnswer.model_validate(json.loads(text))


def test_each_run_gets_a_dry_sampler_with_no_history_of_the_last(gemma):
    """DRY is cloned from one sampler built per setting (the vocabulary scan costs ~80 ms a run)."""
    from engine.prompts import PromptContext, build_messages
    from models.llm import ANTI_REPETITION, NO_ANTI_REPETITION

    prompt = gemma.tokenize(gemma.format_prompt(build_messages(PNEUMONIA_NOTE, PromptContext(), "text")))
    first = _decode(gemma, prompt, 200, ANTI_REPETITION)
    second = _decode(gemma, prompt, 200, ANTI_REPETITION)
    for template in gemma._dry_templates.values():
        gemma._llama_cpp.llama_sampler_free(template)
    gemma._dry_templates.clear()  # the next run scans the vocabulary again
    rebuilt = _decode(gemma, prompt, 200, ANTI_REPETITION)
    assert first == second == rebuilt
    assert _decode(gemma, prompt, 200, NO_ANTI_REPETITION) != first  # DRY really took part
    assert list(gemma._dry_templates) == [ANTI_REPETITION]
