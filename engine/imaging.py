"""Image assist for the assessment: image-text similarity findings, never a diagnosis."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config import Settings
from engine.schema import ImageFinding

if TYPE_CHECKING:
    from models.vision import VisionModel

TOP_K = 3
_models: dict[Path, VisionModel] = {}
_models_lock = threading.Lock()


def analyse(image_path: str, settings: Settings) -> tuple[list[ImageFinding], str | None]:
    """Top findings for one image, or an empty list and a one-line reason."""
    from models.images import ImageError, load_image
    from models.vision import VisionModelError

    try:
        image = load_image(image_path)
    except ImageError as exc:
        return [], str(exc)
    if settings.vision_model is None:
        return [], (
            "no image model is installed, so the image was not analysed: "
            "create one with `medgemma-tui export-vision` (see README)"
        )
    try:
        model = _load(settings.vision_model, settings.threads)
        findings = model.findings(image, top_k=TOP_K)
    except (VisionModelError, ImageError) as exc:
        return [], str(exc)
    return [ImageFinding(**dataclasses.asdict(finding)) for finding in findings], None


def _load(model_dir: Path, threads: int | None) -> VisionModel:
    from models.vision import VisionModel

    with _models_lock:
        if model_dir not in _models:
            _models[model_dir] = VisionModel.load(model_dir, threads=threads)
        return _models[model_dir]
