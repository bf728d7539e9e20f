"""What this machine and installation can do, gathered as small typed records.

`gather_facts` looks at the software, the hardware, the files the app uses, the
language model file and the image model. It never raises for a broken model: a
problem is recorded as a one-line reason, and `DoctorFacts.problems` counts them.
Front ends only print the records (`medgemma-tui doctor`).
"""

from __future__ import annotations

import os
import platform
import stat
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from engine.config import (
    ENV_MODEL,
    ConfigError,
    Settings,
    cache_dir,
    cache_dir_path,
    config_path,
    data_dir_path,
    data_dir_problem,
)
from engine.files import SHARED_BITS

REPORTED_PACKAGES = ("llama-cpp-python", "onnxruntime", "textual")


@dataclass(frozen=True, slots=True)
class SoftwareFacts:
    python_version: str
    python_executable: str
    package_versions: dict[str, str]  # distribution name -> version, or "not installed"
    gpu_offload_supported: bool  # the llama.cpp build can offload layers to a GPU
    amx: bool  # the llama.cpp build uses AMX (its repacked weights are turned off)


@dataclass(frozen=True, slots=True)
class HardwareFacts:
    threads: int
    threads_set: bool  # chosen by the user rather than the physical core count
    memory_available_bytes: int
    memory_total_bytes: int


@dataclass(frozen=True, slots=True)
class FileFacts:
    config_path: Path
    config_present: bool
    data_dir: Path
    cache_dir: Path
    problem: str | None = None  # why the app cannot keep its files in the data dir
    # files and folders of the app that other local users could read, with their modes
    shared: tuple[SharedPath, ...] = ()

    @property
    def private(self) -> bool:
        return not self.shared


@dataclass(frozen=True, slots=True)
class SharedPath:
    """A file or folder of the app whose mode lets other local users in."""

    path: Path
    mode: int  # the permission bits, e.g. 0o644

    @property
    def fix(self) -> str:
        return f"chmod {'700' if self.path.is_dir() else '600'} {self.path}"


NETWORK_STATEMENT = (
    "none: the app makes no network connections; only `medgemma-tui export-vision` "
    "downloads, and only when you run it"
)


@dataclass(frozen=True, slots=True)
class ModelFileFacts:
    """The language model file and what its GGUF header says."""

    source: str  # "--model", "MEDGEMMA_TUI_MODEL", "config file", "embedded demo"
    demo: bool
    path: Path | None  # None when the embedded demo model could not be assembled
    file_size: int = 0
    gguf_version: int | None = None
    summary: dict[str, Any] | None = None  # architecture, name, quantization, ...
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ImageModelFacts:
    path: Path | None  # None: no image model is installed
    description: dict[str, Any] | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class BackendFacts:
    """Where the language model runs: this machine, or a model server and what it says."""

    kind: str  # "local worker" or "llama-server"
    location: str  # "this machine", or the server's address
    transport: str = ""  # for a server: how it is reached
    model: str = ""
    health: str = ""
    slots: int = 0
    slot_ctx: int = 0
    problem: str | None = None


LOCAL_BACKEND = BackendFacts("local worker", "this machine")


@dataclass(frozen=True, slots=True)
class DoctorFacts:
    software: SoftwareFacts
    hardware: HardwareFacts
    files: FileFacts
    language_model: ModelFileFacts
    image_model: ImageModelFacts
    model_env_var: str = ENV_MODEL
    network: str = NETWORK_STATEMENT
    over_ssh: bool = False  # SSH_CONNECTION is set: the screen may travel over a slow link
    backend: BackendFacts = LOCAL_BACKEND

    @property
    def problems(self) -> int:
        parts = (self.files, self.language_model, self.image_model, self.backend)
        return sum(part.problem is not None for part in parts) + (not self.files.private)


def gather_facts(settings: Settings) -> DoctorFacts:
    problem = data_dir_problem()  # like every start, this makes the app's own folders private
    if problem is None:
        try:
            cache_dir()
        except ConfigError:
            pass  # the language model's facts say why the cache cannot be used
    backend = backend_facts(settings)
    return DoctorFacts(
        software=software_facts(),
        hardware=hardware_facts(settings),
        files=FileFacts(
            config_path(),
            config_path().exists(),
            data_dir_path(),
            cache_dir_path(),
            problem,
            shared_paths(data_dir_path(), cache_dir_path()),  # the config file is the user's own
        ),
        language_model=model_file_facts(settings),
        image_model=image_model_facts(settings),
        over_ssh=bool(os.environ.get("SSH_CONNECTION")),
        backend=backend,
        network=NETWORK_STATEMENT
        if settings.server is None
        else SERVER_NETWORK_STATEMENT.format(url=backend.location),
    )


def shared_paths(*roots: Path) -> tuple[SharedPath, ...]:
    """Everything under the app's folders that group or other users may read."""
    found: dict[Path, SharedPath] = {}
    for root in roots:
        candidates = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
        for path in candidates:
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode)
            if mode & SHARED_BITS:
                found[path] = SharedPath(path, mode)
    return tuple(found.values())


SERVER_NETWORK_STATEMENT = (
    "only to the configured model server {url}; nothing else (the rules, safety checks "
    "and history stay on this machine)"
)


def backend_facts(settings: Settings) -> BackendFacts:
    """The backend in use; for a model server, its health and model, asked now."""
    server = settings.server
    if server is None:
        return LOCAL_BACKEND
    import asyncio

    from engine.server_backend import ServerBackend

    async def ask() -> BackendFacts:
        backend = ServerBackend(server.url, api_key=server.api_key, stall_timeout=server.stall_timeout)
        try:
            status = await backend.check()
        finally:
            await backend.close()
        problem = None if status.healthy else status.health
        if status.healthy and server.model and server.model != status.model:
            problem = f"the server serves {status.model!r}, not the configured model {server.model!r}"
        return BackendFacts(
            "llama-server",
            server.url,
            server.transport,
            status.model,
            status.health,
            status.slots,
            status.slot_ctx,
            problem,
        )

    return asyncio.run(ask())


def software_facts() -> SoftwareFacts:
    import llama_cpp

    from models.hardware import gpu_offload_supported
    from models.llm import build_has_amx

    return SoftwareFacts(
        python_version=platform.python_version(),
        python_executable=sys.executable,
        package_versions={name: package_version(name) for name in REPORTED_PACKAGES},
        gpu_offload_supported=gpu_offload_supported(),
        amx=build_has_amx(llama_cpp),
    )


def hardware_facts(settings: Settings) -> HardwareFacts:
    from models.hardware import memory_summary, physical_cores

    memory = memory_summary()
    return HardwareFacts(
        threads=settings.threads or physical_cores(),
        threads_set=settings.threads is not None,
        memory_available_bytes=memory["available_bytes"],
        memory_total_bytes=memory["total_bytes"],
    )


def model_file_facts(settings: Settings) -> ModelFileFacts:
    from models.gguf import GgufError, read_gguf

    demo = settings.model_path is None
    path = settings.model_path
    if path is None:
        from models.embedded import embedded_model_path

        try:
            path = embedded_model_path(cache_dir())
        except (OSError, ValueError) as exc:
            return ModelFileFacts(settings.model_source, demo, None, problem=str(exc))
    try:
        info = read_gguf(path)
    except GgufError as exc:
        return ModelFileFacts(settings.model_source, demo, path, problem=str(exc))
    return ModelFileFacts(settings.model_source, demo, path, info.file_size, info.version, info.summary())


def image_model_facts(settings: Settings) -> ImageModelFacts:
    if settings.vision_model is None:
        return ImageModelFacts(None)
    from models.vision import VisionModel, VisionModelError

    try:
        vision = VisionModel.load(settings.vision_model)
    except VisionModelError as exc:
        return ImageModelFacts(settings.vision_model, problem=str(exc))
    return ImageModelFacts(settings.vision_model, description=vision.describe())


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
