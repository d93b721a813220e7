"""Which float precision a run computes in: `precision = auto` chooses per machine.

bf16 autocast pays only where the hardware multiplies bf16 natively: CUDA GPUs with bf16
support, and CPUs with AVX512-BF16 or AMX (oneDNN's bf16 kernels). On other CPUs PyTorch
emulates bf16 matmuls and a step is several times slower than fp32 (measured 0.15x on an
AVX2 EPYC), so `auto` keeps fp32 there. The choice is made from the machine's declared
capability (CPU flags and oneDNN's own check), so it is the same at every start of a run on
one machine, and it is recorded in every metrics line (`precision`).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where it does not exist)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """AVX512-BF16 or AMX, and a oneDNN that uses them."""
    flags = cpu_flags() if flags is None else flags
    if not any(flag in flags for flag in NATIVE_BF16_FLAGS):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device, native_cpu_bf16: bool | None = None) -> str:
    """'bf16' or 'fp32' for the configured precision on this device."""
    if precision in ("bf16", "fp32"):
        return precision
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r} (expected auto, bf16 or fp32)")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        native = cpu_has_native_bf16() if native_cpu_bf16 is None else native_cpu_bf16
        return "bf16" if native else "fp32"
    return "fp32"


def autocast_for(precision: str, device: torch.device):
    """A callable returning the autocast context of a resolved precision."""
    if precision != "bf16":
        return nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
