"""Reading images as clinics have them: photos, screenshots, exports and DICOM.

`load_image(path)` returns an RGB `PIL.Image.Image` or raises `ImageError` with
a one-line reason a clinician can act on. `validate_image_path(path)` gives the
same verdict cheaply (no full decode) so a front end can call it as the user
types. `preview_image(path, max_size)` returns a small RGB thumbnail.

Decisions worth knowing:

* Transparency is composited on **black**. Radiographs are displayed with air
  (no attenuation) as black, so transparent padding around an exported X-ray
  must not turn into white, which reads as bone or metal. Clinical photos from
  cameras carry no alpha; cut-outs with a transparent background are shown on a
  neutral dark background, which the models treat as "no tissue".
* 16-bit (and 32-bit integer / float) greyscale is stretched linearly from its
  own minimum to its maximum into 0..255. X-ray PNG/TIFF exports often store
  10-14 significant bits in a 16-bit container, so dividing by 257 would make
  them nearly black, and PIL's own ``convert("L")`` clips everything above 255
  to white. The linear stretch never clips.
* DICOM: the modality LUT (rescale slope/intercept) is applied, then the
  first window centre/width (or a VOI LUT sequence) from the file, else a
  min-max stretch; MONOCHROME1 is inverted so that air is black.
* An explicit pixel limit (`MAX_PIXELS`, 50 MP) refuses decompression bombs
  before decoding, independent of PIL's global warning threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, SupportsFloat

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset, FileDataset

MAX_PIXELS = 50_000_000
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "MPO"})

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"DICM", 128, "DICOM"),
)


class ImageError(ValueError):
    """An image that cannot be used; `str(err)` is a one-line reason."""


def _sniff(head: bytes) -> str | None:
    for magic, offset, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _check_file(path: Path) -> bytes:
    """Existence, type and size checks; returns the first 132 bytes."""
    if not path.exists():
        raise ImageError(f"file not found: {path}")
    if path.is_dir():
        raise ImageError(f"is a directory, not an image file: {path}")
    if not path.is_file():
        raise ImageError(f"not a regular file: {path}")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"file is empty (0 bytes): {path.name}")
        with path.open("rb") as fh:
            return fh.read(132)
    except PermissionError:
        raise ImageError(f"permission denied reading {path.name}") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path.name}: {exc.strerror or exc}") from None


def _is_dicom(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in {".dcm", ".dicom"} or _sniff(head) == "DICOM"


def _too_large(width: int, height: int, name: str) -> ImageError:
    return ImageError(
        f"image too large: {width}x{height} = {width * height / 1e6:.0f} MP "
        f"(limit {MAX_PIXELS / 1e6:.0f} MP) in {name}"
    )


def _pixel_limit(width: int, height: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height}): {name}")
    if width * height > MAX_PIXELS:
        raise _too_large(width, height, name)


def _open_pil(path: Path) -> Image.Image:
    """Open lazily (header only) with format and pixel-limit checks."""
    try:
        im = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageError(
            f"image too large (decompression bomb guard, limit {MAX_PIXELS / 1e6:.0f} MP): {path.name}"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"not a readable image (expected PNG, JPEG, TIFF, BMP, WebP or DICOM): {path.name}"
        ) from None
    except OSError as exc:
        raise ImageError(f"cannot open image {path.name}: {exc}") from None
    if im.format not in ACCEPTED_FORMATS:
        fmt = im.format
        im.close()
        raise ImageError(f"unsupported image format {fmt}: {path.name}")
    try:
        _pixel_limit(im.width, im.height, path.name)
    except ImageError:
        im.close()
        raise
    return im


def _stretch_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Linear min-max stretch of any numeric array to uint8, never clipping."""
    a = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, dtype=np.uint8)
    lo = float(a[finite].min())
    hi = float(a[finite].max())
    a = np.where(finite, a, lo)
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _to_rgb(im: Image.Image, keep_grey: bool = False) -> Image.Image:
    """RGB, or with `keep_grey` 8-bit greyscale (mode L) for an image without colour or alpha."""
    mode = im.mode
    if mode == "RGB" or (keep_grey and mode == "L" and "transparency" not in im.info):
        return im
    if mode.startswith("I;16") or mode in {"I", "F"}:
        grey = Image.fromarray(_stretch_to_uint8(np.asarray(im)), mode="L")
        return grey if keep_grey else grey.convert("RGB")
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in {"L", "1"} and "transparency" in im.info:
        return _to_rgb(im.convert("LA"))
    return im.convert("RGB")


def _decode_at_reduced_size(im: Image.Image, min_side: int) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while the shortest side stays >= `min_side`.

    libjpeg scales in the DCT domain, which is several times cheaper than decoding
    every pixel and resampling them afterwards. Other formats decode in full.
    """
    if im.format not in {"JPEG", "MPO"}:
        return
    width, height = im.size
    scale = min_side / min(width, height)
    if scale >= 1.0:
        return
    im.draft(im.mode, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))


def _load_pil(path: Path, min_side: int | None = None, keep_grey: bool = False) -> Image.Image:
    im = _open_pil(path)
    try:
        if min_side:
            _decode_at_reduced_size(im, min_side)
        try:
            im.load()
        except Image.DecompressionBombError:
            raise ImageError(f"image too large (decompression bomb guard): {path.name}") from None
        except (OSError, SyntaxError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ImageError(f"image file is truncated or corrupt ({reason}): {path.name}") from None
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        try:
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of an upright image
        except Exception:  # a broken EXIF block must not stop an otherwise good image
            pass
        out = _to_rgb(im, keep_grey)
        if out is im:
            out = im.copy()  # closing `im` below frees its pixels
        return out
    finally:
        im.close()


# ---------------------------------------------------------------- DICOM


def _dicom_header(path: Path) -> FileDataset:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=path.suffix.lower() in {".dcm", ".dicom"})
    except InvalidDicomError as exc:
        raise ImageError(f"not a valid DICOM file ({exc}): {path.name}") from None
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise ImageError(f"cannot read DICOM header ({type(exc).__name__}): {path.name}") from None


def _check_dicom_header(ds: Dataset, path: Path) -> None:
    rows = int(getattr(ds, "Rows", 0) or 0)
    cols = int(getattr(ds, "Columns", 0) or 0)
    if rows and cols:
        _pixel_limit(cols, rows, path.name)


def _dicom_has_pixels(path: Path) -> bool:
    """True when the file holds a pixel data element (reads tags, not pixels)."""
    import pydicom

    ds = pydicom.dcmread(
        path, force=True, specific_tags=["PixelData", "FloatPixelData", "DoubleFloatPixelData"], defer_size=64
    )
    return any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def _window(arr: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 linear windowing to 0..1."""
    width = max(float(width), 1.0)
    c = float(center) - 0.5
    w = width - 1.0
    out = (arr - c) / max(w, 1e-6) + 0.5
    return np.clip(out, 0.0, 1.0)


def _first(value: SupportsFloat | Sequence[SupportsFloat]) -> float:
    """The first number of a multi-valued DICOM element, or its only number."""
    if isinstance(value, Sequence):
        return float(value[0])
    return float(value)


def _load_dicom(path: Path, keep_grey: bool = False) -> Image.Image:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=path.suffix.lower() in {".dcm", ".dicom"})
    except InvalidDicomError as exc:
        raise ImageError(f"not a valid DICOM file ({exc}): {path.name}") from None
    except Exception as exc:
        raise ImageError(f"cannot read DICOM file ({type(exc).__name__}): {path.name}") from None
    if not any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(f"DICOM has no pixel data (not an image object): {path.name}")
    _check_dicom_header(ds, path)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        # files without a meta header are implicit VR little endian by definition
        ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    tsuid = ds.file_meta.TransferSyntaxUID
    try:
        arr = ds.pixel_array
    except Exception as exc:
        if getattr(tsuid, "is_compressed", False):
            raise ImageError(
                f"DICOM uses compressed transfer syntax {getattr(tsuid, 'name', tsuid)} "
                f"that cannot be decoded here; export it uncompressed: {path.name}"
            ) from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"DICOM pixel data cannot be decoded ({reason[:120]}): {path.name}") from None

    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if frames > 1:
        arr = arr[0]  # the first frame of a multi-frame object
    if samples == 3:
        rgb = arr if arr.dtype == np.uint8 else _stretch_to_uint8(arr)
        return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")

    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    data = apply_modality_lut(arr, ds).astype(np.float64)
    if (
        "WindowCenter" in ds
        and "WindowWidth" in ds
        and ds.WindowCenter is not None
        and ds.WindowWidth is not None
    ):
        unit = _window(data, _first(ds.WindowCenter), _first(ds.WindowWidth))
        grey = np.rint(unit * 255.0).astype(np.uint8)
    elif "VOILUTSequence" in ds:
        grey = _stretch_to_uint8(apply_voi_lut(data, ds, index=0))
    else:
        grey = _stretch_to_uint8(data)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        grey = 255 - grey
    image = Image.fromarray(np.ascontiguousarray(grey), mode="L")
    return image if keep_grey else image.convert("RGB")


# ---------------------------------------------------------------- public API


def load_image(
    path: str | os.PathLike[str], min_side: int | None = None, *, keep_grey: bool = False
) -> Image.Image:
    """Read an image file (PNG, JPEG, TIFF, BMP, WebP, GIF, DICOM) as RGB.

    For a caller that will shrink the image anyway: with `min_side`, a large JPEG
    may be decoded at 1/2, 1/4 or 1/8 of its size, never with its shortest side
    below `min_side`; with `keep_grey`, a greyscale image without alpha comes back
    as 8-bit greyscale (mode L), a third of the pixels to resample.
    Raises `ImageError` with a one-line reason for anything that cannot be read.
    """
    p = Path(path)
    head = _check_file(p)
    if _is_dicom(p, head):
        return _load_dicom(p, keep_grey)
    return _load_pil(p, min_side, keep_grey)


def validate_image_path(path: str | os.PathLike[str] | None) -> str | None:
    """None when `path` looks like a usable image, else a one-line reason.

    Cheap: checks the file system entry, sniffs the header and reads the image
    header for its size; it does not decode pixels.
    """
    if path is None or str(path).strip() == "":
        return "no image path given"
    p = Path(str(path).strip()).expanduser()
    try:
        head = _check_file(p)
        if _is_dicom(p, head):
            ds = _dicom_header(p)
            _check_dicom_header(ds, p)
            if not _dicom_has_pixels(p):
                return f"DICOM has no pixel data (not an image object): {p.name}"
            return None
        if _sniff(head) is None:
            return f"not a recognised image type (expected PNG, JPEG, TIFF, BMP, WebP or DICOM): {p.name}"
        im = _open_pil(p)
        im.close()
    except ImageError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a validator never raises
        return f"cannot read {p.name}: {type(exc).__name__}"
    return None


def preview_image(path: str | os.PathLike[str], max_size: int | tuple[int, int] = (64, 64)) -> Image.Image:
    """A small RGB thumbnail (aspect kept) for a half-block terminal preview."""
    if isinstance(max_size, int):
        max_size = (max_size, max_size)
    im = load_image(path)
    im.thumbnail((max(1, max_size[0]), max(1, max_size[1])), Image.Resampling.LANCZOS)
    return im
