"""Read a GGUF file's header without loading the model.

This lets `doctor` and the engine reject a missing, truncated or foreign file
with a clear message before llama.cpp ever sees it, and report the model's
architecture, name, size and quantisation.

Every string in the header comes from whoever made the file, so each kept key
and string value is neutralised as it is read: a `general.name` holding escape
sequences shows as harmless symbols wherever the name is printed or stored.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.text import neutralise

GGUF_MAGIC = b"GGUF"

# llama_ftype values as written to general.file_type
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

# GGUF value types: (struct format, size) for the fixed-size ones
_SCALARS = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9


class GgufError(Exception):
    """The file is not a usable GGUF model; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class GgufInfo:
    path: Path
    file_size: int
    version: int
    tensor_count: int
    metadata: dict[str, Any]  # scalar values; arrays are summarised by their length
    tensor_bytes: dict[str, int] = field(default_factory=dict)  # name -> bytes in the file

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.get("general.name", self.path.stem))

    @property
    def size_label(self) -> str:
        return str(self.get("general.size_label", ""))

    @property
    def quantization(self) -> str:
        file_type = self.get("general.file_type")
        if file_type is None:
            return "unknown"
        return FILE_TYPES.get(int(file_type), f"type {file_type}")

    @property
    def context_length(self) -> int:
        return int(self.get(f"{self.architecture}.context_length", 0) or 0)

    @property
    def layer_count(self) -> int:
        """Repeating blocks; llama.cpp offloads one layer more (the output), 0 when unknown."""
        return int(self.get(f"{self.architecture}.block_count", 0) or 0)

    @property
    def chat_template(self) -> str | None:
        template = self.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    def summary(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "name": self.name,
            "size_label": self.size_label,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "chat_template": self.chat_template is not None,
            "gguf_version": self.version,
            "tensors": self.tensor_count,
        }


def read_gguf(path: str | Path) -> GgufInfo:
    """Validate the file and read its metadata; raise GgufError with a one-line reason."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GgufError(f"model file not found: {path}")
    if path.is_dir():
        raise GgufError(f"model path is a directory, not a GGUF file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise GgufError(f"model file is empty (0 bytes): {path}")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise GgufError(f"not a GGUF model file (no GGUF magic at the start): {path}")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                info = _parse(path, size, data)
            except (struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
                raise GgufError(f"GGUF header is truncated or corrupt ({exc}): {path}") from None
    return info


def _parse(path: Path, size: int, data: mmap.mmap) -> GgufInfo:
    version, tensor_count, kv_count = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise GgufError(f"unsupported GGUF version {version}: {path}")
    if kv_count > 100_000 or tensor_count > 1_000_000:
        raise GgufError(f"GGUF header is corrupt (implausible counts): {path}")
    offset = 24
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key, offset = _read_string(data, offset)
        (value_type,) = struct.unpack_from("<I", data, offset)
        value, offset = _read_value(data, offset + 4, value_type)
        metadata[neutralise(key)] = neutralise(value) if isinstance(value, str) else value
    # A file cut short after its header still parses above; its tensors would not fit.
    if tensor_count and offset >= size:
        raise GgufError(f"GGUF file is truncated (no tensor data): {path}")
    tensor_bytes = _read_tensor_sizes(data, offset, tensor_count, size, metadata, path)
    return GgufInfo(path, size, version, tensor_count, metadata, tensor_bytes)


def _read_tensor_sizes(
    data: mmap.mmap, offset: int, tensor_count: int, size: int, metadata: dict[str, Any], path: Path
) -> dict[str, int]:
    """Check that every tensor's data fits in the file, and say how many bytes each takes."""
    end_of_data = 0
    starts: list[tuple[int, str]] = []
    for _ in range(tensor_count):
        name, offset = _read_string(data, offset)
        (n_dims,) = struct.unpack_from("<I", data, offset)
        dims = struct.unpack_from(f"<{n_dims}Q", data, offset + 4)
        tensor_type, tensor_offset = struct.unpack_from("<IQ", data, offset + 4 + 8 * n_dims)
        offset += 4 + 8 * n_dims + 12
        end_of_data = max(end_of_data, tensor_offset + _approx_bytes(tensor_type, dims))
        starts.append((tensor_offset, neutralise(name)))
    alignment = int(metadata.get("general.alignment", 32))
    data_start = (offset + alignment - 1) // alignment * alignment
    if data_start + end_of_data > size:
        missing = data_start + end_of_data - size
        raise GgufError(f"GGUF file is truncated ({missing:,} bytes of tensor data missing): {path}")
    starts.sort()
    ends = [start for start, _ in starts[1:]] + [size - data_start]
    return {name: end - start for (start, name), end in zip(starts, ends, strict=True)}


# Bytes per block and elements per block for the common tensor types; unknown
# types count as zero bytes so the truncation check can only under-estimate.
_BLOCKS = {
    0: (4, 1),
    1: (2, 1),
    2: (18, 32),
    3: (20, 32),
    6: (22, 32),
    7: (24, 32),
    8: (34, 32),
    10: (84, 256),
    11: (110, 256),
    12: (144, 256),
    13: (176, 256),
    14: (210, 256),
    15: (292, 256),
    30: (2, 1),
}


def _approx_bytes(tensor_type: int, dims: tuple[int, ...]) -> int:
    block_bytes, block_elements = _BLOCKS.get(tensor_type, (0, 1))
    elements = 1
    for dim in dims:
        elements *= dim
    return elements // block_elements * block_bytes


def _read_string(data: mmap.mmap, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    start = offset + 8
    if start + length > len(data):
        raise ValueError("string runs past the end of the file")
    return data[start : start + length].decode("utf-8", errors="replace"), start + length


def _read_value(data: mmap.mmap, offset: int, value_type: int) -> tuple[Any, int]:
    if value_type in _SCALARS:
        fmt, width = _SCALARS[value_type]
        return struct.unpack_from(fmt, data, offset)[0], offset + width
    if value_type == _STRING:
        return _read_string(data, offset)
    if value_type == _ARRAY:
        item_type, count = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if item_type in _SCALARS:
            return f"[{count} values]", offset + count * _SCALARS[item_type][1]
        for _ in range(count):  # strings and nested arrays have to be walked
            _, offset = _read_value(data, offset, item_type)
        return f"[{count} values]", offset
    raise ValueError(f"unknown GGUF value type {value_type}")
