"""The GPU check: one command, under 8 minutes on one GPU, one JSON summary; it cannot pass
having measured nothing.

    bash benchmarks/gpu_check.sh OUT_DIR                  # on the lent GPU machine: wheels, then this
    python benchmarks/gpu_check.py --out OUT_DIR          # every part
    python benchmarks/gpu_check.py --parts headline,ddp   # some parts (always in the order below)

First, whether there is a GPU torch can use (nothing else runs otherwise):
  - `nvidia-smi -L` lists GPUs but torch cannot use them (a CPU-only torch build, or
    torch.cuda.is_available() False): one line naming the problem, exit 2;
  - no GPU at all (nvidia-smi lists none and torch sees none): one line "no GPU here: nothing
    measured", exit 3; `--allow-no-gpu` makes that exit 0 (CI on machines without GPUs, where
    the check is expected to measure nothing).

Then the parts, in this order, each in its own process with its own time budget (a part that
crashes or hangs is reported and the next still runs):

  headline    the figure that matters, first, and never skipped by the budget: the `base` preset
              in bf16 at vocabulary 16,384 (synthetic token rows: random ids over the 16,384-word
              vocabulary, no padding, uniform frequency weights; the built-in corpus's own
              vocabulary is ~4,800 words), the loop's own `train_step`, eager and with the encoder
              compiled (`trainer.loop.compile_encoder`; a compiled row fails where the compile fell
              back to eager, or where its profiled step shows no compiled region), at the sweep's
              micro-batch (TrainConfig's micro_batch_size) and
              at a large one (128). Per row: tokens/s, MFU against the chip's dense bf16 peak
              (DENSE_BF16_PEAKS; a chip not in the table: the best bf16 matmul measured, and the
              JSON says so) with FLOPs per token from `common.flops_per_token` (and, on eager
              rows, the FLOPs torch's FlopCounterMode counts in one step, as a cross-check),
              torch.cuda.max_memory_reserved, the attention kernel that ran (torch.profiler over
              one step: `classify_attention`), and syncs per step: on eager rows one step under
              benchmarks/op_count.py's OpCounter, counted from the micro-batch's copy to the device
              to the end of the step, as tests/test_host_syncs.py does (not on compiled rows: Dynamo
              runs a frame first called under a TorchDispatchMode eagerly from then on, so the count
              would be an eager step's and the row's encoder would stay eager); on every CUDA row
              the same span under torch.cuda.set_sync_debug_mode("warn"), which counts the syncs
              that really happened.
  concurrent  four `base` processes at once (the sweep's `--gpus-per-worker 0.25`), each calling
              trainer.train.limit_gpu_memory(0.25) first, the headline's eager setup at the sweep's
              micro-batch, a fixed number of steps after a barrier: aggregate tokens/s against the
              headline's single-process figure, each process's max memory reserved (must stay under
              0.25 of the GPU's memory), and whether all four trained at the same time.
  ddp         two ranks of DistributedDataParallel over gloo, both on cuda:0 (one GPU), running
              `trainer.loop.train_loop` a few `tiny` steps on the built-in corpus: both finish, and
              both hold the same weights and EMA weights afterwards (a digest per rank).
  export      a `tiny` model trained a few steps on the GPU, exported with `python -m
              trainer.export`, loaded with transformers' AutoModelForMaskedLM (trust_remote_code)
              on the CPU and on the GPU: fp32 logits compared (max |diff| <= LOGITS_TOLERANCE).
  sweep       last: `sweeps/run.py`, 4 trials on the built-in corpus with `--gpus-per-worker 0.25`:
              passes when all 4 trials' training intervals share an instant. Skipped, with the
              reason, where `import ray` fails ("ray is not installed").

Budgets (PART_BUDGET_S): the headline gets its own in full whatever the clock says; every later
part gets the smaller of its own and what is left of TOTAL_BUDGET_S, and is not started (status
"not_run", a failure) with less than its minimum left (`part_timeout`, `run_schedule`).

Output: progress to stderr; the summary, one JSON line, to stdout and, with `--out DIR`, to
DIR/summary.json (rewritten after every part, `"complete": false` until the end, so a run cut
short still leaves what it measured). {"ok": ..., "exit": ..., "gpu": {...}, "parts": {name:
{"status": "pass" | "fail" | "error" | "skipped" | "not_run", ...}}}. Exit status: 0 when every
part passed or was skipped with a reason, 1 when one failed, errored or was not run, 2 and 3 as
above (2 also for a bad argument).
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import importlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

STARTED = time.time()  # the budget counts from the script's start, torch's import included
ROOT = common.ROOT
PARTS = ("headline", "concurrent", "ddp", "export", "sweep")
FIRST_PART = "headline"  # runs first, with its whole budget, whatever the clock says
# Seconds per part. The whole run (benchmarks/gpu_check.sh: wheels installed, then this script)
# must end within 8 minutes: TOTAL_BUDGET_S for the parts after the headline, counted from this
# script's start, leaves ~50 s for the wheels, a part ended at its deadline and the summary.
# The headline's two compiles (the encoder at two static shapes) are most of its time.
PART_BUDGET_S = {"headline": 290, "concurrent": 50, "ddp": 45, "export": 45, "sweep": 150}
TOTAL_BUDGET_S = 430
MIN_PART_S = 20  # a part is not started with less time than this left...
MIN_START_S = {"sweep": 60}  # ...or than its own minimum
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE_GPU, EXIT_NO_GPU = 0, 1, 2, 3

HEADLINE_PRESET = "base"
HEADLINE_VOCAB = 16384  # TrainConfig's vocab_size: what a BabyLM run's tokenizer has
LARGE_MICRO_BATCH = 128
CONCURRENT_PROCESSES = 4
CONCURRENT_FRACTION = 0.25  # the sweep's --gpus-per-worker 0.25
# fp32 on both devices (TF32 off): the same operations, summed in a different order; a real
# difference (wrong mask, time input or padding on one device) moves logits by ~0.1 or more.
LOGITS_TOLERANCE = 1e-3
MIN_COMPILED_ROW_S = 45  # a compiled headline row is not started with less of the part's budget left
# (after a first compile: with less than 1.2 x that compile's time + 15 s left)
MFU_TARGET = 0.40  # `base`, bf16, on H100-class GPUs
FLOPS_SOURCE = ("common.flops_per_token: analytic training FLOPs (forward + backward = 3 x forward) of the "
                "matmuls: 6 x dense weights, the head on the masked share, attention and relative-position terms")

# Dense (no structured sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' datasheets,
# which quote the sparse figure (twice this) in the headline; first match wins.
DENSE_BF16_PEAKS: tuple[tuple[str, float, str], ...] = (
    (r"H100.*PCIe", 756.0, "H100 PCIe"),  # H100 datasheet: BF16 1,513 TFLOPS with sparsity
    (r"H100.*NVL", 835.0, "H100 NVL"),  # 1,671 with sparsity
    (r"H100", 989.0, "H100 SXM"),  # 1,979 with sparsity ("NVIDIA H100 80GB HBM3" is the SXM part)
    (r"H200.*NVL", 835.0, "H200 NVL"),  # H200 datasheet: NVL 1,671 with sparsity
    (r"H200", 989.0, "H200"),  # SXM: 1,979 with sparsity, the H100 SXM's tensor cores
    (r"A100", 312.0, "A100"),  # A100 datasheet: BF16 312 (624 with sparsity), SXM and PCIe alike
    (r"\bL4\b", 121.0, "L4"),  # L4 datasheet: BF16 242 with sparsity (not the L40 / L40S)
    (r"\bA10\b", 125.0, "A10"),  # A10 datasheet: BF16 125 (250 with sparsity); not the A10G
    # Ada Lovelace whitepaper, appendix: "Peak BF16 Tensor TFLOPS with FP32 Accumulate" 165.2 dense
    # (330.4 sparse); bf16 has no fp16-accumulate mode (FP16 with FP16 accumulate is the 330 figure).
    (r"RTX 4090", 165.2, "RTX 4090"),
)
H100_CLASS = ("H100", "H200")


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Pure pieces (tested on CPU in tests/test_gpu_check.py)
# --------------------------------------------------------------------------------------


def gpu_verdict(smi_gpus: list[str], torch_version: str, cuda_version: str | None, cuda_available: bool,
                allow_no_gpu: bool = False) -> tuple[int, str] | None:
    """Whether the check can measure anything here: None to go on, else (exit status, the one line
    to print). `smi_gpus`: the lines `nvidia-smi -L` printed (empty when it is absent or fails)."""
    if cuda_available:
        return None
    if smi_gpus:
        listed = f"nvidia-smi lists {len(smi_gpus)} GPU{'s' if len(smi_gpus) > 1 else ''} ({smi_gpus[0]}" \
                 f"{', ...' if len(smi_gpus) > 1 else ''})"
        if not cuda_version:
            return EXIT_UNUSABLE_GPU, (f"gpu_check: {listed} but torch {torch_version} is a CPU-only build "
                                       f"(torch.version.cuda is None): nothing measured")
        return EXIT_UNUSABLE_GPU, (f"gpu_check: {listed} but torch {torch_version} (CUDA {cuda_version}) cannot use "
                                   f"them: torch.cuda.is_available() is False (a driver older than this CUDA build, "
                                   f"or CUDA_VISIBLE_DEVICES hiding them): nothing measured")
    line = f"gpu_check: no GPU here: nothing measured (nvidia-smi lists none; torch {torch_version}, " \
           f"CUDA {cuda_version or 'none'})"
    return (EXIT_OK if allow_no_gpu else EXIT_NO_GPU), line


def parse_smi_list(text: str) -> list[str]:
    """GPU names from `nvidia-smi -L` ("GPU 0: NVIDIA H200 (UUID: GPU-...)")."""
    names = []
    for line in text.splitlines():
        match = re.match(r"\s*GPU\s+\d+:\s*(.*?)\s*(\(UUID:.*)?$", line)
        if match:
            names.append(match.group(1))
    return names


def order_parts(requested: str) -> list[str]:
    """The parts asked for (a comma list), in PARTS order whatever order they were given in."""
    names = [p.strip() for p in requested.split(",") if p.strip()]
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise ValueError(f"unknown part(s) {', '.join(unknown) or repr(requested)}; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p in names]


def part_timeout(part: str, elapsed: float, total: float = TOTAL_BUDGET_S) -> tuple[float | None, str | None]:
    """The seconds `part` may run when `elapsed` seconds of the run have gone: (its budget, None),
    or (None, why it is not started). The headline always gets its whole budget."""
    own = PART_BUDGET_S[part]
    if part == FIRST_PART:
        return float(own), None
    left = total - elapsed
    need = MIN_START_S.get(part, MIN_PART_S)
    if left < need:
        return None, f"not run: {max(left, 0.0):.0f} s of the {total:.0f} s budget left, it needs {need} s"
    return float(min(own, left)), None


def run_schedule(parts: list[str], run_one: Callable[[str, float], dict], skip: Callable[[str], str | None],
                 clock: Callable[[], float] = time.time, start: float | None = None, total: float = TOTAL_BUDGET_S,
                 on_result: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Run `parts` in order: a part `skip` gives a reason for is skipped; the others run with
    `part_timeout`'s budget (`run_one(part, seconds)` returns its result), or are marked not run."""
    start = clock() if start is None else start
    results: dict[str, dict] = {}
    for part in parts:
        reason = skip(part)
        if reason:
            result = {"status": "skipped", "reason": reason}
        else:
            timeout, why_not = part_timeout(part, clock() - start, total)
            result = {"status": "not_run", "error": why_not} if timeout is None else run_one(part, timeout)
        results[part] = result
        if on_result is not None:
            on_result(part, result)
    return results


def sweep_skip_reason(probe: Callable[[str], object] = importlib.import_module) -> str | None:
    """Why the sweep part cannot run here (Ray missing), or None."""
    try:
        probe("ray")
    except ImportError:
        return "ray is not installed"
    return None


def overall_status(results: dict[str, dict]) -> tuple[bool, int]:
    """(ok, exit status): ok when every part passed or was skipped with a reason."""
    ok = bool(results) and all(r.get("status") in ("pass", "skipped") for r in results.values())
    return ok, EXIT_OK if ok else EXIT_FAILED


def known_peak(device_name: str) -> dict | None:
    """The dense bf16 peak of a GPU named like torch.cuda.get_device_name(), or None."""
    for pattern, tflops, label in DENSE_BF16_PEAKS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return {"flops": tflops * 1e12, "source": f"table: {label} dense bf16 {tflops:g} TFLOP/s"}
    return None


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOP utilisation: the model's training FLOP/s over the hardware's peak."""
    return flops_per_token * tokens_per_s / peak_flops


def throughput_figures(model_config, vocab_size: int, seq_length: int, micro_batch: int, masked_share: float,
                       tokens_per_s: float, peak_flops: float) -> dict:
    """FLOPs per token (`common.flops_per_token`, the head on the masked share) and MFU."""
    flops = common.flops_per_token(model_config, vocab_size, seq_length, micro_batch, masked_share)["total"]
    return {"flops_per_token": flops, "mfu": mfu(flops, tokens_per_s, peak_flops)}


# Which scaled-dot-product-attention implementation a name (an aten op or a GPU kernel in a
# profile) belongs to; checked in this order, so a cuDNN kernel named "...flash..." is cuDNN's.
ATTENTION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("cudnn", r"cudnn.*(sdpa|attention|fmha)|_scaled_dot_product_cudnn_attention"),
    ("flash", r"flash"),  # aten::_scaled_dot_product_flash_attention, pytorch_flash::flash_fwd_kernel
    ("efficient", r"efficient_attention|fmha_cutlass|mem_eff"),  # aten::_efficient_attention_forward, fmha_cutlassF_*
    ("math", r"_scaled_dot_product_attention_math"),
)


def classify_attention(names: Iterable[str]) -> dict:
    """The attention implementation that ran, from the op and kernel names of a profiled step.

    A fused kernel (cuDNN, flash, memory-efficient) or SDPA's math op names it; with none of them,
    softmax kernels (not log-softmax: the loss has one) mean attention ran unfused ("math")."""
    found: dict[str, list[str]] = {}
    softmax = []
    for name in dict.fromkeys(names):  # unique, in order
        low = name.lower()
        for kind, pattern in ATTENTION_PATTERNS:
            if re.search(pattern, low):
                found.setdefault(kind, []).append(name)
                break
        else:
            compact = low.replace("_", "")
            if "softmax" in compact and "logsoftmax" not in compact:
                softmax.append(name)
    kinds = [kind for kind, _ in ATTENTION_PATTERNS if kind in found]
    if kinds:
        return {"kernel": kinds[0], "kinds": kinds, "evidence": [n[:160] for n in found[kinds[0]][:4]]}
    if softmax:
        return {"kernel": "math", "kinds": ["math"], "evidence": [n[:160] for n in softmax[:4]],
                "note": "no fused attention kernel ran; softmax kernels did (attention computed unfused)"}
    return {"kernel": None, "kinds": [], "evidence": [], "note": "no attention kernel or softmax in the profile"}


def max_overlap(intervals: list[tuple[float, float]]) -> dict:
    """How many intervals are open at once, at most, and for how long all of them are.

    `max_concurrent`: the largest number of intervals sharing one instant (intervals touching at
    an end point count as sharing it). `all_overlap`: every interval shares a common instant
    (latest start <= earliest end), and `common_s` is the length of that shared window."""
    if not intervals:
        return {"intervals": 0, "max_concurrent": 0, "all_overlap": False, "common_s": 0.0}
    for start, end in intervals:
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"not an interval: ({start}, {end})")
    # Starts before ends at the same instant: touching intervals share that instant.
    events = sorted([(s, 0) for s, _ in intervals] + [(e, 1) for _, e in intervals])
    open_now = best = 0
    for _, kind in events:
        open_now += 1 if kind == 0 else -1
        best = max(best, open_now)
    latest_start = max(s for s, _ in intervals)
    earliest_end = min(e for _, e in intervals)
    return {"intervals": len(intervals), "max_concurrent": best, "all_overlap": latest_start <= earliest_end,
            "common_s": max(0.0, earliest_end - latest_start)}


def concurrent_figures(workers: list[dict], processes: int, fraction: float, single_tokens_per_s: float | None) -> dict:
    """The concurrent part's verdict from its workers' results: each has `tokens`, `start_unix`,
    `end_unix`, `tokens_per_s`, `max_memory_reserved` and `total_memory` (bytes), or `error`."""
    done = [w for w in workers if "tokens_per_s" in w]
    problems = [f"process {w.get('index', '?')}: {w.get('error', 'no result')}" for w in workers if w not in done]
    if len(workers) < processes:
        problems.append(f"{len(workers)} of {processes} processes reported")
    figures: dict = {"processes": processes, "finished": len(done), "fraction": fraction}
    if done:
        intervals = [(w["start_unix"], w["end_unix"]) for w in done]
        overlap = max_overlap(intervals)
        span = max(e for _, e in intervals) - min(s for s, _ in intervals)
        figures.update(overlap)
        figures["aggregate_tokens_per_s"] = sum(w["tokens"] for w in done) / span if span > 0 else None
        figures["sum_of_tokens_per_s"] = sum(w["tokens_per_s"] for w in done)
        figures["per_process_tokens_per_s"] = [w["tokens_per_s"] for w in done]
        shares = [w["max_memory_reserved"] / w["total_memory"] for w in done if w.get("total_memory")]
        figures["max_memory_reserved_share"] = [round(s, 4) for s in shares]
        figures["max_memory_reserved_gb"] = [round(w["max_memory_reserved"] / 2**30, 2) for w in done]
        if single_tokens_per_s and figures["aggregate_tokens_per_s"]:
            figures["single_tokens_per_s"] = single_tokens_per_s
            figures["aggregate_over_single"] = figures["aggregate_tokens_per_s"] / single_tokens_per_s
        if not overlap["all_overlap"]:
            problems.append(f"the {len(done)} processes did not all train at the same time "
                            f"(at most {overlap['max_concurrent']} at once)")
        over = [i for i, s in enumerate(shares) if s >= fraction]
        if over:
            problems.append(f"max memory reserved at or over {fraction:g} of the GPU in process(es) {over}")
    figures["status"] = "fail" if problems else "pass"
    figures["error"] = "; ".join(problems) or None
    return figures


def ddp_verdict(ranks: list[dict], world: int, steps: int) -> dict:
    """The ddp part's verdict: every rank finished `steps` steps with a finite loss, and all ranks
    hold the same weights and EMA weights (DDP averaged their gradients)."""
    problems = []
    if len(ranks) != world:
        problems.append(f"{len(ranks)} of {world} ranks reported")
    for r in ranks:
        if "error" in r:
            problems.append(f"rank {r.get('rank', '?')}: {r['error']}")
        elif r.get("step") != steps:
            problems.append(f"rank {r.get('rank')}: stopped at step {r.get('step')}, not {steps}")
        elif not (isinstance(r.get("train_loss"), (int, float)) and math.isfinite(r["train_loss"])):
            problems.append(f"rank {r.get('rank')}: train_loss {r.get('train_loss')}")
    good = [r for r in ranks if "error" not in r]
    same_weights = len(good) == world and len({r.get("weights_digest") for r in good}) == 1
    same_ema = len(good) == world and len({r.get("ema_digest") for r in good}) == 1
    if len(good) == world and not (same_weights and same_ema):
        problems.append("the ranks' weights differ after training" if not same_weights else
                        "the ranks' EMA weights differ after training")
    return {"status": "fail" if problems else "pass", "error": "; ".join(problems) or None,
            "same_weights": same_weights, "same_ema_weights": same_ema,
            "train_loss": [r.get("train_loss") for r in good]}


def training_interval(history: list[dict]) -> tuple[float, float]:
    """A trial's training span from its reports (sweeps/results.py `history`): from its first
    optimizer step (`first_step_unix`) to the end of its last evaluation (its step time `train_s`
    plus every evaluation's `eval_s`). Checkpoint writes and Ray's bookkeeping are left out, so
    the span is a lower bound of the real one: an overlap found with it is real."""
    if not history:
        raise ValueError("the trial reported nothing")
    start = history[0]["first_step_unix"]
    end = start + history[-1]["train_s"] + sum(r.get("eval_s", 0.0) for r in history)
    return start, end


def compare_logits(reference, other, tolerance: float = LOGITS_TOLERANCE) -> dict:
    """Max |difference| of two logits tensors (compared in float32 on the CPU) and pass/fail.

    Suppressed entries (SUBS: special tokens at -inf, or at the float32 minimum as the export
    writes them; anything non-finite or saturated) must be suppressed in both; the difference is
    taken over the rest."""
    import torch

    a = reference.detach().float().cpu()
    b = other.detach().float().cpu()
    if a.shape != b.shape:
        return {"pass": False, "max_abs_diff": math.inf, "error": f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"}
    if torch.isnan(a).any() or torch.isnan(b).any():
        return {"pass": False, "max_abs_diff": math.nan, "error": "NaN logits"}
    big = torch.finfo(torch.float32).max / 2
    real_a, real_b = a.abs() < big, b.abs() < big  # False for inf and saturated values
    if not torch.equal(real_a, real_b):
        return {"pass": False, "max_abs_diff": math.inf, "error": "suppressed (non-finite) entries differ"}
    if not real_a.any():
        return {"pass": False, "max_abs_diff": math.inf, "error": "no finite logits"}
    diff = (a[real_a] - b[real_a]).abs().max().item()
    return {"pass": diff <= tolerance, "max_abs_diff": diff, "tolerance": tolerance,
            "max_abs_logit": a[real_a].abs().max().item(), "shape": list(a.shape)}


class SyntheticRows:
    """A stand-in for trainer.data.dataset.TokenShard (`num_rows`, `rows(indices)`): fixed rows of
    random token ids, uniform over the real tokens of a `vocab_size` vocabulary (no special
    tokens, no padding), so the model is built, and its head sized, at that vocabulary."""

    def __init__(self, num_rows: int, seq_length: int, vocab_size: int, seed: int = 0):
        import numpy as np

        from trainer.data.tokenizer import NUM_SPECIAL_TOKENS

        if vocab_size <= NUM_SPECIAL_TOKENS:
            raise ValueError(f"vocab_size {vocab_size} leaves no real tokens")
        self.num_rows, self.seq_length, self.vocab_size = num_rows, seq_length, vocab_size
        rng = np.random.default_rng(seed)
        self._table = rng.integers(NUM_SPECIAL_TOKENS, vocab_size, size=(num_rows, seq_length), dtype=np.int32)

    def __len__(self) -> int:
        return self.num_rows

    def rows(self, indices):
        import numpy as np

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            raise IndexError(f"row index out of range [0, {self.num_rows})")
        return self._table[idx].astype(np.int64)


def uniform_token_weights(vocab_size: int):
    """Frequency weights where every real token is as frequent as any other (special tokens 0):
    the masking code runs its frequency-informed path at no preference."""
    import torch

    from trainer.data.tokenizer import NUM_SPECIAL_TOKENS

    weights = torch.ones(vocab_size, dtype=torch.float32)
    weights[:NUM_SPECIAL_TOKENS] = 0.0
    return weights


def parameter_digest(module) -> str:
    """sha256 of a module's parameters' float32 bytes, in order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for p in module.parameters():
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def parse_compute_apps(text: str) -> dict[int, float]:
    """{pid: MiB} from `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`."""
    used: dict[int, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                used[int(parts[0])] = float(parts[1])
            except ValueError:
                continue
    return used


# --------------------------------------------------------------------------------------
# The training step on synthetic rows (headline and concurrent parts)
# --------------------------------------------------------------------------------------


def step_config(preset: str, micro_batch: int, precision: str, compiled: bool):
    """One micro-batch per step (batch_size = micro_batch_size): the step measured is the
    micro-batch's. vocab_size, seq_length and the recipe are TrainConfig's defaults."""
    from trainer.config import TrainConfig

    return TrainConfig.parse({"preset": preset, "precision": precision, "batch_size": micro_batch,
                              "micro_batch_size": micro_batch, "max_steps": 10_000,
                              "compile": "on" if compiled else "off"})


class SyntheticStep:
    """Set up as train_loop sets up one worker (model, EMA copy, optimizer, schedule, autocast;
    the encoder compiled after the EMA copy, as the loop does), on SyntheticRows at
    `config.vocab_size`, and take the loop's own step, `trainer.loop.train_step`."""

    def __init__(self, config, device: str, num_rows: int = 4096):
        import torch

        import trainer.loop as loop
        from trainer.model import count_parameters
        from trainer.optim import build_optimizer
        from trainer.precision import resolve_precision
        from trainer.schedules import ScheduleParams

        self.loop, self.config, self.device = loop, config, torch.device(device)
        self.vocab_size = config.vocab_size
        rows = SyntheticRows(num_rows, config.seq_length, self.vocab_size, seed=config.seed)
        torch.manual_seed(config.seed)
        self.model = loop.build_model(config.model, self.vocab_size).to(self.device)
        self.num_parameters = count_parameters(self.model)
        ema = copy.deepcopy(self.model).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        optimizer = build_optimizer(self.model, config)
        self.autocast = loop.autocast_factory(config.precision, self.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.setup = loop.StepSetup(config, self.model, ema, optimizer, ScheduleParams.from_config(config),
                                    uniform_token_weights(self.vocab_size), rows, self.autocast, self.device,
                                    total_steps=config.max_steps,
                                    accumulation=config.batch_size // config.micro_batch_size)
        self.guard = loop.compile_encoder(self.model) if loop.resolve_compile(config.compile, self.device) else None
        self.state = loop.LoopState()
        self.window = loop.Window(torch.zeros((), device=self.device))

    @property
    def compiled(self) -> bool:
        return self.guard is not None and self.guard.active

    def step(self, lap: Callable[[str], None] | None = None):
        result = self.loop.train_step(self.setup, self.state, self.window, lap)
        self.state = result.state
        if self.device.type == "cpu" and self.state.step % self.loop.TRIM_EVERY_STEPS == 0:
            self.loop.release_freed_memory()  # as train_loop does on a CPU
        return result

    def synchronize(self) -> None:
        common.synchronize(self.device.type)


def timed_steps(runner: SyntheticStep, warmup: int, steps: int) -> dict:
    """Warm-up steps (the first timed apart: it compiles), then `steps` timed steps."""
    first_step_s = None
    if warmup > 0:
        start = time.perf_counter()
        runner.step()
        runner.synchronize()
        first_step_s = time.perf_counter() - start
    for _ in range(warmup - 1):
        runner.step()
    runner.synchronize()
    masked = tokens = 0
    start_unix, start = time.time(), time.perf_counter()
    for _ in range(steps):
        result = runner.step()
        masked, tokens = masked + result.masked_tokens, tokens + result.tokens
    runner.synchronize()
    seconds = time.perf_counter() - start
    config = runner.config
    loss = float(runner.window.loss) / max(runner.window.steps, 1)  # after the timing: a sync is harmless here
    return {"tokens_per_s": steps * config.batch_size * config.seq_length / seconds, "step_s": seconds / steps,
            "first_step_s": first_step_s, "masked_share": masked / max(tokens, 1), "train_loss": loss,
            "timed_steps": steps, "warmup_steps": warmup, "tokens": steps * config.batch_size * config.seq_length,
            "start_unix": start_unix, "end_unix": start_unix + seconds}


def device_part_lap(on: Callable[[], None], off: Callable[[], None]) -> Callable[[str], None]:
    """A `lap` for train_step that calls `on` when a micro-batch's host part is done ("masking":
    next comes its copy to the device) and `off` when the next one starts ("data")."""

    def lap(part: str) -> None:
        if part == "masking":
            on()
        elif part == "data":
            off()

    return lap


def count_step(runner: SyntheticStep, flops: bool) -> dict:
    """One step under op_count.OpCounter (counting the device part only) and, when `flops`, under
    torch's FlopCounterMode (the whole step): syncs, operators and FLOPs per step."""
    import contextlib

    from op_count import OpCounter

    counter = OpCounter()

    def on() -> None:
        counter.active = True

    def off() -> None:
        counter.active = False

    flop_mode = contextlib.nullcontext()
    if flops:
        from torch.utils.flop_counter import FlopCounterMode

        flop_mode = FlopCounterMode(display=False)
    with flop_mode, counter:
        counter.active = False
        runner.step(device_part_lap(on, off))
        counter.active = False
    runner.synchronize()
    result = {"syncs_per_step": sum(counter.syncs.values()), "syncing_ops": dict(counter.syncs),
              "device_ops_per_step": sum(counter.ops.values())}
    if flops:
        config = runner.config
        result["flops_per_token_counted"] = flop_mode.get_total_flops() / (config.batch_size * config.seq_length)
    return result


def count_cuda_syncs(runner: SyntheticStep) -> dict:
    """One step whose device part runs under torch.cuda.set_sync_debug_mode("warn"): every
    operation that really made the host wait on the GPU warns once; the warnings are counted."""
    import warnings

    import torch

    def on() -> None:
        torch.cuda.set_sync_debug_mode("warn")

    def off() -> None:
        torch.cuda.set_sync_debug_mode("default")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            runner.step(device_part_lap(on, off))
        finally:
            off()
        runner.synchronize()
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    where = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in syncs})  # the Python line that synced
    return {"cuda_syncs_per_step": len(syncs), "cuda_sync_lines": where[:8]}


def compiled_regions(names: Iterable[str]) -> int:
    """How many compiled-graph calls a profile shows (torch.compile marks each with a
    "Torch-Compiled Region: i/j" range; its autograd function is "CompiledFunction")."""
    return sum(1 for n in names if n.startswith("Torch-Compiled Region") or n == "CompiledFunction")


def profile_step(runner: SyntheticStep) -> dict:
    """One step under torch.profiler (CPU ops, and the GPU's kernels on CUDA): which attention ran,
    and whether compiled graphs ran at all."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if runner.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        runner.step()
        runner.synchronize()
    names = []
    for event in prof.events():
        names.append(event.name)
        names.extend(getattr(k, "name", "") for k in getattr(event, "kernels", []) or [])
    names = [n for n in names if n]
    return {"attention": classify_attention(names), "compiled_regions_in_profile": compiled_regions(names)}


# --------------------------------------------------------------------------------------
# Parts (each runs in a child process: `--run-part NAME --result FILE`)
# --------------------------------------------------------------------------------------


class PartContext:
    def __init__(self, args, result_path: Path):
        self.args = args
        self.result_path = result_path
        self.deadline = args.deadline or (time.time() + PART_BUDGET_S.get(args.run_part, 120))
        self.result: dict = {}
        self.cuda = not args.allow_cpu
        self.device = "cuda" if self.cuda else "cpu"
        self.workdir = Path(args.workdir)

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self, **fields) -> None:
        """Write what is known so far: a part killed at its deadline still leaves its numbers."""
        self.result.update(fields)
        tmp = self.result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, default=str))
        tmp.replace(self.result_path)

    def cache_dir(self) -> str:
        from trainer.data.sources import default_cache_dir

        return str(Path(self.args.cache_dir).expanduser() if self.args.cache_dir else default_cache_dir())

    def worker_command(self, kind: str, *extra: str) -> list[str]:
        """This script as a worker of this part: `--run-worker KIND` with the part's options."""
        command = [sys.executable, str(Path(__file__).resolve()), "--run-worker", kind,
                   "--workdir", str(self.workdir), "--deadline", str(self.deadline), *extra]
        return command + forwarded_flags(self.args)


def headline_settings(args) -> dict:
    """Preset, precision, micro-batches, steps and compile modes of the headline (and of the
    concurrent part's workers): the real thing on a GPU, a small one with --allow-cpu."""
    from trainer.config import TrainConfig

    cuda = not args.allow_cpu
    sweep_micro = TrainConfig().micro_batch_size
    default_micro = [sweep_micro, LARGE_MICRO_BATCH] if cuda else [4, 8]
    micro = [int(m) for m in args.micro_batches.split(",")] if args.micro_batches else default_micro
    return {"preset": args.preset or (HEADLINE_PRESET if cuda else "tiny"),
            "precision": "bf16" if cuda else "auto",
            "micro_batches": micro, "sweep_micro_batch": sweep_micro,
            "compile_modes": {"both": [False, True], "on": [True], "off": [False]}[args.compile or ("both" if cuda else "off")],
            "warmup": args.warmup or (5 if cuda else 1), "steps": args.steps or (30 if cuda else 2)}


def part_headline(ctx: PartContext) -> None:
    import torch

    settings = headline_settings(ctx.args)
    cuda, device = ctx.cuda, ctx.device
    name = torch.cuda.get_device_name() if cuda else common.machine_info()["cpu"]
    peak = known_peak(name) if cuda else None
    if peak is None:
        size = 8192 if cuda else 512
        dtype = "bf16" if cuda else "fp32"
        measured = common.peak_matmul_flops(dtype, device, size, 2.0 if cuda else 0.5)
        peak = {"flops": measured, "source": f"measured: best {size}^3 {dtype} matmul here "
                                             f"({name} is not in the table of datasheet peaks)"}
    total_memory = torch.cuda.get_device_properties(0).total_memory if cuda else None
    log(f"headline: {name}, peak {peak['flops'] / 1e12:.1f} TFLOP/s ({peak['source']}); {settings['preset']}, "
        f"micro-batches {settings['micro_batches']}, vocabulary {HEADLINE_VOCAB:,}")
    from trainer.loop import device_description

    ctx.save(status="error", error="incomplete", device_name=name, device=device_description(torch.device(device)),
             precision=settings["precision"], peak_tflops=peak["flops"] / 1e12,
             peak_source=peak["source"], flops_source=FLOPS_SOURCE, preset=settings["preset"],
             vocab_size=HEADLINE_VOCAB, sweep_micro_batch=settings["sweep_micro_batch"],
             total_memory_gb=total_memory / 2**30 if total_memory else None, torch=torch.__version__, rows=[])
    rows: list[dict] = []
    compile_needs = MIN_COMPILED_ROW_S
    # Eager first: a compile that overruns the budget still leaves every eager figure.
    for compiled in settings["compile_modes"]:
        for micro in settings["micro_batches"]:
            row = {"compiled": compiled, "micro_batch": micro}
            if compiled:
                row["compile_on"] = True  # asked for; "compiled" says whether it ran compiled
            if compiled and ctx.left() < compile_needs:
                row.update(error=f"not measured: {ctx.left():.0f} s left in the headline's budget, "
                                 f"a compiled row needs ~{compile_needs:.0f} s")
                rows.append(row)
                ctx.save(rows=rows)
                continue
            runner = None
            try:
                torch._dynamo.reset()
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                config = step_config(settings["preset"], micro, settings["precision"], compiled)
                if config.vocab_size != HEADLINE_VOCAB:
                    raise RuntimeError(f"TrainConfig's vocab_size is {config.vocab_size}, not {HEADLINE_VOCAB}")
                runner = SyntheticStep(config, device)
                row.update(timed_steps(runner, settings["warmup"], settings["steps"]))
                row.update(precision=runner.precision, seq_length=config.seq_length, num_parameters=runner.num_parameters)
                if compiled:
                    row["compiled"] = runner.compiled  # False: the compile failed and the step ran eager
                    row["compile_fallback"] = runner.guard.reason or None
                    row["compile_s"] = max(0.0, row["first_step_s"] - row["step_s"])  # about: the first step's extra
                    compile_needs = max(compile_needs, 1.2 * row["compile_s"] + 15)
                if cuda:
                    row["max_memory_reserved_gb"] = torch.cuda.max_memory_reserved() / 2**30
                    row["max_memory_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
                row.update(throughput_figures(config.model, config.vocab_size, config.seq_length, micro,
                                              row["masked_share"], row["tokens_per_s"], peak["flops"]))
                if not math.isfinite(row["train_loss"]):
                    row["error"] = f"train_loss {row['train_loss']}"
                ctx.save(rows=rows + [row])
                # Untimed steps, after the timing (each may disturb what follows it); one that
                # fails leaves its error in the row and the figures above stand.
                row.update(untimed(lambda: profile_step(runner), "profile_error"))
                row.setdefault("attention", {"kernel": None, "error": row.get("profile_error")})
                if compiled and row.get("compiled_regions_in_profile") == 0:
                    row["compiled"] = False  # the compiled encoder did not run (the JSON says so below)
                if cuda:
                    row.update(untimed(lambda: count_cuda_syncs(runner), "cuda_syncs_error"))
                if compiled:
                    # Not under a TorchDispatchMode: Dynamo runs a frame first called under one
                    # eagerly from then on (until torch._dynamo.reset()), which would measure, and
                    # leave behind, an eager step. The CUDA count above is the compiled step's.
                    row["syncs_counted"] = "cuda sync-debug mode only"
                else:
                    row.update(untimed(lambda: count_step(runner, flops=True), "syncs_error"))
                    row["syncs_counted"] = "op_count.OpCounter (device part)" + (" and cuda sync-debug mode" if cuda else "")
                if "flops_per_token_counted" in row:
                    row["flops_counted_over_formula"] = row["flops_per_token_counted"] / row["flops_per_token"]
                log(f"headline: {'compiled' if compiled else 'eager'} micro-batch {micro}: "
                    f"{row['tokens_per_s']:,.0f} tokens/s, MFU {100 * row['mfu']:.1f}%, "
                    f"first step {row['first_step_s']:.1f} s, attention {row['attention'].get('kernel')}, "
                    f"syncs/step {row.get('syncs_per_step')}"
                    + (f" (CUDA: {row.get('cuda_syncs_per_step')})" if cuda else "")
                    + (f", {row['max_memory_reserved_gb']:.1f} GB reserved" if cuda else ""))
            except Exception as exc:  # e.g. out of memory: the other rows still run
                traceback.print_exc()
                row["error"] = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            rows.append(row)
            ctx.save(rows=rows)
            runner = None  # the model, its optimizer state and its compiled graphs go
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    measured = [r for r in rows if "mfu" in r]
    problems = [f"{'compiled' if r.get('compile_on') else 'eager'} micro-batch {r['micro_batch']}: {r['error']}"
                for r in rows if "error" in r]
    for r in rows:
        if r.get("compile_fallback"):
            problems.append(f"compiled micro-batch {r['micro_batch']}: the compile fell back to eager "
                            f"({r['compile_fallback']})")
        elif r.get("compile_on") and r.get("compiled_regions_in_profile") == 0:
            problems.append(f"compiled micro-batch {r['micro_batch']}: no compiled region in the profiled step "
                            f"(the encoder ran eager)")
    summary: dict = {"rows": rows, "status": "pass" if not problems and measured else ("fail" if measured else "error"),
                     "error": "; ".join(problems) or (None if measured else "nothing measured"),
                     "target": f"{HEADLINE_PRESET} MFU >= {MFU_TARGET:.0%} on H100-class GPUs"}
    if measured:
        best = max(measured, key=lambda r: r["mfu"])
        summary.update(best_mfu=best["mfu"], best_tokens_per_s=best["tokens_per_s"],
                       best_row={"compiled": best["compiled"], "micro_batch": best["micro_batch"]})
        if cuda and any(k in name for k in H100_CLASS) and settings["preset"] == HEADLINE_PRESET:
            summary["target_met"] = best["mfu"] >= MFU_TARGET
    ctx.save(**summary)


def untimed(measure: Callable[[], dict], error_key: str) -> dict:
    """An untimed measurement's fields, or {error_key: what went wrong} (the row keeps its figures)."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - e.g. a profiler without CUPTI
        traceback.print_exc()
        message = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        return {"error": message} if error_key == "attention" else {error_key: message}


def part_concurrent(ctx: PartContext) -> None:
    settings = headline_settings(ctx.args)
    micro = settings["sweep_micro_batch"] if ctx.cuda else settings["micro_batches"][0]
    steps = ctx.args.concurrent_steps or (40 if ctx.cuda else 2)
    ready = ctx.workdir / "concurrent_ready"
    shutil.rmtree(ready, ignore_errors=True)
    ready.mkdir(parents=True)
    ctx.save(status="error", error="incomplete", preset=settings["preset"], micro_batch=micro, steps=steps,
             compiled=False, processes=CONCURRENT_PROCESSES, fraction=CONCURRENT_FRACTION)
    results = [ctx.workdir / f"concurrent_{i}.json" for i in range(CONCURRENT_PROCESSES)]
    logs = [ctx.workdir / f"concurrent_{i}.log" for i in range(CONCURRENT_PROCESSES)]
    processes = []
    for i in range(CONCURRENT_PROCESSES):
        results[i].unlink(missing_ok=True)
        command = ctx.worker_command("concurrent", "--index", str(i), "--result", str(results[i]),
                                     "--micro-batch", str(micro), "--worker-steps", str(steps))
        with logs[i].open("w") as handle:
            processes.append(subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT))
    driver_mib = wait_all(processes, ctx.left() - 5, poll_gpu=ctx.cuda)
    workers = []
    for i, process in enumerate(processes):
        echo_log(f"concurrent {i}", logs[i])
        if results[i].exists():
            workers.append({"index": i, **json.loads(results[i].read_text())})
        else:
            workers.append({"index": i, "error": f"exit {process.returncode}, no result: "
                                                 + logs[i].read_text(errors="replace")[-400:]})
    single = single_figure(ctx.workdir / "headline.json", micro)
    figures = concurrent_figures(workers, CONCURRENT_PROCESSES, CONCURRENT_FRACTION, single)
    pids = {p.pid: i for i, p in enumerate(processes)}
    if driver_mib is not None:
        figures["driver_max_mib"] = {str(pids[pid]): mib for pid, mib in driver_mib.items() if pid in pids} or \
            "nvidia-smi listed none of the workers' pids (another pid namespace?)"
    figures["barrier_complete"] = [w.get("barrier_complete") for w in workers]
    figures["memory_capped"] = [w.get("memory_capped") for w in workers]
    if ctx.cuda and not all(figures["memory_capped"]):
        uncapped = f"limit_gpu_memory({CONCURRENT_FRACTION:g}) set no cap in process(es) " \
                   f"{[i for i, c in enumerate(figures['memory_capped']) if not c]}"
        figures.update(status="fail", error="; ".join(filter(None, [figures["error"], uncapped])))
    log(f"concurrent: {figures['finished']} of {CONCURRENT_PROCESSES} finished, at most "
        f"{figures.get('max_concurrent')} at once, aggregate {figures.get('aggregate_tokens_per_s') or 0:,.0f} tokens/s"
        + (f" = {figures['aggregate_over_single']:.2f} x one process" if figures.get("aggregate_over_single") else "")
        + f", reserved {figures.get('max_memory_reserved_share')} of the GPU")
    ctx.save(**figures, workers=workers)


def single_figure(headline_result: Path, micro: int) -> float | None:
    """The headline's eager tokens/s at this micro-batch (one process alone on the GPU)."""
    try:
        rows = json.loads(headline_result.read_text()).get("rows", [])
    except (OSError, ValueError):
        return None
    for row in rows:
        if row.get("micro_batch") == micro and not row.get("compiled") and "tokens_per_s" in row:
            return row["tokens_per_s"]
    return None


def wait_all(processes: list[subprocess.Popen], timeout: float, poll_gpu: bool = False) -> dict[int, float] | None:
    """Wait for every process until `timeout` seconds have passed, then kill those left. With
    `poll_gpu`, the most GPU memory nvidia-smi saw each pid use (MiB), sampled every second."""
    deadline = time.time() + max(timeout, 1.0)
    seen: dict[int, float] | None = {} if poll_gpu else None
    while any(p.poll() is None for p in processes) and time.time() < deadline:
        if seen is not None:
            for pid, mib in compute_apps().items():
                seen[pid] = max(seen.get(pid, 0.0), mib)
        time.sleep(1.0)
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()
    return seen


def compute_apps() -> dict[int, float]:
    try:
        done = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_compute_apps(done.stdout) if done.returncode == 0 else {}


def echo_log(label: str, path: Path) -> None:
    """A worker's output, into this process's stderr (the check's log)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    if text.strip():
        print(f"----- {label} -----\n{text.rstrip()}\n----- end of {label} -----", file=sys.stderr, flush=True)


def worker_concurrent(args) -> int:
    """One of the concurrent part's processes: cap the memory first, then the headline's eager
    step; warm up, wait for the others (a barrier of files), time `--worker-steps` steps."""
    from trainer.train import limit_gpu_memory

    capped = limit_gpu_memory(CONCURRENT_FRACTION)  # before anything touches CUDA
    import torch

    settings = headline_settings(args)
    cuda = not args.allow_cpu
    if not cuda:
        torch.set_num_threads(1)  # four processes on a small CPU
    runner = SyntheticStep(step_config(settings["preset"], args.micro_batch, settings["precision"], False),
                           "cuda" if cuda else "cpu")
    for _ in range(settings["warmup"]):
        runner.step()
    runner.synchronize()
    ready = Path(args.workdir) / "concurrent_ready"
    (ready / str(args.index)).touch()
    wait_until = min(time.time() + 30, args.deadline - 15)
    while len(list(ready.iterdir())) < CONCURRENT_PROCESSES and time.time() < wait_until:
        time.sleep(0.05)
    barrier_complete = len(list(ready.iterdir())) >= CONCURRENT_PROCESSES
    figures = timed_steps(runner, 0, args.worker_steps)
    result = {"memory_capped": capped, "barrier_complete": barrier_complete, "pid": os.getpid(), **figures}
    if cuda:
        result.update(max_memory_reserved=torch.cuda.max_memory_reserved(),
                      total_memory=torch.cuda.get_device_properties(0).total_memory)
    else:
        result.update(max_memory_reserved=0, total_memory=None)
    Path(args.result).write_text(json.dumps(result))
    return 0


def part_ddp(ctx: PartContext) -> None:
    world, steps = 2, ctx.args.ddp_steps or (30 if ctx.cuda else 4)
    data = common.builtin_data(ctx.cache_dir())
    init_file = ctx.workdir / "ddp_init"
    init_file.unlink(missing_ok=True)
    run_dir = ctx.workdir / "ddp_run"
    shutil.rmtree(run_dir, ignore_errors=True)
    ctx.save(status="error", error="incomplete", backend="gloo", world=world, steps=steps, preset="tiny",
             device="cuda:0 (both ranks)" if ctx.cuda else "cpu")
    results = [ctx.workdir / f"ddp_{r}.json" for r in range(world)]
    logs = [ctx.workdir / f"ddp_{r}.log" for r in range(world)]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}  # loopback only
    processes = []
    start = time.time()
    for r in range(world):
        results[r].unlink(missing_ok=True)
        command = ctx.worker_command("ddp", "--rank", str(r), "--world", str(world), "--result", str(results[r]),
                                     "--init-file", str(init_file), "--data-root", str(data.data_root),
                                     "--run-dir", str(run_dir), "--worker-steps", str(steps))
        with logs[r].open("w") as handle:
            processes.append(subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env))
    wait_all(processes, ctx.left() - 5)
    ranks = []
    for r, process in enumerate(processes):
        echo_log(f"ddp rank {r}", logs[r])
        if results[r].exists() and process.returncode == 0:
            ranks.append({"rank": r, **json.loads(results[r].read_text())})
        else:
            ranks.append({"rank": r, "error": f"exit {process.returncode}: "
                                              + logs[r].read_text(errors="replace").strip()[-400:]})
    verdict = ddp_verdict(ranks, world, steps)
    log(f"ddp: {verdict['status']}, same weights {verdict['same_weights']}, same EMA {verdict['same_ema_weights']}, "
        f"train_loss {verdict['train_loss']} ({time.time() - start:.0f} s)")
    ctx.save(**verdict, ranks=ranks, wall_s=time.time() - start)


def worker_ddp(args) -> int:
    """One rank: gloo over a file store, the loop's own train_loop on cuda:0 (or the CPU), then a
    digest of the weights and EMA weights it holds."""
    from datetime import timedelta

    import torch.distributed as dist

    import trainer.loop as loop
    from trainer.config import TrainConfig

    if args.allow_cpu:
        import torch

        torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{args.init_file}", rank=args.rank,
                            world_size=args.world, timeout=timedelta(seconds=120))
    held: dict = {}
    original = loop.update_ema

    def noting_update_ema(ema_model, model, decay):  # called once a step with the rank's own modules
        held["ema"], held["model"] = ema_model, model
        original(ema_model, model, decay)

    loop.update_ema = noting_update_ema
    steps = args.worker_steps
    config = TrainConfig.parse({"preset": "tiny", "max_steps": steps, "eval_every": steps, "checkpoint_every": steps,
                                "batch_size": 64, "micro_batch_size": 32, "val_rows": 32, "val_mask_rates": 2,
                                "compile": "off"})
    device = "cpu" if args.allow_cpu else "cuda:0"
    start = time.time()
    metrics = loop.train_loop(config, args.data_root, args.run_dir, device=device, show_progress=False)
    result = {"step": metrics.get("step"), "train_loss": metrics.get("train_loss"), "device": metrics.get("device"),
              "world": dist.get_world_size(), "backend": dist.get_backend(), "seconds": time.time() - start,
              "weights_digest": parameter_digest(held["model"]), "ema_digest": parameter_digest(held["ema"])}
    dist.barrier()
    dist.destroy_process_group()
    Path(args.result).write_text(json.dumps(result))
    return 0


def part_export(ctx: PartContext) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from trainer.config import TrainConfig
    from trainer.loop import train_loop

    device = ctx.device
    data = common.builtin_data(ctx.cache_dir())
    steps, batch = (20, 32) if ctx.cuda else (3, 8)  # --allow-cpu: the pipeline, briefly
    config = TrainConfig.parse({"preset": "tiny", "max_steps": steps, "eval_every": steps, "checkpoint_every": steps,
                                "batch_size": batch, "micro_batch_size": batch, "val_rows": 16, "val_mask_rates": 2,
                                "warmup_proportion": 0.0, "compile": "off"})
    run_dir, out_dir = ctx.workdir / "export_run", ctx.workdir / "export_model"
    start = time.perf_counter()
    train_loop(config, data.data_root, run_dir, device=device, show_progress=False)
    log(f"export: trained {config.max_steps} tiny steps on {device} in {time.perf_counter() - start:.1f} s")
    command = [sys.executable, "-m", "trainer.export", str(run_dir), str(out_dir), "--tokenizer", str(data.data_root)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=max(ctx.left() - 15, 10))
    if done.returncode != 0:
        ctx.save(status="error", error=f"trainer.export exited {done.returncode}: {done.stderr.strip()[-500:]}")
        return
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    mask = tokenizer.mask_token
    texts = [f"the cat {mask} on the mat .", f"{mask} dog sees a {mask} house and runs away quickly .", "a tree ."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    # fp32 on the GPU too: TF32 would round the matmul inputs to 10 mantissa bits.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    on_cpu = AutoModelForMaskedLM.from_pretrained(out_dir, trust_remote_code=True).eval()
    on_gpu = AutoModelForMaskedLM.from_pretrained(out_dir, trust_remote_code=True).to(device).eval()
    with torch.no_grad():
        cpu_logits = on_cpu(**batch).logits
        gpu_logits = on_gpu(**{k: v.to(device) for k, v in batch.items()}).logits
    result = compare_logits(cpu_logits, gpu_logits, LOGITS_TOLERANCE)
    log(f"export: max |logits CPU - {device}| = {result['max_abs_diff']:.2e} (tolerance {LOGITS_TOLERANCE:g})")
    import transformers

    ctx.save(status="pass" if result["pass"] else "fail", error=result.get("error"), devices=["cpu", device],
             dtype="float32", transformers=transformers.__version__,
             **{k: v for k, v in result.items() if k not in ("pass", "error")})


def part_sweep(ctx: PartContext) -> None:
    args = ctx.args
    storage, name = ctx.workdir / "sweeps", "gpu_check"
    cpus = 2 if (os.cpu_count() or 1) >= 8 else 1
    command = [
        sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--search", "random", "--scheduler", "none",
        "--num-samples", "4", "--max-concurrent", "4", "--max-steps", str(args.sweep_steps), "--evals-per-trial", "1",
        "--gpus-per-worker", "0.25", "--cpus-per-worker", str(cpus), "--runner", args.sweep_runner,
        "--storage", str(storage), "--name", name, "--wandb-mode", "disabled", "--cache-dir", ctx.cache_dir(),
        "--set", "val_rows=64", "--set", "val_mask_rates=2", "--set", "eval_pairs_per_paradigm=10",
    ]
    ctx.save(status="error", error="incomplete", command=" ".join(command[1:]))
    log_path = ctx.workdir / "sweep.log"
    start = time.time()
    rc, _ = run_logged(command, log_path, timeout=max(ctx.left() - 15, 10))
    wall = time.time() - start
    if rc != 0:
        ctx.save(status="error", error=f"sweeps/run.py: {'timed out' if rc is None else f'exit {rc}'}", wall_s=wall,
                 log_tail=log_path.read_text(errors="replace")[-1500:])
        return
    trials, overlap = sweep_overlap(str(storage / name))
    problems = []
    if len(trials) != 4 or any("start" not in t for t in trials):
        problems.append(f"{len(trials)} trials, {sum('start' in t for t in trials)} with a training interval")
    if any(t["state"] != "finished" for t in trials):
        problems.append("trials not finished: " + ", ".join(f"{t['trial_id']} {t['state']}" for t in trials
                                                             if t["state"] != "finished"))
    if not overlap["all_overlap"]:
        problems.append(f"the 4 trials did not all train at the same time (at most {overlap['max_concurrent']} at once)")
    log(f"sweep: {len(trials)} trials, at most {overlap['max_concurrent']} training at once, all 4 together for "
        f"{overlap['common_s']:.1f} s ({wall:.0f} s wall)")
    ctx.save(status="fail" if problems else "pass", error="; ".join(problems) or None, wall_s=wall, trials=trials,
             **overlap, gpus_per_worker=0.25, runner=args.sweep_runner)


def run_logged(command: list[str], log_path: Path, timeout: float, capture_stdout: bool = False) -> tuple[int | None, str]:
    """Run a command in its own session, its output (stderr, and stdout unless captured) to
    `log_path`; past `timeout` its whole process group is ended (Ray and its workers too).
    Returns (exit status, or None when it timed out; captured stdout)."""
    with log_path.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE if capture_stdout else handle, stderr=handle,
                                   text=True, env=common.own_ray_environment(), start_new_session=True)
        RUNNING.append(process)
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_group(process)
            return None, ""
        finally:
            RUNNING.remove(process)
    return process.returncode, stdout or ''


RUNNING: list[subprocess.Popen] = []  # this part's commands in their own sessions, for on_terminate


def on_terminate(signum, frame) -> None:
    """The parent ends a part past its budget with SIGTERM: pass it on to the commands the part
    started in their own sessions (a sweep's Ray), which the parent's signal does not reach."""
    for process in list(RUNNING):
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    raise SystemExit(143)


def sweep_overlap(experiment: str) -> tuple[list[dict], dict]:
    """Each trial of a sweep folder with its training interval, read with sweeps/results.py's
    reader, and how many trained at once (`max_overlap`)."""
    from sweeps.results import read_trials
    from sweeps.spec import SweepSpec

    trials = []
    for row in read_trials(SweepSpec.load(experiment)):
        entry = {"trial_id": row["trial_id"], "state": row["state"], "steps": row["metrics"].get("step")}
        try:
            entry["start"], entry["end"] = training_interval(row["history"])
        except (KeyError, ValueError) as exc:
            entry["error"] = f"no training interval: {exc}"
        trials.append(entry)
    intervals = [(t["start"], t["end"]) for t in trials if "start" in t]
    t0 = min((s for s, _ in intervals), default=0.0)
    for t in trials:  # seconds from the first trial's first step, readable
        if "start" in t:
            t["start_s"], t["end_s"] = round(t["start"] - t0, 2), round(t["end"] - t0, 2)
    return trials, max_overlap(intervals)


PART_FUNCTIONS = {"headline": part_headline, "concurrent": part_concurrent, "ddp": part_ddp, "export": part_export,
                  "sweep": part_sweep}
WORKER_FUNCTIONS = {"concurrent": worker_concurrent, "ddp": worker_ddp}


def run_part_here(args) -> int:
    """Child mode: run one part, leave its result in `args.result` (also on a failure)."""
    common.quiet_local_environment()
    signal.signal(signal.SIGTERM, on_terminate)
    ctx = PartContext(args, Path(args.result))
    try:
        PART_FUNCTIONS[args.run_part](ctx)
    except Exception as exc:  # reported in the JSON; the parent carries on with the next part
        traceback.print_exc()
        ctx.save(status="error", error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        return 1
    return 0


def run_worker_here(args) -> int:
    """Worker mode (a part's own processes): its result file, or a traceback in its log."""
    common.quiet_local_environment()
    return WORKER_FUNCTIONS[args.run_worker](args)


# --------------------------------------------------------------------------------------
# Parent: is there a GPU; run each part in a child with a deadline; the summary
# --------------------------------------------------------------------------------------


def nvidia_smi_gpus() -> list[str]:
    """The GPUs `nvidia-smi -L` lists (this process makes no CUDA context of its own)."""
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_smi_list(done.stdout) if done.returncode == 0 else []


FORWARDED = ("preset", "micro_batches", "steps", "warmup", "compile", "cache_dir", "concurrent_steps", "ddp_steps",
             "sweep_steps", "sweep_runner")


def forwarded_flags(args) -> list[str]:
    flags = []
    for name in FORWARDED:
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags + (["--allow-cpu"] if args.allow_cpu else [])


def run_child(part: str, args, workdir: Path, timeout: float) -> dict:
    result_path = workdir / f"{part}.json"
    result_path.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--run-part", part, "--result", str(result_path),
               "--workdir", str(workdir), "--deadline", str(time.time() + timeout)] + forwarded_flags(args)
    start = time.time()
    log(f"{part}: starting (budget {timeout:.0f} s)")
    # The child's output is progress: to our stderr. Its own session, so that a part past its
    # deadline is ended with everything it started (its workers, Ray).
    process = subprocess.Popen(command, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr, start_new_session=True)
    CURRENT_PART.append((part, process, result_path, start))
    timed_out = False
    try:
        rc = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        end_group(process)
        rc = process.returncode
    finally:
        CURRENT_PART.pop()
    try:
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
    except ValueError:
        result = {}
    if timed_out:
        result.update(status="error", error=f"timed out after {timeout:.0f} s (its budget)"
                      + (f"; before that: {result['error']}" if result.get("error") not in (None, "incomplete") else ""))
    elif not result:
        result = {"status": "error", "error": f"the part's process exited {rc} without a result"}
    elif rc != 0 and result.get("status") == "pass":
        result.update(status="error", error=f"the part's process exited {rc}")
    result["seconds"] = round(time.time() - start, 1)
    result["budget_s"] = round(timeout)
    log(f"{part}: {result['status']}{' - ' + str(result['error']) if result.get('error') else ''} "
        f"({result['seconds']:.0f} s)")
    return result


CURRENT_PART: list[tuple] = []  # (part, process, result file, start): the part running now, in its own session
RUN_STATE: dict = {}  # the summary being written and its folder, for parent_on_terminate


def parent_on_terminate(signum, frame) -> None:
    """The parent ended from outside (gpu_check.sh's hard limit): end the running part's process
    group too (its own session: the signal does not reach it), put what that part had measured in
    summary.json (an error: cut short), then exit; "complete" stays false."""
    summary = RUN_STATE.get("summary")
    for part, process, result_path, start in list(CURRENT_PART):
        end_group(process)
        if summary is None:
            continue
        try:
            result = json.loads(result_path.read_text()) if result_path.exists() else {}
        except ValueError:
            result = {}
        result.update(status="error", error=f"ended from outside (signal {signum}) after {time.time() - start:.0f} s",
                      seconds=round(time.time() - start, 1))
        summary["parts"][part] = result
        if part == FIRST_PART:
            summary["headline"] = headline_brief(result)
    if summary is not None:
        summary.update(ok=False, exit=128 + signum, wall_s=round(time.time() - STARTED, 1))
        write_summary(RUN_STATE.get("out"), summary)
    raise SystemExit(128 + signum)


def end_group(process: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 3)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def skip_reason(part: str, args) -> str | None:
    if part == "sweep":
        if args.allow_cpu:
            return "needs a GPU (--allow-cpu run)"
        return sweep_skip_reason()
    return None


def write_summary(out: Path | None, summary: dict) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str))
    tmp.replace(out / "summary.json")


def headline_brief(result: dict | None) -> dict | None:
    """The headline's figures, one line per row, for the top of the summary."""
    if not result:
        return None
    rows = []
    for r in result.get("rows", []):
        rows.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k in (
            "compiled", "micro_batch", "tokens_per_s", "mfu", "max_memory_reserved_gb", "syncs_per_step",
            "cuda_syncs_per_step", "error")} | {"attention": (r.get("attention") or {}).get("kernel")})
    return {"status": result.get("status"), "device": result.get("device_name"), "vocab_size": result.get("vocab_size"),
            "peak_tflops": result.get("peak_tflops"), "best_mfu": result.get("best_mfu"), "rows": rows}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", help="write summary.json here (created; rewritten after every part)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default: all; "
                                                                 f"they run in that order)")
    parser.add_argument("--allow-no-gpu", action="store_true",
                        help="exit 0 instead of 3 where there is no GPU at all (still nothing measured)")
    parser.add_argument("--preset", help=f"headline and concurrent: model preset (default: {HEADLINE_PRESET})")
    parser.add_argument("--micro-batches", help=f"headline: comma list (default: the sweep's micro-batch, "
                                                f"{LARGE_MICRO_BATCH})")
    parser.add_argument("--steps", type=int, help="headline: timed steps per row (default: 30)")
    parser.add_argument("--warmup", type=int, help="headline: untimed steps first, compilation included (default: 5)")
    parser.add_argument("--compile", choices=["both", "on", "off"], help="headline: eager, compiled or both (default: both)")
    parser.add_argument("--concurrent-steps", type=int, help="concurrent: timed steps per process (default: 40)")
    parser.add_argument("--ddp-steps", type=int, help="ddp: training steps (default: 30)")
    parser.add_argument("--sweep-steps", type=int, default=800,
                        help="sweep: steps per trial; long enough that the trials' training spans outlast their staggered starts")
    parser.add_argument("--sweep-runner", choices=["auto", "inline", "train"], default="auto",
                        help="sweep: sweeps/run.py --runner (auto: a TorchTrainer per trial, as any GPU sweep gets)")
    parser.add_argument("--cache-dir", help="data cache (default: the trainer's)")
    parser.add_argument("--workdir", help="keep every part's files here (default: a temporary folder, removed)")
    # Hidden: run every part that can run on a CPU, small (tests of the machinery, not of a GPU).
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--run-worker", choices=sorted(WORKER_FUNCTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--micro-batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--init-file", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run_worker:
        return run_worker_here(args)
    if args.run_part:
        return run_part_here(args)
    try:
        parts = order_parts(args.parts)
    except ValueError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE_GPU  # 2, as argparse's own usage errors
    out = Path(args.out).resolve() if args.out else None

    import torch

    smi = nvidia_smi_gpus()
    cuda_available = torch.cuda.is_available()  # no CUDA context in this process: the parts' GPU stays free
    gpu = {"nvidia_smi": smi, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": cuda_available, "device_count": torch.cuda.device_count() if cuda_available else 0}
    verdict = gpu_verdict(smi, torch.__version__, torch.version.cuda or getattr(torch.version, "hip", None),
                          cuda_available, args.allow_no_gpu)
    if verdict is not None and not (args.allow_cpu and verdict[0] != EXIT_UNUSABLE_GPU):
        code, line = verdict
        print(line, flush=True)
        write_summary(out, {"gpu_check": 2, "ok": False, "exit": code,
                            "complete": True, "measured": False, "reason": line.removeprefix("gpu_check: "),
                            "gpu": gpu, "parts": {}})
        return code
    common.quiet_local_environment()
    signal.signal(signal.SIGTERM, parent_on_terminate)
    summary: dict = {"gpu_check": 2, "ok": False, "exit": None, "complete": False, "measured": True,
                     "on": "cpu (--allow-cpu)" if args.allow_cpu and not cuda_available else "cuda", "gpu": gpu,
                     "order": parts, "budget_s": {"total": TOTAL_BUDGET_S, **{p: PART_BUDGET_S[p] for p in parts}},
                     "headline": None, "parts": {}}
    write_summary(out, summary)
    RUN_STATE.update(summary=summary, out=out)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as scratch:
        workdir = Path(args.workdir).resolve() if args.workdir else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)

        def on_result(part: str, result: dict) -> None:
            if result["status"] in ("skipped", "not_run"):
                log(f"{part}: {result['status']} ({result.get('reason') or result.get('error')})")
            summary["parts"][part] = result
            if part == FIRST_PART:
                summary["headline"] = headline_brief(result)
            summary["wall_s"] = round(time.time() - STARTED, 1)
            write_summary(out, summary)

        run_schedule(parts, lambda part, timeout: run_child(part, args, workdir, timeout),
                     lambda part: skip_reason(part, args), start=STARTED, on_result=on_result)
        if args.workdir:
            summary["workdir"] = str(workdir)
    summary["ok"], summary["exit"] = overall_status(summary["parts"])
    summary["complete"] = True
    summary["wall_s"] = round(time.time() - STARTED, 1)
    write_summary(out, summary)
    print(json.dumps(summary, default=str), flush=True)
    return summary["exit"]


if __name__ == "__main__":
    sys.exit(main())
