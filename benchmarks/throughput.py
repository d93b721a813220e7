"""Trainer throughput: training tokens/s and MFU per preset, where a step's time goes, and
paired before/after measurements of candidate speed-ups.

    python benchmarks/throughput.py                    # tiny + small on CPU (base too on a GPU)
    python benchmarks/throughput.py --quick            # tiny, a few steps, no variants
    python benchmarks/throughput.py --presets tiny --variants compile,bf16 --threads 1,2

1. Loop runs, per preset x thread count: tokens/s of the real `trainer.loop.train_loop` on
   the built-in corpus, warm-up steps left out (step boundaries from its once-a-step
   `update_ema` call, wrapped to note the time).
2. MFU = model FLOPs per token (formula in `common.flops_per_token`) x tokens/s / the peak
   FLOP/s of a square matmul measured in this run at the precision the step uses and the same
   thread count (measured before and after the runs; the larger is the peak).
3. The step taken apart: the loop's own step, `trainer.loop.train_step` (`StepReplica` sets it
   up as `train_loop` does and times the parts it reports: data, masking, forward + loss,
   backward, optimizer, EMA, the rest), so the bottleneck is named; and the aten ops that take
   most of a step (profiler).
4. Variants, each against the baseline in the same process, steps interleaved (baseline,
   variant, baseline, ...) so both see the same machine load; reported as a speed-up with the
   spread of the per-pair ratios. A variant is a flag or a monkeypatch here, the trainer is
   not changed:
   - bf16             autocast to bf16 (`precision=bf16`); on CPU MFU is quoted against the bf16
                      matmul peak and, where the CPU has no native bf16, against float32's too
   - fp32             `precision=fp32` (on a GPU, where the default is bf16)
   - compile          `torch.compile` of the encoder (static [B, T] shapes; the head runs on a
                      variable number of masked positions, so it stays eager); compile time apart
   - threads2         two torch threads instead of one (the trial default) on this 2-core machine
   - no_attn_dropout  `attention_dropout=0`: a hyperparameter, not a speed-up; it shows what the
                      attention-probability dropout costs (it keeps SDPA on its unfused path)
   - trim_every_step  malloc_trim before every step: what a trim costs the step after it
                      (the loop trims every 16 steps and after every evaluation)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import trainer.loop as loop  # noqa: E402
from trainer.budget import resolve_max_steps  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data.dataset import TokenShard, load_frequencies  # noqa: E402
from trainer.data.prepare import open_prepared  # noqa: E402
from trainer.data.tokenizer import NUM_SPECIAL_TOKENS  # noqa: E402
from trainer.masking import token_weights  # noqa: E402
from trainer.optim import build_optimizer  # noqa: E402
from trainer.schedules import ScheduleParams  # noqa: E402

PARTS = ("data", "masking", "forward", "backward", "optimizer", "ema", "other")
VARIANTS = ("bf16", "fp32", "compile", "threads2", "no_attn_dropout", "trim_every_step")


def bench_config(preset: str, steps: int, warmup: int, batch_size: int, **overrides) -> TrainConfig:
    """The loop config of a benchmark run: one cheap evaluation at the very end (32 validation
    rows, 2 rates, no pairs), so no evaluation (and its malloc_trim) falls between timed steps."""
    data = {
        "preset": preset,
        "max_steps": warmup + steps,
        "eval_every": warmup + steps,
        "checkpoint_every": warmup + steps,
        "val_rows": 32,
        "val_mask_rates": 2,
        "batch_size": batch_size,
        "micro_batch_size": batch_size,
    }
    data.update(overrides)
    return TrainConfig.parse(data)


def resolved_precision(config: TrainConfig, device: str) -> str:
    return "fp32" if loop.autocast_factory(config.precision, torch.device(device)) is contextlib.nullcontext else "bf16"


# --------------------------------------------------------------------------------------
# 1. The real loop
# --------------------------------------------------------------------------------------


def loop_throughput(config: TrainConfig, data_root: Path, device: str, warmup: int) -> dict:
    """tokens/s of train_loop over its steps after `warmup`.

    The loop reports only at evaluations, so its step boundaries are taken from `update_ema`,
    which it calls once at the end of every step (wrapped here to note the time): the time
    between two calls is exactly one step, malloc_trim every TRIM_EVERY_STEPS included.
    """
    reports: list[dict] = []
    marks: list[float] = []
    original = loop.update_ema

    def timed_update_ema(*args, **kwargs):
        original(*args, **kwargs)
        common.synchronize(device)
        marks.append(time.perf_counter())

    start = time.time()
    loop.update_ema = timed_update_ema
    try:
        with tempfile.TemporaryDirectory() as out:
            loop.train_loop(
                config, data_root, out, report=lambda metrics, _: reports.append(metrics), device=device, show_progress=False
            )
    finally:
        loop.update_ema = original
    steps = len(marks) - warmup
    seconds = marks[-1] - marks[warmup - 1]
    tokens_per_step = config.batch_size * config.seq_length
    last = reports[-1]
    return {
        "tokens_per_s": steps * tokens_per_step / seconds,
        "step_s": seconds / steps,
        "step_s_spread": _relative_spread(np.diff(marks[warmup - 1 :])),
        "warmup_step_s": (last["train_s"] - seconds) / warmup,
        "loop_reported_tokens_per_s": last["tokens_per_s"],  # the loop's own figure: every step, warm-up included
        "mask_rate": last["mask_rate"],
        "num_parameters": last["num_parameters"],
        "run_wall_s": time.time() - start,
    }


def _relative_spread(values) -> float:
    values = list(values)
    return (max(values) - min(values)) / statistics.median(values) if values else 0.0


# --------------------------------------------------------------------------------------
# 2. The step taken apart
# --------------------------------------------------------------------------------------


class StepReplica:
    """Set up as train_loop does (one worker) and take its step, `loop.train_step`, timing the
    parts it reports (`times[part]` adds up each part's seconds)."""

    def __init__(self, config: TrainConfig, data_root: Path, device: str):
        self.config, self.device = config, torch.device(device)
        data = open_prepared(data_root)
        self.rows = TokenShard(data.train_path)
        counts, ranks = load_frequencies(data.frequencies_path)
        self.weights = token_weights(counts, ranks, config.frequency_weighting, NUM_SPECIAL_TOKENS)
        torch.manual_seed(config.seed)
        self.model = loop.build_model(config.model, data.vocab_size).to(self.device)
        self.ema = copy.deepcopy(self.model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.optimizer = build_optimizer(self.model, config)
        self.autocast = loop.autocast_factory(config.precision, self.device)
        self.schedule = ScheduleParams.from_config(config)
        self.setup = loop.StepSetup(
            config, self.model, self.ema, self.optimizer, self.schedule, self.weights, self.rows, self.autocast,
            self.device, total_steps=resolve_max_steps(config, data.row_words("train")),
            accumulation=config.batch_size // config.micro_batch_size,
        )
        self.state = loop.LoopState()
        self.window = loop.Window(torch.zeros((), device=self.device))
        self.vocab_size = data.vocab_size
        self.masked_tokens = 0
        self.tokens = 0

    def step(self, times: dict[str, float]) -> None:
        sync = lambda: common.synchronize(self.device.type)  # noqa: E731
        tick = time.perf_counter()

        def lap(part: str) -> None:
            nonlocal tick
            sync()
            now = time.perf_counter()
            times[part] = times.get(part, 0.0) + now - tick
            tick = now

        result = loop.train_step(self.setup, self.state, self.window, lap)
        self.state = result.state
        if self.state.step % loop.TRIM_EVERY_STEPS == 0:  # as train_loop does after the step
            loop.release_freed_memory()
        lap("other")
        self.masked_tokens += result.masked_tokens
        self.tokens += result.tokens


def step_parts(config: TrainConfig, data_root: Path, device: str, warmup: int, steps: int, profile: bool) -> dict:
    """Median seconds per part over `steps` steps (after `warmup`), plus the top aten ops."""
    replica = StepReplica(config, data_root, device)
    for _ in range(warmup):
        replica.step({})
    per_step: list[dict] = []
    for _ in range(steps):
        times: dict[str, float] = {}
        replica.step(times)
        per_step.append(times)
    parts = {p: statistics.median(t.get(p, 0.0) for t in per_step) for p in PARTS}
    # malloc_trim runs every TRIM_EVERY_STEPS steps; time one call and spread it over them.
    start = time.perf_counter()
    loop.release_freed_memory()
    parts["other"] += (time.perf_counter() - start) / loop.TRIM_EVERY_STEPS
    result = {
        "parts_s": parts,
        "step_s": sum(parts.values()),
        "masked_share": replica.masked_tokens / max(replica.tokens, 1),
        "dense_params_check": dense_parameters(replica.model),
    }
    if profile:
        result["top_ops"] = top_ops(replica)
    return result


def dense_parameters(model) -> int:
    """Weights of the per-token Linears inside the layers (must equal N_dense of the formula)."""
    names = ("in_proj_qk", "in_proj_vg", "out_proj", "up", "down")
    return sum(m.weight.numel() for n, m in model.layers.named_modules() if n.split(".")[-1] in names)


def top_ops(replica: StepReplica, count: int = 6) -> list[dict]:
    """The aten ops with the most self time over one profiled step."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if replica.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        replica.step({})
    events = prof.key_averages()
    key = "self_device_time_total" if replica.device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:count]
    return [{"op": e.key, "share": getattr(e, key) / total} for e in ranked]


# --------------------------------------------------------------------------------------
# 3. Variants, paired with the baseline
# --------------------------------------------------------------------------------------


def variant_replica(variant: str, preset: str, data_root: Path, device: str, batch_size: int, steps: int) -> StepReplica:
    overrides = {}
    if variant in ("bf16", "fp32"):
        overrides["precision"] = variant
    config = bench_config(preset, steps, 1, batch_size, **overrides)
    if variant == "no_attn_dropout":
        config = TrainConfig.parse({**config.as_dict(), "model": {**config.model.model_dump(), "attention_dropout": 0.0}})
    replica = StepReplica(config, data_root, device)
    if variant == "compile":
        # On the instance: the encoder's shapes are fixed ([B, T]); the head sees a different
        # number of masked positions every step, which would recompile.
        replica.model.encode = torch.compile(replica.model.encode, dynamic=False)
    return replica


def paired_variant(variant: str, preset: str, threads: int, data_root: Path, device: str, batch_size: int,
                   warmup: int, pairs: int) -> dict:
    """Baseline and variant replicas stepping in turn; medians and the per-pair speed-ups."""
    baseline = variant_replica("baseline", preset, data_root, device, batch_size, warmup + pairs)
    candidate = variant_replica(variant, preset, data_root, device, batch_size, warmup + pairs)
    base_threads, candidate_threads = threads, (2 if variant == "threads2" else threads)
    times: dict[str, list[float]] = {"baseline": [], "variant": []}
    first_variant_step = None
    for i in range(warmup + pairs):
        order = (("baseline", baseline, base_threads), ("variant", candidate, candidate_threads))
        for name, replica, n in (order if i % 2 == 0 else order[::-1]):
            torch.set_num_threads(n)
            if variant == "trim_every_step" and name == "variant":
                loop.release_freed_memory()  # not timed: the cost looked at is the next step's
            parts: dict[str, float] = {}
            replica.step(parts)
            if name == "variant" and first_variant_step is None:
                first_variant_step = sum(parts.values())
            if i >= warmup:
                times[name].append(sum(parts.values()))
    torch.set_num_threads(threads)
    ratios = [b / v for b, v in zip(times["baseline"], times["variant"])]
    base_s, variant_s = statistics.median(times["baseline"]), statistics.median(times["variant"])
    tokens_per_step = batch_size * baseline.config.seq_length
    return {
        "step_s_baseline": base_s,
        "step_s_variant": variant_s,
        "speedup": base_s / variant_s,
        "speedup_pairs_min": min(ratios),
        "speedup_pairs_max": max(ratios),
        "tokens_per_s": tokens_per_step / variant_s,
        "tokens_per_s_baseline": tokens_per_step / base_s,
        "first_step_s": first_variant_step,
        "precision": resolved_precision(candidate.config, device),
        "threads_variant": candidate_threads,
        "masked_share": candidate.masked_tokens / max(candidate.tokens, 1),
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny preset, one thread, a few steps, no variants")
    parser.add_argument("--presets", help="comma list (default: tiny,small; base too on a GPU)")
    parser.add_argument("--threads", help="comma list of torch thread counts for the loop runs (CPU default: 1,2; quick: 1)")
    parser.add_argument("--variants", help=f"comma list of {', '.join(VARIANTS)}, or none "
                                           "(CPU default: bf16,compile,threads2,no_attn_dropout,trim_every_step on tiny)")
    parser.add_argument("--variant-preset", default="tiny", help="preset the variants are measured on")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, help="sequences per step (default: the config's 32 on CPU, 256 on a GPU)")
    parser.add_argument("--cache-dir", help="data cache (default: the trainer's)")
    args = parser.parse_args(argv)

    device = common.resolve_device(args.device)
    machine = common.machine_info(device)
    native_bf16 = device == "cuda" or machine["cpu_native_bf16"]
    batch_size = args.batch_size or (256 if device == "cuda" else TrainConfig().batch_size)
    presets = args.presets.split(",") if args.presets else (
        ["tiny"] if args.quick else (["tiny", "small", "base"] if device == "cuda" else ["tiny", "small"]))
    if args.threads:
        thread_counts = [int(t) for t in args.threads.split(",")]
    elif device == "cuda":
        thread_counts = [torch.get_num_threads()]
    else:
        # One thread is what a sweep trial gets (one CPU each); two is the whole machine here.
        thread_counts = [1] if args.quick else [1, 2]
    if args.variants is not None:
        variants = [v for v in args.variants.split(",") if v and v != "none"]
    elif args.quick:
        variants = []
    else:
        variants = ["fp32", "compile"] if device == "cuda" else ["bf16", "compile", "threads2", "no_attn_dropout", "trim_every_step"]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    data_root = common.builtin_data(args.cache_dir).data_root
    vocab = open_prepared(data_root).vocab_size

    peaks: dict[tuple[str, int], list[float]] = {}

    def measure_peak(precision: str, threads: int) -> None:
        torch.set_num_threads(threads)
        slow = device == "cpu" and precision == "bf16" and not native_bf16
        size = 512 if slow else (1024 if args.quick else 2048)  # the slow bf16 path: ~1 GFLOP/s
        peaks.setdefault((precision, threads), []).append(
            common.peak_matmul_flops(precision, device, size, 1.0 if args.quick else 2.0))

    loop_rows, variant_rows = [], []
    for preset in presets:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            warmup, steps = steps_for(preset, device, args.quick)
            config = bench_config(preset, steps, warmup, batch_size)
            precision = resolved_precision(config, device)
            if (precision, threads) not in peaks:
                measure_peak(precision, threads)
            load = common.load_average()
            measured = loop_throughput(config, data_root, device, warmup)
            parts = step_parts(config, data_root, device, warmup, min(steps, 8), profile=not args.quick)
            flops = common.flops_per_token(config.model, vocab, config.seq_length, batch_size, measured["mask_rate"])
            n_dense = common.flops_per_token(config.model, vocab, config.seq_length, batch_size, 0.0)["dense"] / 6
            if parts["dense_params_check"] != n_dense:
                print(f"warning: the FLOP formula counts {n_dense:.0f} dense weights, the model has {parts['dense_params_check']}")
            row = {
                "benchmark": "trainer_throughput", "measure": "loop", "preset": preset, "variant": "baseline",
                "device": device, "precision": precision, "threads": threads, "batch_size": batch_size, "steps": steps,
                **{k: measured[k] for k in ("tokens_per_s", "step_s", "step_s_spread", "warmup_step_s",
                                            "loop_reported_tokens_per_s", "num_parameters")},
                "flops_per_token": flops["total"],
                "flops_terms": {k: v for k, v in flops.items() if k != "total"},
                "parts_s": parts["parts_s"], "parts_step_s": parts["step_s"],
                "bottleneck": max(parts["parts_s"], key=parts["parts_s"].get),
                "load": load,
            }
            if "top_ops" in parts:
                row["top_ops"] = parts["top_ops"]
            loop_rows.append(row)

    base_precision = resolved_precision(bench_config(args.variant_preset, 1, 1, batch_size), device)
    variant_threads = [1] if device == "cpu" else thread_counts[:1]
    for variant in variants:
        for threads in variant_threads:
            torch.set_num_threads(threads)
            warmup, pairs = variant_steps(device, args.quick, variant, native_bf16)
            load = common.load_average()
            result = paired_variant(variant, args.variant_preset, threads, data_root, device, batch_size, warmup, pairs)
            needed = {(result["precision"], result["threads_variant"]), ("fp32", result["threads_variant"]), (base_precision, threads)}
            for precision, n in needed:
                if (precision, n) not in peaks:
                    measure_peak(precision, n)
            config = bench_config(args.variant_preset, 1, 1, batch_size)
            flops = common.flops_per_token(config.model, vocab, config.seq_length, batch_size, result["masked_share"])
            variant_rows.append({
                "benchmark": "trainer_throughput", "measure": "paired", "preset": args.variant_preset, "variant": variant,
                "device": device, "precision": result["precision"], "threads": result["threads_variant"],
                "baseline_threads": threads, "batch_size": batch_size, "pairs": pairs,
                **{k: v for k, v in result.items() if k not in ("precision", "threads_variant", "masked_share")},
                "flops_per_token": flops["total"], "load": load,
            })

    # Peaks again at the end: the machine is shared, the larger figure is the peak.
    for precision, threads in list(peaks):
        measure_peak(precision, threads)
    for row in loop_rows + variant_rows:
        peak = max(peaks[(row["precision"], row["threads"])])
        row["peak_flops"] = peak
        row["peak_flops_runs"] = peaks[(row["precision"], row["threads"])]
        row["mfu"] = row["flops_per_token"] * row["tokens_per_s"] / peak
        if row["precision"] == "bf16" and device == "cpu" and not native_bf16:
            # No native bf16: its matmul peak is a slow reference path that autocast's float32
            # parts outrun, so MFU against it exceeds 1; float32's peak is the useful yardstick.
            row["mfu_vs_fp32_peak"] = row["flops_per_token"] * row["tokens_per_s"] / max(peaks[("fp32", row["threads"])])
        if row["measure"] == "paired":
            base_peak = max(peaks[(base_precision, row["baseline_threads"])])
            row["mfu_baseline"] = row["flops_per_token"] * row["tokens_per_s_baseline"] / base_peak
        row["load_end"] = common.load_average()

    print(f"machine: {machine['cpu']} ({machine['cores']} cores, {machine['cpu_capability']}, "
          f"native bf16: {machine['cpu_native_bf16']}){' / ' + machine['gpu'] if 'gpu' in machine else ''}")
    common.print_table(
        [{**r, "mfu_pct": 100 * r["mfu"], "peak_tf": r["peak_flops"] / 1e12, "gflop_tok": r["flops_per_token"] / 1e9,
          "spread_pct": 100 * r["step_s_spread"], "load1": r["load"][0]} for r in loop_rows],
        [("preset", "preset", ""), ("precision", "prec", ""), ("threads", "thr", ""), ("tokens_per_s", "tokens/s", ".0f"),
         ("step_s", "step s", ".3f"), ("spread_pct", "step spread %", ".0f"), ("warmup_step_s", "warm-up step s", ".2f"),
         ("gflop_tok", "GFLOP/token", ".4f"), ("peak_tf", "peak TFLOP/s", ".4f"), ("mfu_pct", "MFU %", ".1f"),
         ("load1", "load", ".2f")],
        title="trainer throughput: train_loop, tokens/s after warm-up; MFU against this run's matmul peak",
    )
    common.print_table(
        [{"preset": r["preset"], "threads": r["threads"], **{p: 1000 * r["parts_s"][p] for p in PARTS},
          "sum": 1000 * r["parts_step_s"], "loop": 1000 * r["step_s"], "bottleneck": r["bottleneck"]} for r in loop_rows],
        [("preset", "preset", ""), ("threads", "thr", "")] + [(p, f"{p} ms", ".1f") for p in PARTS]
        + [("sum", "sum ms", ".1f"), ("loop", "loop step ms", ".1f"), ("bottleneck", "bottleneck", "")],
        title="one step taken apart (median ms per part of the loop's step body; 'loop step' = the loop's own median)",
    )
    for r in loop_rows:
        if "top_ops" in r:
            ops = ", ".join(f"{o['op'].replace('aten::', '')} {100 * o['share']:.0f}%" for o in r["top_ops"])
            print(f"  top ops {r['preset']} {r['threads']} thread(s): {ops}")
    if variant_rows:
        common.print_table(
            [{**r, "mfu_pct": 100 * r["mfu"], "mfu_base_pct": 100 * r["mfu_baseline"],
              "mfu32_pct": 100 * r["mfu_vs_fp32_peak"] if "mfu_vs_fp32_peak" in r else None,
              "range": f"{r['speedup_pairs_min']:.2f}-{r['speedup_pairs_max']:.2f}", "load1": r["load"][0]} for r in variant_rows],
            [("variant", "variant", ""), ("preset", "preset", ""), ("precision", "prec", ""), ("threads", "thr", ""),
             ("step_s_baseline", "baseline step s", ".3f"), ("step_s_variant", "variant step s", ".3f"),
             ("speedup", "speed-up", ".2f"), ("range", "per-pair range", ""), ("tokens_per_s", "tokens/s", ".0f"),
             ("mfu_base_pct", "MFU % before", ".1f"), ("mfu_pct", "MFU % after", ".1f"),
             ("mfu32_pct", "MFU % vs fp32 peak", ".1f"), ("first_step_s", "1st step s", ".1f"), ("load1", "load", ".2f")],
            title="variants against the baseline, steps interleaved in one process (speed-up > 1: the variant is faster)",
        )
    for r in loop_rows + variant_rows:
        common.emit(common.rounded({**r, "machine": machine}))
    return 0


def steps_for(preset: str, device: str, quick: bool) -> tuple[int, int]:
    """(warm-up steps, timed steps) of a loop run. Full CPU runs time 16 tiny steps so that one
    malloc_trim (every TRIM_EVERY_STEPS = 16 steps) and the step after it are in the window."""
    if device == "cuda":
        return (3, 10) if quick else (10, 48)
    if preset == "tiny":
        return (1, 3) if quick else (2, 16)
    return (1, 1) if quick else (1, 3)


def variant_steps(device: str, quick: bool, variant: str, native_bf16: bool) -> tuple[int, int]:
    """(warm-up, pairs) of a paired variant run; compile's warm-up step is its compilation."""
    if device == "cuda":
        return (5, 20)
    if variant == "bf16" and not native_bf16:
        return (1, 3)  # ~7x slower steps
    return (2, 4) if quick else (2, 8)


if __name__ == "__main__":
    sys.exit(main())
