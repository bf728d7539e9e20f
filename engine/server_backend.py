"""The engine's model on a shared model server: llama.cpp's `llama-server`.

One server with the model loaded serves every terminal in a clinic. This
backend speaks to it with httpx and answers with the same `engine.wire` replies
as the local worker, so front ends, safety checks, risk rules and history do
not know which backend runs. Only the model's decoding happens on the server.

The same prompt: the engine builds it here with its own rules
(`engine.prompts.prepare_prompt`), fitting the note with the server's own
tokenizer (`/tokenize`, `/detokenize`), and sends the prompt's token ids to
`/v1/completions`. Chat endpoints would format the prompt with the server's
template instead, and llama.cpp replaces a missing GGUF template with ChatML,
which is not Gemma's turn format (the embedded demo model has no template).
Sending token ids also means the server cannot tokenize the text differently
(a second BOS when a template writes its own, say).

The same constraint: the GBNF grammar built from the answer's JSON schema by
the same function the local runtime uses (`models.llm.build_grammar`), so both
backends decode under one grammar. The same sampling: greedy at temperature 0,
else top-k 40, top-p 0.95, temperature and the seed, the other samplers off.

Streaming is server-sent events read with httpx's `aiter_lines()`: the only
framing this code does is taking the JSON after `data: ` on each event line.
Cancel closes the request; llama-server stops decoding when its client goes.

vLLM's OpenAI server takes another request shape; it is kept, untested, in
`vllm_completion_body`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import httpx

from engine import wire
from engine.prompts import PreparedPrompt, prepare_prompt
from models.info import ModelInfo
from models.llm import format_gemma_turns

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

    from models.llm import LoadSpec, PromptFormatter

DEFAULT_STALL_TIMEOUT = 60.0  # seconds without a byte from the server before a request fails
CONNECT_TIMEOUT = 5.0
LOADING_WAIT = 120.0  # how long to wait for a server that is still loading its model
GEMMA_TURN_TOKEN = "<start_of_turn>"
DEMO_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"  # the embedded demo model (models.embedded)


class ServerAddressError(ValueError):
    """The server address cannot be used; the message says why in one line."""


def check_server_url(url: str) -> str:
    """Check the address of the model server and say how it is reached, in one line.

    Notes and answers travel to the server, so plain http is allowed only to
    this machine or a private network address; anything else needs https.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerAddressError(f"the model server address must look like https://host:port, not {url!r}")
    if parts.scheme == "https":
        return f"model server {url} over https"
    if not _is_private_host(parts.hostname):
        raise ServerAddressError(
            f"plain http to {parts.hostname} would send notes unencrypted over a public network; "
            "use https://, or a localhost or private-network address"
        )
    return f"model server {url} over plain http (allowed: {parts.hostname} is a local or private address)"


def _is_private_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:  # a name: every address it resolves to must be private
        try:
            found = socket.getaddrinfo(host, None)
        except OSError:
            return False
        addresses = [ipaddress.ip_address(str(entry[4][0]).split("%")[0]) for entry in found]
    return bool(addresses) and all(a.is_private or a.is_loopback or a.is_link_local for a in addresses)


def server_host_port(url: str) -> tuple[str, int]:
    """The host and port a connection to the server goes to."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What the server says about itself: its model, slots and health."""

    url: str
    healthy: bool
    health: str  # "ok", or why not, in one line
    model: str = ""
    slots: int = 0
    slot_ctx: int = 0
    build: str = ""


class ServerFailure(Exception):
    """A request to the server failed; the message says why in one line."""


class ServerBackend:
    """A llama-server reached over HTTP(S); see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self._wanted_model = model
        self._stall_timeout = stall_timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(stall_timeout, connect=CONNECT_TIMEOUT)
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)
        self._info: ModelInfo | None = None
        self._model_id = ""
        self._formatter: PromptFormatter | None = None
        self._bos: int | None = None
        self._streams: dict[str, asyncio.Task[None]] = {}
        self.status = ServerStatus(self.url, False, "not contacted yet")

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    # --- load -------------------------------------------------------------------

    async def load(self, spec: LoadSpec) -> wire.Loaded | wire.LoadFailed | wire.WorkerDied:
        """Check the server and learn its model; the server has loaded it already."""
        del spec  # the server chose its model file, context and placement when it started
        start = time.perf_counter()
        self._info = None
        try:
            self.status = await self.check()
            if not self.status.healthy:
                return wire.LoadFailed(self.status.health)
            if self._wanted_model and self._wanted_model != self.status.model:
                return wire.LoadFailed(
                    f"the model server at {self.url} serves {self.status.model!r}, "
                    f"not the configured model {self._wanted_model!r}"
                )
            props = await self._get_json("/props")
            self._formatter = await self._choose_formatter(props)
            self._bos = await self._bos_token()
        except ServerFailure as exc:
            return wire.LoadFailed(str(exc))
        self._model_id = self.status.model
        model_path = str(props.get("model_path") or self.status.model)
        self._info = ModelInfo(
            path=model_path,
            file_name=Path(model_path).name,
            file_size=0,
            architecture="",
            name=self.status.model,
            size_label="",
            quantization="",
            context_length=0,
            n_ctx=self.status.slot_ctx,
            chat_template=self._formatter is not format_gemma_turns,
            prompt_format="gemma-turns" if self._formatter is format_gemma_turns else "embedded-template",
            demo=Path(model_path).name == DEMO_MODEL_FILE,
            threads=0,
            gpu_layers=0,
            gpu_offload_supported=False,
            gpu_layers_reason=f"runs on the model server {self.url}",
            server=self.url,
        )
        return wire.Loaded(self._info, time.perf_counter() - start)

    async def check(self) -> ServerStatus:
        """The server's health, model and slots; never raises."""
        deadline = time.perf_counter() + LOADING_WAIT
        try:
            while True:
                response = await self._client.get("/health")
                if response.status_code != 503 or time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.5)  # 503: the server is still loading its model
            _raise_for_status(response, self.url)
            models = await self._get_json("/v1/models")
            props = await self._get_json("/props")
        except ServerFailure as exc:
            return ServerStatus(self.url, False, str(exc))
        except httpx.HTTPError as exc:
            return ServerStatus(self.url, False, _transport_problem(exc, self.url))
        served = [entry.get("id", "") for entry in models.get("data", [])]
        settings = props.get("default_generation_settings", {})
        return ServerStatus(
            url=self.url,
            healthy=True,
            health="ok",
            model=served[0] if served else "",
            slots=int(props.get("total_slots", 0)),
            slot_ctx=int(settings.get("n_ctx", 0)),
            build=str(props.get("build_info", "")),
        )

    async def _choose_formatter(self, props: dict[str, Any]) -> PromptFormatter:
        """Format prompts as the local runtime would for the same GGUF.

        llama.cpp substitutes ChatML when the GGUF has no template; the local
        runtime uses Gemma's turn format then, for a Gemma vocabulary.
        """
        template = str(props.get("chat_template") or "")
        if await self._is_gemma_vocabulary() and (not template or "<|im_start|>" in template):
            return format_gemma_turns
        if not template:
            raise ServerFailure(
                f"the model server at {self.url} reports no chat template and its model is not a "
                "Gemma model: cannot tell how to format its prompt"
            )
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        jinja = Jinja2ChatFormatter(
            template=template,
            eos_token=str(props.get("eos_token", "")),
            bos_token=str(props.get("bos_token", "")),
        )

        def format_with_template(messages: list[dict[str, str]]) -> str:
            # Role/content dicts are the chat messages llama-cpp's TypedDicts describe.
            return jinja(messages=cast("list[ChatCompletionRequestMessage]", messages)).prompt

        return format_with_template

    async def _is_gemma_vocabulary(self) -> bool:
        tokens = await self._tokenize(GEMMA_TURN_TOKEN, special=True, add_bos=False)
        return len(tokens) == 1

    async def _bos_token(self) -> int | None:
        tokens = await self._tokenize("", special=True, add_bos=True)
        return tokens[0] if tokens else None

    # --- generation ---------------------------------------------------------------

    async def generate(self, job: wire.Job) -> AsyncGenerator[wire.JobReply, None]:
        replies: asyncio.Queue[wire.JobReply] = asyncio.Queue()
        task = asyncio.create_task(self._serve_job(job, replies))
        self._streams[job.id] = task
        ended = False
        try:
            while not ended:
                reply = await replies.get()
                ended = isinstance(reply, (wire.Done, wire.Cancelled, wire.Error, wire.WorkerDied))
                yield reply
        finally:
            self._streams.pop(job.id, None)
            if not task.done():
                task.cancel()  # the consumer stopped reading early: close the request
            await asyncio.gather(task, return_exceptions=True)

    def cancel(self, job_id: str) -> None:
        task = self._streams.get(job_id)
        if task is not None and not task.done():
            task.cancel()  # closes the HTTP request; the server stops decoding when its client goes

    async def _serve_job(self, job: wire.Job, replies: asyncio.Queue[wire.JobReply]) -> None:
        """Run one job, putting its replies on `replies`; always ends with exactly one end reply."""
        start = time.perf_counter()
        counts = _StreamCounts()
        try:
            prepared = await self._prepare(job)
            replies.put_nowait(
                wire.PromptReady(
                    job_id=job.id,
                    prompt_tokens=len(prepared.tokens),
                    n_ctx=self.status.slot_ctx,
                    note_tokens=prepared.note.note_tokens,
                    dropped_note_tokens=prepared.note.dropped_tokens,
                )
            )
            counts.prompt_tokens = len(prepared.tokens)
            finish = await self._stream(job, prepared, replies, counts)
        except asyncio.CancelledError:
            during: wire.CancelPoint = "decode" if counts.first_at else "prompt"
            replies.put_nowait(wire.Cancelled(job.id, counts.timings(start), during, None))
            return
        except ValueError as exc:  # the prompt cannot fit, or the schema has no grammar
            replies.put_nowait(wire.Error(job.id, "bad-input", str(exc)))
            return
        except ServerFailure as exc:
            self._info = None  # the next request checks the server again first
            replies.put_nowait(wire.Error(job.id, "internal", str(exc)))
            return
        except httpx.HTTPError as exc:
            self._info = None  # the next request checks the server again first
            kept = "; the text so far is kept" if counts.first_at else ""
            replies.put_nowait(wire.Error(job.id, "internal", _transport_problem(exc, self.url) + kept))
            return
        replies.put_nowait(
            wire.Done(
                job_id=job.id,
                timings=counts.timings(start),
                stop_reason="length" if finish == "length" else "stop",
                mean_logprob=counts.mean_logprob(),
            )
        )

    async def _prepare(self, job: wire.Job) -> PreparedPrompt:
        formatter = self._formatter
        if formatter is None:
            raise ServerFailure("no model server is connected")
        tokenizer = _ServerTokenizer(formatter, self._client, self.url, self._bos)
        return await asyncio.to_thread(
            prepare_prompt,
            job.note,
            job.context,
            job.mode,
            n_ctx=self.status.slot_ctx,
            max_tokens=job.max_tokens,
            model=tokenizer,
        )

    async def _stream(
        self,
        job: wire.Job,
        prepared: PreparedPrompt,
        replies: asyncio.Queue[wire.JobReply],
        counts: _StreamCounts,
    ) -> str:
        body = llama_server_completion_body(self._model_id, prepared.tokens, job)
        finish = ""
        async with self._client.stream("POST", "/v1/completions", json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for_status(response, self.url)
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue  # blank separators, comments and keep-alives
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    raise ServerFailure(f"the model server stopped the answer: {_error_message(event)}")
                choice = event["choices"][0]
                text = choice.get("text", "")
                logprobs = (choice.get("logprobs") or {}).get("content") or []
                if text or logprobs:
                    counts.add_token(logprobs)
                if text:
                    replies.put_nowait(wire.Tokens(job.id, (text,)))
                finish = choice.get("finish_reason") or finish
        if not finish:
            kept = "; the text so far is kept" if counts.first_at else ""
            raise ServerFailure(f"the model server at {self.url} ended the answer before finishing{kept}")
        return finish

    # --- HTTP helpers -------------------------------------------------------------

    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise ServerFailure(_transport_problem(exc, self.url)) from None
        _raise_for_status(response, self.url)
        result: dict[str, Any] = response.json()
        return result

    async def _tokenize(self, text: str, *, special: bool, add_bos: bool) -> list[int]:
        try:
            response = await self._client.post(
                "/tokenize", json={"content": text, "add_special": add_bos, "parse_special": special}
            )
        except httpx.HTTPError as exc:
            raise ServerFailure(_transport_problem(exc, self.url)) from None
        _raise_for_status(response, self.url)
        return [int(token) for token in response.json()["tokens"]]

    async def close(self) -> None:
        for task in list(self._streams.values()):
            task.cancel()
        await self._client.aclose()
        self._info = None


def _completion_body(model: str, prompt_tokens: list[int], job: wire.Job, seed: int) -> dict[str, Any]:
    """What every OpenAI-style completions request holds: the prompt as token ids, streamed."""
    return {
        "model": model,
        "prompt": prompt_tokens,
        "max_tokens": job.max_tokens,
        "stream": True,
        "temperature": job.temperature,
        "seed": seed,
        "top_k": 40,
        "top_p": 0.95,
    }


def llama_server_completion_body(model: str, prompt_tokens: list[int], job: wire.Job) -> dict[str, Any]:
    """The `/v1/completions` request for llama-server: same prompt, grammar and sampling as local."""
    from models.llm import ANTI_REPETITION, build_grammar

    dry = ANTI_REPETITION
    body = _completion_body(model, prompt_tokens, job, seed=job.seed & 0xFFFFFFFF)
    body |= {
        # the local sampler chain: DRY, then top-k 40, top-p 0.95, temperature; everything else off
        "dry_multiplier": dry.dry_multiplier,
        "dry_base": dry.dry_base,
        "dry_allowed_length": dry.dry_allowed_length,
        "dry_penalty_last_n": dry.dry_last_n,
        "dry_sequence_breakers": list(dry.sequence_breakers),
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "samplers": ["dry", "top_k", "top_p", "temperature"],
        "cache_prompt": True,
    }
    if job.grammar_schema is not None:
        try:
            body["grammar"] = build_grammar(job.grammar_schema)
        except Exception as exc:  # GrammarError; the local worker reports it as bad input too
            raise ValueError(str(exc)) from None
        body["n_probs"] = 1  # the chosen token's log-probability, for the confidence figure
    return body


def vllm_completion_body(model: str, prompt_tokens: list[int], job: wire.Job) -> dict[str, Any]:
    """The same request for vLLM's OpenAI server (not tested here: vLLM needs a large GPU).

    vLLM takes token ids as the prompt too, but a JSON schema rather than GBNF
    (`guided_json`), `logprobs` rather than `n_probs`, and reports the chosen
    token's log-probability in `choices[0].logprobs.token_logprobs`.
    """
    body = _completion_body(model, prompt_tokens, job, seed=job.seed)
    if job.grammar_schema is not None:
        body["guided_json"] = job.grammar_schema
        body["logprobs"] = 1
    return body


class _ServerTokenizer:
    """The server's tokenizer behind the engine's `PromptTokenizer` shape.

    `prepare_prompt` runs in a thread; each call goes back to the event loop's client.
    """

    def __init__(
        self, formatter: PromptFormatter, client: httpx.AsyncClient, url: str, bos: int | None
    ) -> None:
        self._formatter = formatter
        self._client = client
        self._url = url
        self._bos = bos
        self._loop = asyncio.get_running_loop()

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        return self._formatter(messages)

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]:
        body = {"content": text, "add_special": add_bos, "parse_special": special}
        tokens = [int(token) for token in self._post("/tokenize", body)["tokens"]]
        if add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == self._bos:
            tokens = tokens[1:]  # the template wrote its own BOS, as the local runtime allows for
        return tokens

    def detokenize(self, tokens: list[int]) -> str:
        return str(self._post("/detokenize", {"tokens": tokens})["content"])

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async def post() -> dict[str, Any]:
            try:
                response = await self._client.post(path, json=body)
            except httpx.HTTPError as exc:
                raise ServerFailure(_transport_problem(exc, self._url)) from None
            _raise_for_status(response, self._url)
            result: dict[str, Any] = response.json()
            return result

        return asyncio.run_coroutine_threadsafe(post(), self._loop).result()


@dataclass(slots=True)
class _StreamCounts:
    prompt_tokens: int = 0
    generated: int = 0
    first_at: float | None = None
    last_at: float | None = None
    logprob_sum: float = 0.0
    logprob_count: int = 0

    def add_token(self, logprobs: list[dict[str, Any]]) -> None:
        self.last_at = time.perf_counter()
        if self.first_at is None:
            self.first_at = self.last_at
        self.generated += 1
        for entry in logprobs:
            if "logprob" in entry:
                self.logprob_sum += float(entry["logprob"])
                self.logprob_count += 1

    def mean_logprob(self) -> float | None:
        return self.logprob_sum / self.logprob_count if self.logprob_count else None

    def timings(self, start: float) -> wire.DecodeTimings:
        return wire.DecodeTimings(
            prompt_tokens=self.prompt_tokens,
            generated_tokens=self.generated,
            prompt_s=(self.first_at - start) if self.first_at else time.perf_counter() - start,
            decode_s=(self.last_at - self.first_at) if self.first_at and self.last_at else 0.0,
        )


def _raise_for_status(response: httpx.Response, url: str) -> None:
    if response.status_code < 400:
        return
    try:
        detail = _error_message(response.json())
    except ValueError:
        detail = response.text[:200]
    if response.status_code == 401:
        raise ServerFailure(f"the model server at {url} refused the API key: {detail}")
    if response.status_code == 503:
        raise ServerFailure(f"the model server at {url} is not ready: {detail}")
    raise ServerFailure(f"the model server at {url} answered {response.status_code}: {detail}")


def _error_message(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            return str(error.get("message", error))
        return str(error)
    return str(payload)


def _transport_problem(exc: httpx.HTTPError, url: str) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach the model server at {url} ({exc or 'connection refused'})"
    if isinstance(exc, httpx.TimeoutException):
        return f"the model server at {url} sent nothing for too long ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the model server at {url} closed the connection mid-answer"
    return f"the model server at {url} failed: {exc}"
