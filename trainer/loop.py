"""The training loop: one process, or one worker of a Ray Train / torch.distributed group.

Read top to bottom: set up data, model, EMA and optimiser; then, per optimizer step
(`train_step`), draw each micro-batch's rows, mask rates and masks, take the weighted
NELBO, step, update the EMA; every `eval_every` steps evaluate the EMA weights, save a
checkpoint and hand metrics to the `report` callback the caller gave (which writes them
to a file, or to Ray). The loop itself knows nothing of Ray.

Reproducibility: every random draw of step k on rank r comes from generators seeded
with (seed, k, r), and the data order from a per-epoch permutation seeded with
(seed, epoch). A checkpoint therefore only needs the step and the data position to
continue exactly as an uninterrupted run would (RNG states are saved too, for
completeness and for anything that draws from the global generators).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from trainer.budget import checkpoint_name, resolve_max_steps, words_seen
from trainer.checkpoint import check_resume_compatible, prune_checkpoints, save_checkpoint
from trainer.config import TrainConfig
from trainer.data.dataset import TokenShard, epoch_permutation, load_frequencies
from trainer.data.pairs import limit_per_paradigm, load_pairs, split_description, split_pairs
from trainer.data.prepare import open_prepared
from trainer.data.validation import validation_rows
from trainer.data.tokenizer import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, load_tokenizer
from trainer.eval_items import pairs_record, rows_record
from trainer.evaluate import EVAL_PRECISION, score_pairs, validation_metrics
from trainer.masking import (
    apply_mask,
    curriculum_power,
    maskable_positions,
    masked_fraction,
    masking_probabilities,
    token_weights,
)
from trainer.model import build_model, count_parameters
from trainer.objective import MaskedBatch, masked_logits, weighted_nelbo
from trainer.optim import build_optimizer, lr_multiplier
from trainer.precision import autocast_for, resolve_precision
from trainer.schedules import ScheduleParams, sample_schedule

Report = Callable[[dict, "Path | None"], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, message: str, step: int = 0):
        super().__init__(message)
        self.step = step

    def as_metrics(self, objectives: tuple[str, ...] = ()) -> dict:
        """What a sweep reports for a diverged run: the reason, and NaN for the objectives
        (the searcher then records the trial as failed and the scheduler skips NaN, so
        it never counts as a good value; a missing metric would break both)."""
        return {"step": self.step, "diverged": 1, "diverged_reason": str(self), **{m: math.nan for m in objectives}}


@dataclass
class DataPosition:
    """Where the next global batch starts: epoch and offset into that epoch's permutation."""

    epoch: int = 0
    offset: int = 0


@dataclass
class LoopState:
    step: int = 0
    position: DataPosition = field(default_factory=DataPosition)


def _seed_for(*parts: int) -> int:
    """A 63-bit seed mixed from integers (stable across processes, unlike hash())."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & ((1 << 63) - 1)
    return value


def _release_freed_memory_factory() -> Callable[[], None]:
    """glibc keeps freed heap pages: with a different number of masked positions every step,
    tensor sizes vary and the heap fragments, so RSS grew ~15 MB per step on CPU (3.8 GB
    after 300 tiny steps). malloc_trim(0) hands the free pages back (measured: flat at
    ~0.4 GB, ~0.1 s per call). A no-op where glibc is absent."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):
        return lambda: None


release_freed_memory = _release_freed_memory_factory()
TRIM_EVERY_STEPS = 16


def distributed_context() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def autocast_factory(precision: str, device: torch.device):
    """A callable returning the autocast context for the configured precision (auto: per
    machine, trainer/precision.py)."""
    return autocast_for(resolve_precision(precision, device), device)


def resolve_compile(setting: str, device: torch.device) -> bool:
    """Whether to compile the encoder: `compile` = on, or auto on a CUDA device (see the
    field in trainer/config.py)."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def compile_encoder(model: torch.nn.Module) -> "CompiledOrEager":
    """torch.compile the model's `encode`, on the instance: the encoder's shapes are fixed
    ([micro-batch, seq_length]) while the head sees a different number of masked positions every
    step, which would recompile. The module itself is not wrapped, so its state_dict keys, and
    with them checkpoints and exports, are those of the eager model (no `_orig_mod.` prefix).
    A compilation that fails falls back to eager with one line (CompiledOrEager)."""
    guard = CompiledOrEager(model.encode, torch.compile(model.encode, dynamic=False))
    model.encode = guard
    return guard


class CompiledOrEager:
    """Calls the compiled function; if compiling fails (torch compiles lazily, at a call: the
    first, or a new shape's), says so in one line and calls the eager one from then on. An
    out-of-memory error is not a compile failure and is raised as it is."""

    def __init__(self, eager: Callable, compiled: Callable):
        self.eager, self.compiled = eager, compiled
        self.active = True
        self.reason = ""

    def __call__(self, *args, **kwargs):
        if not self.active:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure (dynamo, inductor, a missing C compiler)
            if not _is_compile_failure(exc):
                raise
            self.active = False
            root = exc  # the compiler wraps what went wrong (BackendCompilerFailed: ... raised:)
            while (getattr(root, "inner_exception", None) or root.__cause__) is not None:
                root = getattr(root, "inner_exception", None) or root.__cause__
            first_line = (str(root).strip().splitlines() or [""])[0][:200]
            self.reason = f"{type(root).__name__}: {first_line}"
            print(f"torch.compile failed ({self.reason}); training eager from here on", file=sys.stderr, flush=True)
            return self.eager(*args, **kwargs)


def _is_compile_failure(exc: BaseException) -> bool:
    """An error raised by the compiler stack (torch._dynamo, torch._inductor, Triton), not by
    the model's own code running."""
    while exc is not None:
        module = type(exc).__module__ or ""
        if module.startswith(("torch._dynamo", "torch._inductor", "triton")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def device_description(device: torch.device) -> str:
    """`cpu`, or `cuda:0 NVIDIA H200`: which device a metrics line was trained on."""
    if device.type == "cuda":
        return f"{device.type}:{device.index if device.index is not None else torch.cuda.current_device()} " \
               f"{torch.cuda.get_device_name(device)}"
    return str(device)


def next_global_batch(num_rows: int, batch_size: int, seed: int, position: DataPosition) -> tuple[np.ndarray, DataPosition]:
    """Row indices of the next global batch and the position after it (wraps into new epochs)."""
    parts = []
    epoch, offset = position.epoch, position.offset
    needed = batch_size
    while needed:
        order = epoch_permutation(num_rows, seed, epoch)
        take = order[offset : offset + needed]
        parts.append(take)
        needed -= len(take)
        offset += len(take)
        if offset >= num_rows:
            epoch, offset = epoch + 1, 0
    return np.concatenate(parts), DataPosition(epoch, offset)


def ema_decay(base_decay: float, updates: int) -> float:
    """The reference's warm-started EMA: min(decay, (1 + n) / (10 + n))."""
    return min(base_decay, (1.0 + updates) / (10.0 + updates))


@torch.no_grad()
def update_ema(ema_model: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- ema + (1 - decay) (param - ema), for every parameter in one multi-tensor operation."""
    torch._foreach_lerp_(list(ema_model.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


# --- one optimizer step ---------------------------------------------------------------


@dataclass
class StepSetup:
    """What an optimizer step needs; built once by train_loop (or by a benchmark)."""

    config: TrainConfig
    model: torch.nn.Module  # wrapped in DistributedDataParallel when world > 1
    ema_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: ScheduleParams
    weights_by_token: torch.Tensor | None  # token_weights(): frequency-informed masking's weights
    train_rows: TokenShard
    autocast: Callable  # autocast_factory(): returns the forward pass's autocast context
    device: torch.device
    total_steps: int  # the full budget: learning rate, mask schedule and curriculum follow it
    accumulation: int = 1  # micro-batches per step on each rank
    rank: int = 0
    world: int = 1


@dataclass
class Window:
    """Sums over the steps since the last evaluation, which reports their means. The step adds
    into it micro-batch by micro-batch: summing a step first and adding that would round
    differently, and the reported losses would no longer match earlier runs to the bit."""

    loss: torch.Tensor  # sum of the steps' losses, left on the device (no sync per step)
    rate: float = 0.0  # sum of the steps' mean scheduled mask rates
    steps: int = 0
    seconds: float = 0.0


@dataclass
class StepResult:
    state: LoopState  # the next step and the data position after this step's batch
    indices: np.ndarray  # rows of the global batch (every rank's)
    lr: float
    frequency_power: float  # the curriculum's q at this step
    masked_tokens: int  # this rank's masked positions and all its positions, for the benchmarks'
    tokens: int  # FLOP counts (counted on the CPU before the copy to the device: no sync)


def _no_lap(part: str) -> None:
    pass


def train_step(setup: StepSetup, state: LoopState, window: Window,
               lap: Callable[[str], None] | None = None) -> StepResult:
    """One optimizer step, the one train_loop takes at `state`.

    Set the learning rate; seed the global generators with (seed, step, rank); take the next
    global batch; then per micro-batch of this rank's share: sample mask rates and loss weights,
    mask (generator seeded with (seed, step, rank, micro-batch)), forward, weighted NELBO,
    backward (DDP syncs gradients on the last micro-batch only), and add the loss and mean rate
    to `window`; then clip, step the optimizer and update the EMA weights.

    `lap(part)` is called after each part (other, data, masking, forward, backward, optimizer,
    ema) for a benchmark to time; the loop passes none.
    """
    lap = lap or _no_lap
    config, model, device = setup.config, setup.model, setup.device
    rank, world, accumulation, micro = setup.rank, setup.world, setup.accumulation, config.micro_batch_size
    progress = state.step / setup.total_steps
    lr = config.lr * lr_multiplier(
        state.step, setup.total_steps, config.warmup_proportion, config.cooldown_proportion, config.lr_floor
    )
    for group in setup.optimizer.param_groups:
        group["lr"] = lr
    # Seed the global generators per (step, rank): dropout is reproducible after a resume.
    torch.manual_seed(_seed_for(config.seed, state.step, rank))
    lap("other")
    indices, next_position = next_global_batch(setup.train_rows.num_rows, config.batch_size, config.seed, state.position)
    frequency_power = curriculum_power(
        config.frequency_power, progress, config.frequency_curriculum, config.frequency_curriculum_end
    )
    model.train()
    masked_tokens = tokens = 0
    for micro_index in range(accumulation):
        start = (micro_index * world + rank) * micro
        ids = torch.from_numpy(setup.train_rows.rows(indices[start : start + micro]))
        lap("data")
        generator = torch.Generator().manual_seed(_seed_for(config.seed, state.step, rank, micro_index))
        rates, loss_weights = sample_schedule(len(ids), setup.schedule, progress, generator)
        maskable = maskable_positions(ids, NUM_SPECIAL_TOKENS)
        probs = masking_probabilities(ids, rates, maskable, setup.weights_by_token, frequency_power)
        noisy, masked = apply_mask(ids, probs, MASK_ID, generator)
        time_input = masked_fraction(masked, maskable)
        batch = MaskedBatch.build(ids, noisy, masked, loss_weights, time_input, PAD_ID)
        masked_tokens, tokens = masked_tokens + len(batch.positions), tokens + masked.numel()
        window.rate += float(rates.mean()) / accumulation
        lap("masking")
        # From here on nothing reads a device value on the host (tests/test_host_syncs.py).
        batch = batch.to(device)
        sync = nullcontext() if (world == 1 or micro_index == accumulation - 1) else model.no_sync()
        with sync:
            with setup.autocast():
                logits = masked_logits(model, batch, NUM_SPECIAL_TOKENS)
            loss, _ = weighted_nelbo(logits, batch)
            lap("forward")
            (loss / accumulation).backward()
            lap("backward")
        window.loss += loss.detach() / accumulation
        lap("other")
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    setup.optimizer.step()
    setup.optimizer.zero_grad(set_to_none=True)
    lap("optimizer")
    update_ema(setup.ema_model, _unwrap(model), ema_decay(config.ema_decay, state.step))
    lap("ema")
    window.steps += 1
    return StepResult(LoopState(state.step + 1, next_position), indices, lr, frequency_power, masked_tokens, tokens)


@dataclass
class EvaluationSets:
    """What every evaluation of a run scores, fixed for the run (and the same in every trial of a
    sweep on the same data): validation rows (ids and their row numbers in the validation shard),
    tuning and held-out minimal pairs, and the encoder of a pair's sentences."""

    val_ids: np.ndarray
    val_rows: np.ndarray
    tuning_pairs: list
    heldout_pairs: list
    encode: Callable[[str], list[int]]
    suite: object = None  # trainer.zero_shot.Suite when the run has BabyLM task files
    tokenizer: object = None  # the tokenizer the suite's candidates are encoded with (offsets)


def evaluate_run(model: torch.nn.Module, config: TrainConfig, sets: EvaluationSets, device: torch.device,
                 final: bool) -> tuple[dict, dict]:
    """The selection metrics of `model` (the EMA weights) and their per-item records.

    Computed in float32 (EVAL_PRECISION) whatever `config.precision` trained the weights, so the
    same weights give the same numbers on every machine. Interim evaluations (not `final`) score
    `config.interim_val_subsample`'s share of the validation rows and no held-out pairs: nothing
    may select on those, so their scores would only cost time."""
    start = time.perf_counter()
    scoring = dict(num_special=NUM_SPECIAL_TOKENS, mask_id=MASK_ID, pad_id=PAD_ID,
                   policy=config.eval_time_conditioning, fixed_rate=config.eval_fixed_rate, device=device,
                   autocast=None)
    per_row: dict = {}
    metrics = validation_metrics(model, sets.val_ids, num_rates=config.val_mask_rates,
                                 batch_size=max(config.micro_batch_size, 32),
                                 subsample=1 if final else config.interim_val_subsample, per_row=per_row, **scoring)
    metrics["eval_precision"] = EVAL_PRECISION
    items = {"val": rows_record(sets.val_rows[per_row["kept"]], per_row["bound"], per_row["tokens"],
                                per_row["correct"], per_row["masked"])}
    for name, part in (("pairs_acc", sets.tuning_pairs), ("pairs_acc_heldout", sets.heldout_pairs if final else [])):
        if not part:
            continue
        scores = score_pairs(model, part, sets.encode, **scoring)
        metrics[name] = scores["pairs_acc"]
        metrics[f"{name}_se"] = scores["pairs_acc_se"]
        metrics[f"{name.replace('_acc', '')}_scored"] = scores["pairs_scored"]
        metrics.update({f"{name}/{k}": v for k, v in scores["pairs_acc_by_paradigm"].items()})
        if name == "pairs_acc":
            metrics.update({f"pairs_n/{k}": n for k, n in scores["pairs_by_paradigm"].items()})
        items[name.replace("_acc", "")] = pairs_record(scores["correct"], [f"{p.paradigm}/{p.pair_id}" for p in part])
    if sets.suite is not None:
        from trainer.zero_shot import suite_metrics

        suite_scores, suite_items = suite_metrics(model, sets.suite, sets.tokenizer, final=final, bos_id=BOS_ID,
                                                  max_length=config.model.max_position, **scoring)
        metrics.update(suite_scores)
        items.update(suite_items)
    metrics["eval_s"] = time.perf_counter() - start
    return metrics, items


def train_loop(
    config: TrainConfig,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    pairs_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    report: Report | None = None,
    device: torch.device | str | None = None,
    show_progress: bool = True,
    stop_at_step: int | None = None,
    keep_reported_checkpoints: bool = True,
    checkpoint_root: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
    progress_every_s: float = 20.0,
) -> dict:
    """Train `config` on the prepared data at `data_root`; returns the last metrics.

    The run keeps its latest checkpoint in `checkpoint_root` (default `out_dir/checkpoints/`);
    with `keep_reported_checkpoints=False` a checkpoint handed to `report` is deleted once
    `report` returns (a sweep's trial: Ray has copied it to the sweep's storage by then), so a
    trial holds one training state, not two.

    `progress`, when given, is called on rank 0 about every `progress_every_s` seconds between
    evaluations with the step, the budget, the mean training loss and tokens/s since the last
    evaluation (reading the loss then is the only extra host sync, once per interval).

    `stop_at_step` ends the run early at that step (evaluated and checkpointed) while the
    learning-rate and mask schedules still follow the full budget, as a preempted run would.
    The budget is `max_words` when set, else `max_steps` (see trainer/budget.py); a budget
    over `max_epochs` raises BudgetError before anything is trained.
    """
    rank, world = distributed_context()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = Path(out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(config.to_json())

    # --- data ---------------------------------------------------------------
    data = open_prepared(data_root)
    row_words = data.row_words("train")
    total_steps = resolve_max_steps(config, row_words)
    last_step = min(total_steps, stop_at_step or total_steps)
    train_rows = TokenShard(data.train_path)
    # One fixed sample spread over every validation file, the same for every trial.
    val_indices, validation = validation_rows(data.source_rows("val"), config.val_rows, num_rates=config.val_mask_rates)
    val_ids = TokenShard(data.val_path).rows(val_indices)
    vocab_size = data.vocab_size
    if rank == 0:
        (out_dir / "data.json").write_text(json.dumps({"data_root": str(Path(data_root).resolve()),
                                                       "pairs_dir": str(pairs_dir) if pairs_dir else None,
                                                       "validation": validation}))
    counts, ranks = load_frequencies(data.frequencies_path)
    weights_by_token = token_weights(counts, ranks, config.frequency_weighting, NUM_SPECIAL_TOKENS)
    tokenizer = load_tokenizer(data.tokenizer_path)
    # Selection metrics use the tuning part only; the held-out part is reported beside it.
    tuning_pairs, heldout_pairs = split_pairs(load_pairs(pairs_dir), config.pairs_heldout_fraction) if pairs_dir else ([], [])
    pairs_split = split_description(tuning_pairs, heldout_pairs, config.pairs_heldout_fraction) if pairs_dir else None
    tuning_pairs = limit_per_paradigm(tuning_pairs, config.eval_pairs_per_paradigm)
    heldout_pairs = limit_per_paradigm(heldout_pairs, config.eval_pairs_per_paradigm)

    def encode(sentence: str) -> list[int]:
        return [BOS_ID] + tokenizer.encode(sentence).ids[: config.seq_length - 1]

    micro = config.micro_batch_size
    if config.batch_size % (micro * world):
        raise ValueError(
            f"batch_size {config.batch_size} is not a multiple of micro_batch_size {micro} x {world} workers"
        )
    accumulation = config.batch_size // (micro * world)

    # --- model, EMA, optimiser -------------------------------------------------
    torch.manual_seed(config.seed)
    model = build_model(config.model, vocab_size).to(device)
    ema_model = copy.deepcopy(model).eval()
    for param in ema_model.parameters():
        param.requires_grad_(False)
    optimizer = build_optimizer(model, config)
    state = LoopState()

    if resume_from is not None:
        checkpoint = check_resume_compatible(resume_from, config)
        model.load_state_dict(checkpoint["model"])
        ema_model.load_state_dict(checkpoint["ema"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = LoopState(checkpoint["step"], DataPosition(**checkpoint["position"]))
        torch.set_rng_state(checkpoint["rng"]["torch"])
        np.random.set_state(checkpoint["rng"]["numpy"])

    n_params = count_parameters(model)
    # After the EMA copy and any resume: those stay eager.
    compile_guard = compile_encoder(model) if resolve_compile(config.compile, device) else None
    device_name = device_description(device)  # in every metrics line
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    precision = resolve_precision(config.precision, device)
    autocast = autocast_for(precision, device)
    schedule = ScheduleParams.from_config(config)
    setup = StepSetup(config, model, ema_model, optimizer, schedule, weights_by_token, train_rows, autocast, device,
                      total_steps=total_steps, accumulation=accumulation, rank=rank, world=world)
    metrics_path = out_dir / "metrics.jsonl"
    checkpoints = Path(checkpoint_root) if checkpoint_root else out_dir / "checkpoints"
    if rank == 0 and resume_from is not None:
        _truncate_metrics(metrics_path, state.step)
    elif rank == 0 and metrics_path.exists():
        metrics_path.unlink()

    progress_bar = None
    if show_progress and rank == 0:
        from tqdm import tqdm

        progress_bar = tqdm(total=last_step, initial=state.step, desc="train", unit="step", dynamic_ncols=True)

    # --- evaluation and reporting ----------------------------------------------
    suite = None
    if config.eval_data and rank == 0:
        from trainer.zero_shot import load_suite

        suite = load_suite(config.eval_data, config.pairs_heldout_fraction, config.eval_items_per_uid)
    evaluation_sets = EvaluationSets(val_ids, val_indices, tuning_pairs, heldout_pairs, encode, suite, tokenizer)

    def evaluate_and_report(extra: dict) -> dict:
        metrics = dict(extra)
        if rank == 0:
            scores, items = evaluate_run(ema_model, config, evaluation_sets, device, final=state.step >= last_step)
            # The per-item records travel with the metrics (to metrics.jsonl, and to Tune, whose
            # early stopping compares trials on them): a few kB per evaluation.
            metrics.update(scores, items=items)
            if device.type == "cpu":
                release_freed_memory()
        checkpoint_dir = None
        if rank == 0 and (state.step % config.checkpoint_every == 0 or state.step >= last_step):
            checkpoint_dir = save_checkpoint(
                checkpoints / f"step_{state.step:08d}", model=_unwrap(model).state_dict(),
                ema=ema_model.state_dict(), optimizer=optimizer.state_dict(), step=state.step,
                position={"epoch": state.position.epoch, "offset": state.position.offset}, config=config,
                data={"data_root": str(data.root), "data_hash": data.content_hash},
            )
            # The new one is complete (renamed into place), so the older can go: one training
            # state per run (a base model's is ~1.5 GB).
            prune_checkpoints(checkpoints, keep=1)
            metrics["checkpoint"] = str(checkpoint_dir)
        if world > 1:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        if rank == 0:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(metrics) + "\n")
            if checkpoint_dir is not None:
                # The history travels with the checkpoint: whoever persists it (Ray, to the sweep's
                # storage, from any node) persists the run's metrics and config with it.
                shutil.copyfile(metrics_path, checkpoint_dir / "metrics.jsonl")
        if report is not None:
            report(metrics, checkpoint_dir)
            if checkpoint_dir is not None and not keep_reported_checkpoints:
                shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the reporter holds its own copy now
        return metrics

    # --- word-count checkpoints (exported model folders, BabyLM's chck_<N>M) ------------
    seen_words = words_seen(row_words, state.step * config.batch_size, config.seed)
    pending_word_checkpoints = [w for w in config.checkpoint_words if w > seen_words]

    def export_word_checkpoint(target: int) -> None:
        from trainer.export import export_model

        folder = out_dir / checkpoint_name(target)
        provenance = {"words_seen": seen_words, "checkpoint_words": target, "step": state.step,
                      "data_hash": data.content_hash, "seed": config.seed, "pairs_split": pairs_split,
                      "validation": validation}
        export_model(ema_model.state_dict(), config, data.tokenizer_path, folder, provenance, overwrite=True)
        with (out_dir / "word_checkpoints.jsonl").open("a") as handle:
            handle.write(json.dumps({"name": folder.name, "path": str(folder), **provenance}) + "\n")

    # --- training ----------------------------------------------------------------
    tokens_per_step = config.batch_size * config.seq_length
    window = Window(torch.zeros((), device=device))
    train_seconds = 0.0  # cumulative time inside optimizer steps (this process)
    first_step_unix = None  # wall clock of the first step: start-up cost = this - process start
    last_metrics: dict = {}
    last_progress = time.monotonic()
    while state.step < last_step:
        step_start = time.perf_counter()
        if first_step_unix is None:
            first_step_unix = time.time()
        step = train_step(setup, state, window)
        state = step.state
        seen_words += int(row_words[step.indices].sum())
        while rank == 0 and pending_word_checkpoints and seen_words >= pending_word_checkpoints[0]:
            export_word_checkpoint(pending_word_checkpoints.pop(0))
        if device.type == "cpu" and state.step % TRIM_EVERY_STEPS == 0:  # a GPU's tensors are not on the heap
            release_freed_memory()
        step_seconds = time.perf_counter() - step_start
        window.seconds += step_seconds
        train_seconds += step_seconds
        if progress_bar is not None:
            progress_bar.update(1)
        # Checkpoint steps are evaluation steps too: a checkpoint always travels with metrics.
        evaluating = (
            state.step % config.eval_every == 0
            or state.step % config.checkpoint_every == 0
            or state.step >= last_step
        )
        if not evaluating and progress is not None and rank == 0 and time.monotonic() - last_progress >= progress_every_s:
            last_progress = time.monotonic()
            progress({"step": state.step, "last_step": last_step,
                      "train_loss": float(window.loss) / max(window.steps, 1),
                      "tokens_per_s": window.steps * tokens_per_step / max(window.seconds, 1e-9)})
        if evaluating:
            if world > 1:
                # The mean over ranks: every rank then takes the same decision below (a rank
                # stopping alone would leave the others waiting in a collective forever).
                dist.all_reduce(window.loss)
                window.loss /= world
            train_loss = float(window.loss) / window.steps
            if not math.isfinite(train_loss):
                raise TrainingDiverged(f"training loss became {train_loss} at step {state.step}", step=state.step)
            extra = {
                "step": state.step,
                "tokens": state.step * tokens_per_step,
                "words_seen": seen_words,
                "epoch": state.step * config.batch_size / train_rows.num_rows,
                "train_loss": train_loss,
                "tokens_per_s": window.steps * tokens_per_step / max(window.seconds, 1e-9),
                "train_s": train_seconds,
                "first_step_unix": first_step_unix,
                "lr": step.lr,
                "mask_rate": window.rate / window.steps,
                "frequency_power_now": step.frequency_power,
                "precision": precision,
                "compiled": compile_guard is not None and compile_guard.active,
                "device": device_name,
                "num_parameters": n_params,
            }
            last_metrics = evaluate_and_report(extra)
            if progress_bar is not None:
                shown = {k: last_metrics[k] for k in ("train_loss", "val_nelbo", "pairs_acc") if k in last_metrics}
                progress_bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})
            window = Window(torch.zeros((), device=device))
            last_progress = time.monotonic()  # the evaluation's own line just said where it is

    if progress_bar is not None:
        progress_bar.close()
    return last_metrics


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint so the history stays continuous."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
