"""Shared helpers for the vision tests: model directories and images built offline.

`make_onnx_model_dir` writes a torch-free stand-in for an exported model (a
tiny ONNX graph built with `onnx.helper`, label embeddings and a manifest in
the export format), so runtime tests need only onnxruntime. The open_clip
configs below build BiomedCLIP's exact vision architecture (timm ViT-B/16 at
224, linear projection to 512-d) with random weights, or a tiny ViT for speed.
The real BiomedCLIP text tower is PubMedBERT loaded from the hub; offline the
tests use a small open_clip text transformer instead, so label embeddings are
random-weight ones, not BiomedCLIP's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from models.vision import CLIP_MEAN, CLIP_STD, MANIFEST, MANIFEST_FORMAT, preprocess, sha256_file

# BiomedCLIP's open_clip_config.json, vision part verbatim; text part replaced (see module doc).
BIOMEDCLIP_VISION_CFG = {
    "timm_model_name": "vit_base_patch16_224",
    "timm_model_pretrained": False,
    "timm_pool": "",
    "timm_proj": "linear",
    "image_size": 224,
}
TINY_VISION_CFG = {"image_size": 224, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32}
SMALL_TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
PREPROCESS_CFG = {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}


def write_open_clip_dir(path: Path, *, full: bool, seed: int = 0, save_weights: bool = True) -> Path:
    """An open_clip model directory (config + random weights) loadable as ``local-dir:``."""
    import open_clip
    import torch

    path.mkdir(parents=True, exist_ok=True)
    cfg = {
        "model_cfg": {
            "embed_dim": 512,
            "vision_cfg": dict(BIOMEDCLIP_VISION_CFG if full else TINY_VISION_CFG),
            "text_cfg": dict(SMALL_TEXT_CFG),
        },
        "preprocess_cfg": PREPROCESS_CFG,
    }
    (path / "open_clip_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    if save_weights:
        torch.manual_seed(seed)
        model = open_clip.create_model(f"local-dir:{path}")
        torch.save(model.state_dict(), path / "open_clip_pytorch_model.bin")
    return path


# ---------------------------------------------------------------- torch-free model dir


def _tiny_onnx(path: Path, dim: int, seed: int, size: int = 224, patch: int = 16) -> None:
    """pixel_values (N,3,S,S) -> avg-pool patches -> flatten -> MatMul + bias -> tanh -> MatMul -> (N,dim)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    feat = 3 * (size // patch) ** 2
    w1 = rng.normal(0, 1 / np.sqrt(feat), (feat, 256)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 256).astype(np.float32)
    w2 = rng.normal(0, 1 / 16, (256, dim)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", ["pixel_values"], ["pooled"], kernel_shape=[patch, patch], strides=[patch, patch]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Tanh", ["hb"], ["ht"]),
        helper.make_node("MatMul", ["ht", "w2"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_vision",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", dim])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_onnx_model_dir(
    path: Path,
    labels: Sequence[str],
    reference_images: Sequence[Image.Image] | None = None,
    *,
    dim: int = 64,
    seed: int = 0,
    logit_scale: float = 100.0,
) -> Path:
    """A model directory in the export format, without torch.

    With `reference_images` (one per label) the label embeddings are those
    images' embeddings, so image i's top zero-shot label is label i.
    """
    import onnxruntime as ort

    path.mkdir(parents=True, exist_ok=True)
    onnx_path = path / "vision_int8.onnx"
    _tiny_onnx(onnx_path, dim, seed)
    if reference_images is not None:
        assert len(reference_images) == len(labels)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        px = np.stack([preprocess(im) for im in reference_images])
        text = sess.run(None, {"pixel_values": px})[0]
    else:
        text = np.random.default_rng(seed + 1).normal(size=(len(labels), dim))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    np.save(path / "labels.npy", text, allow_pickle=False)
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": "test:tiny-onnx",
        "models": {"int8": onnx_path.name},
        "files": {onnx_path.name: sha256_file(onnx_path), "labels.npy": sha256_file(path / "labels.npy")},
        "embed_dim": dim,
        "opset": 17,
        "preprocess": {
            "image_size": 224,
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
            "resize_mode": "shortest",
            "interpolation": "bicubic",
            "crop": "center",
        },
        "logit_scale": logit_scale,
        "prompt_template": "this is a photo of {label}",
        "labels": list(labels),
        "label_embeddings": "labels.npy",
        "quantization": None,
        "fidelity": None,
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def structured_images(n: int, seed: int = 0, size: int = 256) -> list[Image.Image]:
    """X-ray-like and skin-like synthetic images (see `models.export_vision.synthetic_images`)."""
    from models.export_vision import synthetic_images

    return synthetic_images(n, seed=seed, size=size)
