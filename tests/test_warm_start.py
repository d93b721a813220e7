"""Warm start on two real sweeps: the narrowed follow-up's study starts from the earlier
sweep's fitting trials, and says how many it took and why it left the others."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TINY = ["--set", "seq_length=32", "--set", "batch_size=8", "--set", "micro_batch_size=8", "--set", "val_rows=16",
        "--set", "eval_pairs_per_paradigm=3", "--wandb-mode", "disabled", "--scheduler", "none",
        "--max-steps", "8", "--evals-per-trial", "2"]


def sweep(store, name, *args, cache_dir):
    env = {**os.environ, "MDLM_CACHE_DIR": str(cache_dir)}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "sweeps/run.py", "--storage", str(store), "--name", name, *TINY, *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_narrowed_sweep_starts_from_the_earlier_trials_that_fit(tmp_path, cache_dir):
    import optuna

    store = tmp_path / "sweeps"
    sweep(store, "wide", "--space", "bimodal_p", "--search", "random", "--num-samples", "4", "--seed", "3",
          "--no-baseline", cache_dir=cache_dir)
    wide = {}
    for path in (store / "wide").glob("run_trial_*/result.json"):
        last = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][-1]
        wide[last["trial_id"]] = (last["config"]["derivative_power"], last["pairs_acc"])
    assert len(wide) == 4
    narrow_space = tmp_path / "narrow.yaml"
    narrow_space.write_text("fixed: {schedule: bimodal_gaussian}\n"
                            "search:\n  derivative_power: {type: float, low: 0.0, high: 0.6}\n")
    out = sweep(store, "narrow", "--space", str(narrow_space), "--num-samples", "2",
                "--warm-start", str(store / "wide"), cache_dir=cache_dir)

    inside = {t: v for t, v in wide.items() if v[0] <= 0.6}
    outside = len(wide) - len(inside)
    spec = json.loads((store / "narrow" / "sweep.json").read_text())
    warm = spec["search"]["warm_start"]
    assert {t["trial_id"] for t in warm["trials"]} == set(inside)
    assert warm["left_out"] == ({"outside the new space": outside} if outside else {})
    assert f"{len(inside)} trial(s) taken" in out
    # The study holds them as finished trials with the earlier values, then this sweep's own.
    study = optuna.load_study(study_name="narrow", storage=f"sqlite:///{store / 'narrow' / 'optuna.db'}")
    seeded = {t.user_attrs["trial_id"]: t for t in study.trials if "warm_start_from" in t.user_attrs}
    assert set(seeded) == {f"warm:{t}" for t in inside}
    for trial_id, (p, acc) in inside.items():
        assert seeded[f"warm:{trial_id}"].params == {"derivative_power": p}
        assert seeded[f"warm:{trial_id}"].value == pytest.approx(acc)
    own = [t for t in study.trials if "warm_start_from" not in t.user_attrs]
    assert len(own) == 2 and all(t.state.name == "COMPLETE" for t in own)
    # The baseline (p = 0.1, the recipe's) ran first in the narrowed sweep.
    assert own[0].user_attrs.get("baseline") and own[0].params == {"derivative_power": 0.1}
