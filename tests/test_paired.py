"""Paired comparisons end to end: what an evaluation records per item, the verdict the results
reader draws from it, metrics that do not depend on the training precision, and a study."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.eval_items import pairs_correct, pairs_record, rows_arrays, rows_record

ROOT = Path(__file__).resolve().parents[1]


# --- the records -------------------------------------------------------------------------


def test_item_records_round_trip():
    correct = [True, False, True, True, False, False, True, False, True]  # not a multiple of 8
    record = pairs_record(correct, [f"p/{i}" for i in range(9)])
    assert pairs_correct(record).tolist() == correct
    assert record["fingerprint"] != pairs_record(correct, [f"p/{i}" for i in range(1, 10)])["fingerprint"]
    bound = np.array([1.5, 2.25, 1e-9])
    rows = rows_arrays(rows_record([3, 7, 11], bound, np.array([5, 6, 7]), np.array([1, 0, 2]), np.array([2, 1, 3])))
    assert rows["bound"].tolist() == bound.tolist() and rows["tokens"].tolist() == [5, 6, 7]
    assert rows["correct"].tolist() == [1, 0, 2] and rows["masked"].tolist() == [2, 1, 3]


# --- the verdict ---------------------------------------------------------------------------


def row(trial_id, acc_bits, bound, tokens, step=30, keys=None):
    """A results row (sweeps.results.read_trials) with item records at its last evaluation."""
    keys = keys or [f"p/{i}" for i in range(len(acc_bits))]
    n = len(acc_bits)
    acc = sum(acc_bits) / n
    nelbo = float(np.sum(bound) / np.sum(tokens))
    items = {"step": step, "pairs": pairs_record(acc_bits, keys),
             "val": rows_record(list(range(len(bound))), np.asarray(bound, float), np.asarray(tokens),
                                np.zeros(len(bound), int), np.ones(len(bound), int))}
    return {"trial_id": trial_id, "status": "TERMINATED", "state": "finished", "values": {}, "baseline": False,
            "metrics": {"step": step, "pairs_acc": acc, "pairs_acc_se": math.sqrt(acc * (1 - acc) / n),
                        "val_nelbo": nelbo, "val_nelbo_se": 0.05},
            "history": [], "items": [items]}


def test_the_verdict_is_paired_over_the_shared_items():
    from sweeps.results import judge, winner_against_runner_up
    from tests_spec import spec_for

    spec = spec_for(max_steps=30)
    # 400 pairs: both right on 240, both wrong on 120, only a on 30, only b on 10.
    a_bits = [True] * 240 + [False] * 120 + [True] * 30 + [False] * 10
    b_bits = [True] * 240 + [False] * 120 + [False] * 30 + [True] * 10
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 20, size=50)
    bound_b = tokens * rng.uniform(3, 5, size=50)
    bound_a = bound_b - 0.1 * tokens  # a is better by 0.1 nats/token on every row
    a, b = row("a", a_bits, bound_a, tokens), row("b", b_bits, bound_b, tokens)
    found = winner_against_runner_up([a, b], spec)
    best, runner_up, verdict = found
    assert (best["trial_id"], runner_up["trial_id"]) == ("a", "b")
    # By hand: (30 - 10) / 400 = 0.05; se = sqrt(40 - 20^2 / 400) / 400.
    assert verdict.paired_over == "400 shared pairs, 40 discordant"
    assert verdict.difference == pytest.approx(0.05) and verdict.se == pytest.approx(math.sqrt(39) / 400)
    assert verdict.distinguishable  # z = 6.4 paired ...
    assert not verdict.unpaired.distinguishable  # ... while the combined binomial SEs say z = 1.4
    assert verdict.unpaired.se == pytest.approx(math.sqrt(0.675 * 0.325 / 400 + 0.625 * 0.375 / 400))
    # val_nelbo is better when lower: a's lead is positive, exactly 0.1 with SE 0 (a constant shift).
    nelbo = judge(a, b, spec_for(objectives=(("val_nelbo", "min"),), max_steps=30))
    assert nelbo.paired_over == "50 shared rows"
    assert nelbo.difference == pytest.approx(0.1) and nelbo.se == pytest.approx(0.0, abs=1e-12)
    # Other items (another pair set), or another step: no pairing, the unpaired figure alone.
    other = row("c", b_bits, bound_b, tokens, keys=[f"q/{i}" for i in range(400)])
    assert judge(a, other, spec).paired_over == ""
    later = row("d", b_bits, bound_b, tokens, step=20)
    assert judge(a, later, spec).paired_over == ""


def test_rung_agreement_uses_the_decision_metric():
    from sweeps.results import rung_agreement
    from sweeps.spec import Objective
    from tests_spec import spec_for

    spec = spec_for(max_steps=30)
    spec = spec.with_changes(search={**spec.search.model_dump(), "decision": {"metric": "val_nelbo", "mode": "min"}})
    assert spec.decision == Objective(metric="val_nelbo", mode="min")
    # Final pairs_acc a > b > c; val_nelbo at step 10 orders them the same way (lower is better),
    # pairs_acc at step 10 the opposite way: the table must follow val_nelbo (tau = +1).
    rows = []
    for trial_id, final, nelbo, early_acc in (("a", 0.8, 4.0, 0.50), ("b", 0.7, 4.5, 0.55), ("c", 0.6, 5.0, 0.60)):
        history = [{"step": 10, "val_nelbo": nelbo, "pairs_acc": early_acc}, {"step": 30, "pairs_acc": final}]
        rows.append({"trial_id": trial_id, "status": "TERMINATED", "history": history, "metrics": dict(history[-1])})
    (table,) = rung_agreement(rows, spec)
    assert table["tau"] == pytest.approx(1.0)


# --- float32 metrics whatever the training precision --------------------------------------


def test_the_same_weights_give_the_same_metrics_whatever_the_training_precision():
    from trainer.config import TrainConfig
    from trainer.data.pairs import MinimalPair
    from trainer.loop import EvaluationSets, evaluate_run
    from trainer.model import build_model

    base = dict(vocab_size=300, seq_length=16, val_rows=8, val_mask_rates=4)
    bf16, fp32 = TrainConfig(precision="bf16", **base), TrainConfig(precision="fp32", **base)
    torch.manual_seed(0)
    model = build_model(bf16.model, 300).eval()
    rng = np.random.default_rng(0)
    val_ids = rng.integers(16, 300, size=(8, 16))
    val_ids[:, 0] = 1
    pairs = [MinimalPair(f"{i} a", f"{i} b", "toy", str(i)) for i in range(6)]

    def encode(sentence: str) -> list[int]:
        number, word = sentence.split()
        return [1, 16 + int(number), 100 if word == "a" else 101]

    sets = EvaluationSets(val_ids, np.arange(8), pairs, pairs[:2], encode)
    metrics_bf16, items_bf16 = evaluate_run(model, bf16, sets, torch.device("cpu"), final=True)
    metrics_fp32, items_fp32 = evaluate_run(model, fp32, sets, torch.device("cpu"), final=True)
    for metrics in (metrics_bf16, metrics_fp32):
        metrics.pop("eval_s")
    assert metrics_bf16 == metrics_fp32 and items_bf16 == items_fp32
    assert metrics_fp32["eval_precision"] == "float32"
    assert items_fp32["pairs"]["n"] == 6 and items_fp32["pairs_heldout"]["n"] == 2 and items_fp32["val"]["n"] == 8


# --- a study, end to end --------------------------------------------------------------------


@pytest.mark.slow
def test_a_study_trains_every_point_with_every_seed_and_writes_its_table(tmp_path, cache_dir):
    from sweeps.results import judge, read_trials
    from sweeps.spec import SweepSpec

    env = {**os.environ, "MDLM_CACHE_DIR": str(cache_dir)}
    env.pop("RAY_ADDRESS", None)
    store = tmp_path / "sweeps"
    result = subprocess.run(
        [sys.executable, "sweeps/run.py", "--space", "p_study", "--seeds", "2", "--storage", str(store),
         "--name", "study", "--max-steps", "6", "--evals-per-trial", "2", "--wandb-mode", "disabled",
         "--set", "seq_length=32", "--set", "batch_size=8", "--set", "micro_batch_size=8", "--set", "val_rows=16",
         "--set", "eval_pairs_per_paradigm=4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((store / "study" / "study.json").read_text())
    assert document["seeds"] == [0, 1] and [c["label"] for c in document["configs"]] == [
        "derivative_power = 0", "derivative_power = 1"]
    for config in document["configs"]:
        assert len(config["pairs_acc_all"]["per_seed"]) == 2  # each point trained with both seeds
    (difference,) = document["differences"]
    assert difference["paper"] == pytest.approx(78.28 - 68.13)
    d = difference["pairs_acc_all"]
    a = document["configs"][0]["pairs_acc_all"]["per_seed"]
    b = document["configs"][1]["pairs_acc_all"]["per_seed"]
    assert d["mean"] == pytest.approx((a[0] - b[0] + a[1] - b[1]) / 2)
    assert "verdict:" in result.stdout and "paired by seed over 2 seeds" in result.stdout
    # Every trial kept its per-item records, and two trials on the same items compare paired.
    spec = SweepSpec.load(str(store / "study"))
    rows = read_trials(spec)
    assert len(rows) == 4 and all(r["items"] and r["eval_precision"] == "float32" for r in rows)
    assert "shared pairs" in judge(rows[0], rows[1], spec).paired_over


def test_study_table_by_hand():
    """Per configuration mean ± SE over seeds, the seed-paired difference with its t interval, and
    the paper's sign, on numbers small enough to check by hand."""
    from sweeps.study import agreement, study_table
    from tests_spec import spec_for
    from trainer.config import TrainConfig

    spec = spec_for(space="p_study", max_steps=30)
    spec = spec.with_changes(search={**spec.search.model_dump(), "algorithm": "grid", "scheduler": "none"})
    rows = []
    # p = 0 scores 0.70, 0.66, 0.68 on seeds 0-2; p = 1 scores 0.60, 0.61, 0.59: differences 0.10, 0.05, 0.09.
    for p, scores in ((0.0, (0.70, 0.66, 0.68)), (1.0, (0.60, 0.61, 0.59))):
        for seed, score in enumerate(scores):
            rows.append({"state": "finished", "values": {"schedule": "bimodal_gaussian", "derivative_power": p,
                                                         "seed": seed},
                         "config": TrainConfig(seed=seed),
                         "metrics": {"pairs_acc": score, "pairs_scored": 100, "pairs_acc_heldout": score,
                                     "pairs_heldout_scored": 100, "val_nelbo": 4.0 + p}})
    rows.append({**rows[0], "state": "stopped at step 10"})  # not a full-budget measurement: ignored
    document = study_table(spec, rows)
    zero, one = document["configs"]
    assert zero["label"] == "derivative_power = 0" and zero["paper_score"] == 78.28
    assert zero["pairs_acc_all"]["mean"] == pytest.approx(0.68)
    assert zero["pairs_acc_all"]["se"] == pytest.approx(0.02 / math.sqrt(3))  # sd of (0.70, 0.66, 0.68) = 0.02
    (difference,) = document["differences"]
    d = difference["pairs_acc_all"]
    # mean 0.08, sd of (0.10, 0.05, 0.09) = sqrt(0.0007), t(0.975, 2) = 4.303.
    half = 4.303 * math.sqrt(0.0007) / math.sqrt(3)
    assert d["mean"] == pytest.approx(0.08) and d["ci_high"] - d["mean"] == pytest.approx(half, rel=1e-3)
    assert d["distinguishable"] and difference["paper"] == pytest.approx(10.15)
    assert difference["agreement"].startswith("agrees with the paper")
    assert agreement(-1.0, d).startswith("OPPOSITE")
    assert "contains 0" in agreement(1.0, {**d, "distinguishable": False})
