"""How much the terminal front end costs, measured on the real demo model.

    python benchmarks/bench_tui.py [--runs 2]

Prints, in one run:

* tokens/s of the TUI divided by tokens/s headless (the same request through
  `Engine.run` with nothing drawn), goal >= 0.95;
* bytes written to the terminal per generated token while an assessment
  streams, the real app running under a pseudo-terminal (120x40,
  TERM=xterm-256color), start-up excluded, goal <= 250;
* keypress-to-screen latency while streaming: a character typed into the image
  field, timed until it appears in the terminal output, goal p95 <= 50 ms;
* time from a sentence's last token to its checked form: the engine's
  `SentenceChecked` event timed against the piece that completed the sentence
  (a sentence is finished when the next one begins, so this includes waiting
  for one more token); the app draws it at its next redraw, at most
  1/`MAX_REDRAWS_PER_S` later;
* time from launch to the first drawn screen.

The TUI's figures come from what the app records in its history database (the
same timings the status bar shows). On a shared machine other processes take
CPU from the model; the load average is printed so a noisy run can be spotted.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import record  # noqa: E402

NOTE = (
    "72 year old man, cough and fever for 2 days, now short of breath. RR 26, SpO2 91% on room air, "
    "BP 95/60, HR 118, temperature 38.9. New confusion this morning. Lives alone, type 2 diabetes."
)
COLUMNS, ROWS = 120, 40
PROBE_CHAR = "Ж"  # typed into the image field; appears nowhere else on screen


class PtyApp:
    """The real program under a pseudo-terminal, with every byte it writes timestamped.

    `data`: the app's data folder (its config file inside it); None keeps the caller's
    environment (MEDGEMMA_TUI_DATA_DIR and MEDGEMMA_TUI_CONFIG as they are set).
    """

    def __init__(
        self, data: Path | None = None, args: tuple[str, ...] = (), read_rate: int | None = None
    ) -> None:
        """`read_rate`: bytes per second the terminal side reads, as over a slow link (None: at once)."""
        self.read_rate = read_rate
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
        env.pop("NO_COLOR", None)
        if data is not None:
            env["MEDGEMMA_TUI_DATA_DIR"] = str(data)
            env["MEDGEMMA_TUI_CONFIG"] = str(data / "config.toml")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from tui.cli import main; sys.exit(main(sys.argv[1:]))",
                *args,
            ],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,  # the first entry of the program's import path: this checkout's code
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.chunks: list[tuple[float, bytes]] = []
        self.total = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        # A slow link: at most read_rate bytes a second, in 10 ms slices; the rest waits in the pipe.
        slice_bytes = max(1, self.read_rate // 100) if self.read_rate else 65536
        while True:
            if self.read_rate:
                time.sleep(0.01)
            try:
                data = os.read(self.master, slice_bytes)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.chunks.append((time.monotonic(), data))
                self.total += len(data)

    def text_since(self, index: int) -> str:
        with self._lock:
            return b"".join(chunk for _, chunk in self.chunks[index:]).decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float, since: int = 0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text_since(since):
                return time.monotonic()
            time.sleep(0.02)
        raise TimeoutError(f"{needle!r} not seen within {timeout}s")

    def wait_until_quiet(self, quiet_s: float, timeout: float) -> bool:
        """Wait until the program has written nothing for `quiet_s`; False if it still writes at `timeout`."""
        deadline = time.monotonic() + timeout
        last_total, last_change = self.total, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.total != last_total:
                last_total, last_change = self.total, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                return True
        return False

    def seen_at(self, needle: bytes, since: int) -> float | None:
        """When the chunk completing the first `needle` after chunk `since` arrived; None if not yet."""
        with self._lock:
            chunks = self.chunks[since:]
        joined, ends = b"", []
        for stamp, chunk in chunks:
            joined += chunk
            ends.append((len(joined), stamp))
        found = joined.find(needle)
        if found < 0:
            return None
        return next(stamp for end, stamp in ends if end >= found + len(needle))

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("\x11")  # ctrl+q
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        os.close(self.master)


def history_rows(data: Path) -> list[dict]:
    path = data / "history.sqlite3"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=1) as connection:
            return [
                json.loads(row[0])
                for row in connection.execute(
                    "SELECT timings_json FROM runs WHERE status = 'completed' ORDER BY id"
                )
            ]
    except sqlite3.Error:
        return []


def prepare_data_dir(root: Path, model_cache: Path) -> Path:
    from tui.drafts import Draft, save_draft

    data = Path(tempfile.mkdtemp(dir=root))
    (data / "cache").mkdir()
    for item in model_cache.iterdir():
        os.link(item, data / "cache" / item.name)
    os.environ["MEDGEMMA_TUI_DATA_DIR"] = str(data)
    save_draft(Draft(note=NOTE))  # the note is restored on start: nothing to type
    return data


async def headless_tokens_per_s(settings) -> tuple[float, int]:
    from engine.engine import Engine
    from engine.events import AnalysisRequest, Finished

    engine = Engine(settings)
    async for _ in engine.load():
        pass
    result = (0.0, 0)
    async for event in engine.run(AnalysisRequest(note=NOTE)):
        if isinstance(event, Finished):
            result = (event.timings.tokens_per_s, event.timings.generated_tokens)
    await engine.close()
    return result


async def sentence_check_latencies(settings) -> list[float]:
    """Seconds from the piece that completed each sentence to its `SentenceChecked` event."""
    from engine.engine import Engine
    from engine.events import AnalysisRequest, FieldDelta, SentenceChecked

    engine = Engine(settings)
    async for _ in engine.load():
        pass
    arrived: dict[str, list[tuple[int, float]]] = {}  # field -> (characters so far, when)
    consumed: dict[str, int] = {}
    latencies: list[float] = []
    async for event in engine.run(AnalysisRequest(note=NOTE)):
        now = time.perf_counter()
        if isinstance(event, FieldDelta):
            so_far = arrived.setdefault(event.name, [(0, now)])
            so_far.append((so_far[-1][0] + len(event.text), now))
        elif isinstance(event, SentenceChecked) and event.field in arrived:
            end = consumed.get(event.field, 0) + len(event.before) + len(event.raw)
            consumed[event.field] = end
            completed_at = next((when for length, when in arrived[event.field] if length >= end), now)
            latencies.append(now - completed_at)
    await engine.close()
    return latencies


def tui_run(data: Path, measure_latency: bool) -> dict:
    app = PtyApp(data)
    try:
        first_screen = app.wait_for("Patient note", 30) - app.started
        app.wait_for("DEMO", 120)  # the model is loaded
        time.sleep(1.0)
        runs_before = len(history_rows(data))
        chunk_index, bytes_before = len(app.chunks), app.total
        app.send("\x12")  # ctrl+r
        latencies: list[float] = []
        if measure_latency:
            app.wait_for(
                "Reasoning", 120, since=chunk_index
            )  # the stream's first heading: streaming has begun
            app.send("\t")  # focus moves from the (read-only) note to the image field
            time.sleep(0.2)
            while len(history_rows(data)) == runs_before and len(latencies) < 60:
                index = len(app.chunks)
                sent = time.monotonic()
                app.send(PROBE_CHAR)
                try:
                    seen = app.wait_for(PROBE_CHAR, 2, since=index)
                except TimeoutError:
                    break
                if len(history_rows(data)) == runs_before:  # still streaming when it showed
                    latencies.append(seen - sent)
                app.send("\x7f")  # backspace
                time.sleep(0.15)
        deadline = time.monotonic() + 600
        while len(history_rows(data)) == runs_before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the last repaint
        run_bytes = app.total - bytes_before
        timings = history_rows(data)[-1]
        return {
            "first_screen_s": first_screen,
            "tokens_per_s": timings["tokens_per_s"],
            "tokens": timings["generated_tokens"],
            "bytes": run_bytes,
            "latencies": latencies,
        }
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each kind (default 2)")
    parser.add_argument("--quick", action="store_true", help="one run of each kind, to check it runs")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    root = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    try:
        from engine.config import Settings
        from models.embedded import embedded_model_path

        model_cache = root / "model-cache"
        model_cache.mkdir()
        embedded_model_path(model_cache)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

        headless, tui, latency_runs = [], [], []
        prepare_data_dir(root, model_cache)
        checks = sorted(1000 * s for s in asyncio.run(sentence_check_latencies(Settings.resolve())))
        for _ in range(args.runs):
            prepare_data_dir(root, model_cache)
            headless.append(asyncio.run(headless_tokens_per_s(Settings.resolve())))
            data = prepare_data_dir(root, model_cache)
            tui.append(tui_run(data, measure_latency=False))
        data = prepare_data_dir(root, model_cache)
        latency_runs.append(tui_run(data, measure_latency=True))

        headless_tps = statistics.median(tps for tps, _ in headless)
        tui_tps = statistics.median(run["tokens_per_s"] for run in tui)
        bytes_per_token = sum(run["bytes"] for run in tui) / max(1, sum(run["tokens"] for run in tui))
        latencies = sorted(ms * 1000 for run in latency_runs for ms in run["latencies"])
        print(
            f"headless tokens/s (median of {len(headless)}): {headless_tps:.1f}  {[round(t, 1) for t, _ in headless]}"
        )
        print(
            f"TUI tokens/s      (median of {len(tui)}): {tui_tps:.1f}  {[round(r['tokens_per_s'], 1) for r in tui]}"
        )
        print(f"TUI / headless tokens/s: {tui_tps / headless_tps:.3f}  (goal >= 0.95)")
        record("TUI ÷ headless tokens/s", tui_tps / headless_tps, "≥ 0.95")
        record("bytes to the terminal per generated token", bytes_per_token, "≤ 250", "B")
        print(
            f"bytes to the terminal per generated token: {bytes_per_token:.0f}  (goal <= 250; "
            f"{sum(r['bytes'] for r in tui)} bytes for {sum(r['tokens'] for r in tui)} tokens, {COLUMNS}x{ROWS})"
        )
        if latencies:
            p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
            print(
                f"keypress-to-screen while streaming: p50 {statistics.median(latencies):.1f} ms, "
                f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms over {len(latencies)} keys  (goal p95 <= 50 ms)"
            )
            record("keypress-to-screen p95 while streaming", p95, "≤ 50", "ms")
        else:
            print("keypress-to-screen while streaming: no samples (the run ended too soon)")
        if checks:
            from tui.widgets.stream_view import MAX_REDRAWS_PER_S

            p95 = checks[min(len(checks) - 1, int(round(0.95 * (len(checks) - 1))))]
            print(
                f"sentence's last token to its checked form: p50 {statistics.median(checks):.1f} ms, "
                f"p95 {p95:.1f} ms over {len(checks)} sentences (engine; the app draws it within "
                f"{1000 / MAX_REDRAWS_PER_S:.0f} ms more)"
            )
            record("sentence's last token to its checked form, p95 (engine)", p95, "for reference", "ms")
        print(f"launch to first screen: {statistics.median(run['first_screen_s'] for run in tui):.2f} s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
