"""Warm start on two real sweeps: the narrowed follow-up's study starts from the earlier
sweep's fitting trials, and says how many it took and why it left the others; and, without a
sweep, the trials left out for another code version or evaluation precision."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.mark.slow
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


# --- which earlier trials are left out, without running a sweep ---------------------------


def earlier_sweep(monkeypatch, code_version, rows):
    """An earlier sweep (spec and trials) as `warm_start` reads it, in place of a sweep folder."""
    import sweeps.warm_start as warm
    from tests_spec import spec_for

    earlier = spec_for(max_steps=30)
    earlier = earlier.model_copy(update={"provenance": earlier.provenance.model_copy(update={"code_version": code_version})})
    monkeypatch.setattr(warm.SweepSpec, "load", classmethod(lambda cls, source: earlier))
    monkeypatch.setattr(warm, "read_trials", lambda spec: rows)
    return earlier


def finished_row(trial_id, p, **extra):
    from trainer.config import TrainConfig

    config = TrainConfig(max_steps=30, derivative_power=p)
    return {"trial_id": trial_id, "state": "finished", "metrics": {"pairs_acc": 0.6}, "config": config, **extra}


def new_sweep_warm_start(**versions):
    from sweeps.warm_start import warm_start
    from tests_spec import spec_for

    new = spec_for(max_steps=30)
    return warm_start("/earlier", new.space.load(), new.base_config, new.objectives, new.data.data_hash, **versions)


def test_trials_of_another_code_version_are_left_out_naming_both_versions(monkeypatch):
    rows = [finished_row("a", 0.2, eval_precision="float32"), finished_row("b", 0.4, eval_precision="float32")]
    earlier_sweep(monkeypatch, "1111aaaa2222", rows)
    warm = new_sweep_warm_start(current_code_version="3333bbbb4444")
    assert warm.trials == []
    assert warm.left_out == {"from code version 1111aaaa2222, not this code's 3333bbbb4444": 2}
    # The same version: both are taken.
    assert [t["trial_id"] for t in new_sweep_warm_start(current_code_version="1111aaaa2222").trials] == ["a", "b"]


def test_trials_of_another_or_unrecorded_evaluation_precision_are_left_out(monkeypatch):
    import trainer.evaluate

    this = getattr(trainer.evaluate, "EVAL_PRECISION", "float32")
    rows = [finished_row("same", 0.2, eval_precision=this), finished_row("other", 0.3, eval_precision="bfloat16"),
            finished_row("old", 0.4), finished_row("old2", 0.5, eval_precision=None)]
    earlier_sweep(monkeypatch, "1111aaaa2222", rows)
    warm = new_sweep_warm_start(current_code_version="1111aaaa2222")
    assert [t["trial_id"] for t in warm.trials] == ["same"]
    assert warm.left_out == {f"evaluated in bfloat16, not this code's {this}": 1,
                             f"evaluation precision not recorded (this code evaluates in {this})": 2}
    # Told another precision, the trial evaluated in it is the one taken.
    other = new_sweep_warm_start(current_code_version="1111aaaa2222", current_eval_precision="bfloat16")
    assert [t["trial_id"] for t in other.trials] == ["other"]
