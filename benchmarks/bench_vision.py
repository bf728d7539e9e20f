"""Vision tower benchmark: INT8 against FP32 ONNX, and file-to-findings end to end.

    python benchmarks/bench_vision.py [--model-dir DIR] [--cache-dir DIR] [--iters N] [--threads N]

Without --model-dir it exports BiomedCLIP's vision architecture with random
weights (timm ViT-B/16 at 224 + 512-d projection; a small open_clip text tower
stands in for PubMedBERT, which needs the hub) into --cache-dir, keeping the
FP32 model beside the INT8 one, and again whenever the cached export predates
the current export format. Needs the export extra (torch, open_clip).

Prints, from one interleaved run on this CPU:
  * file sizes, ms per image for FP32 and INT8 (batch 1) and their ratio (goal >= 2.0x);
  * INT8-vs-FP32 cosine and zero-shot top-1 agreement on fresh synthetic images;
  * end to end, file on disk to top-k findings with decoding and preprocessing,
    against the bare INT8 model call (goal <= 1.3x), and against open_clip in torch
    (PIL open, open_clip's transform, encode_image, similarity, softmax);
  * how far the fast file reading (JPEG draft, Pillow reduce) moves the embedding;
  * the load average, since a second busy process skews every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import record  # noqa: E402
from models.export_vision import export_vision, synthetic_images  # noqa: E402
from models.images import load_image  # noqa: E402
from models.vision import VisionModel, physical_cores, preprocess  # noqa: E402

BIOMEDCLIP_ARCH = {
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {
            "timm_model_name": "vit_base_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 224,
        },
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


def _ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def _torch_model(cache: Path):
    import open_clip
    import torch

    src = cache / "source"
    src.mkdir(parents=True, exist_ok=True)
    (src / "open_clip_config.json").write_text(json.dumps(BIOMEDCLIP_ARCH, indent=2))
    torch.manual_seed(0)
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    model = open_clip.create_model(f"local-dir:{src}").eval()
    return model, src


def _current_export(model_dir: Path) -> bool:
    """True when `model_dir` holds an export in today's format (optimised graphs saved at export)."""
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return "graph_optimisation" in manifest and "fp32" in manifest.get("models", {})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="an export with --keep-fp32 (default: export one)"
    )
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "medgemma-bench-vision")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: physical cores)")
    ap.add_argument("--no-torch", action="store_true", help="skip the open_clip/torch comparison")
    ap.add_argument("--quick", action="store_true", help="two iterations, to check the benchmark runs")
    args = ap.parse_args()
    if args.quick:
        args.iters = 2
    args.threads = args.threads or physical_cores()
    load_before = os.getloadavg()[0]

    torch_model = None
    if not args.no_torch or args.model_dir is None:
        try:
            import torch

            torch.set_num_threads(args.threads)
            torch_model, _ = _torch_model(args.cache_dir)
        except ImportError:
            if args.model_dir is None:
                print(
                    "bench_vision: the export extra is needed to build a model: pip install -e '.[export]'",
                    file=sys.stderr,
                )
                return 2
            args.no_torch = True

    model_dir = args.model_dir or args.cache_dir / "model"
    if args.model_dir is None and not _current_export(model_dir):
        print(f"exporting the random-weight BiomedCLIP vision architecture to {model_dir} ...", flush=True)
        export_vision(torch_model, model_dir, keep_fp32=True, threads=args.threads)

    fp32 = VisionModel.load(model_dir, threads=args.threads, variant="fp32")
    int8 = VisionModel.load(model_dir, threads=args.threads)
    manifest = int8.manifest

    # --- model only, interleaved
    px = preprocess(synthetic_images(1, seed=42)[0])[None]
    for m in (fp32, int8):
        m.embed_pixels(px)
    t32, t8 = [], []
    for _ in range(args.iters):
        t = time.perf_counter()
        fp32.embed_pixels(px)
        t32.append(time.perf_counter() - t)
        t = time.perf_counter()
        int8.embed_pixels(px)
        t8.append(time.perf_counter() - t)
    size32 = (model_dir / manifest["models"]["fp32"]).stat().st_size
    size8 = (model_dir / manifest["models"]["int8"]).stat().st_size

    # --- fidelity on fresh images
    images = synthetic_images(16, seed=2024, size=320)
    e32, e8 = fp32.embed(images), int8.embed(images)
    cos = (e32 * e8).sum(axis=1)
    _, p32, _ = fp32.probabilities(e32)
    _, p8, _ = int8.probabilities(e8)
    agree = float((p32.argmax(1) == p8.argmax(1)).mean())

    # --- end to end: files on disk to findings
    work = Path(tempfile.mkdtemp(prefix="bench-vision-"))
    files = []
    xray = synthetic_images(1, seed=7, size=1024)[0].convert("L")
    xray.save(work / "xray_1024.png")
    files.append(work / "xray_1024.png")
    skin = synthetic_images(2, seed=7, size=1024)[1].resize((1600, 1200))
    skin.save(work / "skin_1600x1200.jpg", quality=90)
    files.append(work / "skin_1600x1200.jpg")

    e2e: dict[str, list[float]] = {f.name: [] for f in files}
    torch_e2e: dict[str, list[float]] = {f.name: [] for f in files}
    bare: list[float] = []
    if torch_model is not None and not args.no_torch:
        import open_clip
        import torch
        from PIL import Image

        transform = open_clip.image_transform(224, is_train=False, mean=int8.mean, std=int8.std)
        text = torch.from_numpy(int8.label_embeddings)
        scale = float(manifest["logit_scale"])

        def torch_findings(path: Path, k: int = 3):
            with torch.no_grad():
                x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
                e = torch.nn.functional.normalize(torch_model.encode_image(x), dim=-1)
                p = (scale * e @ text.T).softmax(dim=-1)[0]
                return torch.topk(p, k)

        for f in files:
            torch_findings(f)
    else:
        torch_findings = None
    # the fast file reading against open_clip's exact pixels of the fully decoded file, one
    # image a call: dynamic quantisation scales activations over the whole batch
    fast_cosine = [
        float((int8.embed(f) * int8.embed_pixels(preprocess(load_image(f))[None])).sum()) for f in files
    ]

    for f in files:
        int8.findings(f)
    for _ in range(args.iters):
        t = time.perf_counter()
        int8.embed_pixels(px)
        bare.append(time.perf_counter() - t)
        for f in files:
            t = time.perf_counter()
            int8.findings(f, top_k=3)
            e2e[f.name].append(time.perf_counter() - t)
            if torch_findings is not None:
                t = time.perf_counter()
                torch_findings(f)
                torch_e2e[f.name].append(time.perf_counter() - t)

    fid = manifest.get("fidelity") or {}
    load_after = os.getloadavg()[0]
    print()
    print(
        f"vision model: {manifest.get('source')}  ({args.threads} threads, {args.iters} interleaved iterations)"
    )
    shared = " (shared with another busy process)" if max(load_before, load_after) > 2 else ""
    print(f"  load average {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} CPUs{shared}")
    print(f"  FP32 ONNX  {size32 / 1e6:7.1f} MB  {_ms(t32):7.1f} ms/img")
    print(
        f"  INT8 ONNX  {size8 / 1e6:7.1f} MB  {_ms(t8):7.1f} ms/img   size {size32 / size8:.2f}x smaller, "
        f"speed {_ms(t32) / _ms(t8):.2f}x FP32 (goal >= 2.0x)"
    )
    print(
        f"  fidelity (fresh 16 images): cosine min {cos.min():.4f} mean {cos.mean():.4f}, "
        f"top-1 agreement {agree:.2f}; at export: cosine min {fid.get('cosine_min')}, "
        f"top-1 {fid.get('top1_agreement')}"
    )
    speed = _ms(t32) / _ms(t8)
    end_to_end = {f.name: _ms(e2e[f.name]) / _ms(bare) for f in files}
    record("INT8 ÷ FP32 image model speed", speed, "≥ 2.0")
    for f in files:
        record(f"file to findings ÷ bare model, {f.name}", end_to_end[f.name], "≤ 1.3")
    print("  end to end, file to top-3 findings (INT8, preprocessing included):")
    for f, cosine in zip(files, fast_cosine, strict=True):
        line = f"    {f.name:22s} {_ms(e2e[f.name]):7.1f} ms  = {end_to_end[f.name]:.2f}x bare model ({_ms(bare):.1f} ms; goal <= 1.3x)"
        if torch_e2e[f.name]:
            line += f"; open_clip torch {_ms(torch_e2e[f.name]):.1f} ms = {_ms(torch_e2e[f.name]) / _ms(e2e[f.name]):.2f}x slower"
        print(line + f"; embedding cosine to exact preprocessing {cosine:.5f}")
    ratios = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in end_to_end.items())
    print(
        f"  ratios: INT8 ÷ FP32 {speed:.2f}x (goal >= 2.0x); file to findings ÷ bare model {ratios} (goal <= 1.3x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
