"""`medgemma-tui`: the full-screen app, and the headless commands beside it.

Headless output follows the usual terminal conventions: the answer goes to
stdout as it is generated, side information goes to stderr, `--json` prints
one object for scripts. Everything printed has passed through the engine's
terminal neutraliser.

Ctrl+C, SIGTERM and SIGHUP all stop the same way: generation is cancelled, the
text so far is kept, one line says so, and the exit status is 128 + the
signal's number (130, 143, 129). A second signal while stopping ends at once,
without a traceback. No input ends in a traceback: a bad option, file or
config is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from engine import (
    TOOLS,
    AnalysisRequest,
    Cancelled,
    Case,
    CheckedText,
    ConfigError,
    Failed,
    FieldCompleted,
    FieldDelta,
    Finished,
    ImageAnalysed,
    ModelLoaded,
    ModelLoading,
    NoteScreened,
    PromptPrepared,
    RiskScored,
    SentenceChecked,
    Settings,
    data_dir_problem,
    neutralise,
)
from tui.history_command import add_history_parser

if TYPE_CHECKING:
    from engine import CaseResult, Engine, EvalCase, ModelReport

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
SIGNAL_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl+C"}
# Only export-vision may reach a model hub; every other command is offline even
# if a library that could reach one gets imported.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
DOWNLOADING_TOOLS = {"export-vision"}
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
STREAMED_FIELDS = {"reasoning": "Reasoning", "summary": "Summary"}
STREAM_HEADING = "{title} (model, checked sentence by sentence):\n"


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
    if command in DOWNLOADING_TOOLS:
        print(
            f"medgemma-tui: {command} downloads the model from the Hugging Face hub unless --source "
            "names a local copy; it is the only command that uses the network",
            file=sys.stderr,
        )
    else:
        os.environ.update(OFFLINE_ENV)
    if command in TOOLS:
        from engine import run_tool

        return run_tool(command, tool_args, prog=parser.prog)
    if tool_args:
        parser.error(f"unrecognized arguments: {' '.join(tool_args)}")
    if command == "history":
        from tui.history_command import run_history

        return run_history(args)
    if command in ("analyze", "demo", "eval"):
        _stop_quietly_on_signals()
    try:
        settings = Settings.resolve(
            model=args.model,
            threads=args.threads,
            batch=args.batch,
            ubatch=args.ubatch,
            ctx=args.ctx,
            gpu_layers=args.gpu_layers,
            vision_model=args.vision_model,
            temperature=getattr(args, "temperature", None),
            max_tokens=getattr(args, "max_tokens", None),
            server=args.server,
        )
        if command != "doctor":
            problem = data_dir_problem()
            if problem:
                raise ConfigError(problem)
            if settings.server is None:  # a server's model file is the server's to check
                settings.check_model_file()
    except (ConfigError, ValueError) as exc:
        print(f"medgemma-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if settings.server is not None and command != "doctor":
        print(f"medgemma-tui: {settings.server.transport}", file=sys.stderr)
    if command == "tui":
        from tui.app import run_app

        return run_app(settings, low_bandwidth=args.low_bandwidth)
    if command == "doctor":
        from tui.doctor import run_doctor

        return run_doctor(settings)
    if command in ("analyze", "demo") and args.image is not None:
        from engine import check_image

        problem = check_image(args.image)
        if problem:  # before any model is loaded
            print(f"medgemma-tui: cannot use the image: {_one_line(ValueError(problem))}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if command == "analyze":
        try:
            note = _read_note(args.note)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(f"medgemma-tui: cannot read the note: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        requests = [_request(args, settings, note)]
        return _run_headless(settings, requests, args.json)
    if command == "demo":
        try:
            requests = [
                _request(args, settings, case["note"], label=case["id"]) for case in _examples(args.examples)
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"medgemma-tui: cannot read the examples: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _run_headless(settings, requests, args.json, origin="demo")
    if command == "eval":
        return _run_eval(args, settings)
    parser.error(f"unknown command {command}")  # exits with status 2 (EXIT_BAD_INPUT)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (exit status 2), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"medgemma-tui: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--model",
        help="path to a GGUF model (default: MEDGEMMA_TUI_MODEL, the config file, else the demo model)",
    )
    common.add_argument(
        "--server",
        help="URL of a shared llama-server to run the model on (default: MEDGEMMA_TUI_SERVER, the config file, else this machine)",
    )
    common.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    common.add_argument("--batch", type=int, help="prompt tokens per model call (default 512)")
    common.add_argument(
        "--ubatch", type=int, help="prompt tokens per compute pass, 256 or more (default 512)"
    )
    common.add_argument("--ctx", type=int, help="context size in tokens (default 4096)")
    common.add_argument("--gpu-layers", help="'auto' (default), or how many layers to offload to a GPU")
    common.add_argument("--vision-model", help="folder with the INT8 ONNX image model")
    common.add_argument(
        "--low-bandwidth",
        action="store_true",
        help="for slow SSH links: fewer redraws, no image preview or animations, 16 colours",
    )

    generation = _Parser(add_help=False)
    generation.add_argument(
        "--json", action="store_true", help="print only the final JSON on stdout; stream to stderr"
    )
    generation.add_argument(
        "--mode",
        choices=["assessment", "text"],
        default="assessment",
        help="structured assessment (default) or free text",
    )
    generation.add_argument("--max-tokens", type=int, help="longest answer in tokens (default 1024)")
    generation.add_argument("--temperature", type=float, help="sampling temperature, 0 to 2 (default 0)")
    generation.add_argument("--seed", type=int, default=0)
    generation.add_argument("--image", help="image to analyse with the note (PNG, JPEG, DICOM, ...)")

    parser = _Parser(
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
    add_history_parser(commands)
    evaluation = commands.add_parser(
        "eval", parents=[common], help="acceptance check: run known cases on a model file and write a report"
    )
    evaluation.add_argument(
        "--cases", type=Path, help="JSONL file of cases (default: the bundled acceptance case set)"
    )
    evaluation.add_argument(
        "--compare", metavar="OTHER.gguf", help="run a second model file on the same cases"
    )
    evaluation.add_argument(
        "--out", type=Path, default=Path("eval-report"), help="folder for report.md and report.json"
    )
    evaluation.add_argument("--max-tokens", type=int, help="longest answer in tokens (default 1024)")
    evaluation.add_argument("--limit", type=int, help="run only the first N cases")

    for tool in TOOLS.values():
        # the tool parses its own arguments when it runs, so its modules load only then
        commands.add_parser(tool.name, help=f"{tool.help}; see {tool.name} --help", add_help=False)
    return parser


def _read_note(source: str) -> str:
    """The note, read only up to the length limit: an endless input is refused, not read whole."""
    from engine import MAX_NOTE_CHARS

    if source == "-":
        note = sys.stdin.read(MAX_NOTE_CHARS + 1)
    else:
        with Path(source).expanduser().open(encoding="utf-8") as handle:
            note = handle.read(MAX_NOTE_CHARS + 1)
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"it is longer than the limit of {MAX_NOTE_CHARS:,} characters")
    return note


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def _request(
    args: argparse.Namespace, settings: Settings, note: str, label: str | None = None
) -> AnalysisRequest:
    request = AnalysisRequest(
        note=note,
        image_path=args.image,
        mode=args.mode,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
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


def _stop_quietly_on_signals() -> None:
    """Outside the event loop (reading the note, printing the result) a stop signal ends
    the process at once with one line; inside it, `_analyze` cancels generation instead."""

    def stop(signum: int, _frame: object) -> None:
        print(f"medgemma-tui: stopped by {_signal_name(signum)}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, stop)


def _signal_name(signum: int) -> str:
    return SIGNAL_NAMES.get(signum, signal.Signals(signum).name)


def _run_headless(
    settings: Settings, requests: list[AnalysisRequest], json_mode: bool, origin: str = "analyze"
) -> int:
    status = asyncio.run(_analyze(settings, requests, json_mode, origin))
    _stop_quietly_on_signals()  # the loop gave the signals back to Python's defaults
    return status


async def _analyze(
    settings: Settings, requests: list[AnalysisRequest], json_mode: bool, origin: str = "analyze"
) -> int:
    from engine import Engine

    out = Output(json_mode)
    engine = Engine(settings, origin=origin)  # the engine records every run in the history
    stopped_by: list[int] = []  # the stop signal received, if any

    def on_stop(signum: int) -> None:
        if stopped_by:  # a second signal while stopping: end now, quietly
            os._exit(128 + stopped_by[0])
        stopped_by.append(signum)
        engine.cancel()

    loop = asyncio.get_running_loop()
    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, on_stop, stop_signal)
    results: list[dict] = []
    status = EXIT_OK
    try:
        for request in requests:
            if stopped_by:
                break
            if len(requests) > 1:
                out.note(f"\n=== case {request.id.rsplit('-', 1)[0]} ===")
            status, result = await _stream_one(engine, request, out, stopped_by)
            if result is not None:
                results.append(result)
            if status != EXIT_OK:
                break
    finally:
        await engine.close()  # the signal handlers stay until the worker is stopped
    if engine.audit.problem:
        out.note(f"warning: {engine.audit.problem}")
    if stopped_by:
        status = 128 + stopped_by[0]
        if not results or results[-1].get("complete", True):  # stopped between cases
            out.note(f"cancelled by {_signal_name(stopped_by[0])} before the next case")
            results.append({"complete": False, "cancelled": True, "partial_text": ""})
        results[-1]["stopped_by"] = signal.Signals(stopped_by[0]).name
    if json_mode and results:
        payload = results[0] if len(results) == 1 else results
        print(json.dumps(payload, indent=2, ensure_ascii=False), flush=True)
    return status


async def _stream_one(
    engine: Engine, request: AnalysisRequest, out: Output, stopped_by: list[int]
) -> tuple[int, dict | None]:
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
            case NoteScreened(flags=flags):
                for flag in flags:
                    out.note(f"warning: {flag.text}" + (f" ({flag.detail})" if flag.detail else ""))
                out.note(
                    "warning: the note is treated as patient data; findings resting on that text are not trusted"
                )
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
            case SentenceChecked(text=text, field=name, before=before):
                # each sentence once it is finished and through the safety layer
                if name and name != current_field:
                    title = STREAMED_FIELDS.get(name, name)
                    out.stream(("\n\n" if current_field else "") + STREAM_HEADING.format(title=title))
                    current_field, before = name, ""
                out.stream(before + text)
            case FieldDelta() | FieldCompleted():
                pass  # shown as checked sentences and in the final report
            case Finished(timings=timings, model=model, assessment=assessment, checked=checked):
                out.stream("\n")
                out.note(
                    f"{timings.generated_tokens} tokens · {timings.tokens_per_s:.1f} tok/s · "
                    f"first token {timings.ttft_s:.2f}s · total {timings.total_s:.1f}s"
                )
                if assessment is None:
                    if checked is None:
                        return EXIT_ERROR, None
                    out.stream(_text_mode_footer(checked))
                    return EXIT_OK, {
                        **checked.to_dict(),
                        "model": model.to_dict(),
                        "timings": timings.to_dict(),
                    }
                from engine import to_text

                case = Case(request.note, request.image_path, request.vitals, image_error)
                out.stream(to_text(assessment, case))
                return EXIT_OK, assessment.model_dump(mode="json")
            case Cancelled(partial_text=partial):
                return EXIT_INTERRUPTED, _stopped(out, partial, stopped_by)
            case Failed(partial_text=partial) if stopped_by:
                # the terminal's signal can reach the worker too; it was stopping anyway
                return EXIT_INTERRUPTED, _stopped(out, partial, stopped_by)
            case Failed(message=message, kind=kind, partial_text=partial):
                if partial:
                    out.stream("\n")
                print(f"medgemma-tui: {message}", file=sys.stderr)
                code = EXIT_BAD_INPUT if kind in ("bad-input", "bad-model") else EXIT_ERROR
                return code, (
                    {"complete": False, "error": message, "kind": kind, "partial_text": partial}
                    if partial
                    else None
                )
    return EXIT_ERROR, None


def _stopped(out: Output, partial: str, stopped_by: list[int]) -> dict:
    """One line for a stopped run, and the partial object `--json` prints."""
    out.stream("\n")
    cause = _signal_name(stopped_by[0]) if stopped_by else "request"
    where = "in the JSON" if out.answer is sys.stderr else "above"
    out.note(f"cancelled by {cause}; {len(partial)} characters of generated text kept {where}")
    return {"complete": False, "cancelled": True, "partial_text": partial}


def _text_mode_footer(checked: CheckedText) -> str:
    """Under the free text: its safety flags (what it leaves out first) and the notes."""
    from engine import DISCLAIMER

    lines = ["", "Safety flags:" if checked.flags else "Safety flags: (none)"]
    lines += [
        f"- {flag.kind}: {flag.text}" + (f" ({flag.detail})" if flag.detail else "") for flag in checked.flags
    ]
    notes = checked.clinical_notes.replace(DISCLAIMER, "").strip()
    if notes:
        lines += ["", notes]
    lines += ["", f"*** {DISCLAIMER} ***", ""]
    return neutralise("\n".join(lines))


def _run_eval(args: argparse.Namespace, settings: Settings) -> int:
    """`eval`: each model file in turn over the cases, then the report, also when stopped early."""
    from datetime import datetime

    from engine import ACCEPTANCE_CASES, CaseFileError, ReportContext, load_cases, write_report

    case_file = args.cases or ACCEPTANCE_CASES
    try:
        cases = load_cases(case_file)
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, not {args.limit}")
        cases = cases[: args.limit]
        all_settings = [settings]
        for model in (args.model, args.compare):
            # each file is checked before any case runs, not after the first model's whole run
            if model and not Path(model).expanduser().is_file():
                raise ValueError(f"model file not found: {model}")
        if args.compare:
            other = Settings.resolve(
                model=args.compare,
                threads=args.threads,
                batch=args.batch,
                ubatch=args.ubatch,
                ctx=args.ctx,
                gpu_layers=args.gpu_layers,
                vision_model=args.vision_model,
                max_tokens=args.max_tokens,
            )
            other.check_model_file()
            all_settings.append(other)
    except (CaseFileError, ConfigError, ValueError) as exc:
        print(f"medgemma-tui: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = datetime.now().astimezone()
    reports, stopped_by = asyncio.run(_evaluate(all_settings, cases))
    _stop_quietly_on_signals()  # the loop gave the signals back to Python's defaults
    context = ReportContext(
        case_set=str(case_file),
        max_tokens=settings.max_tokens,
        started=started,
        stopped_by=_signal_name(stopped_by) if stopped_by else "",
    )
    markdown, data = write_report(reports, context, args.out)
    for report in reports:
        overall = report.overall()
        print(
            f"{report.label}: {overall['cases_run']} of {overall['cases_planned']} cases · valid JSON "
            f"{overall['valid_json']}/{overall['cases_run']} · model level agrees with the band "
            f"{overall['level_vs_band']['agrees']} · {overall['mean_tokens_per_s'] or '–'} tok/s",
            file=sys.stderr,
        )
        if report.error:
            print(f"medgemma-tui: {report.label} stopped: {report.error}", file=sys.stderr)
    print(f"report: {markdown} and {data}", file=sys.stderr)
    mismatches = sum(report.overall()["rule_mismatches"] for report in reports)
    if mismatches:
        print(
            f"medgemma-tui: RULE SCORE MISMATCH in {mismatches} case(s): the vitals reader or scorer "
            "disagrees with the expected values; see the report",
            file=sys.stderr,
        )
    if stopped_by:
        print(
            f"medgemma-tui: stopped by {_signal_name(stopped_by)}; the report is marked incomplete",
            file=sys.stderr,
        )
        return 128 + stopped_by
    if mismatches or any(report.error for report in reports):
        return EXIT_ERROR
    return EXIT_OK


async def _evaluate(
    all_settings: list[Settings], cases: list[EvalCase]
) -> tuple[list[ModelReport], int | None]:
    """Each model file over the cases in turn; a stop signal ends the run, keeping finished cases."""
    from engine import Evaluation

    reports: list[ModelReport] = []
    stopped_by: list[int] = []
    current: list[Evaluation] = []
    progress = _Progress()

    def on_stop(signum: int) -> None:
        if stopped_by:  # a second signal while stopping: end now, quietly
            os._exit(128 + stopped_by[0])
        stopped_by.append(signum)
        if current:
            current[-1].cancel()

    loop = asyncio.get_running_loop()
    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, on_stop, stop_signal)
    for settings in all_settings:
        if stopped_by:
            break
        evaluation = Evaluation(settings, cases)
        current.append(evaluation)
        name = settings.model_path.name if settings.model_path else "embedded demo model"
        progress.start(name)
        reports.append(await evaluation.run(progress.update))
        progress.end()
    return reports, stopped_by[0] if stopped_by else None


class _Progress:
    """A progress bar on stderr when it is a terminal; one plain line per case otherwise."""

    WIDTH = 24

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.model = ""

    def start(self, model: str) -> None:
        self.model = model
        print(f"evaluating {model}", file=sys.stderr, flush=True)

    def update(self, done: int, total: int, case_id: str, result: CaseResult | None) -> None:
        if self.live:
            filled = self.WIDTH * done // max(total, 1)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            sys.stderr.write(f"\r\x1b[2K[{bar}] {done}/{total} {neutralise(case_id)[:40]}")
            sys.stderr.flush()
        elif result is not None:
            level = result.model_level or "no level"
            outcome = "valid JSON" if result.valid_json else "invalid JSON"
            if result.error:
                outcome = f"failed: {neutralise(result.error)}"
            print(
                f"case {done}/{total} {neutralise(case_id)}: {outcome}, model {level}, "
                f"rule band {result.rules.band if result.rules else None}, {result.tokens_per_s:.1f} tok/s",
                file=sys.stderr,
                flush=True,
            )

    def end(self) -> None:
        if self.live:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _demo_banner() -> str:
    from engine import DEMO_MODEL_WARNING

    return f"*** {DEMO_MODEL_WARNING} ***"


if __name__ == "__main__":
    sys.exit(main())
