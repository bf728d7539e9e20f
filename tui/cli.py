"""`medgemma-tui`: the full-screen app, and the headless commands beside it.

Headless output follows the usual terminal conventions: the answer goes to
stdout as it is generated, side information goes to stderr, `--json` prints
one object for scripts. Everything printed has passed through the engine's
terminal neutraliser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine import (
    TOOLS,
    AnalysisRequest,
    Cancelled,
    Case,
    ConfigError,
    Failed,
    FieldCompleted,
    FieldDelta,
    Finished,
    ImageAnalysed,
    ModelLoaded,
    ModelLoading,
    PromptPrepared,
    RiskScored,
    Settings,
    Token,
)

if TYPE_CHECKING:
    from engine import Engine

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
STREAMED_FIELDS = {"reasoning": "Reasoning", "summary": "Summary"}


class Output:
    """Where text goes: stdout for the answer, stderr for everything else."""

    def __init__(self, json_mode: bool):
        self.answer = sys.stderr if json_mode else sys.stdout
        self.dim = sys.stderr.isatty() and not os.environ.get("NO_COLOR")

    def note(self, text: str) -> None:
        line = f"\x1b[2m{text}\x1b[0m" if self.dim else text
        print(line, file=sys.stderr, flush=True)

    def stream(self, text: str) -> None:
        self.answer.write(text)
        self.answer.flush()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, tool_args = parser.parse_known_args(argv)
    command = args.command or "tui"
    if command in TOOLS:
        from engine import run_tool

        return run_tool(command, tool_args, prog=parser.prog)
    if tool_args:
        parser.error(f"unrecognized arguments: {' '.join(tool_args)}")
    try:
        settings = Settings.resolve(
            model=args.model,
            threads=args.threads,
            ctx=args.ctx,
            gpu_layers=args.gpu_layers,
            vision_model=args.vision_model,
        )
    except (ConfigError, ValueError) as exc:
        print(f"medgemma-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if command == "tui":
        from tui.app import run_app

        return run_app(settings, low_bandwidth=args.low_bandwidth)
    if command == "doctor":
        from tui.doctor import run_doctor

        return run_doctor(settings)
    if command == "analyze":
        try:
            note = _read_note(args.note)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"medgemma-tui: cannot read the note: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        requests = [_request(args, note)]
        return asyncio.run(_analyze(settings, requests, args.json))
    if command == "demo":
        try:
            requests = [_request(args, case["note"], label=case["id"]) for case in _examples(args.examples)]
        except (OSError, ValueError, KeyError) as exc:
            print(f"medgemma-tui: cannot read the examples: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return asyncio.run(_analyze(settings, requests, args.json))
    parser.error(f"unknown command {command}")  # exits with status 2 (EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model",
        help="path to a GGUF model (default: MEDGEMMA_TUI_MODEL, the config file, else the demo model)",
    )
    common.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    common.add_argument("--ctx", type=int, help="context size in tokens (default 4096)")
    common.add_argument("--gpu-layers", help="'auto' (default), or how many layers to offload to a GPU")
    common.add_argument("--vision-model", help="folder with the INT8 ONNX image model")
    common.add_argument(
        "--low-bandwidth",
        action="store_true",
        help="for slow SSH links: fewer redraws, no image preview or animations, 16 colours",
    )

    generation = argparse.ArgumentParser(add_help=False)
    generation.add_argument(
        "--json", action="store_true", help="print only the final JSON on stdout; stream to stderr"
    )
    generation.add_argument(
        "--mode",
        choices=["assessment", "text"],
        default="assessment",
        help="structured assessment (default) or free text",
    )
    generation.add_argument("--max-tokens", type=int, default=1024)
    generation.add_argument("--temperature", type=float, default=0.0)
    generation.add_argument("--seed", type=int, default=0)
    generation.add_argument("--image", help="image to analyse with the note (PNG, JPEG, DICOM, ...)")

    parser = argparse.ArgumentParser(
        prog="medgemma-tui",
        description="Offline clinical decision support. Assistive only: every output requires clinical validation.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("tui", parents=[common], help="the full-screen app (the default)")
    analyze = commands.add_parser("analyze", parents=[common, generation], help="assess one note headless")
    analyze.add_argument("--note", required=True, help="note file, or - for stdin")
    demo = commands.add_parser("demo", parents=[common, generation], help="stream the bundled example cases")
    demo.add_argument("--examples", type=Path, default=EXAMPLES_DIR, help="folder of example case JSON files")
    commands.add_parser("doctor", parents=[common], help="check the installation, hardware and model files")

    for tool in TOOLS.values():
        # the tool parses its own arguments when it runs, so its modules load only then
        commands.add_parser(tool.name, help=f"{tool.help}; see {tool.name} --help", add_help=False)
    return parser


def _read_note(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    return Path(source).expanduser().read_text(encoding="utf-8")


def _request(args: argparse.Namespace, note: str, label: str | None = None) -> AnalysisRequest:
    request = AnalysisRequest(
        note=note,
        image_path=args.image,
        mode=args.mode,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
    )
    if label:
        object.__setattr__(request, "id", f"{label}-{request.id}")
    return request


def _examples(folder: Path) -> list[dict]:
    cases = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))]
    if not cases:
        raise ValueError(f"no example cases in {folder}")
    return cases


async def _analyze(settings: Settings, requests: list[AnalysisRequest], json_mode: bool) -> int:
    from engine import Engine

    out = Output(json_mode)
    engine = Engine(settings)
    interrupted = asyncio.Event()

    def on_interrupt() -> None:
        if interrupted.is_set():
            os._exit(EXIT_INTERRUPTED)  # a second Ctrl+C does not wait
        interrupted.set()
        out.note("\nstopping...")
        engine.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    results: list[dict] = []
    status = EXIT_OK
    try:
        for request in requests:
            if interrupted.is_set():
                break
            if len(requests) > 1:
                out.note(f"\n=== case {request.id.rsplit('-', 1)[0]} ===")
            status, result = await _stream_one(engine, request, out)
            if result is not None:
                results.append(result)
            if status != EXIT_OK:
                break
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await engine.close()
    if json_mode and results:
        payload = results[0] if len(results) == 1 else results
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    return status


async def _stream_one(engine: Engine, request: AnalysisRequest, out: Output) -> tuple[int, dict | None]:
    current_field = None
    image_error: str | None = None
    async for event in engine.run(request):
        match event:
            case ModelLoading(path=path, demo=demo):
                out.note(f"loading {Path(path).name}{' (embedded demo model)' if demo else ''}...")
            case ModelLoaded(info=info, load_s=load_s):
                out.note(
                    f"model: {info.name} {info.size_label} {info.quantization} · {info.threads} threads · "
                    f"GPU layers {info.gpu_layers} ({info.gpu_layers_reason}) · loaded in {load_s:.1f}s"
                )
                if info.demo:
                    out.note(_demo_banner())
            case RiskScored(risk=risk):
                for reason in risk.reasons:
                    out.note(f"rules: {reason}")
            case ImageAnalysed(findings=findings, error=error):
                image_error = error
                out.note(
                    f"image: {error}"
                    if error
                    else "image: "
                    + ", ".join(f"{f.label} {f.probability:.0%}" for f in findings)
                    + " (image-text similarity, not a diagnosis)"
                )
            case PromptPrepared() as prompt:
                if prompt.note_truncated:
                    out.note(
                        f"note truncated: {prompt.dropped_note_tokens} of {prompt.note_tokens} note tokens "
                        f"did not fit the {prompt.n_ctx}-token context and were left out"
                    )
            case Token(text=text) if request.mode == "text":
                out.stream(text)
            case FieldDelta(name=name, text=text) if name in STREAMED_FIELDS:
                if name != current_field:
                    out.stream(
                        f"\n{STREAMED_FIELDS[name]} (model, unchecked):\n"
                        if current_field
                        else f"{STREAMED_FIELDS[name]} (model, unchecked):\n"
                    )
                    current_field = name
                out.stream(text)
            case FieldCompleted():
                pass
            case Finished(text=text, timings=timings, model=model, assessment=assessment):
                out.stream("\n")
                out.note(
                    f"{timings.generated_tokens} tokens · {timings.tokens_per_s:.1f} tok/s · "
                    f"first token {timings.ttft_s:.2f}s · total {timings.total_s:.1f}s"
                )
                if assessment is None:
                    return EXIT_OK, {"text": text, "model": model.to_dict(), "timings": timings.to_dict()}
                from engine import to_text

                case = Case(request.note, request.image_path, request.vitals, image_error)
                out.stream(to_text(assessment, case))
                return EXIT_OK, assessment.model_dump(mode="json")
            case Cancelled(partial_text=partial):
                out.stream("\n")
                out.note(f"cancelled; {len(partial)} characters of generated text kept above")
                return EXIT_INTERRUPTED, {"cancelled": True, "partial_text": partial}
            case Failed(message=message, kind=kind, partial_text=partial):
                if partial:
                    out.stream("\n")
                print(f"medgemma-tui: {message}", file=sys.stderr)
                code = EXIT_BAD_INPUT if kind in ("bad-input", "bad-model") else EXIT_ERROR
                return code, ({"error": message, "kind": kind, "partial_text": partial} if partial else None)
    return EXIT_ERROR, None


def _demo_banner() -> str:
    from engine import DEMO_MODEL_WARNING

    return f"*** {DEMO_MODEL_WARNING} ***"


if __name__ == "__main__":
    sys.exit(main())
