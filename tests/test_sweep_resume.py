"""Driver death: SIGKILL the sweep driver mid-sweep, then `--resume` finishes it with no
finished trial lost or rerun and no extra trials sampled."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def trial_results(folder: Path) -> dict[str, list[dict]]:
    results = {}
    for path in folder.glob("run_trial_*/result.json"):
        lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        if lines:
            results[lines[-1]["trial_id"]] = lines
    return results


def test_resume_after_driver_sigkill(tmp_path, cache_dir):
    store, name = tmp_path / "sweeps", "resumable"
    args = [sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--storage", str(store), "--name", name,
            "--num-samples", "3", "--max-concurrent", "1", "--max-steps", "8", "--evals-per-trial", "4",
            "--scheduler", "none", "--wandb-mode", "disabled",
            "--set", "eval_pairs_per_paradigm=5", "--set", "val_rows=32", "--set", "batch_size=32"]
    env = {**os.environ, "MDLM_CACHE_DIR": str(cache_dir)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    folder = store / name
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            results = trial_results(folder)
            finished = [t for t, lines in results.items() if lines and lines[-1]["step"] == 8]
            running = [t for t, lines in results.items() if lines and lines[-1]["step"] < 8]
            if finished and running:
                break
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no mid-sweep state reached")
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120)
    before = trial_results(folder)
    finished_before = {t: lines for t, lines in before.items() if lines[-1]["step"] == 8}

    resumed = subprocess.run([sys.executable, "sweeps/run.py", "--resume", "--storage", str(store), "--name", name,
                              "--wandb-mode", "disabled"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = trial_results(folder)
    assert len(after) == 3  # the search continued where it stood: no extra samples
    for trial, lines in finished_before.items():
        assert after[trial] == lines  # finished trials neither lost nor rerun
    for trial, lines in after.items():
        steps = [l["step"] for l in lines]
        assert steps[-1] == 8
        # An interrupted trial continued from its last checkpoint: its history has no repeats.
        assert steps == sorted(set(steps)), steps
    assert (folder / "best_config.json").exists()
    # The Optuna study outlived the driver: its database holds the three trials, told their values.
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    complete = {t.user_attrs["trial_id"]: t.value for t in study.trials if t.state.name == "COMPLETE"}
    assert set(complete) == set(after)
    assert all(complete[t] == pytest.approx(lines[-1]["pairs_acc"]) for t, lines in after.items())
