"""The GPU check: one command, under 8 minutes on one GPU, one JSON summary.

    python benchmarks/gpu_check.py                        # every part
    python benchmarks/gpu_check.py --parts export,sweep   # some parts

Parts, in the order they run (each in its own process, with its own time budget, so a part that
crashes or hangs is reported and the others still run):

  throughput  training tokens/s and MFU of the `small` and `base` presets in bf16, eager and with
              the encoder compiled (`compile=on`, as trainer/loop.py does it): the loop's own
              `train_step` (benchmarks/throughput.py's `StepReplica`), FLOPs per token from
              `common.flops_per_token`, MFU against the GPU's dense bf16 peak (DENSE_BF16_PEAKS;
              a GPU not in the table: the best bf16 matmul measured here, and the JSON says so).
              Target noted: `base` MFU >= 40% on H100-class GPUs.
  export      a `tiny` model trained a few steps on the GPU, exported with `python -m
              trainer.export`, loaded with transformers' AutoModelForMaskedLM (trust_remote_code)
              on the CPU and on the GPU: fp32 logits compared (max |diff| <= LOGITS_TOLERANCE).
  sweep       `sweeps/run.py`, 4 trials on the built-in corpus with `--gpus-per-worker 0.25`:
              passes when all 4 trials' training intervals (from each trial's reports, read with
              sweeps/results.py: first step to the end of its last evaluation) share an instant.
  nccl        `python -m trainer.train --workers 2 --gpus-per-worker 1` (DDP over NCCL) for a
              few steps; skipped, with the reason, where fewer than two GPUs exist.

Progress goes to stderr, the summary to stdout: {"ok": ..., "parts": {name: {"status": "pass" |
"fail" | "error" | "skipped", ...}}}. Exit status 1 when a part failed or errored (a skip is not a
failure), else 0. Without CUDA it prints one line and exits 0 (no Ray, nothing measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
PARTS = ("throughput", "export", "sweep", "nccl")
# Seconds per part; the whole run stops starting parts at TOTAL_BUDGET_S (8 minutes, less the
# parent's own start-up and the summary).
PART_BUDGET_S = {"throughput": 190, "export": 60, "sweep": 160, "nccl": 120}
TOTAL_BUDGET_S = 450
MIN_PART_S = 20  # a part is not started with less time than this left
# fp32 on both devices (TF32 off): the same operations, summed in a different order; a real
# difference (wrong mask, time input or padding on one device) moves logits by ~0.1 or more.
LOGITS_TOLERANCE = 1e-3
MFU_TARGET = 0.40  # `base`, bf16, on H100-class GPUs

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


# --------------------------------------------------------------------------------------
# Parts (each runs in a child process: `--run-part NAME --result FILE`)
# --------------------------------------------------------------------------------------


class PartContext:
    def __init__(self, args, result_path: Path):
        self.args = args
        self.result_path = result_path
        self.deadline = args.deadline or (time.time() + PART_BUDGET_S.get(args.run_part, 120))
        self.result: dict = {}
        self.device = "cuda" if not args.allow_cpu else common.resolve_device("auto")
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


def part_throughput(ctx: PartContext) -> None:
    import torch

    import throughput as tp  # benchmarks/throughput.py: StepReplica and bench_config
    import trainer.loop as loop
    from trainer.data.prepare import open_prepared

    args, device = ctx.args, ctx.device
    cuda = device.startswith("cuda")
    presets = args.presets.split(",") if args.presets else (["small", "base"] if cuda else ["tiny"])
    compile_modes = {"both": [False, True], "on": [True], "off": [False]}[args.compile or ("both" if cuda else "off")]
    batch = args.batch_size or (256 if cuda else 8)
    warmup, steps = (args.warmup or (5 if cuda else 1)), (args.steps or (20 if cuda else 2))
    data_root = common.builtin_data(ctx.cache_dir()).data_root
    vocab = open_prepared(data_root).vocab_size
    name = torch.cuda.get_device_name() if cuda else common.machine_info()["cpu"]
    peak = known_peak(name) if cuda else None
    if peak is None:
        size = 8192 if cuda else 512
        dtype = "bf16" if cuda else tp.resolved_precision(tp.bench_config(presets[0], 1, 1, batch), device)
        measured = common.peak_matmul_flops(dtype, device, size, 2.0 if cuda else 0.5)
        peak = {"flops": measured, "source": f"measured: best {size}^3 {dtype} matmul here "
                                             f"({name} is not in the table of datasheet peaks)"}
    log(f"throughput: {name}, peak {peak['flops'] / 1e12:.1f} TFLOP/s ({peak['source']})")
    ctx.save(status="error", error="incomplete", device_name=name, peak_tflops=peak["flops"] / 1e12,
             peak_source=peak["source"], batch_size=batch, seq_length=None, warmup_steps=warmup, timed_steps=steps, rows=[])
    rows = []
    # Eager first: a compile that overruns the budget still leaves every eager figure.
    for compiled in compile_modes:
        for preset in presets:
            if compiled and ctx.left() < 60:
                rows.append({"preset": preset, "compiled": True, "skipped": f"{ctx.left():.0f} s left in the part's budget"})
                continue
            precision = "bf16" if cuda else "auto"
            config = tp.bench_config(preset, steps, warmup, batch, precision=precision,
                                     compile="on" if compiled else "off")
            torch._dynamo.reset()
            replica = None
            try:
                replica = tp.StepReplica(config, data_root, device)
                if loop.resolve_compile(config.compile, replica.device):
                    loop.compile_encoder(replica.model)  # as train_loop does
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                row = {"preset": preset, "compiled": compiled, **measure_steps(replica, warmup, steps, device)}
            except Exception as exc:  # e.g. out of memory: the other measurements still run
                traceback.print_exc()
                row = {"preset": preset, "compiled": compiled, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            else:
                row["precision"] = tp.resolved_precision(config, device)
                row.update(throughput_figures(config.model, vocab, config.seq_length, config.micro_batch_size,
                                              row["masked_share"], row["tokens_per_s"], peak["flops"]))
                if cuda:
                    row["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
                log(f"throughput: {preset} {'compiled' if compiled else 'eager'}: {row['tokens_per_s']:,.0f} tokens/s, "
                    f"MFU {100 * row['mfu']:.1f}%, first step {row['first_step_s']:.1f} s")
            rows.append(row)
            ctx.save(rows=rows, seq_length=config.seq_length)
            del replica
            if cuda:
                torch.cuda.empty_cache()
    base = [r for r in rows if r.get("preset") == "base" and "mfu" in r]
    h100_class = cuda and any(k in name for k in H100_CLASS)
    failed = [f"{r['preset']} {'compiled' if r['compiled'] else 'eager'}: {r['error']}" for r in rows if "error" in r]
    summary = {"rows": rows, "status": "error" if failed else "pass", "error": "; ".join(failed) or None,
               "target": f"base MFU >= {MFU_TARGET:.0%} on H100-class GPUs"}
    if base:
        best = max(base, key=lambda r: r["mfu"])
        summary.update(base_mfu_best=best["mfu"], base_mfu_best_compiled=best["compiled"],
                       target_applies=h100_class, target_met=best["mfu"] >= MFU_TARGET if h100_class else None)
    eager = {r["preset"]: r for r in rows if "mfu" in r and not r["compiled"]}
    summary["compile_speedup"] = {r["preset"]: r["tokens_per_s"] / eager[r["preset"]]["tokens_per_s"]
                                  for r in rows if "mfu" in r and r["compiled"] and r["preset"] in eager}
    ctx.save(**summary)


def measure_steps(replica, warmup: int, steps: int, device: str) -> dict:
    """tokens/s of the loop's `train_step` over `steps` steps after `warmup` (the first of which
    compiles, when compiled). Synchronised at the ends of the timed block only, so the GPU's
    queue is not drained every step as a per-part timer would."""
    import trainer.loop as loop

    def one_step():
        result = loop.train_step(replica.setup, replica.state, replica.window)
        replica.state = result.state
        if replica.state.step % loop.TRIM_EVERY_STEPS == 0:  # as train_loop does
            loop.release_freed_memory()
        return result

    start = time.perf_counter()
    one_step()
    common.synchronize(device)
    first_step_s = time.perf_counter() - start
    for _ in range(warmup - 1):
        one_step()
    common.synchronize(device)
    masked = tokens = 0
    start = time.perf_counter()
    for _ in range(steps):
        result = one_step()
        masked, tokens = masked + result.masked_tokens, tokens + result.tokens
    common.synchronize(device)
    seconds = time.perf_counter() - start
    config = replica.config
    return {"tokens_per_s": steps * config.batch_size * config.seq_length / seconds, "step_s": seconds / steps,
            "first_step_s": first_step_s, "masked_share": masked / max(tokens, 1),
            "train_loss": float(replica.window.loss) / max(replica.window.steps, 1)}


def part_export(ctx: PartContext) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from trainer.config import TrainConfig
    from trainer.loop import train_loop

    device = ctx.device
    data = common.builtin_data(ctx.cache_dir())
    steps, batch = (20, 32) if device.startswith("cuda") else (3, 8)  # --allow-cpu: the pipeline, briefly
    config = TrainConfig.parse({"preset": "tiny", "max_steps": steps, "eval_every": steps, "checkpoint_every": steps,
                                "batch_size": batch, "micro_batch_size": batch, "val_rows": 16, "val_mask_rates": 2,
                                "warmup_proportion": 0.0})
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
    ctx.save(status="pass" if result["pass"] else "fail", error=result.get("error"), devices=["cpu", device],
             dtype="float32", **{k: v for k, v in result.items() if k not in ("pass", "error")})


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
                 log=str(log_path), log_tail=log_path.read_text(errors="replace")[-1500:])
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
             **overlap, gpus_per_worker=0.25, runner=args.sweep_runner, log=str(log_path))


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


def part_nccl(ctx: PartContext) -> None:
    out = ctx.workdir / "nccl"
    steps = 40
    command = [
        sys.executable, "-m", "trainer.train", "--workers", "2", "--gpus-per-worker", "1", "--cpus-per-worker", "2",
        "--max-steps", str(steps), "--out", str(out), "--no-progress", "--cache-dir", ctx.cache_dir(),
        "--set", f"eval_every={steps}", "--set", f"checkpoint_every={steps}", "--set", "val_rows=64",
        "--set", "val_mask_rates=2", "--set", "eval_pairs_per_paradigm=10",
        "--set", "batch_size=64", "--set", "micro_batch_size=32",
    ]
    ctx.save(status="error", error="incomplete", command=" ".join(command[1:]))
    log_path = ctx.workdir / "nccl.log"
    rc, stdout = run_logged(command, log_path, timeout=max(ctx.left() - 15, 10), capture_stdout=True)
    if rc is None:
        ctx.save(status="error", error="timed out", log=str(log_path), log_tail=log_path.read_text(errors="replace")[-1500:])
        return
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    loss = summary.get("train_loss")
    ok = rc == 0 and summary.get("step") == steps and isinstance(loss, (int, float)) and math.isfinite(loss)
    log(f"nccl: exit {rc}, step {summary.get('step')}, train_loss {loss}")
    ctx.save(status="pass" if ok else "fail", error=None if ok else f"trainer.train exited {rc}: {summary or 'no result'}",
             workers=2, backend="nccl", result=summary, log=str(log_path),
             log_tail=None if ok else log_path.read_text(errors="replace")[-1500:])


PART_FUNCTIONS = {"throughput": part_throughput, "export": part_export, "sweep": part_sweep, "nccl": part_nccl}


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


# --------------------------------------------------------------------------------------
# Parent: pick parts, run each in a child with a deadline, print the summary
# --------------------------------------------------------------------------------------


def gpu_names() -> list[str]:
    """The GPUs' names from nvidia-smi (this process makes no CUDA context of its own)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def skip_reason(part: str, args, gpus: int) -> str | None:
    if part == "nccl" and gpus < 2:
        return f"needs two GPUs, this machine has {gpus}"
    if args.allow_cpu and gpus == 0 and part in ("sweep", "nccl"):
        return "needs a GPU (--allow-cpu run)"
    return None


def run_child(part: str, args, workdir: Path, timeout: float) -> dict:
    result_path = workdir / f"{part}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-part", part, "--result", str(result_path),
               "--workdir", str(workdir), "--deadline", str(time.time() + timeout)]
    for flag in ("presets", "batch_size", "steps", "warmup", "compile", "cache_dir"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    command += ["--sweep-steps", str(args.sweep_steps), "--sweep-runner", args.sweep_runner]
    if args.allow_cpu:
        command.append("--allow-cpu")
    start = time.time()
    # The child's output is progress: to our stderr. Its own session, so that a part past its
    # deadline is ended with everything it started (Ray, its workers).
    process = subprocess.Popen(command, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr, start_new_session=True)
    timed_out = False
    try:
        rc = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        end_group(process)
        rc = process.returncode
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    if timed_out:
        result.update(status="error", error=f"timed out after {timeout:.0f} s (its budget)")
    elif not result:
        result = {"status": "error", "error": f"the part's process exited {rc} without a result"}
    elif rc != 0 and result.get("status") == "pass":
        result.update(status="error", error=f"the part's process exited {rc}")
    result["seconds"] = round(time.time() - start, 1)
    result["budget_s"] = round(timeout)
    return result


def end_group(process: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--presets", help="throughput: comma list of presets (default: small,base)")
    parser.add_argument("--batch-size", type=int, help="throughput: sequences per step (default: 256)")
    parser.add_argument("--steps", type=int, help="throughput: timed steps per measurement (default: 20)")
    parser.add_argument("--warmup", type=int, help="throughput: untimed steps first, compilation included (default: 5)")
    parser.add_argument("--compile", choices=["both", "on", "off"], help="throughput: eager, compiled or both (default: both)")
    parser.add_argument("--sweep-steps", type=int, default=800,
                        help="sweep: steps per trial; long enough that the trials' training spans outlast their staggered starts")
    parser.add_argument("--sweep-runner", choices=["auto", "inline", "train"], default="auto",
                        help="sweep: sweeps/run.py --runner (auto: a TorchTrainer per trial, as any GPU sweep gets)")
    parser.add_argument("--cache-dir", help="data cache (default: the trainer's)")
    parser.add_argument("--workdir", help="keep every part's files here (default: a temporary folder, removed)")
    # Hidden: run the parts that can run on a CPU (throughput on `tiny`, export CPU against CPU).
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run_part:
        return run_part_here(args)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        print(f"error: unknown part(s) {unknown or args.parts!r}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(f"gpu_check: no CUDA device (torch {torch.__version__}); nothing to check")
        return 0
    started = time.time()
    gpus = torch.cuda.device_count()  # no CUDA context in this process: the parts' own GPUs stay free
    common.quiet_local_environment()
    summary: dict = {"gpu_check": 1, "gpus": gpus, "device_names": gpu_names(), "torch": torch.__version__, "parts": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as scratch:
        workdir = Path(args.workdir).resolve() if args.workdir else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        for part in parts:
            reason = skip_reason(part, args, gpus)
            if reason:
                log(f"{part}: skipped ({reason})")
                summary["parts"][part] = {"status": "skipped", "reason": reason}
                continue
            left = TOTAL_BUDGET_S - (time.time() - started)
            if left < MIN_PART_S:
                summary["parts"][part] = {"status": "error", "error": f"not run: {left:.0f} s of the 8-minute budget left"}
                continue
            timeout = min(PART_BUDGET_S[part], left)
            log(f"{part}: starting (budget {timeout:.0f} s)")
            summary["parts"][part] = result = run_child(part, args, workdir, timeout)
            log(f"{part}: {result['status']}{' - ' + str(result['error']) if result.get('error') else ''} "
                f"({result['seconds']:.0f} s)")
        if args.workdir:
            summary["workdir"] = str(workdir)
    statuses = [p["status"] for p in summary["parts"].values()]
    summary["ok"] = not any(s in ("fail", "error") for s in statuses)
    summary["wall_s"] = round(time.time() - started, 1)
    print(json.dumps(summary, default=str), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
