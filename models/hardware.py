"""What the machine offers: physical cores, memory, GPU offload support."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


def physical_cores() -> int:
    """Physical cores, the best default thread count for llama.cpp decoding."""
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    try:  # a container or taskset may allow fewer cores than the machine has
        cores = min(cores, len(os.sched_getaffinity(0)))
    except AttributeError:
        pass
    return max(1, cores)


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


@dataclass(frozen=True, slots=True)
class GpuChoice:
    layers: int
    reason: str


def choose_gpu_layers(requested: str | int | None, supported: bool) -> GpuChoice:
    """`auto` offloads every layer when the build can, else none; a number overrides."""
    if requested is None or str(requested).strip().lower() == "auto":
        if supported:
            return GpuChoice(-1, "auto: this llama.cpp build supports GPU offload, all layers offloaded")
        return GpuChoice(0, "auto: this llama.cpp build has no GPU offload, running on the CPU")
    try:
        layers = int(requested)
    except ValueError:
        raise ValueError(f"--gpu-layers must be 'auto' or a whole number, not {requested!r}") from None
    if layers != 0 and not supported:
        return GpuChoice(
            0, f"{layers} layers requested but this llama.cpp build has no GPU offload: CPU only"
        )
    what = "all layers" if layers < 0 else f"{layers} layers"
    return GpuChoice(layers, f"set by the user: {what}")


def memory_summary() -> dict[str, int]:
    vm = psutil.virtual_memory()
    return {"total_bytes": vm.total, "available_bytes": vm.available}
