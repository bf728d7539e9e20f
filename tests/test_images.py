"""Images as clinics have them: each kind is read correctly or refused with a one-line reason."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.images import MAX_PIXELS, ImageError, load_image, preview_image, validate_image_path


def _one_line(msg: str) -> None:
    assert msg and "\n" not in msg


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path)
    msg = str(info.value)
    _one_line(msg)
    for f in fragments:
        assert f in msg.lower(), msg
    reason = validate_image_path(path)
    assert reason is not None
    _one_line(reason)
    return msg


def _gradient_rgb(w: int = 64, h: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) % 256], axis=-1).astype(np.uint8)


# ---------------------------------------------------------------- ordinary files


def test_png_rgb_round_trip(tmp_path):
    arr = _gradient_rgb()
    p = tmp_path / "a.png"
    Image.fromarray(arr).save(p)
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (64, 48)
    assert np.array_equal(np.asarray(im), arr)
    assert validate_image_path(p) is None


def test_jpeg(tmp_path):
    arr = _gradient_rgb()
    p = tmp_path / "a.jpg"
    Image.fromarray(arr).save(p, quality=95)
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (64, 48)
    assert np.abs(np.asarray(im).astype(int) - arr).mean() < 4
    assert validate_image_path(p) is None


def test_greyscale_8bit_becomes_rgb(tmp_path):
    g = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    p = tmp_path / "g.png"
    Image.fromarray(g, mode="L").save(p)
    out = np.asarray(load_image(p))
    assert out.shape == (10, 64, 3)
    assert np.array_equal(out[..., 0], g) and np.array_equal(out[..., 2], g)


@pytest.mark.parametrize("max_value", [65535, 4095, 1023])
def test_16bit_greyscale_scaled_not_clipped(tmp_path, max_value):
    ramp = np.linspace(0, max_value, 256).round().astype(np.uint16)
    arr = np.tile(ramp, (8, 1))
    p = tmp_path / "xray16.png"
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")  # really stored as 16 bit
    out = np.asarray(load_image(p))[..., 0].astype(int)
    assert out[0, 0] == 0 and out[0, -1] == 255
    assert np.all(np.diff(out[0]) >= 0)  # monotonic
    assert len(np.unique(out)) > 200  # the whole range used, not clipped to white
    assert np.abs(out[0] - np.arange(256)).max() <= 1


def test_16bit_tiff(tmp_path):
    arr = np.tile(np.linspace(100, 3000, 64).astype(np.uint16), (4, 1))
    p = tmp_path / "x.tif"
    Image.fromarray(arr).save(p)
    out = np.asarray(load_image(p))[..., 0]
    assert out.min() == 0 and out.max() == 255


def test_palette(tmp_path):
    arr = _gradient_rgb()
    p = tmp_path / "p.png"
    Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(p)
    assert Image.open(p).mode == "P"
    im = load_image(p)
    assert im.mode == "RGB"
    assert np.abs(np.asarray(im).astype(int) - arr).mean() < 12


def test_palette_with_transparency_on_black(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
    im.putpixel((0, 0), 0)
    p = tmp_path / "pt.png"
    im.save(p, transparency=0)
    out = np.asarray(load_image(p))
    assert tuple(out[0, 0]) == (0, 0, 0)  # transparent white index -> black
    assert tuple(out[1, 1]) == (200, 30, 30)


def test_rgba_composited_on_black(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., :3] = (250, 250, 250)
    arr[..., 3] = 0
    arr[0, 0] = (10, 200, 30, 255)
    arr[1, 1] = (200, 200, 200, 128)
    p = tmp_path / "rgba.png"
    Image.fromarray(arr, mode="RGBA").save(p)
    out = np.asarray(load_image(p)).astype(int)
    assert tuple(out[0, 0]) == (10, 200, 30)
    assert tuple(out[2, 2]) == (0, 0, 0)  # fully transparent -> black (air on a radiograph)
    assert np.all(np.abs(out[1, 1] - 100) <= 1)  # half alpha over black


def test_la_greyscale_alpha(tmp_path):
    arr = np.zeros((2, 2, 2), np.uint8)
    arr[..., 0] = 180
    arr[0, 0, 1] = 255
    p = tmp_path / "la.png"
    Image.fromarray(arr, mode="LA").save(p)
    out = np.asarray(load_image(p))
    assert tuple(out[0, 0]) == (180, 180, 180) and tuple(out[1, 1]) == (0, 0, 0)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    im = load_image(p)
    assert im.mode == "RGB"
    r, g, b = np.asarray(im).reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 40 and b < 40


def test_exif_rotation_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    p = tmp_path / "phone.jpg"
    im.save(p, exif=exif, quality=95)
    out = load_image(p)
    assert out.size == (20, 40)  # portrait after transpose
    top = np.asarray(out)[:5].reshape(-1, 3).mean(axis=0)
    assert top[0] > 200 and top[1] < 60  # the red half is now on top


def test_large_jpeg_decoded_at_reduced_size(tmp_path):
    """With `min_side`, libjpeg scales by a power of two, never below `min_side`."""
    p = tmp_path / "photo.jpg"
    Image.fromarray(_gradient_rgb(1600, 1200)).save(p, quality=90)
    assert load_image(p).size == (1600, 1200)
    assert load_image(p, min_side=448).size == (800, 600)  # 1/4 would be 300 high
    assert load_image(p, min_side=150).size == (200, 150)  # 1/8
    assert load_image(p, min_side=1200).size == (1600, 1200)
    assert load_image(p, min_side=5000).size == (1600, 1200)  # never enlarged
    reduced = np.asarray(load_image(p, min_side=448)).astype(int)
    full = np.asarray(load_image(p).resize((800, 600), Image.Resampling.BOX)).astype(int)
    assert np.abs(reduced - full).mean() < 2  # the same picture, not a crop


def test_reduced_jpeg_keeps_exif_rotation(tmp_path):
    arr = np.zeros((1000, 2000, 3), np.uint8)
    arr[:, :1000] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    p = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(p, exif=exif, quality=95)
    out = load_image(p, min_side=400)
    assert out.size == (500, 1000)  # halved, then turned to portrait
    top = np.asarray(out)[:100].reshape(-1, 3).mean(axis=0)
    assert top[0] > 200 and top[1] < 60


def test_min_side_leaves_other_formats_whole(tmp_path):
    p = tmp_path / "big.png"
    Image.fromarray(_gradient_rgb(1600, 1200)).save(p)
    im = load_image(p, min_side=448)
    assert im.size == (1600, 1200)
    assert np.array_equal(np.asarray(im), _gradient_rgb(1600, 1200))


def test_keep_grey_returns_greyscale_as_one_channel(tmp_path):
    grey = _gradient_rgb()[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    im = load_image(tmp_path / "grey.png", keep_grey=True)
    assert im.mode == "L" and np.array_equal(np.asarray(im), grey)
    assert np.array_equal(np.asarray(load_image(tmp_path / "grey.png"))[..., 1], grey)  # RGB by default
    wide = (np.arange(64 * 48).reshape(48, 64) * 3).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "grey16.png")
    stretched = load_image(tmp_path / "grey16.png", keep_grey=True)
    assert stretched.mode == "L" and np.array_equal(
        np.asarray(stretched), np.asarray(load_image(tmp_path / "grey16.png"))[..., 0]
    )
    Image.fromarray(_gradient_rgb()).save(tmp_path / "colour.png")
    assert load_image(tmp_path / "colour.png", keep_grey=True).mode == "RGB"
    Image.new("LA", (8, 8), (200, 0)).save(tmp_path / "alpha.png")
    assert load_image(tmp_path / "alpha.png", keep_grey=True).mode == "RGB"  # alpha is composited


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    out = np.asarray(load_image(p))
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


# ---------------------------------------------------------------- refused files


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.png", "not found")


def test_directory(tmp_path):
    _refused(tmp_path, "directory")


def test_zero_byte(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _refused(p, "empty")


def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("patient notes, not an image\n" * 20)
    _refused(p, "not a")


def test_truncated_png(tmp_path):
    p = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(p)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG with a valid header claiming width x height and one tiny IDAT: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "side", [8000, 30000]
)  # 64 MP: over our limit; 900 MP: over PIL's own bomb limit too
def test_decompression_bomb(tmp_path, side):
    p = tmp_path / "bomb.png"
    _png_header_only(p, side, side)
    t = time.perf_counter()
    msg = _refused(p, "too large")
    assert f"{MAX_PIXELS / 1e6:.0f} mp" in msg.lower()
    assert time.perf_counter() - t < 2  # refused from the header, not by decoding


# ---------------------------------------------------------------- DICOM


def _dicom(
    path: Path,
    pixels: np.ndarray | None,
    *,
    photometric="MONOCHROME2",
    window=None,
    rescale=None,
    transfer=None,
    preamble=True,
) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    if pixels is not None:
        rows, cols = pixels.shape[:2]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if transfer is None:
            ds.PixelData = pixels.astype("<u2").tobytes()
        else:
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])
            ds["PixelData"].VR = "OB"
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.save_as(path, enforce_file_format=preamble)
    return path


def _ramp12() -> np.ndarray:
    return np.tile(np.array([0, 500, 1000, 1500, 2000, 4095], dtype=np.uint16), (4, 1))


def test_dicom_window_applied(tmp_path):
    p = _dicom(tmp_path / "cr.dcm", _ramp12(), window=(1000, 1000))
    out = np.asarray(load_image(p))[0, :, 0].astype(int)
    # window 500..1500: below -> black, centre -> mid grey, above -> white
    assert out[0] == 0 and out[1] <= 1
    assert abs(out[2] - 128) <= 1
    assert out[3] >= 254 and out[4] == 255 and out[5] == 255
    assert validate_image_path(p) is None


def test_dicom_without_window_is_stretched(tmp_path):
    p = _dicom(tmp_path / "cr.dcm", _ramp12())
    out = np.asarray(load_image(p))[0, :, 0].astype(int)
    assert out[0] == 0 and out[-1] == 255 and abs(out[2] - round(1000 * 255 / 4095)) <= 1


def test_dicom_rescale_then_window(tmp_path):
    # CT-like: stored = HU + 1024; lung window centre -600 width 1500
    hu = np.array([-1000, -600, 150, 1000])
    p = _dicom(
        tmp_path / "ct.dcm",
        np.tile(hu + 1024, (2, 1)).astype(np.uint16),
        window=(-600, 1500),
        rescale=(1, -1024),
    )
    out = np.asarray(load_image(p))[0, :, 0].astype(int)
    # window -1350..150 HU: -1000 -> 350/1500 of the range
    assert abs(out[0] - 60) <= 1 and abs(out[1] - 128) <= 1 and out[2] >= 254 and out[3] == 255


def test_dicom_monochrome1_inverted(tmp_path):
    p2 = _dicom(tmp_path / "m2.dcm", _ramp12(), window=(1000, 1000))
    p1 = _dicom(tmp_path / "m1.dcm", _ramp12(), window=(1000, 1000), photometric="MONOCHROME1")
    a2 = np.asarray(load_image(p2)).astype(int)
    a1 = np.asarray(load_image(p1)).astype(int)
    assert np.array_equal(a1, 255 - a2)
    grey = load_image(p1, keep_grey=True)
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), a1[..., 0])


def test_dicom_detected_by_magic_without_suffix(tmp_path):
    p = _dicom(tmp_path / "IMG0001", _ramp12())
    assert load_image(p).mode == "RGB"
    assert validate_image_path(p) is None


def test_dicom_without_pixel_data(tmp_path):
    p = _dicom(tmp_path / "sr.dcm", None)
    _refused(p, "no pixel data")


def test_dicom_compressed_undecodable(tmp_path):
    from pydicom.uid import JPEG2000Lossless

    p = _dicom(tmp_path / "j2k.dcm", _ramp12(), transfer=JPEG2000Lossless)
    with pytest.raises(ImageError) as info:
        load_image(p)
    msg = str(info.value)
    _one_line(msg)
    assert "compressed" in msg and "JPEG 2000" in msg


def test_dicom_garbage(tmp_path):
    p = tmp_path / "bad.dcm"
    p.write_bytes(b"\x00" * 10 + b"this is not dicom" * 10)
    _refused(p)


# ---------------------------------------------------------------- validate and preview


def test_validate_does_not_decode(tmp_path, monkeypatch):
    p = tmp_path / "a.png"
    Image.fromarray(_gradient_rgb()).save(p)

    def boom(self, *a, **k):
        raise AssertionError("validate_image_path decoded the pixels")

    monkeypatch.setattr(Image.Image, "load", boom)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", boom)
    assert validate_image_path(p) is None


def test_validate_empty_and_odd_inputs(tmp_path):
    assert validate_image_path("") == "no image path given"
    assert validate_image_path(None) == "no image path given"
    p = tmp_path / "doc.pdf"
    p.write_bytes(b"%PDF-1.7\n" + b"0" * 100)
    assert "not a recognised image" in validate_image_path(p)


def test_validate_is_fast(tmp_path):
    p = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)).save(
        p, compress_level=1
    )
    t = time.perf_counter()
    for _ in range(20):
        assert validate_image_path(p) is None
    assert (time.perf_counter() - t) / 20 < 0.01


def test_preview(tmp_path):
    p = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 600, 3), dtype=np.uint8)).save(p)
    th = preview_image(p, (40, 40))
    assert th.mode == "RGB" and th.size == (40, 20)
    assert preview_image(p, 10).size == (10, 5)
    with pytest.raises(ImageError):
        preview_image(tmp_path / "missing.png", 32)
