"""Faults injected for real: a diverging trial, a SIGKILLed Train worker, two sweeps
racing on one storage and one cold data cache, and secrets in the environment that must
not leak into anything a sweep writes."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = ["--set", "seq_length=32", "--set", "batch_size=8", "--set", "micro_batch_size=8", "--set", "val_rows=16",
        "--set", "eval_pairs_per_paradigm=3", "--wandb-mode", "offline"]
FAKE_SECRETS = {
    "WANDB_API_KEY": "wandbkey-5f0c2e9a7d41b3c8e6f1a2b4c7d9e0f1",
    "RAY_AUTH_TOKEN": "raytoken-9d8c7b6a5f4e3d2c1b0a",
    "AWS_SECRET_ACCESS_KEY": "awssecret-Zq8Xw7Vu6Ts5Rq4Po3Nm2Lk1",
    "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE1234",
    "HF_TOKEN": "hf_fakefakefakefakefakefakefake12",
}


def run_sweep(args, cache_dir, extra_env=None, timeout=900):
    env = {**os.environ, "MDLM_CACHE_DIR": str(cache_dir), **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "sweeps/run.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def trial_results(folder: Path) -> dict[str, list[dict]]:
    """{Tune trial id: the lines of its result.json} (the id as Tune writes it in each line)."""
    results = {}
    for path in folder.glob("run_trial_*/result.json"):
        lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        if lines:
            results[lines[-1]["trial_id"]] = lines
    return results


def test_divergent_trial_is_recorded_pruned_and_the_sweep_goes_on(tmp_path, cache_dir):
    # Divergence by arithmetic, not by one CPU's rounding: AdamW's decoupled decay multiplies
    # every matrix by (1 - lr * weight_decay) each step, i.e. by -9 at lr = 1, wd = 10 (the
    # learning rate held flat: no warmup, floor 1). After ~20 steps the weights pass 1e18 and
    # attention scores (products of two of them) overflow float32: the loss is NaN before the
    # first evaluation at step 40. At lr = 1e-3 the same factor is 0.99 and the Adam step is
    # 1e-3: finite on any machine.
    space = tmp_path / "learning_rates.yaml"
    space.write_text("description: a learning rate that must diverge and one that cannot\n"
                     "search:\n  lr: {type: categorical, choices: [0.001, 1.0]}\n")
    store = tmp_path / "sweeps"
    secret_env = dict(FAKE_SECRETS)
    result = run_sweep(["--space", str(space), "--search", "random", "--num-samples", "4", "--seed", "0",
                        "--max-steps", "80", "--evals-per-trial", "2", "--scheduler", "asha", "--storage", str(store),
                        "--name", "diverge", *TINY, "--set", "optimizer=adamw", "--set", "grad_clip=0",
                        "--set", "weight_decay=10", "--set", "warmup_proportion=0", "--set", "cooldown_proportion=0",
                        "--set", "lr_floor=1"],
                       cache_dir, extra_env=secret_env)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = store / "diverge"
    results = trial_results(folder)
    diverged = {t: lines for t, lines in results.items() if lines[-1].get("diverged")}
    healthy = {t: lines for t, lines in results.items() if not lines[-1].get("diverged")}
    assert diverged and healthy, {t: lines[-1] for t, lines in results.items()}
    for lines in diverged.values():
        assert "training loss became nan" in lines[-1]["diverged_reason"] and math.isnan(lines[-1]["pairs_acc"])
    # The searcher was told: Optuna holds the diverged trials as failed, not as scores.
    from sweeps.tuning import DivergenceAwareOptunaSearch

    searcher = DivergenceAwareOptunaSearch()
    searcher.restore_from_dir(str(folder))
    states = sorted(t.state.name for t in searcher._ot_study.trials)
    assert states.count("FAIL") == len(diverged) and states.count("COMPLETE") == len(healthy), states
    # Every trial accounted for: diverged ones rank last, with their reason; the best is healthy.
    board = (folder / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 1 + len(results)
    assert all("DIVERGED" in row and "nan" in row for row in board[-len(diverged):])
    best = json.loads((folder / "best_config.json").read_text())
    assert best["config"]["lr"] == 0.001
    scan_for_secrets(folder, result.stdout + result.stderr)


def scan_for_secrets(folder: Path, console: str) -> None:
    """No file the sweep wrote (configs, leaderboard, report, logs, W&B offline runs, Tune
    state) and nothing it printed contains a secret from its environment."""
    scanned = 0
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        scanned += 1
        for name, value in FAKE_SECRETS.items():
            assert value.encode() not in data, f"{name} leaked into {path}"
    for name, value in FAKE_SECRETS.items():
        assert value not in console, f"{name} leaked into the console output"
    assert scanned > 20  # the scan saw the sweep's real output


def test_killed_train_worker_resumes_from_its_checkpoint(tmp_path, cache_dir):
    import psutil

    store, name = tmp_path / "sweeps", "workerkill"
    env = {**os.environ, "MDLM_CACHE_DIR": str(cache_dir)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(
        [sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--num-samples", "1", "--runner", "train",
         "--cpus-per-worker", "0.99", "--max-steps", "120", "--evals-per-trial", "12", "--scheduler", "none",
         "--storage", str(store), "--name", name, *TINY],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    killed_pid, killed_at = None, None
    try:
        deadline = time.time() + 600
        while time.time() < deadline and killed_pid is None:
            metrics = list((store / name).glob("run_trial_*/train/metrics.jsonl"))
            steps = [json.loads(l)["step"] for l in metrics[0].read_text().splitlines()] if metrics else []
            # A wide window (steps 20-100 of 120): on a loaded machine this poll is slow.
            if steps and 20 <= steps[-1] < 100:
                for proc in psutil.process_iter(["pid", "cmdline"]):
                    if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []) and proc.info["pid"] != driver.pid:
                        killed_pid, killed_at = proc.info["pid"], steps[-1]
                        os.kill(killed_pid, signal.SIGKILL)
                        break
            assert driver.poll() is None, "the sweep ended before its worker could be killed"
            time.sleep(0.2)
        assert killed_pid is not None, "no Train worker found to kill"
        output, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, output[-3000:]
    results = trial_results(store / name)
    (lines,) = results.values()
    steps = [l["step"] for l in lines]
    # Continuous history: every evaluation once, in order, to the full budget; the run
    # went on from the checkpoint at or before the kill, not from step 0.
    assert steps == list(range(10, 130, 10)), (steps, killed_at)
    local = [json.loads(l)["step"] for l in next((store / name).glob("run_trial_*/train/metrics.jsonl")).read_text().splitlines()]
    assert local == steps
    assert not psutil.pid_exists(killed_pid) or psutil.Process(killed_pid).status() == psutil.STATUS_ZOMBIE


def test_two_sweeps_at_once_share_storage_and_a_cold_cache(tmp_path):
    cache = tmp_path / "cold_cache"  # both sweeps must build the built-in corpus: only one may
    store = tmp_path / "sweeps"
    common = ["--space", "bimodal_p", "--num-samples", "2", "--max-steps", "8", "--evals-per-trial", "2",
              "--scheduler", "none", "--storage", str(store), *TINY, "--set", "eval_pairs_per_paradigm=2"]
    env = {**os.environ, "MDLM_CACHE_DIR": str(cache)}
    env.pop("RAY_ADDRESS", None)
    # The first is also the multi-objective case: a Pareto front instead of one winner.
    extra = {"first": ["--metric", "pairs_acc:max,val_nelbo:min", "--search", "random"], "second": []}
    procs = [subprocess.Popen([sys.executable, "sweeps/run.py", *common, "--name", name, "--seed", str(seed), *extra[name]],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed, name in ((1, "first"), (2, "second"))]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outputs]
    prepared = [p for p in (cache / "prepared").iterdir() if p.is_dir()]
    assert len(prepared) == 1 and not list((cache / "prepared").glob(".*tmp-*"))
    from trainer.data.prepare import open_prepared

    open_prepared(prepared[0], verify_hashes=True)  # intact: every file matches its recorded hash
    for name, seed in (("first", 1), ("second", 2)):
        sweep = json.loads((store / name / "sweep.json").read_text())
        assert sweep["name"] == name and sweep["search"]["seed"] == seed
        assert len(trial_results(store / name)) == 2
        best = json.loads((store / name / "best_config.json").read_text())
        assert best["provenance"]["sweep"] == name and best["provenance"]["data_hash"] == sweep["data"]["data_hash"]

    # Multi-objective: the printed front is non-dominated, and --pick exports the chosen point.
    assert "Pareto front" in outputs[0] and "multi-objective" in outputs[0]
    from sweeps.export import main as export_main

    results = {t: lines[-1] for t, lines in trial_results(store / "first").items()}
    front = [t for t, r in results.items()
             if not any(o["pairs_acc"] >= r["pairs_acc"] and o["val_nelbo"] <= r["val_nelbo"]
                        and (o["pairs_acc"], o["val_nelbo"]) != (r["pairs_acc"], r["val_nelbo"]) for o in results.values())]
    front.sort(key=lambda t: -results[t]["pairs_acc"])
    assert export_main([str(store / "first"), "--pick", str(len(front))]) == 0
    best = json.loads((store / "first" / "best_config.json").read_text())
    assert best["provenance"]["selected_by"] == "pareto_front"
    assert best["provenance"]["trial_id"] in front
    assert results[best["provenance"]["trial_id"]]["val_nelbo"] == min(results[t]["val_nelbo"] for t in front)
