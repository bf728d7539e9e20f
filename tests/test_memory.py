"""The KV-cache size computed from GGUF numbers, against what llama.cpp allocates."""

from __future__ import annotations

from pathlib import Path

from models.gguf import GgufInfo, read_gguf
from models.memory import kv_cache_size

MIB = 1024 * 1024


def test_demo_model_kv_cache_matches_llama_cpp(gemma_path):
    gguf = read_gguf(gemma_path)
    # llama.cpp 0.3.36's own load report for this file: "KV buffer size" lines of the
    # global cache (3 layers) plus the window cache (15 layers)
    assert kv_cache_size(gguf, 4096).total_bytes == (12 + 60) * MIB
    assert kv_cache_size(gguf, 8192).total_bytes == (24 + 120) * MIB
    small = kv_cache_size(gguf, 4096, full_window_cache=False)
    assert (small.global_layers, small.window_layers, small.window_cells) == (3, 15, 1024)
    assert small.total_bytes == (12 + 15) * MIB
    assert kv_cache_size(gguf, 8192, full_window_cache=False).total_bytes == (24 + 15) * MIB


def test_medgemma_4b_from_its_hyperparameters():
    # MedGemma 4B's text model (Gemma 3 4B): 34 layers, 4 KV heads of 256, a 1024-position window
    medgemma = GgufInfo(
        path=Path("medgemma-4b-it-Q4_K_S.gguf"),
        file_size=2_500_000_000,
        version=3,
        tensor_count=0,
        metadata={
            "general.architecture": "gemma3",
            "gemma3.block_count": 34,
            "gemma3.attention.head_count": 8,
            "gemma3.attention.head_count_kv": 4,
            "gemma3.attention.key_length": 256,
            "gemma3.attention.value_length": 256,
            "gemma3.attention.sliding_window": 1024,
        },
    )
    size = kv_cache_size(medgemma, 4096)
    assert size.bytes_per_position_per_layer == 4 * 512 * 2  # 4 KiB
    assert (size.global_layers, size.window_layers) == (5, 29)
    assert size.total_bytes == 34 * 4096 * 4096  # 544 MiB
    assert kv_cache_size(medgemma, 8192).total_bytes == 34 * 8192 * 4096  # 1088 MiB
    # small window cache: 5 global layers at full length, 29 at 1024 + 512 positions
    assert kv_cache_size(medgemma, 4096, full_window_cache=False).total_bytes == 4096 * (5 * 4096 + 29 * 1536)
    assert kv_cache_size(medgemma, 8192, full_window_cache=False).total_bytes == 4096 * (5 * 8192 + 29 * 1536)
