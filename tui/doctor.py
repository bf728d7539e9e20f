"""`medgemma-tui doctor`: what this machine and installation can do, in plain words."""

from __future__ import annotations

from engine import DoctorFacts, Settings, gather_facts

MEDGEMMA_ADVICE = """\
No MedGemma model is configured, so the embedded demo model (gemma-3-270m, NOT a
medical model) is used. For clinical use, get a GGUF of google/medgemma-4b-it,
e.g. a Q4_K_S quant (about 2.5 GB), on a machine with internet access, copy
it here, and point the app at it. Keep its mmproj file beside it: this version
reads images with the BiomedCLIP encoder, not MedGemma's own image input.
  medgemma-tui --model /path/to/medgemma-4b-it-Q4_K_S.gguf
  or export {env}=/path/to/medgemma-4b-it-Q4_K_S.gguf
  or put  model = "/path/to/medgemma-4b-it-Q4_K_S.gguf"  in {config}"""


LOW_BANDWIDTH_ADVICE = """\
This session runs over SSH. On a slow link (mobile, satellite), start the app with
  medgemma-tui --low-bandwidth
  or put  low_bandwidth = true  in {config}
for fewer redraws, no image preview or animations, and 16 colours."""


SHOWN_SHARED_PATHS = 10


def run_doctor(settings: Settings) -> int:
    facts = gather_facts(settings)
    print_facts(facts)
    return 1 if facts.problems else 0


def print_facts(facts: DoctorFacts) -> None:
    software, hardware, files = facts.software, facts.hardware, facts.files
    section("Software")
    row("python", f"{software.python_version} ({software.python_executable})")
    for package, version in software.package_versions.items():
        row(package, version)
    row(
        "GPU offload",
        "supported by this build"
        if software.gpu_offload_supported
        else "not supported by this build (CPU only)",
    )
    if software.amx:
        row("AMX", "this build uses AMX; its repacked weights are turned off (llama.cpp#20824)")

    section("Hardware")
    row("threads", f"{hardware.threads} ({'set' if hardware.threads_set else 'physical cores'})")
    row(
        "memory",
        f"{hardware.memory_available_bytes / 2**30:.1f} GiB free of {hardware.memory_total_bytes / 2**30:.1f} GiB",
    )

    section("Files")
    row("config file", f"{files.config_path} ({'present' if files.config_present else 'absent'})")
    row("data dir", f"PROBLEM: {files.problem}" if files.problem else str(files.data_dir))
    row("cache dir", str(files.cache_dir))
    if files.private:
        row("permissions", "private: only you can read the app's files (folders 0700, files 0600)")
    else:
        row("permissions", f"PROBLEM: {len(files.shared)} path(s) other local users can read")
        for shared in files.shared[:SHOWN_SHARED_PATHS]:
            row(f"  {shared.mode:04o}", str(shared.path))
        if len(files.shared) > SHOWN_SHARED_PATHS:
            row("  ...", f"and {len(files.shared) - SHOWN_SHARED_PATHS} more")
        roots = " ".join(
            str(path) for path in dict.fromkeys((files.data_dir, files.cache_dir)) if path.exists()
        )
        print(f"  fix with: chmod -R go-rwx {roots}")

    section("Network")
    row("connections", facts.network)

    section("Backend")
    backend = facts.backend
    row("backend", f"{backend.kind} at {backend.location}" if backend.transport else backend.kind)
    if backend.transport:
        row("transport", backend.transport)
        row("health", f"PROBLEM: {backend.problem}" if backend.problem else backend.health)
        if backend.model:
            row("served model", backend.model)
            row("slots", f"{backend.slots} (context {backend.slot_ctx} tokens each)")

    section("Terminal")
    row("connection", "over SSH (SSH_CONNECTION is set)" if facts.over_ssh else "local")
    if facts.over_ssh:
        print()
        print(LOW_BANDWIDTH_ADVICE.format(config=files.config_path))

    section("Language model")
    model = facts.language_model
    row("source", model.source)
    if model.demo:
        row("demo model", str(model.path) if model.path else f"PROBLEM: {model.problem}")
    if model.path is not None:
        if model.problem:
            row("model file", f"PROBLEM: {model.problem}")
        else:
            row(
                "model file",
                f"{model.path} ({model.file_size / 2**20:,.0f} MiB, GGUF v{model.gguf_version} magic ok)",
            )
            for key, value in (model.summary or {}).items():
                row(f"  {key}", str(value))
    if model.demo:
        print()
        print(MEDGEMMA_ADVICE.format(env=facts.model_env_var, config=files.config_path))

    section("Image model")
    image = facts.image_model
    if image.path is None:
        row(
            "vision model",
            "none installed (images are refused with a clear message); "
            "create one with `medgemma-tui export-vision` on a machine with the export extra",
        )
    elif image.problem:
        row("vision model", f"PROBLEM: {image.problem}")
    else:
        row("vision model", f"{image.path}: {image.description}")


def section(title: str) -> None:
    print(f"\n{title}")


def row(label: str, value: str) -> None:
    print(f"  {label:<18} {value}")
