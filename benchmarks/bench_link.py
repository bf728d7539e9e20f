"""What the terminal front end costs over a slow link (SSH on a mobile or satellite line).

    python benchmarks/bench_link.py [--modes default,low-bandwidth] [--probes 20]

Drives the real app (demo model) under a 120x40 xterm-256color pseudo-terminal
and counts the bytes it writes. For each mode (the default, and the app started
with --low-bandwidth) it prints, in one run:

* bytes at start-up (until the model is loaded, the status bar has stopped reading
  memory, MEMORY_SETTLE_S later, and the screen is still);
* idle bytes per second, nothing happening;
* bytes per keystroke, plain text typed into the note at human speed (150 ms apart);
* bytes per keystroke typing vital signs (each change updates the live risk preview);
* bytes per generated token while an assessment streams;
* bytes for one whole case: type the note, Ctrl+R, stream, card;
* keystroke-to-echo latency p50/p95 with the terminal side read at a fixed
  rate (8 KB/s and 64 KB/s), as a slow link would deliver it.

Goals (the byte budgets live here, not in the tests): <= 300 bytes per
keystroke, 0 idle bytes per second, echo p95 <= 150 ms at 8 KB/s, one whole case
<= 60 KB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_tui import NOTE, PtyApp, history_rows  # noqa: E402

from benchmarks._common import record  # noqa: E402
from tui.app import MEMORY_SETTLE_S  # noqa: E402

TYPED_TEXT = "cough and fever for two days"  # 28 characters, as in the original measurement
TO_FIRST_VITAL = ["\t", "\t"]  # note -> image path -> the form's first field (focus moves, not counted)
VITALS_KEYS = ["2", "6"]  # typed into the first vital sign; each change updates the live risk preview
HUMAN_GAP_S = 0.15
FAST_GAP_S = 0.03
SETTLE_S = 1.0  # the screen counts as still after this long without output
LINK_RATES = {"8 KB/s": 8 * 1024, "64 KB/s": 64 * 1024}
PROBE_CHAR = "Ж"  # typed into the note for echo timing; appears nowhere else on screen
MODE_ARGS = {"default": (), "low-bandwidth": ("--low-bandwidth",)}


def fresh_data_dir(root: Path, model_cache: Path) -> Path:
    """A data dir with the demo model linked in and no draft: the note starts empty."""
    data = Path(tempfile.mkdtemp(dir=root))
    (data / "cache").mkdir()
    for item in model_cache.iterdir():
        os.link(item, data / "cache" / item.name)
    return data


def settle(app: PtyApp, quiet_s: float = SETTLE_S, timeout: float = 30) -> None:
    """Wait until the app has written nothing for `quiet_s` (at most `timeout`)."""
    app.wait_until_quiet(quiet_s, timeout)


def type_keys(app: PtyApp, keys: list[str] | str, gap_s: float) -> None:
    for key in keys:
        app.send(key)
        time.sleep(gap_s)


def measure_bytes(data: Path, args: tuple[str, ...]) -> dict[str, float]:
    app = PtyApp(data, args)
    try:
        app.wait_for("Patient note", 60)
        app.wait_for("DEMO", 120)  # the model is loaded
        time.sleep(MEMORY_SETTLE_S)  # the status bar reads memory this long after the load
        settle(app)
        figures: dict[str, float] = {"startup": app.total}

        before, started = app.total, time.monotonic()
        time.sleep(5)
        figures["idle"] = (app.total - before) / (time.monotonic() - started)

        before = app.total
        type_keys(app, TYPED_TEXT, HUMAN_GAP_S)
        settle(app)  # the draft and the live risk preview follow the last key
        figures["keystroke"] = (app.total - before) / len(TYPED_TEXT)

        type_keys(app, TO_FIRST_VITAL, HUMAN_GAP_S)
        settle(app)
        before = app.total
        type_keys(app, VITALS_KEYS, HUMAN_GAP_S)
        settle(app)
        figures["vitals_keystroke"] = (app.total - before) / len(VITALS_KEYS)

        app.send("\x0e")  # ctrl+n twice: a new, empty case
        time.sleep(0.3)
        app.send("\x0e")
        settle(app)

        runs_before = len(history_rows(data))
        case_start = app.total
        type_keys(app, NOTE, FAST_GAP_S)
        settle(app, quiet_s=0.5)
        run_start = app.total
        app.send("\x12")  # ctrl+r
        deadline = time.monotonic() + 600
        while len(history_rows(data)) == runs_before and time.monotonic() < deadline:
            time.sleep(0.1)
        settle(app)
        tokens = history_rows(data)[-1]["generated_tokens"]
        figures["token"] = (app.total - run_start) / max(1, tokens)
        figures["tokens"] = tokens
        figures["case"] = app.total - case_start
        return figures
    finally:
        app.close()


def measure_echo(data: Path, args: tuple[str, ...], rate: int, probes: int) -> list[float]:
    """Milliseconds from a key sent to its character reaching the far end, over a link of `rate` B/s."""
    app = PtyApp(data, args, read_rate=rate)
    try:
        app.wait_for("Patient note", 120)
        app.wait_for("DEMO", 180)
        settle(app)
        latencies = []
        needle = PROBE_CHAR.encode()
        for _ in range(probes):
            index = len(app.chunks)
            sent = time.monotonic()
            app.send(PROBE_CHAR)
            deadline = sent + 10
            while (seen := app.seen_at(needle, index)) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if seen is None:
                latencies.append(float("inf"))
                break
            latencies.append((seen - sent) * 1000)
            time.sleep(HUMAN_GAP_S)
        return latencies
    finally:
        app.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes", default="default,low-bandwidth", help="comma separated: default, low-bandwidth"
    )
    parser.add_argument("--probes", type=int, default=20, help="keystrokes timed per link rate (default 20)")
    parser.add_argument("--quick", action="store_true", help="default mode, few probes, to check it runs")
    args = parser.parse_args()
    if args.quick:
        args.modes, args.probes = "default", 3
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    root = Path(tempfile.mkdtemp(prefix="bench-link-"))
    try:
        from models.embedded import embedded_model_path

        model_cache = root / "model-cache"
        model_cache.mkdir()
        embedded_model_path(model_cache)
        print(
            f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; 120x40 xterm-256color"
        )
        results: dict[str, dict[str, float]] = {}
        for mode in modes:
            figures = measure_bytes(fresh_data_dir(root, model_cache), MODE_ARGS[mode])
            for label, rate in LINK_RATES.items():
                latencies = measure_echo(
                    fresh_data_dir(root, model_cache), MODE_ARGS[mode], rate, args.probes
                )
                figures[f"echo_p50 {label}"] = statistics.median(latencies)
                figures[f"echo_p95 {label}"] = percentile(latencies, 0.95)
            results[mode] = figures
        rows = [
            ("start-up, bytes", "startup", "{:,.0f}", ""),
            ("idle, bytes/s", "idle", "{:,.1f}", "goal 0"),
            ("per keystroke, note (human speed)", "keystroke", "{:,.0f}", "goal <= 300"),
            ("per keystroke, vitals (live risk)", "vitals_keystroke", "{:,.0f}", "goal <= 300"),
            ("per generated token", "token", "{:,.0f}", ""),
            ("one whole case, bytes", "case", "{:,.0f}", "goal <= 60,000"),
            *(
                (f"echo {kind} at {label}, ms", f"echo_{kind} {label}", "{:,.0f}", goal)
                for label in LINK_RATES
                for kind, goal in (("p50", ""), ("p95", "goal <= 150" if label == "8 KB/s" else ""))
            ),
        ]
        print(f"{'':38}" + "".join(f"{mode:>16}" for mode in modes))
        for title, key, fmt, goal in rows:
            print(f"{title:38}" + "".join(f"{fmt.format(results[m][key]):>16}" for m in modes) + f"   {goal}")
        for mode in modes:
            for title, key, _fmt, goal in rows:
                record(f"{title} ({mode})", results[mode][key], goal.removeprefix("goal ").strip())
        tokens = ", ".join(f"{mode} {results[mode]['tokens']:.0f}" for mode in modes)
        print(f"tokens in the case run: {tokens}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
