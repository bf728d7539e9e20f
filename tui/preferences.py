"""The terminal app's own preferences: colour theme and key bindings.

They live in the same config file as the engine's settings, as the top-level
keys the engine leaves to its front ends (`engine.config.FRONT_END_KEYS`):

    theme = "light"          # or any Textual theme name, e.g. "textual-dark"
    low_bandwidth = true     # for slow SSH links (as --low-bandwidth)
    idle_lock_minutes = 5    # a shared PC: hide the case after 5 idle minutes (off unless set)
    [keys]
    run = "f5"               # action id (see tui/actions.py) = keys
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine import FRONT_END_KEYS, config_error, config_path, read_config_table

# The plain words a clinician may write, and the Textual themes they stand for.
THEME_ALIASES = {"light": "textual-light", "dark": "textual-dark"}


class Preferences(BaseModel):
    model_config = ConfigDict(frozen=True)

    theme: str | None = None
    low_bandwidth: bool = False
    idle_lock_minutes: int | None = Field(default=None, ge=1)  # None: never lock
    keys: dict[str, str] = Field(default_factory=dict)  # action id -> keys, comma separated

    def theme_name(self, available: Collection[str]) -> str | None:
        """The Textual theme to apply, or None to keep the default."""
        if self.theme in available:
            return self.theme
        return THEME_ALIASES.get(self.theme or "")


def load_preferences(path: Path | None = None) -> Preferences:
    """Read the preferences from the config file; defaults when it does not exist.

    Raises `engine.config.ConfigError` with a one-line reason when the file or a
    preference in it is invalid.
    """
    path = path or config_path()
    if not path.exists():
        return Preferences()
    table = read_config_table(path)
    try:
        return Preferences.model_validate({key: table[key] for key in FRONT_END_KEYS if key in table})
    except ValidationError as exc:
        raise config_error(path, exc) from None
