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
    rows = (folder / "leaderboard.csv").read_text().splitlines()
    assert rows[0].startswith("rank,trial_id") and len(rows) == 3
    return best


def test_job_submit_exact_command_then_final_training(head, tmp_path):
    store = tmp_path / "sweeps"
    result = submit(head, "sweeps/run.py", "--space", "bimodal_p", "--storage", str(store), "--name", "exact", *FAST)
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    best = check_sweep(store / "exact")
    # The exported file is accepted unchanged by the trainer.
    final = subprocess.run(
        [sys.executable, "-m", "trainer.train", "--config", str(store / "exact" / "best_config.json"),
         "--max-steps", "2", "--out", str(tmp_path / "final"), "--no-progress"],
        cwd=ROOT, env=head, capture_output=True, text=True, timeout=600,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["derivative_power"] == best["config"]["derivative_power"]


def test_job_submit_with_working_dir(head, tmp_path):
    store = tmp_path / "sweeps"
    result = submit(head, "sweeps/run.py", "--space", "bimodal_p", "--storage", str(store), "--name", "uploaded",
                    *FAST, working_dir=True)
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    check_sweep(store / "uploaded")
