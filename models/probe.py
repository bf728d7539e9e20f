"""A linear probe on image embeddings, trained from a folder of labelled images.

``train_probe(model_dir, images_dir)`` embeds ``images_dir/<label>/*.png``
(any image `models.images.load_image` reads) with the model in `model_dir`,
fits a scikit-learn ``LogisticRegression`` and saves it beside the model as
``probe.npz`` (coef, intercept, classes; loadable with ``allow_pickle=False``)
and ``probe.json`` (metadata, sha256 of the npz and of the vision model it was
trained on). `models.vision.VisionModel` uses it instead of zero-shot.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.images import ImageError, load_image
from models.text import neutralise
from models.vision import PROBE_JSON, PROBE_NPZ, VisionModel, VisionModelError, sha256_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm"}
MIN_PER_CLASS = 2


class ProbeError(RuntimeError):
    """Training failed; `str(err)` is a one-line reason."""


@dataclass
class ProbeReport:
    classes: list[str]
    counts: dict[str, int]
    n_images: int
    train_accuracy: float
    cv_accuracy: float | None  # stratified k-fold accuracy, when every class has >= 3 images
    cv_folds: int
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    saved: list[str] = field(default_factory=list)

    def summary(self) -> str:
        cv = (
            f", cross-validated accuracy {self.cv_accuracy:.2f} ({self.cv_folds}-fold)"
            if self.cv_accuracy is not None
            else ""
        )
        skipped = f", {len(self.skipped)} file(s) skipped" if self.skipped else ""
        return (
            f"linear probe on {self.n_images} images in {len(self.classes)} classes: "
            f"training accuracy {self.train_accuracy:.2f}{cv}{skipped}"
        )


def _collect(images_dir: Path) -> tuple[list[Path], list[str], list[str]]:
    if not images_dir.is_dir():
        raise ProbeError(f"images directory not found: {images_dir}")
    paths, labels, skipped = [], [], []
    for class_dir in sorted(p for p in images_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(class_dir.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(f)
                labels.append(neutralise(class_dir.name))  # a folder name is shown as a class
            elif f.is_file() and not f.name.startswith("."):
                skipped.append(f"{f}: not an image file type")
    return paths, labels, skipped


def train_probe(
    model_dir: Path | str,
    images_dir: Path | str,
    *,
    threads: int | None = None,
    c: float = 1.0,
    seed: int = 0,
) -> ProbeReport:
    """Train and save a linear probe for the model in `model_dir`; raise `ProbeError`/`VisionModelError`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    model_dir = Path(model_dir)
    images_dir = Path(images_dir)
    # load without an existing probe: a stale probe must not stop retraining
    model = _load_without_probe(model_dir, threads)
    paths, labels, skipped = _collect(images_dir)

    embeddings, kept = [], []
    for path, label in zip(paths, labels, strict=True):
        try:
            embeddings.append(model.embed([load_image(path)])[0])
            kept.append(label)
        except ImageError as exc:
            skipped.append(f"{path}: {exc}")
    counts = {c_: kept.count(c_) for c_ in sorted(set(kept))}
    if len(counts) < 2:
        raise ProbeError(f"need at least two class folders with images in {images_dir} (found {len(counts)})")
    small = [k for k, v in counts.items() if v < MIN_PER_CLASS]
    if small:
        raise ProbeError(f"each class needs at least {MIN_PER_CLASS} images; too few in: {', '.join(small)}")

    x = np.stack(embeddings).astype(np.float64)
    y = np.array(kept)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(x, y)
    train_acc = float(clf.score(x, y))
    folds = min(5, min(counts.values()))
    cv_acc = None
    if folds >= 3:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        cv_acc = float(
            cross_val_score(LogisticRegression(C=c, max_iter=2000, random_state=seed), x, y, cv=cv).mean()
        )

    classes = np.array([str(k) for k in clf.classes_])
    npz_path = model_dir / PROBE_NPZ
    json_path = model_dir / PROBE_JSON
    tmp_npz = model_dir / (PROBE_NPZ + ".tmp.npz")
    np.savez(
        tmp_npz,
        coef=clf.coef_.astype(np.float32),
        intercept=clf.intercept_.astype(np.float32),
        classes=classes,
    )
    tmp_npz.replace(npz_path)
    meta = {
        "format": "medgemma-vision-probe/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": classes.tolist(),
        "counts": counts,
        "npz_sha256": sha256_file(npz_path),
        "model_sha256": model.manifest["files"][model.manifest["models"][model.variant]],
        "model_variant": model.variant,
        "estimator": {"type": "sklearn.linear_model.LogisticRegression", "C": c, "max_iter": 2000},
        "train_accuracy": train_acc,
        "cv_accuracy": cv_acc,
        "cv_folds": folds if cv_acc is not None else 0,
        "images_dir": str(images_dir),
    }
    json_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return ProbeReport(
        classes=classes.tolist(),
        counts=counts,
        n_images=len(kept),
        train_accuracy=train_acc,
        cv_accuracy=cv_acc,
        cv_folds=folds if cv_acc is not None else 0,
        skipped=skipped,
        saved=[str(npz_path), str(json_path)],
    )


def _load_without_probe(model_dir: Path, threads: int | None) -> VisionModel:
    probe_json = model_dir / PROBE_JSON
    if not probe_json.exists():
        return VisionModel.load(model_dir, threads)
    # set the old probe aside while loading, then put it back (training overwrites it)
    aside = model_dir / (PROBE_JSON + ".old")
    probe_json.replace(aside)
    try:
        return VisionModel.load(model_dir, threads)
    finally:
        if not probe_json.exists():
            aside.replace(probe_json)
        else:
            aside.unlink(missing_ok=True)


def remove_probe(model_dir: Path | str) -> bool:
    """Delete a saved probe (back to zero-shot); True when one was there."""
    found = False
    for name in (PROBE_JSON, PROBE_NPZ):
        p = Path(model_dir) / name
        if p.exists():
            p.unlink()
            found = True
    return found


# ---------------------------------------------------------------- CLI hooks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `medgemma-tui train-probe`."""
    parser.add_argument("--model-dir", required=True, type=Path, help="exported vision model directory")
    parser.add_argument(
        "--images", required=True, type=Path, help="folder of labelled images: <folder>/<label>/*.png"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args: argparse.Namespace) -> int:
    """Run `train-probe`; 0 on success, 1 with a one-line reason on failure."""
    try:
        report = train_probe(args.model_dir, args.images, threads=args.threads, c=args.c)
    except (ProbeError, VisionModelError, OSError) as exc:
        print(f"train-probe: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(asdict(report), indent=2))
    else:
        print(report.summary())
        for line in report.skipped:
            print(f"  skipped {line}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="train-probe", description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
