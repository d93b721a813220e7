"""Shared pieces of the benchmark scripts: environment, machine facts, peak FLOP/s, model
FLOPs per token, and output (a readable table, then one JSON line per measurement).

The benchmarks are scripts, not tests: they measure and print; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def quiet_local_environment() -> None:
    """Ray on loopback, no usage stats, W&B offline, no progress bars (set before importing ray)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TQDM_DISABLE", "1")


def own_ray_environment() -> dict:
    """Environment for a `sweeps/run.py` child that must start a Ray of its own.

    Without an address, ray.init() joins any cluster a `ray start --head` left registered on
    the machine (/tmp/ray/ray_current_cluster), someone else's included; RAY_ADDRESS=local
    makes it start a private one, which ends with the child. An explicit --address wins.
    """
    return {**os.environ, "RAY_ADDRESS": "local"}


def load_average() -> list[float]:
    """1/5/15-minute load: the machine is shared, so every figure is printed beside it."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(device: str = "cpu") -> dict:
    import torch

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # oneDNN's bf16 kernels need AVX512-BF16 or AMX; without them bf16 matmuls take a slow
        # reference path (measured 10-100x slower than float32 on an AVX2-only EPYC).
        "cpu_native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_matmul_flops(dtype_name: str, device: str, size: int = 2048, seconds: float = 2.0) -> float:
    """Best FLOP/s of a square `size` x `size` matmul at this dtype, thread count and device.

    Best-of (not mean): the peak is what the hardware can do when nothing else interferes;
    the trainer's MFU is quoted against it. Uses the current torch thread count.
    """
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    flops = 2.0 * size**3
    a @ b  # warm-up: thread pool, kernel choice
    synchronize(device)
    best = math.inf
    deadline = time.perf_counter() + seconds
    reps = 0
    while reps < 2 or (time.perf_counter() < deadline and reps < 200):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
        reps += 1
        if best > seconds:  # one multiplication takes longer than the budget (slow bf16 path)
            break
    return flops / best


def flops_per_token(model_config, vocab_size: int, seq_length: int, micro_batch: int, head_fraction: float) -> dict:
    """Training FLOPs per token of the DiffusionLM (forward + backward = 3 x forward).

    With d = hidden, L = layers, f = intermediate, T = seq_length, R = 2 * bucket - 1 relative
    buckets, c = cond_dim, E = time_embedding_dim, V = vocabulary, B = micro-batch and h = the
    share of tokens that reach the output head (the masked ones; the loop runs the head only there):

      6 * N_dense                 N_dense = L (d.2d [qk] + d.2d [vg] + d.d [out] + d.2f [up] + f.d [down])
    + 6 * h * (d.d + d.V)         head: dense d x d, then the tied d x V projection
    + 12 * L * d * T              content attention: q.k^T and attn.v over T keys (2 x 2 d T forward)
    + 12 * L * d * R              relative terms: q.k_pos^T and k.q_pos^T against the R buckets
    + 6 * L * R * 2d.d / (B T)    projecting the relative table through in_proj_qk, once per micro-batch
    + 6 * (E.c + c.c + L.c.6d)/T  time MLP and AdaLN linears, once per sequence

    Embedding lookups, gathers, softmax, norms and elementwise ops are not counted (MFU counts
    matmul work). Biases are not counted.
    """
    d, L, f = model_config.hidden_size, model_config.num_layers, model_config.intermediate_size
    T, R = seq_length, 2 * model_config.position_bucket_size - 1
    n_dense = L * (2 * d * d + 2 * d * d + d * d + 2 * d * f + f * d)
    terms = {
        "dense": 6.0 * n_dense,
        "head": 6.0 * head_fraction * (d * d + d * vocab_size),
        "attention": 12.0 * L * d * T,
        "relative": 12.0 * L * d * R,
        "relative_table": 6.0 * L * R * 2 * d * d / (micro_batch * T),
        "time": 0.0,
    }
    if model_config.time_conditioning:
        c, e = model_config.cond_dim, model_config.time_embedding_dim
        terms["time"] = 6.0 * (e * c + c * c + L * c * 6 * d) / T
    terms["total"] = sum(terms.values())
    return terms


def spread(values: Sequence[float]) -> dict:
    """min, max and relative spread (max - min) / mean of repeated measurements."""
    values = [v for v in values if v is not None]
    if not values:
        return {}
    mean = sum(values) / len(values)
    return {
        "min": min(values),
        "max": max(values),
        "mean": mean,
        "spread": (max(values) - min(values)) / mean if mean else 0.0,
    }


def fmt(value, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and spec:
        return format(value, spec)
    return str(value)


def print_table(rows: Iterable[dict], columns: Sequence[tuple[str, str, str]], title: str | None = None) -> None:
    """columns: (key, header, format spec). Missing keys print as '-'."""
    rows = list(rows)
    cells = [[fmt(r.get(key), spec) for key, _, spec in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h, _) in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))
    sys.stdout.flush()


def emit(record: dict) -> None:
    """One JSON line per measurement; `benchmarks/run.py` collects lines with a `benchmark` key."""
    print(json.dumps(record, sort_keys=False), flush=True)


def rounded(record: dict, digits: int = 4) -> dict:
    out = {}
    for key, value in record.items():
        if isinstance(value, float):
            out[key] = float(f"{value:.{digits}g}") if value else 0.0
        elif isinstance(value, dict):
            out[key] = rounded(value, digits)
        elif isinstance(value, list):
            out[key] = [rounded(v, digits) if isinstance(v, dict) else
                        (float(f"{v:.{digits}g}") if isinstance(v, float) else v) for v in value]
        else:
            out[key] = value
    return out


def import_source(text: str, name: str):
    """Import Python source text (e.g. a file as committed at another revision) as module `name`."""
    import importlib.util
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=f"{name}-")) / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def builtin_data(cache_dir: str | None = None):
    """The built-in corpus prepared in the shared data cache (generated once, then reused)."""
    from trainer.config import TrainConfig
    from trainer.data.sources import resolve_data

    return resolve_data(TrainConfig(), cache_dir, show_progress=False)
