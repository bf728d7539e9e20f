"""BiomedCLIP's vision tower on onnxruntime: embeddings and image findings.

No torch at run time. A model directory, written by `models.export_vision`,
holds:

* ``manifest.json`` - file names and sha256s, preprocessing, logit scale,
  labels, prompt template, and the INT8-vs-FP32 fidelity measured at export;
* ``vision_int8.onnx`` (and optionally ``vision_fp32.onnx``) - image to a
  512-d projection (not yet normalised; `embed` normalises);
* ``labels.npy`` - L2-normalised text embeddings of the prompts, one row per
  label, in manifest order;
* optionally ``probe.npz`` + ``probe.json`` - a linear probe trained by
  `models.probe.train_probe`, used instead of zero-shot when present.

Preprocessing reproduces open_clip's eval transform for BiomedCLIP with PIL
and numpy only: RGB, resize the shortest side to 224 (bicubic, as
torchvision's ``Resize`` does on PIL images), centre crop 224, scale to
0..1, normalise with the OpenAI-CLIP mean and std. An image file is read the
fast way (`preprocess_file`): a large JPEG is decoded at reduced size and a
large image is box-reduced before the bicubic pass, within two grey levels of
open_clip's pixels.

The manifest, the probe's metadata and its class names come from files anyone
could have written, so every string in them is neutralised as it is read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.images import ImageError, load_image
from models.text import neutralise

MANIFEST = "manifest.json"
LABELS_FILE = "labels.npy"
PROBE_NPZ = "probe.npz"
PROBE_JSON = "probe.json"
MANIFEST_FORMAT = "medgemma-vision/1"

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ZERO_SHOT_METHOD = "image-text similarity (zero-shot), not a diagnosis"
PROBE_METHOD = "linear probe on image embeddings, not a diagnosis"

_BATCH = 8
# Reading an image file for the model: a JPEG is decoded at reduced size down to
# twice the model's input side, and resizing first box-reduces by whole factors
# while at least REDUCING_GAP times the target size remains. Every pixel stays
# within two 8-bit grey levels of open_clip's transform of the fully decoded
# image (about 0.2 of a level on average); smaller images are not affected.
JPEG_DRAFT_FACTOR = 2
REDUCING_GAP = 3.0


class VisionModelError(RuntimeError):
    """The vision model cannot be loaded or used; `str(err)` is a one-line reason."""


@dataclass(frozen=True)
class VisionFinding:
    label: str
    probability: float
    method: str


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- preprocessing


def preprocess(
    image: Image.Image,
    size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    reducing_gap: float | None = None,
) -> np.ndarray:
    """open_clip's eval transform (shortest-side bicubic resize, centre crop) as a CHW float32 array.

    With `reducing_gap`, Pillow first shrinks a large image by a whole factor with
    `Image.reduce()` and resamples the rest, which is faster and within one grey
    level of the exact transform; without it the pixels equal open_clip's.
    """
    # Greyscale is resampled as one channel and turned to RGB after the crop: the
    # same pixels (channels are resampled independently) for a third of the work.
    if image.mode not in {"RGB", "L"}:
        image = image.convert("RGB")
    w, h = image.size
    # torchvision.transforms.Resize(int) on a PIL image: shortest side to `size`,
    # the other side int(size * long / short), PIL bicubic.
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=reducing_gap)
    # torchvision.transforms.CenterCrop
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    scaled = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    normalised = (scaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


def preprocess_file(
    path: str | os.PathLike[str],
    size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> np.ndarray:
    """`preprocess` of an image file, read the fast way: JPEG decoded at reduced size, Pillow's reduce.

    Raises `ImageError` for a file that cannot be read.
    """
    image = load_image(path, min_side=JPEG_DRAFT_FACTOR * size, keep_grey=True)
    return preprocess(image, size, mean, std, reducing_gap=REDUCING_GAP)


def _l2(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    unit: np.ndarray = (x / np.maximum(norm, 1e-12)).astype(np.float32)
    return unit


def neutralised_strings(value: Any) -> Any:
    """A JSON value with every string in it (keys too) made safe to print."""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, list):
        return [neutralised_strings(item) for item in value]
    if isinstance(value, dict):
        return {neutralised_strings(key): neutralised_strings(item) for key, item in value.items()}
    return value


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    probabilities: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return probabilities


# ---------------------------------------------------------------- linear probe


@dataclass(frozen=True)
class LinearProbe:
    """A multinomial (or binary) logistic regression on L2-normalised embeddings."""

    coef: np.ndarray  # (n_classes, dim), or (1, dim) for two classes
    intercept: np.ndarray  # (n_classes,) or (1,)
    classes: tuple[str, ...]

    def predict_proba(self, emb: np.ndarray) -> np.ndarray:
        logits = emb @ self.coef.T + self.intercept
        if len(self.classes) == 2 and self.coef.shape[0] == 1:
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        return _softmax(logits)

    @classmethod
    def load(cls, model_dir: Path, model_shas: Iterable[str]) -> LinearProbe:
        meta_path = model_dir / PROBE_JSON
        npz_path = model_dir / PROBE_NPZ
        try:
            meta = neutralised_strings(json.loads(meta_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise VisionModelError(
                f"linear probe metadata unreadable ({exc.__class__.__name__}): {meta_path}"
            ) from None
        if not npz_path.is_file():
            raise VisionModelError(f"linear probe weights missing: {npz_path}")
        if meta.get("npz_sha256") and sha256_file(npz_path) != meta["npz_sha256"]:
            raise VisionModelError(f"linear probe weights do not match probe.json sha256: {npz_path}")
        if meta.get("model_sha256") not in set(model_shas):
            raise VisionModelError(
                "linear probe was trained on a different vision model; retrain it (train-probe) or delete probe.json"
            )
        try:
            with np.load(npz_path, allow_pickle=False) as z:
                coef = np.asarray(z["coef"], dtype=np.float32)
                intercept = np.asarray(z["intercept"], dtype=np.float32)
                classes = tuple(neutralise(str(c)) for c in z["classes"])
        except Exception as exc:  # noqa: BLE001
            raise VisionModelError(
                f"linear probe weights unreadable ({exc.__class__.__name__}): {npz_path}"
            ) from None
        return cls(coef=coef, intercept=intercept, classes=classes)


# ---------------------------------------------------------------- the model


def physical_cores() -> int:
    """Physical CPU cores this process may run on: one onnxruntime thread each.

    A second hardware thread on the same core adds no matrix throughput and only
    competes for the core's caches.
    """
    import psutil

    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or allowed
    logical = psutil.cpu_count(logical=True) or allowed
    threads_per_core = max(1, logical // physical)
    return max(1, allowed // threads_per_core)


def _providers(requested: Sequence[str] | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        chosen = [p for p in requested if p in available]
        return chosen or ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class VisionModel:
    """An exported BiomedCLIP vision tower with its label embeddings (and optional probe)."""

    def __init__(
        self,
        model_dir: Path,
        manifest: dict[str, Any],
        session: Any,
        label_embeddings: np.ndarray,
        probe: LinearProbe | None,
        variant: str,
    ) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self.session = session
        self.label_embeddings = label_embeddings
        self.labels: tuple[str, ...] = tuple(manifest.get("labels", []))
        self.probe = probe
        self.variant = variant
        self.input_name = session.get_inputs()[0].name
        pre = manifest.get("preprocess", {})
        self.image_size = int(pre.get("image_size", 224))
        self.mean = tuple(pre.get("mean", CLIP_MEAN))
        self.std = tuple(pre.get("std", CLIP_STD))
        self.logit_scale = float(manifest.get("logit_scale", 100.0))

    # -- loading
    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        threads: int | None = None,
        *,
        variant: str = "int8",
        providers: Sequence[str] | None = None,
        verify: bool = True,
    ) -> VisionModel:
        """Open `model_dir`; raise `VisionModelError` with a one-line reason on any problem."""
        model_dir = Path(model_dir)
        if not model_dir.exists():
            raise VisionModelError(f"vision model directory not found: {model_dir}")
        if not model_dir.is_dir():
            raise VisionModelError(f"vision model path is not a directory: {model_dir}")
        mpath = model_dir / MANIFEST
        if not mpath.is_file():
            raise VisionModelError(
                f"vision model manifest missing ({MANIFEST}); run export-vision: {model_dir}"
            )
        try:
            manifest = neutralised_strings(json.loads(mpath.read_text(encoding="utf-8")))
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            raise VisionModelError(
                f"vision model manifest unreadable ({exc.__class__.__name__}): {mpath}"
            ) from None

        models = manifest.get("models", {})
        if variant not in models:
            raise VisionModelError(
                f"vision model has no '{variant}' variant (has: {', '.join(models) or 'none'})"
            )
        files = manifest.get("files", {})
        onnx_name = models[variant]
        onnx_path = model_dir / onnx_name
        if not onnx_path.is_file():
            raise VisionModelError(f"vision model file missing: {onnx_path}")
        labels_path = model_dir / manifest.get("label_embeddings", LABELS_FILE)
        for path in (onnx_path, labels_path):
            expected = files.get(path.name)
            if not path.is_file():
                raise VisionModelError(f"vision model file missing: {path}")
            if verify:
                if not expected:
                    raise VisionModelError(f"manifest lists no sha256 for {path.name}")
                if sha256_file(path) != expected:
                    raise VisionModelError(
                        f"sha256 mismatch for {path.name}: file changed or corrupt; re-export"
                    )

        try:
            label_embeddings = np.load(labels_path, allow_pickle=False).astype(np.float32)
        except Exception as exc:  # noqa: BLE001
            raise VisionModelError(
                f"label embeddings unreadable ({exc.__class__.__name__}): {labels_path}"
            ) from None
        labels = manifest.get("labels", [])
        if label_embeddings.ndim != 2 or label_embeddings.shape[0] != len(labels):
            raise VisionModelError(
                f"label embeddings shape {label_embeddings.shape} does not match {len(labels)} labels in the manifest"
            )

        import onnxruntime as ort

        so = ort.SessionOptions()
        # an export saves the portable part of this optimisation (see export_vision), so little is left to do
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = int(threads) if threads else physical_cores()
        # one image at a time runs one operator at a time: no second thread pool
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        # Threads sleep between operators instead of spinning: on a 2-4 core PC that
        # also runs the language model, spinning threads took the cores the next
        # operator needed (INT8 run time halved on a loaded 2-core machine).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(onnx_path), sess_options=so, providers=_providers(providers))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise VisionModelError(
                f"vision model is not a valid ONNX model ({first}): {onnx_path.name}"
            ) from None

        probe = None
        if (model_dir / PROBE_JSON).exists():
            shas = {files.get(name) for name in models.values()} - {None}
            probe = LinearProbe.load(model_dir, shas)
            if probe.coef.shape[1] != label_embeddings.shape[1] and label_embeddings.size:
                raise VisionModelError("linear probe dimension does not match the vision model; retrain it")
        return cls(model_dir, manifest, session, label_embeddings, probe, variant)

    # -- inference
    def preprocess(self, item: Image.Image | str | os.PathLike[str]) -> np.ndarray:
        """Model input for an image or an image file (see `preprocess_file`)."""
        if isinstance(item, Image.Image):
            return preprocess(item, self.image_size, self.mean, self.std, reducing_gap=REDUCING_GAP)
        return preprocess_file(item, self.image_size, self.mean, self.std)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embeddings of already preprocessed (N, 3, H, W) float32 pixels, L2-normalised."""
        out = []
        for start in range(0, len(pixels), _BATCH):
            batch = np.ascontiguousarray(pixels[start : start + _BATCH], dtype=np.float32)
            out.append(self.session.run(None, {self.input_name: batch})[0])
        if not out:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return _l2(np.concatenate(out, axis=0))

    def embed(
        self, images: Sequence[Image.Image | str | os.PathLike[str]] | Image.Image | str | os.PathLike[str]
    ) -> np.ndarray:
        """L2-normalised embeddings, shape (N, dim), for images or image paths.

        Paths are read with `models.images.load_image` (so `ImageError` on a bad file).
        """
        if isinstance(images, (Image.Image, str, os.PathLike)):
            images = [images]
        pixels = [self.preprocess(item) for item in images]
        if not pixels:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return self.embed_pixels(np.stack(pixels))

    def probabilities(self, embeddings: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, str]:
        """(classes, probabilities (N, C), method) from the probe if present, else zero-shot."""
        if self.probe is not None:
            return self.probe.classes, self.probe.predict_proba(embeddings), PROBE_METHOD
        if not self.labels:
            raise VisionModelError(
                "vision model has no labels for zero-shot findings; re-export with a labels file"
            )
        logits = self.logit_scale * (embeddings @ self.label_embeddings.T)
        return self.labels, _softmax(logits), ZERO_SHOT_METHOD

    def findings(
        self, image_path: str | os.PathLike[str] | Image.Image, top_k: int = 3
    ) -> list[VisionFinding]:
        """Top-k findings for one image, most probable first."""
        emb = self.embed([image_path])
        classes, probs, method = self.probabilities(emb)
        p = probs[0]
        order = np.argsort(-p, kind="stable")[: max(0, int(top_k))]
        return [VisionFinding(classes[i], float(min(1.0, max(0.0, p[i]))), method) for i in order]

    # -- information
    @property
    def embed_dim(self) -> int:
        label_dim: int = self.label_embeddings.shape[1] if self.label_embeddings.size else 0
        return int(self.manifest.get("embed_dim", label_dim))

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def describe(self) -> dict[str, Any]:
        """What the front end shows about the model: source, sizes, fidelity, method."""
        m = self.manifest
        onnx_name = m["models"][self.variant]
        return {
            "model_dir": str(self.model_dir),
            "source": m.get("source"),
            "variant": self.variant,
            "file": onnx_name,
            "size_bytes": (self.model_dir / onnx_name).stat().st_size,
            "sha256": m.get("files", {}).get(onnx_name),
            "opset": m.get("opset"),
            "embed_dim": self.embed_dim,
            "image_size": self.image_size,
            "logit_scale": self.logit_scale,
            "labels": list(self.labels),
            "prompt_template": m.get("prompt_template"),
            "quantization": m.get("quantization"),
            "fidelity": m.get("fidelity"),
            "providers": self.providers,
            "method": PROBE_METHOD if self.probe is not None else ZERO_SHOT_METHOD,
            "probe_classes": list(self.probe.classes) if self.probe is not None else None,
        }


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ImageError",
    "LinearProbe",
    "PROBE_METHOD",
    "VisionFinding",
    "VisionModel",
    "VisionModelError",
    "ZERO_SHOT_METHOD",
    "physical_cores",
    "preprocess",
    "preprocess_file",
    "sha256_file",
]
