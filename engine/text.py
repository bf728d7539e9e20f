"""The engine's door for untrusted text: the same neutraliser the model-file readers use."""

from __future__ import annotations

from models.text import neutralise

__all__ = ["neutralise"]
