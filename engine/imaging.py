"""Image assist for the assessment: image-text similarity findings, never a diagnosis.

`check_image` and `preview_thumbnail` are what a front end needs while a path is
typed; they load the image libraries only when called.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config import Settings
from engine.schema import ImageFinding

if TYPE_CHECKING:
    from PIL.Image import Image

    from models.vision import VisionModel

TOP_K = 3
_models: dict[Path, VisionModel] = {}
_models_lock = threading.Lock()


def check_image(path: str | None) -> str | None:
    """None when `path` looks like a usable image, else a one-line reason. Never raises.

    Cheap enough to call as the path is typed: it reads headers, not pixels.
    """
    from models.images import validate_image_path

    return validate_image_path(path)


def preview_thumbnail(path: str, max_size: tuple[int, int]) -> Image:
    """A small RGB thumbnail (aspect kept) for a half-block terminal preview.

    Raises `ValueError` with a one-line reason when the image cannot be read.
    """
    from models.images import preview_image

    return preview_image(path, max_size)


def analyse(image_path: str, settings: Settings) -> tuple[list[ImageFinding], str | None]:
    """Top findings for one image, or an empty list and a one-line reason."""
    from models.images import ImageError, load_image
    from models.vision import VisionModelError

    if settings.vision_model is None:
        try:
            load_image(image_path)
        except ImageError as exc:
            return [], str(exc)
        return [], (
            "no image model is installed, so the image was not analysed: "
            "create one with `medgemma-tui export-vision` (see README)"
        )
    try:
        model = _load(settings.vision_model, settings.threads)
        # from the path, so that the model reads the file only at the size it needs
        findings = model.findings(image_path, top_k=TOP_K)
    except (VisionModelError, ImageError) as exc:
        return [], str(exc)
    return [ImageFinding(**dataclasses.asdict(finding)) for finding in findings], None


def _load(model_dir: Path, threads: int | None) -> VisionModel:
    from models.vision import VisionModel

    with _models_lock:
        if model_dir not in _models:
            _models[model_dir] = VisionModel.load(model_dir, threads=threads)
        return _models[model_dir]
