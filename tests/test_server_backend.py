"""The engine on a real llama-server serving the real gemma-3-270m, over localhost.

The server is built by scripts/build_llama_server.sh (CI runs it first); the
tests that need it skip, saying so, only where it has not been built. One fake
remains, where a real llama-server cannot misbehave on request: a small
stdlib HTTP server that answers 500 or never answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import REPO, collect
from llama_server import ENV_BINARY, LlamaServer, llama_server_binary

from engine.config import ConfigError, Settings
from engine.engine import Engine
from engine.events import AnalysisRequest, Cancelled, Failed, Finished, ModelLoaded, PromptPrepared, Token
from engine.server_backend import ServerAddressError, ServerBackend, check_server_url

pytestmark = pytest.mark.timeout(600)

NOTE = (
    "67-year-old woman, productive cough for 3 days. RR 23, SpO2 94% on air, "
    "BP 118/74, HR 102, T 38.4, alert."
)


# --- the address rules, no server needed -------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://models.example.org", "http://localhost:8080", "http://127.0.0.1:8080", "http://10.1.2.3:8080",
     "http://192.168.0.20:8080", "http://[::1]:8080", "http://172.16.5.5"],
)  # fmt: skip
def test_https_anywhere_and_plain_http_only_to_local_or_private_addresses(url):
    note = check_server_url(url)
    assert ("plain http" in note) == url.startswith("http://")


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8:8080", "http://172.32.0.1", "ftp://10.0.0.1", "localhost:8080"]
)
def test_public_plain_http_and_other_schemes_are_refused(url):
    with pytest.raises(ServerAddressError):
        check_server_url(url)


def test_server_comes_from_flag_then_environment_then_config_file(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('server = "http://10.0.0.9:8080"\nserver_stall_timeout = 12.5\n')
    assert Settings.resolve().server.url == "http://10.0.0.9:8080"
    assert Settings.resolve().server.stall_timeout == 12.5
    monkeypatch.setenv("MEDGEMMA_TUI_SERVER", "http://127.0.0.1:9000")
    assert Settings.resolve().server.source == "MEDGEMMA_TUI_SERVER"
    chosen = Settings.resolve(server="https://box.example.org")
    assert (chosen.server.url, chosen.server.source) == ("https://box.example.org", "--server")
    monkeypatch.setenv("MEDGEMMA_TUI_SERVER", "http://8.8.8.8")
    with pytest.raises(ConfigError, match="MEDGEMMA_TUI_SERVER: plain http"):
        Settings.resolve()


def test_api_key_comes_only_from_the_named_environment_variable(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('server = "https://box.example.org"\nserver_api_key_env = "CLINIC_KEY"\n')
    with pytest.raises(ConfigError, match="CLINIC_KEY, which is not set"):
        Settings.resolve()
    monkeypatch.setenv("CLINIC_KEY", "s3cret")
    server = Settings.resolve().server
    assert server.api_key == "s3cret" and "s3cret" not in repr(server)
    config.write_text('server = "https://box.example.org"\nserver_api_key = "s3cret"\n')
    with pytest.raises(ConfigError, match="server_api_key"):  # a key in the file itself is refused
        Settings.resolve()


# --- a real llama-server --------------------------------------------------------------


@pytest.fixture(scope="module")
def server_binary():
    binary = llama_server_binary()
    if binary is None or not binary.exists():
        if os.environ.get(ENV_BINARY):
            pytest.fail(f"{ENV_BINARY} names {binary}, which does not exist")
        pytest.skip("llama-server is not built here: run scripts/build_llama_server.sh")
    return binary


@pytest.fixture(scope="module")
def llama_server(server_binary, gemma_path):
    server = LlamaServer(server_binary, gemma_path).wait_ready()
    yield server
    server.stop()


def server_engine(url: str, **backend_options) -> Engine:
    return Engine(Settings.resolve(threads=2), backend=ServerBackend(url, **backend_options))


async def test_streams_tokens_over_server_sent_events(llama_server):
    engine = server_engine(llama_server.url)
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=40)))
    finally:
        await engine.close()
    loaded = next(e for e in events if isinstance(e, ModelLoaded))
    assert loaded.info.server == llama_server.url and loaded.info.demo
    assert loaded.info.prompt_format == "gemma-turns"  # the GGUF has no template, as locally
    prompt = next(e for e in events if isinstance(e, PromptPrepared))
    assert prompt.prompt_tokens > 100 and prompt.n_ctx == 4096
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) >= 20 and [t.index for t in tokens] == list(range(len(tokens)))
    finished = events[-1]
    assert isinstance(finished, Finished), events[-3:]
    assert finished.text == "".join(t.text for t in tokens)
    assert finished.timings.generated_tokens >= len(tokens) - 1


async def test_the_answer_keeps_to_the_schema_and_becomes_an_assessment(llama_server):
    engine = server_engine(llama_server.url)
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, max_tokens=400)))
    finally:
        await engine.close()
    finished = events[-1]
    assert isinstance(finished, Finished), events[-3:]
    answer = json.loads(finished.text)  # the grammar allows nothing but the schema's JSON
    assert list(answer)[:2] == ["reasoning", "summary"]
    assert answer["risk_level"] in ("Low", "Moderate", "High")
    assert finished.assessment is not None and finished.assessment.summary


async def test_same_note_same_prompt_and_answer_shape_as_the_local_worker(llama_server):
    """Through the whole engine: the same prompt tokens and the same schema. The greedy
    texts differ by one known setting, shown by the next test: llama-server counts the
    prompt in DRY's history, the local worker does not."""
    local = Engine(Settings.resolve(threads=2, ctx=4096))
    remote = server_engine(llama_server.url)
    try:
        local_events = await collect(local.run(AnalysisRequest(note=NOTE, max_tokens=300, temperature=0.0)))
        remote_events = await collect(remote.run(AnalysisRequest(note=NOTE, max_tokens=300, temperature=0.0)))
    finally:
        await local.close()
        await remote.close()
    local_done, remote_done = local_events[-1], remote_events[-1]
    assert isinstance(local_done, Finished) and isinstance(remote_done, Finished)
    local_prompt = next(e for e in local_events if isinstance(e, PromptPrepared))
    remote_prompt = next(e for e in remote_events if isinstance(e, PromptPrepared))
    assert local_prompt.prompt_tokens == remote_prompt.prompt_tokens
    assert list(json.loads(remote_done.text)) == list(json.loads(local_done.text))


@pytest.mark.parametrize("mode", ["text", "assessment"])
def test_greedy_answers_are_the_same_token_for_token_once_dry_sees_the_same_history(
    llama_server, gemma_path, mode
):
    """Why the backends' texts differ, pinned down: with the same DRY history (the
    prompt counted, as llama-server always does) or no DRY, the answers are equal."""
    import dataclasses

    import httpx

    from engine.prompts import PromptContext, build_messages
    from engine.schema import ModelAnswer
    from engine.server_backend import llama_server_completion_body
    from engine.wire import Job
    from models.llm import ANTI_REPETITION, NO_ANTI_REPETITION, LlamaRuntime, LoadSpec, build_grammar

    runtime = LlamaRuntime(LoadSpec(str(gemma_path), threads=2, n_ctx=4096, full_window_cache=True))
    try:
        prompt = runtime.format_prompt(build_messages(NOTE, PromptContext(), "text"))
        tokens = runtime.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        schema = ModelAnswer.generation_schema() if mode == "assessment" else None
        job = Job("1", NOTE, mode, PromptContext(), 160, 0.0, 0, schema)

        def served(dry: bool) -> str:
            body = llama_server_completion_body("", tokens, job)
            body.update(stream=False, cache_prompt=False)
            if not dry:
                body.update(dry_multiplier=0.0, samplers=["top_k", "top_p", "temperature"])
            reply = httpx.post(f"{llama_server.url}/v1/completions", json=body, timeout=300)
            return str(reply.json()["choices"][0]["text"])

        def local(anti_repetition) -> str:
            grammar = build_grammar(schema) if schema else None
            pieces = runtime.stream(
                tokens,
                max_tokens=160,
                cancel=threading.Event(),
                grammar=grammar,
                anti_repetition=anti_repetition,
            )
            return "".join(piece.text for piece in pieces)

        without_dry = local(NO_ANTI_REPETITION)
        assert len(without_dry) > 100 and served(dry=False) == without_dry
        counted = local(dataclasses.replace(ANTI_REPETITION, counts_prompt=True))
        assert served(dry=True) == counted
    finally:
        runtime.close()


async def test_cancel_closes_the_request_and_the_server_stops_decoding(llama_server):
    engine = server_engine(llama_server.url)
    try:
        seen: list = []
        async for event in engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=2000)):
            seen.append(event)
            if sum(isinstance(e, Token) for e in seen) == 5:
                engine.cancel()
        assert isinstance(seen[-1], Cancelled) and seen[-1].during == "decode"
        assert seen[-1].partial_text == "".join(e.text for e in seen if isinstance(e, Token))
        deadline = time.monotonic() + 5
        while any(llama_server.slots_processing()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not any(llama_server.slots_processing())  # no slot still decoding the 2000 tokens
        after = await collect(engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=8)))
        assert isinstance(after[-1], Finished) and after[-1].text
    finally:
        await engine.close()


async def test_two_clients_at_once_both_progress(llama_server):
    engines = [server_engine(llama_server.url), server_engine(llama_server.url)]
    arrivals: list[list[float]] = [[], []]

    async def run(index: int) -> list:
        events = []
        async for event in engines[index].run(AnalysisRequest(note=NOTE, mode="text", max_tokens=60)):
            if isinstance(event, Token):
                arrivals[index].append(time.monotonic())
            events.append(event)
        return events

    try:
        first, second = await asyncio.wait_for(asyncio.gather(run(0), run(1)), 300)
    finally:
        for engine in engines:
            await engine.close()
    assert isinstance(first[-1], Finished) and isinstance(second[-1], Finished)
    # each got tokens while the other was still streaming: the two slots decoded together
    assert arrivals[0][0] < arrivals[1][-1] and arrivals[1][0] < arrivals[0][-1]
    overlap_start, overlap_end = max(arrivals[0][0], arrivals[1][0]), min(arrivals[0][-1], arrivals[1][-1])
    assert sum(overlap_start <= t <= overlap_end for t in arrivals[0]) >= 10
    assert sum(overlap_start <= t <= overlap_end for t in arrivals[1]) >= 10


# --- failures: each ends in one clear Failed, never a hang ------------------------------


def failures(events: list) -> list[Failed]:
    return [e for e in events if isinstance(e, Failed)]


async def test_connection_refused_fails_clearly():
    from llama_server import free_port

    engine = server_engine(f"http://127.0.0.1:{free_port()}")
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=8)), limit=30)
    finally:
        await engine.close()
    assert len(failures(events)) == 1 and events[-1] is failures(events)[0]
    assert "cannot reach the model server" in events[-1].message


async def test_a_wrong_model_name_fails_clearly(llama_server):
    engine = server_engine(llama_server.url, model="medgemma-4b-it")
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=8)), limit=30)
    finally:
        await engine.close()
    assert len(failures(events)) == 1 and events[-1].kind == "bad-model"
    assert "not the configured model 'medgemma-4b-it'" in events[-1].message


async def test_a_server_that_dies_mid_stream_fails_with_the_partial_text(server_binary, gemma_path):
    server = LlamaServer(server_binary, gemma_path, slots=1).wait_ready()
    engine = server_engine(server.url, stall_timeout=10)
    try:
        events = []
        async for event in engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=2000)):
            events.append(event)
            if sum(isinstance(e, Token) for e in events) == 5:
                server.process.kill()
    finally:
        server.stop()
        await engine.close()
    assert len(failures(events)) == 1 and events[-1] is failures(events)[0]
    failed = events[-1]
    assert failed.partial_text == "".join(e.text for e in events if isinstance(e, Token)) != ""
    assert "model server" in failed.message and "text so far is kept" in failed.message


class _MisbehavingServer(BaseHTTPRequestHandler):
    """Answers the questions a connection starts with as llama-server would, then misbehaves.

    A real llama-server cannot be made to answer 500 or hang on request, hence this fake.
    """

    behaviour = "500"

    def log_message(self, *args):
        pass

    def _json(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self._json({"status": "ok"})
        elif self.path == "/v1/models":
            self._json({"data": [{"id": "gemma-3-270m-q4_k_m.gguf"}]})
        else:
            self._json(
                {"total_slots": 1, "default_generation_settings": {"n_ctx": 4096}, "chat_template": ""}
            )

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/tokenize":
            # one token per word is enough for fitting the note; <start_of_turn> is one token: a Gemma vocabulary
            words = request["content"].split() or ([] if not request.get("add_special") else ["<bos>"])
            self._json({"tokens": list(range(2, 2 + len(words)))})
        elif self.path == "/detokenize":
            self._json({"content": " ".join("w" for _ in request["tokens"])})
        elif self.behaviour == "500":
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"code": 500, "message": "slot crashed"}}')
        else:  # "hang": accept the request and never answer
            time.sleep(30)


@pytest.fixture(params=["500", "hang"])
def misbehaving_server(request):
    handler = type("Handler", (_MisbehavingServer,), {"behaviour": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield request.param, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_a_5xx_reply_or_a_stalled_server_fails_clearly(misbehaving_server):
    behaviour, url = misbehaving_server
    engine = server_engine(url, stall_timeout=1.5)
    started = time.monotonic()
    try:
        events = await collect(engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=8)), limit=30)
    finally:
        await engine.close()
    assert len(failures(events)) == 1 and events[-1] is failures(events)[0]
    if behaviour == "500":
        assert "answered 500: slot crashed" in events[-1].message
    else:
        assert "sent nothing for too long" in events[-1].message
        assert time.monotonic() - started < 10  # the configured stall timeout, not a hang


# --- the offline guarantee with a server: no connection but to it -----------------------

SITECUSTOMIZE = textwrap.dedent(
    """
    import os, socket

    _allowed = ("127.0.0.1", int(os.environ["ALLOWED_PORT"]))
    _real_connect = socket.socket.connect
    _real_connect_ex = socket.socket.connect_ex

    def _note(address):
        with open(os.environ["NETWORK_ATTEMPTS"], "a") as log:
            log.write(f"{os.getpid()} connect({address!r})\\n")

    def _only_the_server(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and tuple(address[:2]) != _allowed:
            _note(address)
            raise PermissionError("only the configured model server may be reached")
        return _real_connect(self, address)

    def _only_the_server_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and tuple(address[:2]) != _allowed:
            _note(address)
            return 13
        return _real_connect_ex(self, address)

    socket.socket.connect = _only_the_server
    socket.socket.connect_ex = _only_the_server_ex
    """
)


def test_a_full_run_connects_to_the_configured_server_and_nothing_else(tmp_path, llama_server):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    attempts = tmp_path / "attempts.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "NETWORK_ATTEMPTS": str(attempts),
        "ALLOWED_PORT": str(llama_server.port),
    }
    probe = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9))\nexcept PermissionError:\n    print('blocked')"
    blocked = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert blocked.stdout.strip() == "blocked" and attempts.read_text().count("connect(") == 1
    attempts.unlink()
    note = tmp_path / "note.txt"
    note.write_text(NOTE)
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "analyze", "--server", llama_server.url, "--note", str(note),
         "--max-tokens", "300", "--json"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"]["server"] == llama_server.url and payload["model"]["demo"] is True
    assert f"model server {llama_server.url} over plain http (allowed" in result.stderr
    assert not attempts.exists(), attempts.read_text()


def test_doctor_shows_the_server_backend_its_model_and_health(llama_server):
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "doctor", "--server", llama_server.url],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"llama-server at {llama_server.url}" in result.stdout
    assert "gemma-3-270m" in result.stdout and "health" in result.stdout and "ok" in result.stdout


def test_the_status_bar_says_the_model_runs_on_the_server():
    from dataclasses import replace

    from models.info import ModelInfo
    from tui.widgets.status_bar import placement_text

    local = ModelInfo(
        "/m.gguf", "m.gguf", 1, "gemma3", "m", "", "", 0, 4096, False, "gemma-turns", False, 2, 0, False, ""
    )
    assert placement_text(local) == "2 threads · GPU 0 layers"
    assert placement_text(replace(local, server="http://10.0.0.5:8080")) == "server 10.0.0.5:8080"
