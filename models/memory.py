"""What a model needs in memory besides its file: the KV cache, from the GGUF's own numbers.

Each layer stores a key and a value vector per KV head for every cached
position. Gemma 3 attends globally in every sixth layer only; the others
attend within a sliding window, and llama.cpp's small window cache holds just
the window plus one micro-batch. The full window cache (this product's
default, so that the fixed prompt prefix stays reusable) holds every position.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.gguf import GgufInfo

GEMMA3_GLOBAL_EVERY = 6  # llama.cpp's Gemma 3 layout: layers 6, 12, 18, ... attend to the whole context
F16_BYTES = 2


@dataclass(frozen=True, slots=True)
class KvCacheSize:
    bytes_per_position_per_layer: int
    global_layers: int
    window_layers: int
    window_cells: int  # positions each window layer holds
    total_bytes: int


def kv_cache_size(
    gguf: GgufInfo, n_ctx: int, *, full_window_cache: bool = True, n_ubatch: int = 512
) -> KvCacheSize:
    arch = gguf.architecture
    layers = gguf.layer_count
    kv_heads = int(gguf.get(f"{arch}.attention.head_count_kv") or gguf.get(f"{arch}.attention.head_count"))
    key_length = int(gguf.get(f"{arch}.attention.key_length") or 0)
    value_length = int(gguf.get(f"{arch}.attention.value_length") or 0)
    if not key_length or not value_length:
        head_size = int(gguf.get(f"{arch}.embedding_length")) // int(gguf.get(f"{arch}.attention.head_count"))
        key_length = key_length or head_size
        value_length = value_length or head_size
    per_position = kv_heads * (key_length + value_length) * F16_BYTES
    window = int(gguf.get(f"{arch}.attention.sliding_window") or 0)
    if window and arch.startswith("gemma3"):
        global_layers = layers // GEMMA3_GLOBAL_EVERY
    else:
        global_layers, window = layers, 0
    window_layers = layers - global_layers
    window_cells = n_ctx if full_window_cache or not window else min(n_ctx, window + n_ubatch)
    total = per_position * (global_layers * n_ctx + window_layers * window_cells)
    return KvCacheSize(per_position, global_layers, window_layers, window_cells, total)
