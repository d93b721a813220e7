"""End to end, as a user runs it: a local head on 127.0.0.1, `ray job submit` of
`sweeps/run.py` (the design card's exact command and the `--working-dir .` form), the
exported best config, and final training from it."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAST = [
    "--num-samples", "2", "--max-steps", "6", "--evals-per-trial", "2", "--wandb-mode", "offline",
    "--set", "eval_pairs_per_paradigm=5", "--set", "val_rows=32", "--set", "batch_size=32",
]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory, cache_dir):
    """`ray start --head` in the project root, loopback only, token auth on (the default)."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "MDLM_CACHE_DIR": str(cache_dir),
        "WANDB_MODE": "offline",
    }
    env.pop("RAY_ADDRESS", None)
    gcs_port, dashboard_port = free_port(), free_port()
    start = subprocess.run(
        [str(BIN / "ray"), "start", "--head", f"--port={gcs_port}", "--num-cpus=2", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard_port}", "--disable-usage-stats"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert start.returncode == 0, start.stderr[-2000:]
    client_env = {**env, "RAY_AUTH_MODE": "token", "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard_port}"}
    try:
        # `ray start` returns before the head's job agent is up; on a loaded machine a submit
        # in that window fails with "No available agent to submit job". Wait for a trivial job.
        deadline = time.time() + 240
        while True:
            probe = subprocess.run([str(BIN / "ray"), "job", "submit", "--", "python", "-c", "print('ready')"],
                                   cwd=ROOT, env=client_env, capture_output=True, text=True, timeout=180)
            if probe.returncode == 0:
                break
            assert time.time() < deadline, probe.stderr[-2000:]
            time.sleep(3)
        yield client_env
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


def submit(env, *entry, working_dir=False, timeout=900):
    cmd = [str(BIN / "ray"), "job", "submit"]
    if working_dir:
        cmd += ["--working-dir", "."]
    cmd += ["--", "python", *entry]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def check_sweep(folder: Path) -> dict:
    best = json.loads((folder / "best_config.json").read_text())
    assert best["provenance"]["trial_id"] and best["provenance"]["data_hash"]
    assert best["config"]["schedule"] == "bimodal_gaussian"
    # Which validation rows every trial scored, as sweep.json recorded them.
    sweep = json.loads((folder / "sweep.json").read_text())
    validation = best["provenance"]["validation"]
    assert validation == sweep["data"]["validation"] and validation["rows"] == sweep["base_config"]["val_rows"]
    assert [f["path"] for f in validation["files"]] == ["builtin.dev"]
    rows = (folder / "leaderboard.csv").read_text().splitlines()
    assert rows[0].startswith("rank,trial_id") and len(rows) == 3
    assert json.loads((folder / "finished.json").read_text())["finished"]  # --resume now has nothing to do
    return best


def test_job_submit_exact_command_then_final_training(head, tmp_path):
    store = tmp_path / "sweeps"
    result = submit(head, "sweeps/run.py", "--space", "bimodal_p", "--storage", str(store), "--name", "exact", *FAST)
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    best = check_sweep(store / "exact")
    assert best["final_command"] == f"python sweeps/final.py {store / 'exact'}"
    # Final training from the exported config, unchanged, with word-count checkpoints.
    final = subprocess.run(
        [sys.executable, "sweeps/final.py", str(store / "exact"), "--max-steps", "2", "--checkpoint-words", "2K,4K",
         "--out", str(tmp_path / "final"), "--no-progress"],
        cwd=ROOT, env=head, capture_output=True, text=True, timeout=600,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    config = json.loads((tmp_path / "final" / "train" / "config.json").read_text())
    assert {k: v for k, v in config.items() if k != "checkpoint_words"} == {
        k: v for k, v in best["config"].items() if k not in ("checkpoint_words", "max_steps")} | {"max_steps": 2}
    assert config["checkpoint_words"] == [2000, 4000]
    assert sorted(p.name for p in (tmp_path / "final" / "train").glob("chck_*")) == ["chck_2K", "chck_4K"]
    model = tmp_path / "final" / "model"
    assert (model / "config.json").exists() and (model / "model.safetensors").exists()
    provenance = json.loads((tmp_path / "final" / "provenance.json").read_text())
    assert provenance["trial_id"] == best["provenance"]["trial_id"]
    assert provenance["data_hash"] == best["provenance"]["data_hash"] and provenance["pairs_split"]
    assert provenance["validation"]["files"] == best["provenance"]["validation"]["files"]
    card = (model / "README.md").read_text()
    assert best["provenance"]["trial_id"] in card


def test_job_submit_with_working_dir(head, tmp_path):
    store = tmp_path / "sweeps"
    result = submit(head, "sweeps/run.py", "--space", "bimodal_p", "--storage", str(store), "--name", "uploaded",
                    *FAST, working_dir=True)
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    check_sweep(store / "uploaded")


def test_driver_killed_inside_a_job_then_resumed_by_a_new_job(head, tmp_path):
    """SIGKILL the sweep's driver process inside `ray job submit`; a second job with
    --resume finishes the sweep without losing or rerunning a finished trial."""
    import signal

    import psutil

    from test_sweep_resume import trial_results

    store, name = tmp_path / "sweeps", "jobkill"
    args = ["sweeps/run.py", "--space", "bimodal_p", "--storage", str(store), "--name", name, "--num-samples", "3",
            "--max-concurrent", "1", "--max-steps", "8", "--evals-per-trial", "4", "--scheduler", "none",
            "--wandb-mode", "disabled", "--set", "eval_pairs_per_paradigm=3", "--set", "val_rows=16",
            "--set", "batch_size=16", "--set", "micro_batch_size=16", "--set", "seq_length=64"]
    cmd = [str(BIN / "ray"), "job", "submit", "--no-wait", "--", "python", *args]
    submitted = subprocess.run(cmd, cwd=ROOT, env=head, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    folder = store / name
    deadline = time.time() + 600
    driver = None
    while time.time() < deadline:
        results = trial_results(folder)
        finished = [t for t, lines in results.items() if lines and lines[-1]["step"] == 8]
        if finished:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                line = proc.info["cmdline"] or []
                if "sweeps/run.py" in line and name in line:
                    driver = proc
            break
        time.sleep(0.5)
    assert driver is not None, "the job's driver was not found after a finished trial"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    time.sleep(2)
    before = {t: lines for t, lines in trial_results(folder).items() if lines and lines[-1]["step"] == 8}
    result = submit(head, "sweeps/run.py", "--resume", "--storage", str(store), "--name", name, "--wandb-mode", "disabled")
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    everything = trial_results(folder)
    # A trial killed before its first report (reused actors start the next trial at once) has
    # no checkpoint and no results: its folder stays empty and the restored searcher suggests
    # that point again under a new id. At most one such folder; no results are lost or doubled.
    after = {trial: lines for trial, lines in everything.items() if lines}
    assert len(everything) - len(after) <= 1
    assert len(after) == 3
    for trial, lines in before.items():
        assert after[trial] == lines
    for lines in after.values():
        steps = [l["step"] for l in lines]
        assert steps[-1] == 8 and steps == sorted(set(steps)), steps
    # Resuming the finished sweep again: it says so, starts nothing and writes nothing.
    listing = sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*"))
    again = subprocess.run([sys.executable, "sweeps/run.py", "--resume", "--storage", str(store), "--name", name],
                           cwd=ROOT, env=head, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to resume" in again.stdout, again.stderr[-2000:]
    assert sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*")) == listing
