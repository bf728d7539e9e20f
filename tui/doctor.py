"""`medgemma-tui doctor`: what this machine and installation can do, in plain words."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from engine.config import ENV_MODEL, Settings, cache_dir, config_path, data_dir

MEDGEMMA_ADVICE = """\
No MedGemma model is configured, so the embedded demo model (gemma-3-270m, NOT a
medical model) is used. For clinical use, get a GGUF of google/medgemma-4b-it,
e.g. a Q4_K_S quant (about 2.5 GB), on a machine with internet access, copy
it here, and point the app at it. Keep its mmproj file beside it: this version
reads images with the BiomedCLIP encoder, not MedGemma's own image input.
  medgemma-tui --model /path/to/medgemma-4b-it-Q4_K_S.gguf
  or export {env}=/path/to/medgemma-4b-it-Q4_K_S.gguf
  or put  model = "/path/to/medgemma-4b-it-Q4_K_S.gguf"  in {config}"""


def run_doctor(settings: Settings) -> int:
    import llama_cpp

    from models.gguf import GgufError, read_gguf
    from models.hardware import gpu_offload_supported, memory_summary, physical_cores
    from models.llm import build_has_amx

    problems = 0
    section("Software")
    row("python", f"{platform.python_version()} ({sys.executable})")
    row("llama-cpp-python", _version("llama-cpp-python"))
    row("onnxruntime", _version("onnxruntime"))
    row("textual", _version("textual"))
    supported = gpu_offload_supported()
    row("GPU offload", "supported by this build" if supported else "not supported by this build (CPU only)")
    if build_has_amx(llama_cpp):
        row("AMX", "this build uses AMX; its repacked weights are turned off (llama.cpp#20824)")

    section("Hardware")
    row(
        "threads",
        f"{settings.threads or physical_cores()} ({'set' if settings.threads else 'physical cores'})",
    )
    memory = memory_summary()
    row(
        "memory",
        f"{memory['available_bytes'] / 2**30:.1f} GiB free of {memory['total_bytes'] / 2**30:.1f} GiB",
    )

    section("Files")
    row("config file", f"{config_path()} ({'present' if config_path().exists() else 'absent'})")
    row("data dir", str(data_dir()))
    row("cache dir", str(cache_dir()))

    section("Language model")
    row("source", settings.model_source)
    if settings.model_path is None:
        from models.embedded import embedded_model_path

        try:
            path = embedded_model_path(cache_dir())
        except (OSError, ValueError) as exc:
            row("demo model", f"PROBLEM: {exc}")
            return 1
        row("demo model", str(path))
    else:
        path = settings.model_path
    try:
        info = read_gguf(path)
    except GgufError as exc:
        row("model file", f"PROBLEM: {exc}")
        problems += 1
    else:
        row("model file", f"{path} ({info.file_size / 2**20:,.0f} MiB, GGUF v{info.version} magic ok)")
        for key, value in info.summary().items():
            row(f"  {key}", str(value))
    if settings.model_path is None:
        print()
        print(MEDGEMMA_ADVICE.format(env=ENV_MODEL, config=config_path()))

    section("Image model")
    if settings.vision_model is None:
        row(
            "vision model",
            "none installed (images are refused with a clear message); "
            "create one with `medgemma-tui export-vision` on a machine with the export extra",
        )
    else:
        from models.vision import VisionModel, VisionModelError

        try:
            vision = VisionModel.load(settings.vision_model)
            row("vision model", f"{settings.vision_model}: {vision.describe()}")
        except VisionModelError as exc:
            row("vision model", f"PROBLEM: {exc}")
            problems += 1
    return 1 if problems else 0


def section(title: str) -> None:
    print(f"\n{title}")


def row(label: str, value: str) -> None:
    print(f"  {label:<18} {value}")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
