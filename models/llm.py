"""The GGUF language-model runtime on llama-cpp-python.

It loads a model with a chosen thread count, context and GPU offload, formats
chat prompts (the GGUF's own template, or Gemma's turn format when a Gemma file
has none), and streams tokens with cooperative cancel: between tokens, and
inside prompt processing through llama.cpp's abort callback.

Structured answers use a grammar, checked lazily: the token the ordinary
sampler picks is tested against the grammar alone, and only when the grammar
rejects it is the grammar applied to the candidates. Applying a grammar to all
of Gemma's 262k vocabulary on every step is what made constrained decoding four
times slower; most tokens of a JSON answer are free text the grammar accepts.
No token the grammar rejects is ever accepted.

Against degenerate repetition the sampler chain carries llama.cpp's DRY sampler
("don't repeat yourself": a penalty that grows with the length of a sequence
that would repeat one seen in the last `dry_last_n` tokens). It works with the
lazy grammar check: when the grammar rejects the sampled token, the chain's
history is rebuilt without it before the grammar-filtered choice is made, so
the penalty only ever counts tokens that were really generated. DRY's sequence
breakers (newline, colon, quote, asterisk) end a match, so JSON's own repeated
punctuation and keys are not penalised. `ANTI_REPETITION` holds the settings
and how they were chosen.
"""

from __future__ import annotations

import codecs
import ctypes
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np

from models.gguf import GgufError, GgufInfo, read_gguf
from models.hardware import choose_gpu_layers, gpu_offload_supported, physical_cores
from models.info import ModelInfo

if TYPE_CHECKING:
    from llama_cpp.llama_cpp import (
        llama_context_p,
        llama_model_params,
        llama_sampler_p,
        llama_token_data_array,
        llama_vocab_p,
    )
    from llama_cpp.llama_types import ChatCompletionRequestMessage

    LogitsPointer: TypeAlias = ctypes._Pointer[ctypes.c_float]  # llama.cpp's float* to one row of logits

GEMMA_TURN = "<start_of_turn>{role}\n{content}<end_of_turn>\n"
GEMMA_GENERATION_PROMPT = "<start_of_turn>model\n"
CANDIDATES_BEFORE_FULL_GRAMMAR = 512

# Chat messages are {"role": ..., "content": ...} dicts; a formatter turns them into one prompt.
PromptFormatter = Callable[[list[dict[str, str]]], str]


class ModelLoadError(Exception):
    """The model cannot be loaded; the message says why in one line."""


class GenerationAborted(Exception):
    """Generation stopped because cancel was requested, while reading the prompt or decoding."""

    def __init__(self, phase: str):
        super().__init__(phase)
        self.phase = phase


class GrammarError(Exception):
    """The JSON schema could not be turned into a working grammar."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    path: str
    threads: int | None = None
    n_ctx: int = 4096
    gpu_layers: str | int = "auto"
    demo: bool = False
    seed: int = 0
    # False keeps only each sliding window's span (less memory, but a reused prompt prefix rarely survives)
    full_window_cache: bool = True
    # Tokens per prompt-reading step; Gemma 3 needs at least 256 in one micro-batch for an image.
    n_batch: int = 512
    n_ubatch: int = 512


@dataclass(frozen=True, slots=True)
class AntiRepetition:
    """llama.cpp's DRY sampler settings; multiplier 0 turns it off."""

    dry_multiplier: float = 0.8
    dry_base: float = 1.75
    dry_allowed_length: int = 2  # repeats up to this many tokens long are free ("of the", "RR 2")
    dry_last_n: int = 512  # how far back a repeat is looked for
    sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    # Off: quoting the note verbatim, as evidence must, is not a repeat. llama-server always
    # counts the prompt (its slots feed every prompt token to the sampler), hence this switch.
    counts_prompt: bool = False

    @property
    def enabled(self) -> bool:
        return self.dry_multiplier > 0


# Chosen by `benchmarks/bench_repetition.py --sweep` (4 notes, 300 greedy tokens, both bundled
# models): without DRY a sentence came back 3 (demo) and 7 (SmolLM2) times; x0.4 still let one
# repeat twice; x0.8 with 2 free tokens over 512 is the weakest setting with no sentence twice
# on either model (distinct 4-grams 0.90 / 0.94); x1.2 bought little more (0.92 / 0.95), and a
# 256-token window or 3 free tokens let repeats back. The decode cost is in the same benchmark.
# DRY alone does not stop every loop of a small model: the engine's loop detector ends those.
ANTI_REPETITION = AntiRepetition()
NO_ANTI_REPETITION = AntiRepetition(dry_multiplier=0.0)


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    token: int
    logprob: float | None = None


def format_gemma_turns(messages: list[dict[str, str]]) -> str:
    """Gemma's turn format. Gemma has no system role: system text joins the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if system:
        if turns and turns[0]["role"] == "user":
            turns[0] = {"role": "user", "content": f"{system}\n\n{turns[0]['content']}"}
        else:
            turns.insert(0, {"role": "user", "content": system})
    parts = [
        GEMMA_TURN.format(role="model" if m["role"] == "assistant" else "user", content=m["content"])
        for m in turns
    ]
    return "".join(parts) + GEMMA_GENERATION_PROMPT


def build_grammar(schema: dict[str, Any]) -> str:
    """Convert a JSON schema to GBNF, and prove the conversion really happened.

    llama-cpp-python's response_format falls back to plain JSON when conversion
    fails; here a failure is an error, and the grammar must name every property.
    """
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar: str = json_schema_to_gbnf(json.dumps(schema), prop_order=list(schema.get("properties", {})))
    except Exception as exc:  # the converter raises bare Exceptions
        raise GrammarError(f"JSON schema could not be converted to a grammar: {exc}") from None
    for name in schema.get("properties", {}):
        if f'\\"{name}\\"' not in grammar:
            raise GrammarError(f"grammar does not constrain property {name!r}")
    # JSON strings may not hold raw control characters; keep the model to escapes.
    return grammar.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]', 1)


class LlamaRuntime:
    def __init__(self, spec: LoadSpec):
        import llama_cpp

        silence_llama_logs()
        self._llama_cpp = llama_cpp
        self.spec = spec
        try:
            self.gguf: GgufInfo = read_gguf(spec.path)
        except GgufError as exc:
            raise ModelLoadError(str(exc)) from None
        supported = gpu_offload_supported()
        gpu = choose_gpu_layers(spec.gpu_layers, supported)
        threads = spec.threads or physical_cores()
        context_length = self.gguf.context_length or spec.n_ctx
        n_ctx = min(spec.n_ctx, context_length) if context_length else spec.n_ctx
        try:
            with _safe_buffer_types(llama_cpp):
                self.llm = llama_cpp.Llama(
                    model_path=str(spec.path),
                    n_ctx=n_ctx,
                    n_batch=spec.n_batch,
                    n_ubatch=spec.n_ubatch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=gpu.layers,
                    seed=spec.seed,
                    swa_full=spec.full_window_cache,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {spec.path}: {exc}") from None
        template = self.gguf.chat_template
        self.info = ModelInfo(
            path=str(Path(spec.path).resolve()),
            file_name=Path(spec.path).name,
            file_size=self.gguf.file_size,
            architecture=self.gguf.architecture,
            name=self.gguf.name,
            size_label=self.gguf.size_label,
            quantization=self.gguf.quantization,
            context_length=self.gguf.context_length,
            n_ctx=self.llm.n_ctx(),
            chat_template=template is not None,
            prompt_format="embedded-template" if template else _fallback_format(self.gguf.architecture),
            demo=spec.demo,
            threads=threads,
            gpu_layers=gpu.layers,
            gpu_offload_supported=supported,
            gpu_layers_reason=gpu.reason,
            n_batch=llama_cpp.llama_n_batch(self.llm._ctx.ctx),
            n_ubatch=llama_cpp.llama_n_ubatch(self.llm._ctx.ctx),
        )
        self._formatter = self._make_formatter(template)
        self._n_vocab = self.llm.n_vocab()
        self._pieces: dict[int, bytes] = {}
        self._dry_templates: dict[AntiRepetition, llama_sampler_p] = {}
        self._batch_ends: list[int] = []  # where each batch the cache was read in ended
        llama_cpp.llama_sampler_free(self._fresh_dry(ANTI_REPETITION))  # scan the vocabulary while loading
        self._abort_prompt = threading.Event()
        # Keep a reference: llama.cpp holds only the C pointer.
        self._abort_callback = llama_cpp.ggml_abort_callback(lambda _data: self._abort_prompt.is_set())
        self._no_callback = llama_cpp.ggml_abort_callback()

    # --- prompts --------------------------------------------------------------

    def _make_formatter(self, template: str | None) -> PromptFormatter:
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            vocab = self.llm._model
            eos = vocab.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
            bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
            jinja = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

            def format_with_template(messages: list[dict[str, str]]) -> str:
                # Role/content dicts are the chat messages llama-cpp's TypedDicts describe.
                return jinja(messages=cast("list[ChatCompletionRequestMessage]", messages)).prompt

            # The template may write the BOS itself; tokenize() must not add a second one.
            return format_with_template
        if self.gguf.architecture.startswith("gemma"):
            return format_gemma_turns
        raise ModelLoadError(
            f"{self.info.file_name} has no chat template and is not a Gemma model: "
            "cannot tell how to format its prompt"
        )

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return self._formatter(messages)

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]:
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        bos = self.llm.token_bos()
        if add_bos and len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]  # the template wrote its own BOS
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=False, add_bos=False))

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    # --- generation -------------------------------------------------------------

    def stream(
        self,
        prompt_tokens: list[int],
        *,
        max_tokens: int,
        part_starts: Sequence[int] = (),
        cancel: threading.Event,
        temperature: float = 0.0,
        seed: int = 0,
        grammar: str | None = None,
        want_logprobs: bool = False,
        anti_repetition: AntiRepetition = ANTI_REPETITION,
    ) -> Iterator[Piece]:
        """Yield generated pieces until end of turn, `max_tokens` or cancel.

        `part_starts` are the positions where parts of the prompt that change from
        case to case begin (see `_prefill`).

        Raises GenerationAborted when cancel is set, within one token, or within
        one llama.cpp graph evaluation while the prompt is processed.
        """
        lib, llm = self._llama_cpp, self.llm
        if len(prompt_tokens) >= llm.n_ctx():
            raise ValueError(
                f"prompt of {len(prompt_tokens)} tokens does not fit the context of {llm.n_ctx()}"
            )
        max_tokens = min(max_tokens, llm.n_ctx() - len(prompt_tokens))
        self._prefill(prompt_tokens, part_starts, cancel)
        dry = self._fresh_dry(anti_repetition) if anti_repetition.enabled else None
        sampler = _ChainSampler(lib, temperature, seed, anti_repetition, dry, prompt_tokens)
        constraint = _GrammarConstraint(lib, llm._model.vocab, grammar, self._n_vocab) if grammar else None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for generated in range(1, max_tokens + 1):
                if cancel.is_set():
                    raise GenerationAborted("decode")
                logits_ptr = lib.llama_get_logits_ith(llm._ctx.ctx, -1)
                token = sampler.sample(llm._ctx.ctx)
                if constraint is not None:
                    token = constraint.check(token, logits_ptr, sampler)
                    constraint.accept(token)
                logprob = _logprob(logits_ptr, token, self._n_vocab) if want_logprobs else None
                if lib.llama_vocab_is_eog(llm._model.vocab, token):
                    break
                text = decoder.decode(self._piece(token))
                yield Piece(text, token, logprob)
                if generated < max_tokens:  # the last token's logits would never be read
                    llm.eval([token])
                    self._batch_ends.append(llm.n_tokens)
        finally:
            sampler.close()
            if constraint is not None:
                constraint.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            yield Piece(tail, -1, None)

    def _fresh_dry(self, anti_repetition: AntiRepetition) -> llama_sampler_p:
        """A DRY sampler with an empty history, cloned from one built once per setting.

        Building one scans the whole vocabulary for the sequence breakers: about
        80 ms for Gemma's 262k tokens, which every run would add to its time to
        first token. A clone copies the scanned breakers instead.
        """
        lib = self._llama_cpp
        template = self._dry_templates.get(anti_repetition)
        if template is None:
            breakers = [text.encode("utf-8") for text in anti_repetition.sequence_breakers]
            template = lib.llama_sampler_init_dry(
                self.llm._model.vocab,
                anti_repetition.dry_multiplier,
                anti_repetition.dry_base,
                anti_repetition.dry_allowed_length,
                anti_repetition.dry_last_n,
                (ctypes.c_char_p * len(breakers))(*breakers),  # llama.cpp copies them
                len(breakers),
            )
            self._dry_templates[anti_repetition] = template
        return cast("llama_sampler_p", lib.llama_sampler_clone(template))

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            size = 64
            while True:
                buffer = ctypes.create_string_buffer(size)
                length = self._llama_cpp.llama_token_to_piece(
                    self.llm._model.vocab, token, buffer, size, 0, False
                )
                if length >= 0:
                    break
                size = -length  # too small: llama.cpp says how much it needs
            piece = self._pieces[token] = buffer.raw[:length]
        return piece

    def _prefill(self, prompt_tokens: list[int], part_starts: Sequence[int], cancel: threading.Event) -> None:
        """Evaluate the prompt, reusing what the cache holds of the last one.

        llama.cpp's result for a position depends on the batch it was read in (the
        kernels and their summation order follow the batch's shape), so a prefix
        reused at any token could change the answer from what a fresh model says.
        Each part of the prompt is read as its own batch instead, and the cache is
        reused only up to a part start that both prompts share with the same
        batches before it: the warm answer is then the fresh answer, token for token.
        """
        lib, llm = self._llama_cpp, self.llm
        ends = batch_ends(len(prompt_tokens), part_starts)
        reuse = self._reusable_prefix(prompt_tokens, ends)
        llm.n_tokens = reuse
        self._batch_ends = [end for end in self._batch_ends if end <= reuse]
        self._abort_prompt.clear()
        watcher = threading.Thread(target=self._watch_cancel, args=(cancel,), daemon=True)
        lib.llama_set_abort_callback(llm._ctx.ctx, self._abort_callback, None)
        watcher.start()
        try:
            for end in ends:
                if end > reuse:
                    llm.eval(prompt_tokens[llm.n_tokens : end])
                    self._batch_ends.append(end)
        except RuntimeError as exc:
            llm.n_tokens = 0
            self._batch_ends = []
            llm._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]  # unannotated in llama-cpp-python
            if cancel.is_set():
                raise GenerationAborted("prompt") from None
            raise RuntimeError(f"llama.cpp failed while reading the prompt: {exc}") from None
        finally:
            self._abort_prompt.set()  # also ends the watcher
            lib.llama_set_abort_callback(llm._ctx.ctx, self._no_callback, None)
            watcher.join()
        if cancel.is_set():
            raise GenerationAborted("prompt")

    def _reusable_prefix(self, prompt_tokens: list[int], batch_ends: list[int]) -> int:
        """How many leading tokens of the cache this prompt, read in `batch_ends`, can keep.

        Only a batch end that the cached prompt shares, with the same batch ends
        before it and the same tokens up to it, keeps the answer exact.

        Sliding-window layers attend to the `n_swa` positions before each token.
        A cache that dropped old positions (llama.cpp's small SWA cache, kept by
        builds that ignore `swa_full`) cannot serve a prefix whose window is gone,
        and llama.cpp would silently attend to less; then the prompt is read again.
        """
        lib, llm = self._llama_cpp, self.llm
        shared = 0
        for old, new in zip(llm.input_ids[: llm.n_tokens], prompt_tokens[:-1], strict=False):
            if old != new:
                break
            shared += 1
        cached = [end for end in self._batch_ends if end <= shared]
        reuse = 0
        for index, end in enumerate(end for end in batch_ends if end <= shared):
            if index >= len(cached) or cached[index] != end:
                break
            reuse = end
        window = lib.llama_model_n_swa(llm._model.model)
        if reuse == 0 or window <= 0:
            return reuse
        oldest_kept = lib.llama_memory_seq_pos_min(lib.llama_get_memory(llm._ctx.ctx), 0)
        return reuse if 0 <= oldest_kept <= max(0, reuse - window) else 0

    def _watch_cancel(self, cancel: threading.Event) -> None:
        while not self._abort_prompt.is_set():
            if cancel.wait(0.01):
                self._abort_prompt.set()

    def close(self) -> None:
        for template in self._dry_templates.values():
            self._llama_cpp.llama_sampler_free(template)
        self._dry_templates.clear()
        self.llm.close()


_silent_log = None


def batch_ends(prompt_length: int, part_starts: Sequence[int]) -> list[int]:
    """Where each batch a prompt is read in ends: at every part start, and at its end."""
    return sorted({start for start in part_starts if 0 < start < prompt_length} | {prompt_length})


def silence_llama_logs() -> None:
    """Drop llama.cpp's own log lines: failures reach the user as clear errors instead."""
    global _silent_log
    import llama_cpp

    _silent_log = llama_cpp.llama_log_callback(lambda level, text, data: None)
    llama_cpp.llama_log_set(_silent_log, ctypes.c_void_p(0))


def build_has_amx(llama_cpp: ModuleType) -> bool:
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextmanager
def _safe_buffer_types(llama_cpp: ModuleType) -> Iterator[None]:
    """Keep weights out of llama.cpp's AMX buffers on builds that have them.

    AMX-repacked Q4_K weights segfault in the first decode on some Xeons
    (ggml-org/llama.cpp#20824, seen here with gemma-3-270m Q4_K_M). Llama()
    offers no switch, so its default model params are wrapped while it loads.
    """
    if not build_has_amx(llama_cpp):
        yield
        return
    module = llama_cpp.llama_cpp
    original: Callable[[], llama_model_params] = module.llama_model_default_params

    def without_extra_buffers() -> llama_model_params:
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        module.llama_model_default_params = original


def _fallback_format(architecture: str) -> str:
    return "gemma-turns" if architecture.startswith("gemma") else "none"


def _logits(logits_ptr: LogitsPointer, n_vocab: int) -> np.ndarray:
    return np.ctypeslib.as_array(logits_ptr, shape=(n_vocab,))


def _logprob(logits_ptr: LogitsPointer, token: int, n_vocab: int) -> float:
    logits = _logits(logits_ptr, n_vocab)
    peak = float(logits.max())
    return float(logits[token]) - peak - math.log(float(np.exp(logits - peak).sum()))


class _ChainSampler:
    """The ordinary sampler: DRY against repetition, then greedy at temperature 0, else
    top-k/top-p/temperature."""

    def __init__(
        self,
        lib: ModuleType,
        temperature: float,
        seed: int,
        anti_repetition: AntiRepetition = NO_ANTI_REPETITION,
        dry: llama_sampler_p | None = None,
        prompt_tokens: list[int] | None = None,
    ):
        """`dry` is a fresh DRY sampler for `anti_repetition`; the chain takes it over."""
        self._lib = lib
        self.chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        self._window = anti_repetition.dry_last_n if dry is not None else 0
        # the history DRY looks back over, for rebuilding it: generated tokens, and the prompt when it counts
        self._accepted: list[int] = []
        if self._window and anti_repetition.counts_prompt and prompt_tokens:
            self._accepted = list(prompt_tokens[-self._window :])
        if dry is not None:
            lib.llama_sampler_chain_add(self.chain, dry)
        if temperature <= 0:
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_greedy())
        else:
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_top_k(40))
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_top_p(0.95, 1))
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_temp(temperature))
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        for token in self._accepted:
            lib.llama_sampler_accept(self.chain, token)

    def sample(self, ctx: llama_context_p) -> int:
        """Sample the next token; llama.cpp also records it in the chain's history."""
        token = cast(int, self._lib.llama_sampler_sample(self.chain, ctx, -1))
        if self._window:
            self._accepted.append(token)
        return token

    def forget_last(self) -> None:
        """Take the last sampled token back out of the history (the grammar rejected it)."""
        if not self._window or not self._accepted:
            return
        self._accepted.pop()
        self._lib.llama_sampler_reset(self.chain)
        for token in self._accepted[-self._window :]:
            self._lib.llama_sampler_accept(self.chain, token)

    def choose(self, candidates: llama_token_data_array) -> int:
        """Pick from an already-filtered candidate array, as `sample` would."""
        self._lib.llama_sampler_apply(self.chain, ctypes.byref(candidates))
        # llama-cpp types the field as c_int32; ctypes reads it as an int.
        token = cast(int, candidates.data[candidates.selected].id)
        self._lib.llama_sampler_accept(self.chain, token)
        if self._window:
            self._accepted.append(token)
        return token

    def close(self) -> None:
        self._lib.llama_sampler_free(self.chain)


class _GrammarConstraint:
    def __init__(self, lib: ModuleType, vocab: llama_vocab_p, grammar: str, n_vocab: int):
        self._lib = lib
        self.sampler = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not self.sampler:
            raise GrammarError("llama.cpp rejected the grammar")
        self._n_vocab = n_vocab
        self._one = (lib.llama_token_data * 1)()
        self._buffer = (lib.llama_token_data * n_vocab)()
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self.fast_hits = 0
        self.slow_paths = 0

    def _allows(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        array = self._lib.llama_token_data_array(self._one, 1, -1, False)
        self._lib.llama_sampler_apply(self.sampler, ctypes.byref(array))
        return cast(float, self._one[0].logit) != -math.inf

    def check(self, token: int, logits_ptr: LogitsPointer, chain: _ChainSampler) -> int:
        if self._allows(token):
            self.fast_hits += 1
            return token
        self.slow_paths += 1
        chain.forget_last()
        logits = _logits(logits_ptr, self._n_vocab)
        # Most rejections are fixed by one of the model's top candidates.
        top = np.argpartition(logits, -CANDIDATES_BEFORE_FULL_GRAMMAR)[-CANDIDATES_BEFORE_FULL_GRAMMAR:]
        for ids in (top, self._ids):
            array = self._fill(ids, logits)
            self._lib.llama_sampler_apply(self.sampler, ctypes.byref(array))
            view = np.ctypeslib.as_array(self._buffer)[: len(ids)]
            if np.isfinite(view["logit"]).any():
                token = chain.choose(array)
                if self._allows(token):
                    return token
                chain.forget_last()
        raise GrammarError("no token satisfies the grammar")

    def _fill(self, ids: np.ndarray, logits: np.ndarray) -> llama_token_data_array:
        view = np.ctypeslib.as_array(self._buffer)[: len(ids)]
        view["id"] = ids
        view["logit"] = logits[ids]
        view["p"] = 0.0
        return cast(
            "llama_token_data_array", self._lib.llama_token_data_array(self._buffer, len(ids), -1, False)
        )

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self.sampler, token)

    def close(self) -> None:
        self._lib.llama_sampler_free(self.sampler)
