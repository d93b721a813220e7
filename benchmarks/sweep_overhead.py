"""How much of a sweep's wall time is training: `python benchmarks/sweep_overhead.py`.

Runs a real sweep (built-in corpus, `bimodal_p`, no early stopping so every trial has the
same budget) once per runner and reads each trial's reports:
- trial start-up: from the trial process's start (Tune's `timestamp - time_total_s`) to the
  first optimizer step the loop took (`first_step_unix`);
- training share: the seconds spent inside optimizer steps, summed over trials, over
  (trial slots x the sweep's wall time), for Tune's part alone and for the whole command
  (Ray start-up and data preparation included).
Prints a table and one JSON line per runner.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def trial_reports(folder: Path) -> list[list[dict]]:
    trials = []
    for path in sorted(folder.glob("run_trial_*/result.json")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            trials.append(lines)
    return trials


def measure(runner: str, trials: int, steps: int, slots: int, storage: Path) -> dict:
    name = f"overhead-{runner}"
    command = [
        sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--num-samples", str(trials), "--max-steps", str(steps),
        "--scheduler", "none", "--runner", runner, "--storage", str(storage), "--name", name,
        "--wandb-mode", "disabled", "--evals-per-trial", "2",
    ]
    start = time.time()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - start
    if result.returncode != 0:
        raise SystemExit(f"sweep failed:\n{result.stderr[-3000:]}")
    reports = trial_reports(storage / name)
    train_s = sum(lines[-1]["train_s"] for lines in reports)
    starts = [lines[0]["timestamp"] - lines[0]["time_total_s"] for lines in reports]
    ends = [lines[-1]["timestamp"] for lines in reports]
    startup = [lines[-1]["first_step_unix"] - start_t for lines, start_t in zip(reports, starts)]
    tune_wall = max(ends) - min(starts)
    return {
        "benchmark": "sweep_overhead",
        "runner": runner,
        "trials": len(reports),
        "steps_per_trial": steps,
        "slots": slots,
        "wall_s": round(wall, 1),
        "tune_wall_s": round(tune_wall, 1),
        "train_s_total": round(train_s, 1),
        "train_share": round(train_s / (slots * wall), 3),
        "train_share_tune": round(train_s / (slots * tune_wall), 3),
        "trial_startup_s": round(statistics.median(startup), 2),
        "trial_startup_max_s": round(max(startup), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runners", default="inline,train")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per trial")
    parser.add_argument("--slots", type=int, default=2, help="trials that fit at once (CPUs here)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for runner in args.runners.split(","):
            rows.append(measure(runner, args.trials, args.steps, args.slots, Path(tmp)))
    print(f"{'runner':<8} {'trials':>6} {'wall s':>7} {'tune s':>7} {'train s':>8} {'share':>6} {'share(tune)':>11} {'startup s':>9}")
    for r in rows:
        print(f"{r['runner']:<8} {r['trials']:>6} {r['wall_s']:>7} {r['tune_wall_s']:>7} {r['train_s_total']:>8} "
              f"{r['train_share']:>6} {r['train_share_tune']:>11} {r['trial_startup_s']:>9}")
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
