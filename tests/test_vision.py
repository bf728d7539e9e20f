"""The ONNX vision runtime: preprocessing, loading, embeddings, zero-shot and the linear probe.

Runs without torch (a tiny ONNX graph stands in for the exported tower, see
vision_fixtures), except the comparison with open_clip's own transform.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vision_fixtures import make_onnx_model_dir, structured_images

from models import probe as probe_cli
from models.images import ImageError, load_image
from models.probe import ProbeError, remove_probe, train_probe
from models.vision import (
    CLIP_MEAN,
    CLIP_STD,
    PROBE_METHOD,
    ZERO_SHOT_METHOD,
    VisionFinding,
    VisionModel,
    VisionModelError,
    preprocess,
    preprocess_file,
    sha256_file,
)

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["xray a", "skin a", "xray b", "skin b"]


@pytest.fixture(scope="module")
def ref_images():
    return structured_images(4, seed=11)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, ref_images):
    return make_onnx_model_dir(tmp_path_factory.mktemp("vision") / "model", LABELS, ref_images)


@pytest.fixture()
def fresh_dir(tmp_path, ref_images):
    return make_onnx_model_dir(tmp_path / "model", LABELS, ref_images)


@pytest.fixture(scope="module")
def model(model_dir):
    return VisionModel.load(model_dir, threads=1)


# ---------------------------------------------------------------- preprocessing


def test_preprocess_shape_and_normalisation():
    im = Image.new("RGB", (300, 200), (255, 0, 128))
    x = preprocess(im)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    expected = (np.array([1.0, 0.0, 128 / 255]) - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert np.allclose(x[:, 100, 100], expected, atol=1e-5)


def test_preprocess_crops_centre_of_shortest_side_resize():
    arr = np.zeros((224, 448, 3), np.uint8)
    arr[:, 112:336] = 255  # the centre square is white
    x = preprocess(Image.fromarray(arr))
    white = (1.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert np.allclose(x[:, :, 5], white[:, None], atol=1e-4)
    assert np.allclose(x[:, :, 218], white[:, None], atol=1e-4)


SIZES = [(224, 224), (640, 480), (480, 640), (1001, 333), (150, 97), (225, 224), (512, 512), (37, 300)]


@pytest.mark.parametrize("size", SIZES)
def test_preprocess_matches_open_clip(size):
    """Same pixels as open_clip's eval transform for BiomedCLIP.

    Tolerance 1e-5: both resize and crop through the same PIL bicubic code
    path on uint8 pixels, so the only differences are float32 rounding in
    the divide-by-255 and normalise steps (a few ULP of values up to ~2.2).
    """
    open_clip = pytest.importorskip("open_clip")
    pytest.importorskip("torch")
    transform = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    rng = np.random.default_rng(sum(size))
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([(xx * 7 + yy) % 256, (yy * 3) % 256, rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
    images = [Image.fromarray(arr)] + [
        s.resize(size, Image.Resampling.BILINEAR) for s in structured_images(2, seed=w)
    ]
    for im in images:
        assert im.size == size
        ours = preprocess(im)
        theirs = transform(im).numpy()
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-5


def _grey_levels(normalised_difference: np.ndarray) -> np.ndarray:
    """A difference of normalised CHW pixels in 8-bit grey levels of each channel."""
    result: np.ndarray = normalised_difference * np.asarray(CLIP_STD)[:, None, None] * 255.0
    return result


def _large_files(tmp_path: Path) -> dict[str, Path]:
    """A 4000x3000 camera JPEG and a 3000x2400 greyscale X-ray PNG, large enough for every shortcut."""
    xray, skin = structured_images(2, seed=5, size=512)
    files = {"jpeg": tmp_path / "skin_4000x3000.jpg", "png": tmp_path / "xray_3000x2400.png"}
    skin.resize((4000, 3000), Image.Resampling.BICUBIC).save(files["jpeg"], quality=92)
    xray.convert("L").resize((3000, 2400), Image.Resampling.BICUBIC).save(files["png"])
    return files


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_preprocess_file_of_a_large_image_matches_open_clip(kind, tmp_path):
    """The fast file path (JPEG draft, Pillow reduce) against open_clip on the fully decoded file.

    The shortcuts average pixels in a different order than one bicubic pass, so
    the tolerance is two 8-bit grey levels per pixel instead of 1e-5 (rounding
    twice can move a value by one level each time); on average the difference is
    a small fraction of a level.
    """
    open_clip = pytest.importorskip("open_clip")
    pytest.importorskip("torch")
    transform = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    path = _large_files(tmp_path)[kind]
    with Image.open(path) as full:
        theirs = transform(full.convert("RGB")).numpy()
    ours = preprocess_file(path)
    exact = preprocess(load_image(path))
    assert np.abs(exact - theirs).max() <= 1e-5
    assert not np.array_equal(ours, exact)  # a shortcut was taken
    levels = _grey_levels(np.abs(ours - theirs))
    print(f"\n{path.name}: differs by at most {levels.max():.2f} grey levels, {levels.mean():.3f} on average")
    assert levels.max() <= 2.0 + 1e-3
    assert levels.mean() < 0.25


@pytest.mark.parametrize("size", [(640, 480), (880, 660), (1001, 333)])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_preprocess_file_of_a_smaller_image_is_exact(size, suffix, mode, tmp_path):
    """Below twice the input size (JPEG) and three times (reduce) no shortcut applies: open_clip's pixels.

    A greyscale file is resampled as one channel, which gives the very same pixels.
    """
    path = tmp_path / f"image{suffix}"
    structured_images(1, seed=3)[0].resize(size).convert(mode).save(path)
    assert load_image(path, keep_grey=True).mode == mode
    assert np.array_equal(preprocess_file(path), preprocess(load_image(path)))


def test_preprocess_converts_non_rgb():
    g = Image.fromarray(np.tile(np.arange(224, dtype=np.uint8), (224, 1)), mode="L")
    assert np.allclose(preprocess(g), preprocess(g.convert("RGB")))
    large = structured_images(1, seed=8, size=512)[0].convert("L").resize((1500, 1100))
    for gap in (None, 3.0):  # greyscale is resampled as one channel: identical pixels
        grey = preprocess(large, reducing_gap=gap)
        assert np.array_equal(grey, preprocess(large.convert("RGB"), reducing_gap=gap))
    palette = large.convert("P")
    assert np.array_equal(preprocess(palette), preprocess(palette.convert("RGB")))


# ---------------------------------------------------------------- loading


def _load_error(path, **kw) -> str:
    with pytest.raises(VisionModelError) as info:
        VisionModel.load(path, **kw)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


def test_load_missing_dir(tmp_path):
    assert "not found" in _load_error(tmp_path / "nowhere")


def test_load_path_is_a_file(tmp_path):
    f = tmp_path / "x.onnx"
    f.write_bytes(b"x")
    assert "not a directory" in _load_error(f)


def test_load_missing_manifest(tmp_path):
    assert "manifest missing" in _load_error(tmp_path)


def test_load_corrupt_manifest(fresh_dir):
    (fresh_dir / "manifest.json").write_text("{not json")
    assert "manifest unreadable" in _load_error(fresh_dir)


def test_load_missing_onnx(fresh_dir):
    (fresh_dir / "vision_int8.onnx").unlink()
    assert "missing" in _load_error(fresh_dir)


def test_load_sha_mismatch(fresh_dir):
    p = fresh_dir / "vision_int8.onnx"
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    assert "sha256 mismatch" in _load_error(fresh_dir)


def test_load_corrupt_onnx_with_matching_sha(fresh_dir):
    p = fresh_dir / "vision_int8.onnx"
    p.write_bytes(b"this is not an onnx model")
    manifest = json.loads((fresh_dir / "manifest.json").read_text())
    manifest["files"][p.name] = sha256_file(p)
    (fresh_dir / "manifest.json").write_text(json.dumps(manifest))
    assert "not a valid ONNX model" in _load_error(fresh_dir)


def test_load_labels_mismatch(fresh_dir):
    manifest = json.loads((fresh_dir / "manifest.json").read_text())
    manifest["labels"] = manifest["labels"][:2]
    (fresh_dir / "manifest.json").write_text(json.dumps(manifest))
    assert "does not match" in _load_error(fresh_dir)


def test_load_unknown_variant(model_dir):
    assert "no 'fp32' variant" in _load_error(model_dir, variant="fp32")


def test_threads_and_provider(model):
    assert model.session.get_session_options().intra_op_num_threads == 1
    assert model.providers[-1] == "CPUExecutionProvider"


# ---------------------------------------------------------------- embeddings and zero-shot


def test_embed_normalised_and_batch_consistent(model, ref_images, tmp_path):
    images = structured_images(11, seed=5)
    batch = model.embed(images)
    assert batch.shape == (11, 64) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([model.embed(im)[0] for im in images[:3]])
    assert np.allclose(single, batch[:3], atol=1e-5)
    p = tmp_path / "x.png"
    images[0].save(p)
    assert np.allclose(model.embed([p])[0], batch[0], atol=1e-5)
    assert model.embed([]).shape == (0, 64)


def test_embed_bad_path_raises_image_error(model, tmp_path):
    p = tmp_path / "not.png"
    p.write_text("text")
    with pytest.raises(ImageError):
        model.embed([p])


def test_zero_shot_findings(model, ref_images, tmp_path):
    for i, im in enumerate(ref_images):
        p = tmp_path / f"img{i}.png"
        im.save(p)
        found = model.findings(p, top_k=3)
        assert len(found) == 3
        assert found[0].label == LABELS[i]
        assert all(f.method == ZERO_SHOT_METHOD for f in found)
        probs = [f.probability for f in found]
        assert probs == sorted(probs, reverse=True)
        assert all(0.0 <= q <= 1.0 for q in probs) and sum(probs) <= 1.0 + 1e-6
    assert len(model.findings(tmp_path / "img0.png", top_k=10)) == len(LABELS)


def test_logit_scale_controls_sharpness(tmp_path, ref_images):
    sharp = VisionModel.load(make_onnx_model_dir(tmp_path / "a", LABELS, ref_images, logit_scale=100.0))
    soft = VisionModel.load(make_onnx_model_dir(tmp_path / "b", LABELS, ref_images, logit_scale=1.0))
    im = ref_images[1]
    assert sharp.findings(im)[0].probability > soft.findings(im)[0].probability
    assert soft.findings(im, top_k=4)[3].probability > 0.05


def test_finding_is_frozen_and_converts_to_schema(model, ref_images):
    from engine.schema import ImageFinding

    f = model.findings(ref_images[0], top_k=1)[0]
    assert isinstance(f, VisionFinding)
    with pytest.raises(FrozenInstanceError):
        f.label = "x"  # type: ignore[misc]
    converted = ImageFinding(**asdict(f))
    assert converted.method == ZERO_SHOT_METHOD == ImageFinding.model_fields["method"].default


def test_describe(model):
    d = model.describe()
    assert d["labels"] == LABELS and d["embed_dim"] == 64 and d["image_size"] == 224
    assert d["method"] == ZERO_SHOT_METHOD and d["size_bytes"] > 0 and len(d["sha256"]) == 64
    json.dumps(d)


# ---------------------------------------------------------------- linear probe


def _labelled_folder(root: Path, n: int = 6) -> Path:
    images = structured_images(2 * n, seed=3)
    for i, im in enumerate(images):
        cls = "xray" if i % 2 == 0 else "skin"
        (root / cls).mkdir(parents=True, exist_ok=True)
        im.save(root / cls / f"{i}.png")
    (root / "skin" / "readme.txt").write_text("not an image")
    (root / "skin" / "broken.png").write_bytes(b"")
    return root


def test_train_probe_and_use_it(fresh_dir, tmp_path):
    folder = _labelled_folder(tmp_path / "train")
    report = train_probe(fresh_dir, folder)
    assert report.classes == ["skin", "xray"]
    assert report.counts == {"skin": 6, "xray": 6}
    assert report.train_accuracy == 1.0 and report.cv_accuracy is not None and report.cv_accuracy >= 0.8
    assert len(report.skipped) == 2 and any("broken.png" in s for s in report.skipped)
    assert "linear probe on 12 images" in report.summary()
    # saved in a safe format
    with np.load(fresh_dir / "probe.npz", allow_pickle=False) as z:
        assert z["coef"].shape == (1, 64) and list(z["classes"]) == ["skin", "xray"]
    meta = json.loads((fresh_dir / "probe.json").read_text())
    assert meta["npz_sha256"] == sha256_file(fresh_dir / "probe.npz")
    assert not list(fresh_dir.glob("*.pkl")) and not list(fresh_dir.glob("*.joblib"))

    m = VisionModel.load(fresh_dir)
    test_images = structured_images(4, seed=99)
    for i, im in enumerate(test_images):
        found = m.findings(im, top_k=2)
        assert found[0].method == PROBE_METHOD
        assert found[0].label == ("xray" if i % 2 == 0 else "skin")
        assert abs(sum(f.probability for f in found) - 1.0) < 1e-5
    assert m.describe()["method"] == PROBE_METHOD

    # agrees with scikit-learn's own predict_proba
    from sklearn.linear_model import LogisticRegression

    with np.load(fresh_dir / "probe.npz", allow_pickle=False) as z:
        clf = LogisticRegression()
        clf.coef_, clf.intercept_, clf.classes_ = (
            z["coef"].astype(float),
            z["intercept"].astype(float),
            z["classes"],
        )
    emb = m.embed(test_images)
    assert np.allclose(clf.predict_proba(emb.astype(float)), m.probe.predict_proba(emb), atol=1e-5)

    assert remove_probe(fresh_dir)
    assert VisionModel.load(fresh_dir).findings(test_images[0])[0].method == ZERO_SHOT_METHOD


def test_multiclass_probe(fresh_dir, tmp_path):
    images = structured_images(9, seed=21)
    for i, im in enumerate(images):
        d = tmp_path / "three" / f"c{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        im.save(d / f"{i}.png")
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(d / f"{i}f.png")
    report = train_probe(fresh_dir, tmp_path / "three")
    assert report.classes == ["c0", "c1", "c2"]
    m = VisionModel.load(fresh_dir)
    assert m.probe.coef.shape == (3, 64)
    p = m.probe.predict_proba(m.embed(images[:3]))
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_probe_refuses_other_model(fresh_dir, tmp_path):
    train_probe(fresh_dir, _labelled_folder(tmp_path / "train"))
    meta = json.loads((fresh_dir / "probe.json").read_text())
    meta["model_sha256"] = "0" * 64
    (fresh_dir / "probe.json").write_text(json.dumps(meta))
    assert "different vision model" in _load_error(fresh_dir)
    # retraining replaces the stale probe
    train_probe(fresh_dir, _labelled_folder(tmp_path / "train"))
    assert VisionModel.load(fresh_dir).probe is not None


def test_probe_tampered_weights(fresh_dir, tmp_path):
    train_probe(fresh_dir, _labelled_folder(tmp_path / "train"))
    with open(fresh_dir / "probe.npz", "ab") as fh:
        fh.write(b"extra")
    assert "do not match" in _load_error(fresh_dir)


def test_probe_needs_two_classes(fresh_dir, tmp_path):
    folder = _labelled_folder(tmp_path / "train")
    import shutil

    shutil.rmtree(folder / "skin")
    with pytest.raises(ProbeError, match="two class folders"):
        train_probe(fresh_dir, folder)
    with pytest.raises(ProbeError, match="not found"):
        train_probe(fresh_dir, tmp_path / "missing")


def test_probe_cli(fresh_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    probe_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--model-dir", str(fresh_dir), "--images", str(_labelled_folder(tmp_path / "t"))]
    )
    assert probe_cli.main(args) == 0
    assert "linear probe on 12 images" in capsys.readouterr().out
    args = parser.parse_args(["--model-dir", str(tmp_path / "none"), "--images", str(tmp_path)])
    assert probe_cli.main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("train-probe:") and "\n" not in err


# ---------------------------------------------------------------- boundaries

MINE = sorted(path.name for path in (ROOT / "models").glob("*.py"))  # every models module


@pytest.mark.parametrize("name", MINE)
def test_models_do_not_import_engine_or_tui(name):
    tree = ast.parse((ROOT / "models" / name).read_text())
    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module]
        for mod in mods:
            assert mod.split(".")[0] not in {"engine", "tui"}, f"{name} imports {mod}"


def test_runtime_never_imports_torch():
    code = (
        "import sys; import models.images, models.vision, models.probe, models.export_vision; "
        "bad = [m for m in ('torch', 'open_clip', 'timm') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
