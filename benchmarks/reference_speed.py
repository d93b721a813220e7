"""Our training step against the reference implementation's, side by side in one process.

    python benchmarks/reference_speed.py --reference-path /path/to/babylm-diffusion
    python benchmarks/reference_speed.py --reference-path REF --presets tiny --shapes d256x4 \\
        --precisions fp32,bf16,default --steps 10

`--reference-path` is a checkout of the reference code (DespoinaKK/babylm-diffusion). Its
model is imported from there (nothing of it is in this project); both models are built at the
same architecture, fed the same batch, and their training steps taken in turn (ours,
reference, reference, ours, ... after a warm-up), so both see the same machine load. Reported
per shape and precision: median step time and tokens/s of each, and the speed-up
(reference step time / ours: > 1 means ours is faster) with its spread over the pairs.

The step timed, for both: forward, the masked-token loss, backward, gradient clipping (2.0),
the optimizer step and zero_grad, on a batch prepared once (masking, the data loader and the
EMA update happen outside the model in both codes and are left out):
- ours: `trainer.objective.masked_logits` + `weighted_nelbo` (the body of
  `trainer.loop.train_step`), the optimizer of `trainer.optim.build_optimizer`;
- reference: its `Bert.forward(..., sum=True)` (per-sequence loss sums), the loss weighted per
  sequence and divided by the batch's token count, as its training loop does.
`--optimizer adamw` (default): torch's AdamW for both at our defaults (lr 2e-3, betas (0.9,
0.98), eps 1e-8, weight decay 0.1 off biases and norms); `lamb`: each code's own LAMB at the
same settings; `own`: each its default, AdamW here and the reference's LAMB.

Precisions (`--precisions`):
- fp32     both in float32;
- bf16     both under CPU bf16 autocast (the reference's loop wraps its forward in autocast);
- default  each at its default on this machine: ours `precision=auto` (bf16 on a CPU with native
           bf16, trainer/precision.py, else fp32); the reference's loop autocasts with
           `torch.cuda.amp.autocast(mixed_precision, dtype=bfloat16)`, a CUDA-only context that
           disables itself where CUDA is absent ("CUDA is not available ... Disabling autocast")
           and never touches CPU ops, so on a CPU the reference trains in fp32.

Architecture: hidden size, layers, heads, intermediate size, vocabulary 16384, 32 relative
position buckets over max position 512, conditioning width, 256 sinusoid features for the
time embedding (the reference's fixed size; ours is set to match), the same dropout (the
preset's, 0.1 for custom shapes, or `--dropout`); the same parameter count (printed). The
relative-position buckets are the same (each model's [512, 512] index table is compared at run
time: `buckets_equal`). What still differs: LayerNorm eps (ours 1e-5, the reference 1e-7); ours
scales the time input by 1000 before the sinusoid; under bf16 autocast ours computes its
LayerNorms and its attention scores, softmax and weighted values in float32 (the reference in
bf16); ours suppresses the special tokens' logits (SUBS); the reference takes a [B, T, T]
attention mask (all False here: no padding), ours a [B, T] key mask; the reference computes its
accuracy (an argmax over the logits) inside its forward. Both compute the loss in float32.

The batch: `--batch` rows of `--seq-length` random real tokens (no padding), each position masked
with probability `--mask-rate` (default 0.3: the mean masked share over a run of the default
bimodal schedule, which is also the reference's best configuration's; 0.5 is uniform t's), the
same rows, masks, rates (the realised fraction) and per-row loss weights (1 / rate) for both.
At vocabulary 16384 the output head and the loss over the masked positions ([N, 16384] logits)
are a large share of either step, and they are the same work in both codes.

Times: wall clock per step (the headline), and the process's CPU time per step beside it, which
time-slicing on a shared machine inflates less (both from the same interleaved steps).

Shapes: `--presets` names our presets (tiny, small, base; their cond_dim); `--shapes` adds
custom ones `d<hidden>x<layers>[h<heads>][f<intermediate>][c<cond_dim>]`, e.g. d256x4
(heads default hidden / 64, at least 2; intermediate 2.5 x hidden; cond_dim 128).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import torch  # noqa: E402

from trainer.config import PRESETS, ModelConfig, TrainConfig  # noqa: E402
from trainer.data.tokenizer import MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID  # noqa: E402
from trainer.loop import autocast_factory  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.objective import MaskedBatch, masked_logits, weighted_nelbo  # noqa: E402
from trainer.optim import build_optimizer  # noqa: E402
from trainer.precision import resolve_precision  # noqa: E402

VOCAB = 16384
PRECISIONS = ("fp32", "bf16", "default")
OPTIMIZERS = ("adamw", "lamb", "own")
GRAD_CLIP = 2.0


# --------------------------------------------------------------------------------------
# The reference code, imported from its checkout
# --------------------------------------------------------------------------------------


def load_reference(path: Path, lamb: bool = True) -> SimpleNamespace:
    """The reference's model module (and its LAMB), imported from the checkout at `path`."""
    # Appended, not prepended: the checkout's top-level packages (data, config, utils, ...)
    # must not shadow anything else; its modules are loaded by file below.
    if str(path) not in sys.path:
        sys.path.append(str(path))
    modules = {}
    for name, relative in (("model", "model.py"), ("lamb", "optimization/lamb.py"))[: 2 if lamb else 1]:
        spec = importlib.util.spec_from_file_location(f"babylm_reference_{name}", path / relative)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[name] = module
    return SimpleNamespace(**modules)


def reference_config(config: ModelConfig) -> SimpleNamespace:
    """The attributes the reference's `Bert` reads, at our architecture (its config class needs
    transformers; a namespace with the same fields does)."""
    return SimpleNamespace(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position,
        position_bucket_size=config.position_bucket_size,
        vocab_size=VOCAB,
        layer_norm_eps=1e-7,  # its default
        cond_dim=config.cond_dim,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.attention_dropout,
    )


def reference_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The reference's split: no decay for parameters named like biases or layer norms."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if ("bias" in name or "layer_norm" in name) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --------------------------------------------------------------------------------------
# Shapes and the batch
# --------------------------------------------------------------------------------------


def parse_shape(spec: str, dropout: float | None = None) -> tuple[str, ModelConfig]:
    """A preset name, or d<hidden>x<layers>[h<heads>][f<intermediate>][c<cond_dim>]; `dropout`
    (both kinds) overrides the preset's or the default 0.1."""
    update = {"time_embedding_dim": 256}
    if dropout is not None:
        update.update(dropout=dropout, attention_dropout=dropout)
    if spec in PRESETS:
        return spec, PRESETS[spec].model_copy(update=update)
    match = re.fullmatch(r"d(\d+)x(\d+)(?:h(\d+))?(?:f(\d+))?(?:c(\d+))?", spec)
    if not match:
        raise SystemExit(f"bad shape {spec!r}: a preset ({', '.join(PRESETS)}) or d<hidden>x<layers>[h<heads>][f<ffn>][c<cond>]")
    d, layers = int(match[1]), int(match[2])
    heads = int(match[3]) if match[3] else max(2, d // 64)
    ffn = int(match[4]) if match[4] else int(round(2.5 * d))
    cond = int(match[5]) if match[5] else 128
    config = ModelConfig(hidden_size=d, num_layers=layers, num_heads=heads, intermediate_size=ffn, cond_dim=cond)
    return spec, config.model_copy(update=update)


def make_batch(batch: int, length: int, mask_rate: float, seed: int) -> dict:
    """Random real tokens (no padding, no specials), each position masked with `mask_rate`."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(NUM_SPECIAL_TOKENS, VOCAB, (batch, length), generator=gen)
    masked = torch.rand(batch, length, generator=gen) < mask_rate
    masked[:, 0] |= ~masked.any(dim=1)  # every row has a masked position
    noisy = ids.masked_fill(masked, MASK_ID)
    fraction = masked.float().mean(dim=1)  # the realised rate: the time both models are given
    return {
        "ids": ids, "noisy": noisy, "masked": masked, "fraction": fraction,
        "weights": 1.0 / fraction,  # the same per-sequence loss weights for both
        "attention": ids != PAD_ID,
        # The reference's layout: sequence first, targets -100 where unmasked, a [B, T, T]
        # mask that is True where attention is blocked (nowhere here).
        "ref_ids": noisy.t().contiguous(),
        "ref_targets": torch.where(masked, ids, -100).t().contiguous(),
        "ref_mask": torch.zeros(batch, length, length, dtype=torch.bool),
    }


# --------------------------------------------------------------------------------------
# The two steps
# --------------------------------------------------------------------------------------


class Ours:
    def __init__(self, config: ModelConfig, precision: str, optimizer: str, seed: int):
        torch.manual_seed(seed)
        self.model = build_model(config, VOCAB)
        self.model.train()
        optimizer = "adamw" if optimizer == "own" else optimizer
        self.train = TrainConfig.parse({"model": config.model_dump(), "optimizer": optimizer, "precision": precision})
        self.optimizer = build_optimizer(self.model, self.train)
        self.autocast = autocast_factory(precision, torch.device("cpu"))
        self.precision = resolve_precision(precision, torch.device("cpu"))
        self.optimizer_name = type(self.optimizer).__name__

    def step(self, b: dict) -> float:
        # The masks' host-side bookkeeping is part of our step (train_step builds it per micro-batch).
        batch = MaskedBatch.build(b["ids"], b["noisy"], b["masked"], b["weights"], b["fraction"], PAD_ID)
        with self.autocast():
            logits = masked_logits(self.model, batch, NUM_SPECIAL_TOKENS)
        loss, _ = weighted_nelbo(logits, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())


class Reference:
    def __init__(self, ref: SimpleNamespace, config: ModelConfig, precision: str, optimizer: str, seed: int):
        torch.manual_seed(seed)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line when conditioned
            self.model = ref.model.Bert(reference_config(config))
        self.model.train()
        defaults = TrainConfig()
        groups = reference_groups(self.model, defaults.weight_decay)
        betas = (defaults.beta1, defaults.beta2)
        if optimizer in ("lamb", "own"):
            lr = defaults.lr if optimizer == "lamb" else 0.007  # `own`: its config's LAMB rate
            self.optimizer = ref.lamb.Lamb(groups, lr, betas=betas, eps=defaults.adam_eps)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=defaults.lr, betas=betas, eps=defaults.adam_eps)
        # default: its loop's torch.cuda.amp.autocast does not reach CPU ops -> fp32 on a CPU.
        self.precision = "bf16" if precision == "bf16" else "fp32"
        self.autocast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if self.precision == "bf16"
                         else contextlib.nullcontext)
        self.optimizer_name = type(self.optimizer).__name__

    def step(self, b: dict) -> float:
        with self.autocast():
            loss, _, _ = self.model(b["ref_ids"], b["ref_mask"], b["ref_targets"], mask_p=b["fraction"], sum=True)
        loss = (loss * b["weights"]).sum() / b["attention"].sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())


def side_by_side(ref, name: str, config: ModelConfig, precision: str, args) -> dict:
    batch = make_batch(args.batch, args.seq_length, args.mask_rate, args.seed)
    ours = Ours(config, "auto" if precision == "default" else precision, args.optimizer, args.seed)
    theirs = Reference(ref, config, precision, args.optimizer, args.seed)
    # The relative-position bucket of every (query, key) pair, as each model indexes its table.
    ref_indices = theirs.model.transformer.attention_layers[0].position_indices
    buckets_equal = bool(torch.equal(ref_indices, ours.model.position_indices))
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    cpu: dict[str, list[float]] = {"ours": [], "reference": []}
    losses: dict[str, float] = {}
    load = common.load_average()
    for i in range(args.warmup + args.steps):
        order = (("ours", ours), ("reference", theirs))
        for who, runner in (order if i % 2 == 0 else order[::-1]):
            start, start_cpu = time.perf_counter(), time.process_time()
            loss = runner.step(batch)
            elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            losses.setdefault(who, loss)
            if i >= args.warmup:
                times[who].append(elapsed)
                cpu[who].append(elapsed_cpu)
    ratios = [r / o for o, r in zip(times["ours"], times["reference"])]
    ours_s, ref_s = statistics.median(times["ours"]), statistics.median(times["reference"])
    ours_cpu, ref_cpu = statistics.median(cpu["ours"]), statistics.median(cpu["reference"])
    tokens = args.batch * args.seq_length
    return {
        "benchmark": "reference_speed", "shape": name, "precision": precision,
        "precision_ours": ours.precision, "precision_reference": theirs.precision,
        "optimizer_ours": ours.optimizer_name, "optimizer_reference": theirs.optimizer_name,
        "hidden_size": config.hidden_size, "num_layers": config.num_layers, "num_heads": config.num_heads,
        "intermediate_size": config.intermediate_size, "cond_dim": config.cond_dim,
        "dropout": config.dropout, "attention_dropout": config.attention_dropout,
        "buckets_equal": buckets_equal,
        "batch": args.batch, "seq_length": args.seq_length, "mask_rate": float(batch["masked"].float().mean()),
        "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
        "params_ours": sum(p.numel() for p in ours.model.parameters()),
        "params_reference": sum(p.numel() for p in theirs.model.parameters()),
        "step_s_ours": ours_s, "step_s_reference": ref_s,
        "tokens_per_s_ours": tokens / ours_s, "tokens_per_s_reference": tokens / ref_s,
        "speedup": ref_s / ours_s,
        "speedup_pairs_median": statistics.median(ratios),
        "speedup_pairs_min": min(ratios), "speedup_pairs_max": max(ratios),
        "cpu_s_ours": ours_cpu, "cpu_s_reference": ref_cpu, "speedup_cpu": ref_cpu / ours_cpu,
        "first_loss_ours": losses["ours"], "first_loss_reference": losses["reference"],
        "load": load, "load_end": common.load_average(),
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-path", required=True, type=Path, help="checkout of DespoinaKK/babylm-diffusion")
    parser.add_argument("--presets", default="tiny", help="comma list of our presets, or none (default: tiny)")
    parser.add_argument("--shapes", default="", help="comma list of d<hidden>x<layers>[h<heads>][f<ffn>][c<cond>], e.g. d256x4")
    parser.add_argument("--precisions", default="fp32,bf16,default", help=f"comma list of {', '.join(PRECISIONS)}")
    parser.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    parser.add_argument("--batch", type=int, default=TrainConfig().micro_batch_size, help="sequences per step (default 32)")
    parser.add_argument("--seq-length", type=int, default=TrainConfig().seq_length)
    parser.add_argument("--mask-rate", type=float, default=0.3,
                        help="share of positions masked (default 0.3, the default schedule's mean over a run)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each, after the warm-up")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial gets one CPU)")
    parser.add_argument("--dropout", type=float,
                        help="dropout and attention dropout of both models (default: the preset's; custom shapes 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    path = args.reference_path.expanduser().resolve()
    model_file = path / "model.py"
    if not model_file.is_file() or "class Bert(" not in model_file.read_text(errors="replace"):
        print(f"error: --reference-path {args.reference_path} holds no reference model.py "
              "(expected a checkout of DespoinaKK/babylm-diffusion)", file=sys.stderr)
        return 2
    precisions = [p for p in args.precisions.split(",") if p]
    for p in precisions:
        if p not in PRECISIONS:
            raise SystemExit(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    specs = [s for s in args.presets.split(",") if s and s != "none"] + [s for s in args.shapes.split(",") if s]
    shapes = [parse_shape(s, args.dropout) for s in specs]
    torch.set_num_threads(args.threads)
    machine = common.machine_info("cpu")

    ref = load_reference(path, lamb=args.optimizer != "adamw")
    rows = [side_by_side(ref, name, config, precision, args) for name, config in shapes for precision in precisions]

    print(f"machine: {machine['cpu']} ({machine['cores']} cores, {machine['cpu_capability']}, "
          f"native bf16: {machine['cpu_native_bf16']}); reference: {path}")
    common.print_table(
        [{**r, "arch": f"{r['hidden_size']}x{r['num_layers']} h{r['num_heads']} f{r['intermediate_size']}",
          "prec": f"{r['precision_ours']}/{r['precision_reference']}",
          "ours_ms": 1000 * r["step_s_ours"], "ref_ms": 1000 * r["step_s_reference"],
          "range": f"{r['speedup_pairs_min']:.2f}-{r['speedup_pairs_max']:.2f}", "load1": r["load"][0]} for r in rows],
        [("shape", "shape", ""), ("arch", "d x L, heads, ffn", ""), ("dropout", "dropout", ""), ("precision", "mode", ""),
         ("prec", "ours/ref", ""),
         ("ours_ms", "ours step ms", ".1f"), ("ref_ms", "ref step ms", ".1f"),
         ("tokens_per_s_ours", "ours tok/s", ".0f"), ("tokens_per_s_reference", "ref tok/s", ".0f"),
         ("speedup", "speed-up", ".2f"), ("range", "per-pair range", ""), ("speedup_cpu", "CPU-time speed-up", ".2f"),
         ("load1", "load", ".2f")],
        title=(f"training step, ours vs the reference (batch {args.batch} x {args.seq_length}, mask rate {args.mask_rate}, "
               f"{args.threads} thread(s), {args.steps} interleaved pairs, optimizer {args.optimizer}; "
               "speed-up = reference step / ours, > 1: ours is faster)"),
    )
    for r in rows:
        common.emit(common.rounded({**r, "machine": machine}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
