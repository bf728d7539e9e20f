"""Where things live and how the app is configured.

One TOML file (validated by pydantic) merged once with environment variables
and command-line flags. The same file holds the front ends' own preferences
(`FRONT_END_KEYS`, e.g. the terminal app's theme and key bindings): the engine
accepts those keys without reading them, and rejects every other key it does
not know. Precedence for the model: `--model`, then
`MEDGEMMA_TUI_MODEL`, then `model` in the config file, else the embedded demo.
`MEDGEMMA_TUI_DATA_DIR` moves all data (drafts, history, exports, caches), which
is how tests keep away from the real home directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

APP_NAME = "medgemma-tui"
ENV_MODEL = "MEDGEMMA_TUI_MODEL"
ENV_CONFIG = "MEDGEMMA_TUI_CONFIG"
ENV_DATA_DIR = "MEDGEMMA_TUI_DATA_DIR"


class ConfigError(Exception):
    """The config file cannot be used; the message says why in one line."""


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    vision_model: str | None = None  # folder with the INT8 ONNX vision tower
    threads: int | None = Field(default=None, ge=1, le=512)
    ctx: int | None = Field(default=None, ge=512, le=131072)
    gpu_layers: str | int | None = None


# Top-level keys of the config file that belong to the front ends, which validate them.
FRONT_END_KEYS = frozenset({"theme", "keys", "low_bandwidth"})


def config_path() -> Path:
    override = os.environ.get(ENV_CONFIG)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_dir() -> Path:
    override = os.environ.get(ENV_DATA_DIR)
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    if os.environ.get(ENV_DATA_DIR):
        path = data_dir() / "cache"
    else:
        path = Path(platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_file_config(path: Path | None = None) -> FileConfig:
    path = path or config_path()
    if not path.exists():
        return FileConfig()
    try:
        raw = read_config_table(path)
        engine_part = {key: value for key, value in raw.items() if key not in FRONT_END_KEYS}
        return FileConfig.model_validate(engine_part)
    except ValidationError as exc:
        raise config_error(path, exc) from None


def read_config_table(path: Path) -> dict[str, Any]:
    """The whole config file as a TOML table; ConfigError when it cannot be read as TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
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

    @classmethod
    def resolve(
        cls,
        model: str | None = None,
        threads: int | None = None,
        ctx: int | None = None,
        gpu_layers: str | int | None = None,
        vision_model: str | None = None,
        file_config: FileConfig | None = None,
    ) -> Settings:
        file_config = file_config if file_config is not None else load_file_config()
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
        gpu_layers = gpu_layers if gpu_layers is not None else (file_config.gpu_layers or "auto")
        if str(gpu_layers).strip().lower() != "auto":
            try:
                gpu_layers = int(gpu_layers)
            except ValueError:
                raise ValueError(
                    f"--gpu-layers must be 'auto' or a whole number, not {gpu_layers!r}"
                ) from None
        return cls(
            model_path=model_path,
            model_source=source,
            threads=threads or file_config.threads,
            ctx=ctx or file_config.ctx or 4096,
            gpu_layers=gpu_layers,
            vision_model=Path(vision).expanduser() if vision else _default_vision_dir(),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": str(self.model_path) if self.model_path else None,
            "model_source": self.model_source,
            "threads": self.threads,
            "ctx": self.ctx,
            "gpu_layers": self.gpu_layers,
            "vision_model": str(self.vision_model) if self.vision_model else None,
        }


def _default_vision_dir() -> Path | None:
    path = data_dir() / "vision"
    return path if path.exists() else None
