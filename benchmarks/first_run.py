"""Does a new user's first run visibly learn? `python benchmarks/first_run.py [--sweep DIR]`.

Runs `python -m trainer.train` exactly as the README gives it (the defaults: `tiny` on the
built-in corpus, all cores), in a fresh data cache so the corpus is generated and prepared as it
is on a first run, and stamps each evaluation with the minutes since the command started. Then
reports, for the default sweep (`python sweeps/run.py --space bimodal_p`), every trial's last
`pairs_acc` and its minutes: from a sweep folder given with `--sweep` (e.g. one that
`benchmarks/sweep_overhead.py --default-sweep --keep DIR` left), or from a sweep run here with
`--run-sweep`.

Target on a 2-core CPU: the default training run reaches `pairs_acc` >= 0.70 (the built-in
minimal pairs; 0.5 is chance) within 6 minutes. Nothing here special-cases the built-in data:
it is what a new user runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
TARGET_ACC, TARGET_MINUTES = 0.70, 6.0


def first_training_run(project: Path, work: Path, extra: list[str]) -> dict:
    """`python -m trainer.train` (+ `extra`), its evaluations stamped with minutes since launch."""
    out = work / "train"
    metrics = out / "metrics.jsonl"
    command = [sys.executable, "-m", "trainer.train", "--out", str(out), "--cache-dir", str(work / "cache"),
               "--no-progress", *extra]
    load = common.load_average()
    start = time.time()
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=common.own_ray_environment())
    stamped: list[dict] = []
    while True:
        done = process.poll() is not None
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        for line in lines[len(stamped):]:
            if line.strip():
                record = json.loads(line)
                record["minutes"] = (time.time() - start) / 60
                stamped.append(record)
        if done:
            break
        time.sleep(0.5)
    wall = time.time() - start
    if process.returncode != 0:
        raise SystemExit(f"`python -m trainer.train` failed (exit {process.returncode}):\n{process.stderr.read()[-2000:]}")
    curve = [{"step": r["step"], "minutes": r["minutes"], "pairs_acc": r.get("pairs_acc"),
              "pairs_acc_se": r.get("pairs_acc_se"), "val_nelbo": r.get("val_nelbo")} for r in stamped]
    reached = next((r for r in curve if (r["pairs_acc"] or 0) >= TARGET_ACC), None)
    last = stamped[-1]
    return {
        "benchmark": "first_run",
        "run": "trainer.train",
        "command": "python -m trainer.train " + " ".join(extra),
        "project": str(project),
        "wall_minutes": wall / 60,
        "steps": last["step"],
        "precision": last.get("precision"),
        "pairs_acc": last.get("pairs_acc"),
        "pairs_acc_se": last.get("pairs_acc_se"),
        "pairs_acc_heldout": last.get("pairs_acc_heldout"),
        "val_nelbo": last.get("val_nelbo"),
        "minutes_to_target": reached["minutes"] if reached else None,
        "target_met": reached is not None and reached["minutes"] <= TARGET_MINUTES,
        "curve": curve,
        "load": load,
        "load_end": common.load_average(),
    }


def sweep_trials(folder: Path) -> list[dict]:
    """Each trial's last report in a sweep folder: pairs_acc and the trial's minutes."""
    rows = []
    for path in sorted(folder.glob("run_trial_*/result.json")):
        reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not reports:
            continue
        last = reports[-1]
        rows.append({
            "benchmark": "first_run",
            "run": "sweep trial",
            "trial": path.parent.name.split("_")[2] if path.parent.name.count("_") >= 2 else path.parent.name,
            "steps": last["step"],
            "pairs_acc": last.get("pairs_acc"),
            "pairs_acc_se": last.get("pairs_acc_se"),
            "derivative_power": last.get("config", {}).get("derivative_power"),
            "minutes": last["time_total_s"] / 60,
        })
    return rows


def run_default_sweep(project: Path, storage: Path) -> Path:
    command = [sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--storage", str(storage), "--name", "first"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=common.own_ray_environment())
    if result.returncode != 0:
        raise SystemExit(f"the default sweep failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return storage / "first"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=ROOT,
                        help="the checkout to run (e.g. an earlier revision, for a before/after)")
    parser.add_argument("--sweep", type=Path, help="a finished default sweep's folder to read the trials of")
    parser.add_argument("--run-sweep", action="store_true", help="run the default sweep here too (5-15 minutes)")
    parser.add_argument("--train-args", default="", help="extra `trainer.train` arguments (default: none, as the README)")
    parser.add_argument("--quick", action="store_true", help="a 300-step run (about 1.5 minutes): the curve's start only")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_args = f"--max-steps 300 {args.train_args}"
    common.quiet_local_environment()
    rows = []
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        work = Path(tmp)
        run = first_training_run(args.project.resolve(), work, args.train_args.split())
        common.emit(common.rounded(run))
        rows.append(run)
        sweep = args.sweep
        if sweep is None and args.run_sweep:
            sweep = run_default_sweep(args.project.resolve(), work / "sweeps")
        trials = sweep_trials(sweep) if sweep else []
    for trial in trials:
        common.emit(common.rounded(trial))
    print()
    common.print_table(
        [{"step": r["step"], "minutes": r["minutes"], "pairs_acc": r["pairs_acc"], "pairs_acc_se": r["pairs_acc_se"],
          "val_nelbo": r["val_nelbo"]} for r in run["curve"]],
        [("step", "step", ""), ("minutes", "minutes", ".2f"), ("pairs_acc", "pairs_acc", ".3f"),
         ("pairs_acc_se", "SE", ".3f"), ("val_nelbo", "val_nelbo", ".3f")],
        title=f"`{run['command'].strip()}` ({run['precision']}, load {run['load'][0]}): "
              f"target pairs_acc >= {TARGET_ACC} within {TARGET_MINUTES:g} minutes: "
              f"{'met' if run['target_met'] else 'not met'}",
    )
    if trials:
        common.print_table(trials, [("trial", "trial", ""), ("derivative_power", "p", ".3f"), ("steps", "steps", ""),
                                    ("minutes", "minutes", ".2f"), ("pairs_acc", "pairs_acc", ".3f"),
                                    ("pairs_acc_se", "SE", ".3f")],
                           title=f"the default sweep's trials ({sweep})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
