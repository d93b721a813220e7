"""The model at a git revision against the working copy: evaluation and training-step time.

    python benchmarks/model_revision.py --reference c9f6c9a            # tiny, one thread
    python benchmarks/model_revision.py --reference c9f6c9a --quick

Before/after figures for a change to `trainer/model.py`. Both versions are built with the same
weights (the committed file is loaded as a module of its own; its parameter names must match)
and take turns on the same inputs, so both see the same machine load. Measured on the built-in
corpus, as train_loop does them:
- `validation`: `validation_metrics` on the validation rows (val_nelbo's fixed masks);
- `pairs`: `pseudo_log_likelihoods` of the tuning pairs (PLL: one copy per scored token, short rows);
- `train_step`: forward, loss and backward of one training micro-batch (train mode, dropout).
Outputs must agree (val_nelbo, every PLL, the loss) to float32 rounding, or the script fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import trainer.model as current_model  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data.dataset import TokenShard, load_frequencies  # noqa: E402
from trainer.data.pairs import limit_per_paradigm, load_pairs, split_pairs  # noqa: E402
from trainer.data.prepare import open_prepared  # noqa: E402
from trainer.data.tokenizer import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, load_tokenizer  # noqa: E402
from trainer.evaluate import pseudo_log_likelihoods, validation_metrics  # noqa: E402
from trainer.masking import apply_mask, maskable_positions, masked_fraction, masking_probabilities, token_weights  # noqa: E402
from trainer.objective import MaskedBatch, masked_logits, weighted_nelbo  # noqa: E402
from trainer.schedules import ScheduleParams, sample_schedule  # noqa: E402


def model_at(revision: str):
    """trainer/model.py as committed at `revision`, imported under a name of its own."""
    source = subprocess.run(["git", "show", f"{revision}:trainer/model.py"], cwd=common.ROOT,
                            capture_output=True, text=True, check=True).stdout
    return common.import_source(source, "model_reference")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True, help="git revision of the 'before' model")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial gets one CPU)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 4; quick 2)")
    parser.add_argument("--quick", action="store_true", help="fewer pairs and rows, 2 rounds")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 4)
    torch.set_num_threads(args.threads)

    config = TrainConfig.parse({"preset": args.preset})
    run = common.builtin_data(None)
    data = open_prepared(run.prepared.root)
    tokenizer = load_tokenizer(data.tokenizer_path)
    tuning, _ = split_pairs(load_pairs(run.pairs_dir), config.pairs_heldout_fraction)
    pairs = limit_per_paradigm(tuning, 10 if args.quick else config.eval_pairs_per_paradigm)
    val = TokenShard(data.val_path)
    val_rows = val.rows(np.arange(min(64 if args.quick else config.val_rows, val.num_rows)))
    train = TokenShard(data.train_path)
    batch = torch.from_numpy(train.rows(np.arange(config.micro_batch_size)))
    counts, ranks = load_frequencies(data.frequencies_path)
    weights = token_weights(counts, ranks, config.frequency_weighting, NUM_SPECIAL_TOKENS)

    def encode(sentence: str) -> list[int]:
        return [BOS_ID] + tokenizer.encode(sentence).ids[: config.seq_length - 1]

    torch.manual_seed(0)
    after = current_model.build_model(config.model, data.vocab_size)
    before = model_at(args.reference).build_model(config.model, data.vocab_size)
    before.load_state_dict(after.state_dict())
    models = {"before": before, "after": after}
    common_eval = dict(num_special=NUM_SPECIAL_TOKENS, mask_id=MASK_ID, pad_id=PAD_ID)

    def validation(model):
        model.eval()
        return validation_metrics(model, val_rows, num_rates=config.val_mask_rates, batch_size=32, **common_eval)["val_nelbo"]

    sequences = [encode(s) for p in pairs for s in (p.good, p.bad)]  # once: only the model is timed

    def pll(model):
        model.eval()
        return pseudo_log_likelihoods(model, sequences, **common_eval)

    def train_step(model):
        model.train()
        generator = torch.Generator().manual_seed(0)
        rates, loss_weights = sample_schedule(len(batch), ScheduleParams.from_config(config), 0.5, generator)
        maskable = maskable_positions(batch, NUM_SPECIAL_TOKENS)
        noisy, masked = apply_mask(batch, masking_probabilities(batch, rates, maskable, weights, 0.5), MASK_ID, generator)
        torch.manual_seed(0)  # the same dropout masks for both
        prepared = MaskedBatch.build(batch, noisy, masked, loss_weights, masked_fraction(masked, maskable), PAD_ID)
        logits = masked_logits(model, prepared, NUM_SPECIAL_TOKENS)
        loss, _ = weighted_nelbo(logits, prepared)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return float(loss.detach())

    tasks = {"validation": validation, "pairs": pll, "train_step": train_step}
    times = {(task, name): [] for task in tasks for name in models}
    outputs = {}
    load = common.load_average()
    for round_index in range(rounds + 1):  # round 0 warms up and checks the outputs
        for task, fn in tasks.items():
            order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
            for name in order:
                start = time.perf_counter()
                value = fn(models[name])
                seconds = time.perf_counter() - start
                if round_index == 0:
                    outputs[(task, name)] = value
                else:
                    times[(task, name)].append(seconds)
    # Dropout draws its masks in the table's shape, which a change may alter: the training
    # loss is then only statistically alike, so only the deterministic outputs must agree.
    if not np.allclose(outputs[("validation", "before")], outputs[("validation", "after")], rtol=1e-5):
        raise SystemExit(f"val_nelbo differs: {outputs[('validation', 'before')]} vs {outputs[('validation', 'after')]}")
    if not np.allclose(outputs[("pairs", "before")], outputs[("pairs", "after")], rtol=1e-5, atol=1e-4):
        raise SystemExit("PLLs differ between the two models")

    rows = []
    for task in tasks:
        b, a = statistics.median(times[(task, "before")]), statistics.median(times[(task, "after")])
        ratios = [x / y for x, y in zip(times[(task, "before")], times[(task, "after")])]
        rows.append({
            "benchmark": "model_revision", "reference": args.reference, "preset": args.preset, "threads": args.threads,
            "task": task, "before_s": b, "after_s": a, "speedup": b / a, "speedup_min": min(ratios),
            "speedup_max": max(ratios), "rounds": rounds, "pairs": len(pairs), "val_rows": len(val_rows), "load": load,
            "load_end": common.load_average(),
        })
    common.print_table(
        rows,
        [("task", "task", ""), ("before_s", "before s", ".3f"), ("after_s", "after s", ".3f"), ("speedup", "speed-up", ".2f"),
         ("speedup_min", "min", ".2f"), ("speedup_max", "max", ".2f")],
        title=f"trainer/model.py at {args.reference} (before) against the working copy (after): {args.preset}, "
              f"{args.threads} thread(s), {len(pairs)} pairs, {len(val_rows)} validation rows, load {load[0]}",
    )
    for row in rows:
        common.emit(common.rounded(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
