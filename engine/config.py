"""Where things live and how the app is configured.

One TOML file (validated by pydantic) merged once with environment variables
and command-line flags. The same file holds the front ends' own preferences
(`FRONT_END_KEYS`, e.g. the terminal app's theme and key bindings): the engine
accepts those keys without reading them, and rejects every other key it does
not know. Precedence for the model: `--model`, then
`MEDGEMMA_TUI_MODEL`, then `model` in the config file, else the embedded demo.
`MEDGEMMA_TUI_DATA_DIR` moves all data (drafts, history, exports, caches), which
is how tests keep away from the real home directory.

The numbers a user can set are checked by one set of rules, whether they come
from the command line or the config file (`check_options`); the rules that
depend on the model file (its trained context, its layers) are checked once
the file is known (`check_against_model`). A wrong value is a `ConfigError`
whose message names the option and its limits in one line.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.files import private_dir

APP_NAME = "medgemma-tui"
ENV_MODEL = "MEDGEMMA_TUI_MODEL"
ENV_CONFIG = "MEDGEMMA_TUI_CONFIG"
ENV_DATA_DIR = "MEDGEMMA_TUI_DATA_DIR"
ENV_SERVER = "MEDGEMMA_TUI_SERVER"


DEFAULT_CTX = 4096
DEFAULT_MAX_TOKENS = 1024
MIN_CTX = 256
DEFAULT_BATCH = 512  # prompt tokens per llama_decode call (n_batch)
DEFAULT_UBATCH = 512  # tokens per compute pass within it (n_ubatch)
MIN_UBATCH = 256  # a Gemma 3 image is 256 tokens, and must fit one pass
MAX_TEMPERATURE = 2.0


class ConfigError(Exception):
    """The configuration cannot be used; the message says why in one line."""


class DataDirError(ConfigError, OSError):
    """The data dir is missing and cannot be made, is a file, or cannot be written."""


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    vision_model: str | None = None  # folder with the INT8 ONNX vision tower
    # the ranges are checked by check_options, the same rules as on the command line
    threads: int | None = None
    batch: int | None = None
    ubatch: int | None = None
    ctx: int | None = None
    gpu_layers: str | int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # keep the history of runs this many days; older records are purged on start (None: keep all)
    history_days: int | None = Field(default=None, ge=1)
    # a shared model server (docs/clinic-server.md); its API key is read from the named variable
    server: str | None = None
    server_model: str | None = None
    server_api_key_env: str | None = None
    server_stall_timeout: float | None = None


# Top-level keys of the config file that belong to the front ends, which validate them.
FRONT_END_KEYS = frozenset({"theme", "keys", "low_bandwidth", "idle_lock_minutes"})


def config_path() -> Path:
    override = os.environ.get(ENV_CONFIG)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_dir_path() -> Path:
    """Where the data dir is, without creating it."""
    override = os.environ.get(ENV_DATA_DIR)
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))


def data_dir() -> Path:
    return _usable_dir(data_dir_path(), "data dir")


def cache_dir_path() -> Path:
    """Where the cache is, without creating it."""
    if os.environ.get(ENV_DATA_DIR):
        return data_dir_path() / "cache"
    return Path(platformdirs.user_cache_dir(APP_NAME))


def cache_dir() -> Path:
    if os.environ.get(ENV_DATA_DIR):
        data_dir()
    return _usable_dir(cache_dir_path(), "cache dir")


def data_dir_problem() -> str | None:
    """Why the app could not keep its files in the data dir, in one line; None when it can."""
    try:
        path = data_dir()
    except DataDirError as exc:
        return str(exc)
    if not os.access(path, os.W_OK | os.X_OK):
        return f"the data dir {path} is read-only; set {ENV_DATA_DIR} to a folder you can write"
    return None


def _usable_dir(path: Path, what: str) -> Path:
    if path.exists() and not path.is_dir():
        raise DataDirError(f"the {what} {path} is a file, not a folder; set {ENV_DATA_DIR} to a folder")
    try:
        private_dir(path, tighten=True)  # 0700: the notes in it are nobody else's business
    except OSError as exc:
        raise DataDirError(
            f"the {what} {path} cannot be created ({exc.strerror or exc}); set {ENV_DATA_DIR} to a folder you can write"
        ) from None
    return path


def load_file_config(path: Path | None = None) -> FileConfig:
    path = path or config_path()
    if not path.exists():
        return FileConfig()
    try:
        raw = read_config_table(path)
        engine_part = {key: value for key, value in raw.items() if key not in FRONT_END_KEYS}
        if "server_api_key" in engine_part:
            raise ConfigError(
                f"config file {path}: server_api_key: an API key never goes in the config file; "
                "put it in an environment variable and name that with server_api_key_env"
            )
        return FileConfig.model_validate(engine_part)
    except ValidationError as exc:
        raise config_error(path, exc) from None


def read_config_table(path: Path) -> dict[str, Any]:
    """The whole config file as a TOML table; ConfigError when it cannot be read as TOML."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder, not a file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def config_error(path: Path, exc: ValidationError) -> ConfigError:
    """The first validation problem of the config file, in one line."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return ConfigError(f"config file {path}: {where}: {first['msg']}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the engine needs to start, after merging all sources."""

    model_path: Path | None  # None means the embedded demo model
    model_source: str  # "--model", "MEDGEMMA_TUI_MODEL", "config file", "embedded demo"
    threads: int | None
    ctx: int
    gpu_layers: str | int
    vision_model: Path | None
    temperature: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    ctx_chosen: bool = False  # set by the user, so it must fit the model; the default is fitted
    server: ServerSettings | None = None  # None: the model runs on this machine
    batch: int = DEFAULT_BATCH
    ubatch: int = DEFAULT_UBATCH

    @classmethod
    def resolve(
        cls,
        model: str | None = None,
        threads: int | None = None,
        ctx: int | None = None,
        gpu_layers: str | int | None = None,
        vision_model: str | None = None,
        file_config: FileConfig | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        server: str | None = None,
        batch: int | None = None,
        ubatch: int | None = None,
    ) -> Settings:
        file_config = file_config if file_config is not None else load_file_config()
        # the same rules for both sources; the message names where the value came from
        check_options(threads, ctx, gpu_layers, temperature, max_tokens, source="command line")
        check_options(
            file_config.threads,
            file_config.ctx,
            file_config.gpu_layers,
            file_config.temperature,
            file_config.max_tokens,
            source=f"config file {config_path()}",
        )
        chosen_batch = (batch if batch is not None else file_config.batch) or DEFAULT_BATCH
        chosen_ubatch = (ubatch if ubatch is not None else file_config.ubatch) or DEFAULT_UBATCH
        check_batches(
            chosen_batch,
            chosen_ubatch,
            source="command line"
            if batch is not None or ubatch is not None
            else f"config file {config_path()}",
        )
        env_model = os.environ.get(ENV_MODEL)
        if model:
            model_path, source = Path(model).expanduser(), "--model"
        elif env_model:
            model_path, source = Path(env_model).expanduser(), ENV_MODEL
        elif file_config.model:
            model_path, source = Path(file_config.model).expanduser(), "config file"
        else:
            model_path, source = None, "embedded demo"
        vision = vision_model or file_config.vision_model
        chosen_gpu_layers = gpu_layers if gpu_layers is not None else file_config.gpu_layers
        chosen_ctx = ctx if ctx is not None else file_config.ctx
        chosen_temperature = temperature if temperature is not None else file_config.temperature
        chosen_max_tokens = max_tokens if max_tokens is not None else file_config.max_tokens
        return cls(
            model_path=model_path,
            model_source=source,
            threads=threads if threads is not None else file_config.threads,
            ctx=chosen_ctx or DEFAULT_CTX,
            gpu_layers=_gpu_layers(chosen_gpu_layers) if chosen_gpu_layers is not None else "auto",
            vision_model=Path(vision).expanduser() if vision else _default_vision_dir(),
            temperature=chosen_temperature if chosen_temperature is not None else 0.0,
            max_tokens=chosen_max_tokens or DEFAULT_MAX_TOKENS,
            ctx_chosen=chosen_ctx is not None,
            server=ServerSettings.resolve(server, file_config),
            batch=chosen_batch,
            ubatch=chosen_ubatch,
        )

    def check_model_file(self) -> None:
        """Check the settings that depend on the model file, when its header can be read.

        A file that cannot be read is left to the engine, which says why when it loads it.
        """
        from models.gguf import GgufError, read_gguf

        path = self.model_path
        if path is None:
            from models.embedded import embedded_model_path

            try:
                path = embedded_model_path(cache_dir())
            except (OSError, ValueError):
                return
        try:
            info = read_gguf(path)
        except (GgufError, OSError):
            return
        self.check_against_model(info.context_length, info.layer_count)

    def check_against_model(self, context_length: int, layer_count: int) -> None:
        """The rules that need the model file: its trained context and its layers (0: unknown)."""
        if self.ctx_chosen and context_length and self.ctx > context_length:
            raise ConfigError(
                f"ctx must be between {MIN_CTX} and {context_length} (the model's trained context), "
                f"not {self.ctx}"
            )
        offloadable = layer_count + 1  # llama.cpp counts the output layer too
        if isinstance(self.gpu_layers, int) and layer_count and self.gpu_layers > offloadable:
            raise ConfigError(
                f"gpu-layers must be 'auto' or between 0 and {offloadable} (the model's layers), "
                f"not {self.gpu_layers}"
            )
        usable_ctx = min(self.ctx, context_length) if context_length else self.ctx
        if self.max_tokens > usable_ctx:
            raise ConfigError(
                f"max-tokens must be between 1 and {usable_ctx} (the context), not {self.max_tokens}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "model": str(self.model_path) if self.model_path else None,
            "model_source": self.model_source,
            "threads": self.threads,
            "batch": self.batch,
            "ubatch": self.ubatch,
            "ctx": self.ctx,
            "gpu_layers": self.gpu_layers,
            "vision_model": str(self.vision_model) if self.vision_model else None,
        }


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """A shared model server, chosen by `--server`, then MEDGEMMA_TUI_SERVER, then `server` in the file."""

    url: str
    source: str  # "--server", "MEDGEMMA_TUI_SERVER" or "config file"
    transport: str  # how it is reached, in one line (plain http only to local or private addresses)
    model: str | None = None  # the model the server must serve; None accepts whichever it serves
    api_key: str | None = field(default=None, repr=False)
    stall_timeout: float = 60.0

    @classmethod
    def resolve(cls, url: str | None, file_config: FileConfig) -> ServerSettings | None:
        from engine.server_backend import DEFAULT_STALL_TIMEOUT, ServerAddressError, check_server_url

        env_url = os.environ.get(ENV_SERVER)
        if url:
            source = "--server"
        elif env_url:
            url, source = env_url, ENV_SERVER
        elif file_config.server:
            url, source = file_config.server, "config file"
        else:
            return None
        try:
            transport = check_server_url(url)
        except ServerAddressError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        stall_timeout = file_config.server_stall_timeout or DEFAULT_STALL_TIMEOUT
        if not (math.isfinite(stall_timeout) and stall_timeout > 0):
            raise ConfigError(f"config file {config_path()}: server_stall_timeout must be above 0 seconds")
        api_key = None
        if file_config.server_api_key_env:
            api_key = os.environ.get(file_config.server_api_key_env)
            if not api_key:
                raise ConfigError(
                    f"config file {config_path()}: server_api_key_env names "
                    f"{file_config.server_api_key_env}, which is not set"
                )
        return cls(url, source, transport, file_config.server_model, api_key, stall_timeout)


def max_threads() -> int:
    from models.hardware import physical_cores

    return physical_cores() * 4


def check_options(
    threads: int | None,
    ctx: int | None,
    gpu_layers: str | int | None,
    temperature: float | None,
    max_tokens: int | None,
    source: str,
) -> None:
    """The ranges every source of settings must keep to; None means not given."""
    problem = None
    if threads is not None and not 1 <= threads <= max_threads():
        problem = f"threads must be between 1 and {max_threads()} (4 per physical core), not {threads}"
    elif ctx is not None and ctx < MIN_CTX:
        problem = f"ctx must be at least {MIN_CTX} tokens, not {ctx}"
    elif temperature is not None and not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        problem = f"temperature must be a number between 0 and {MAX_TEMPERATURE:g}, not {temperature}"
    elif max_tokens is not None and max_tokens < 1:
        problem = f"max-tokens must be at least 1, not {max_tokens}"
    if problem is None and gpu_layers is not None:
        try:
            _gpu_layers(gpu_layers)
        except ValueError as exc:
            problem = str(exc)
    if problem and source == "command line":
        raise ConfigError(f"--{problem}")
    if problem:
        raise ConfigError(f"{source}: {problem}")


def check_batches(batch: int, ubatch: int, source: str) -> None:
    """The prompt batch sizes after merging; `source` is where a change came from."""
    problem = None
    if ubatch < MIN_UBATCH:
        problem = (
            f"ubatch must be at least {MIN_UBATCH} tokens (a Gemma 3 image is read in one pass), not {ubatch}"
        )
    elif batch < ubatch:
        problem = f"batch must be at least ubatch ({ubatch} tokens), not {batch}"
    if problem and source == "command line":
        raise ConfigError(f"--{problem}")
    if problem:
        raise ConfigError(f"{source}: {problem}")


def _gpu_layers(value: str | int) -> str | int:
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        layers = int(value)
    except ValueError:
        raise ValueError(f"gpu-layers must be 'auto' or a whole number, not {value!r}") from None
    if layers < 0:
        raise ValueError(f"gpu-layers must be 'auto' or 0 or more, not {layers}")
    return layers


def _default_vision_dir() -> Path | None:
    path = data_dir_path() / "vision"  # looking does not create the data dir
    return path if path.exists() else None
