"""What the runtime knows about a loaded model. Light to import: no llama.cpp here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the runtime knows about the loaded model and where it runs."""

    path: str
    file_name: str
    file_size: int
    architecture: str
    name: str
    size_label: str
    quantization: str
    context_length: int  # trained context from the GGUF metadata
    n_ctx: int  # context the runtime was configured with
    chat_template: bool  # the GGUF carries its own template
    prompt_format: str  # "embedded-template" or "gemma-turns"
    demo: bool  # the embedded non-medical demo model is in use
    threads: int
    gpu_layers: int
    gpu_offload_supported: bool
    gpu_layers_reason: str
    server: str = ""  # the model server's address; empty when the model runs on this machine
    n_batch: int = 0  # prompt tokens per llama_decode call, as llama.cpp took them; 0: not known here
    n_ubatch: int = 0

    def to_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "file": self.file_name,
            "path": self.path,
            "architecture": self.architecture,
            "name": self.name,
            "size_label": self.size_label,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "n_ctx": self.n_ctx,
            "prompt_format": self.prompt_format,
            "demo": self.demo,
            "threads": self.threads,
            "gpu_layers": self.gpu_layers,
            "gpu_offload_supported": self.gpu_offload_supported,
        }
        if self.server:
            described["server"] = self.server
        if self.n_batch:
            described["n_batch"], described["n_ubatch"] = self.n_batch, self.n_ubatch
        return described
