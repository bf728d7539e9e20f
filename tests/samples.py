"""Small sample values shared by tests that need a `ModelInfo` without loading a model."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine import ModelInfo

_DEMO_MODEL = ModelInfo(
    path="/models/gemma-3-270m-q4_k_m.gguf",
    file_name="gemma-3-270m-q4_k_m.gguf",
    file_size=253_000_000,
    architecture="gemma3",
    name="Gemma 3 270m",
    size_label="270M",
    quantization="Q4_K_M",
    context_length=32768,
    n_ctx=4096,
    chat_template=False,
    prompt_format="gemma-turns",
    demo=True,
    threads=2,
    gpu_layers=0,
    gpu_offload_supported=False,
    gpu_layers_reason="auto: this llama.cpp build has no GPU offload",
)


def sample_model_info(**changes: Any) -> ModelInfo:
    """What the runtime reports for the demo model on a CPU-only build, with `changes` applied."""
    return dataclasses.replace(_DEMO_MODEL, **changes)
