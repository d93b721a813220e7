"""How much of a sweep's wall time is training: `python benchmarks/sweep_overhead.py [--quick]`.

Runs a real sweep (`sweeps/run.py`, built-in corpus, `bimodal_p`, TPE, no early stopping so
every trial has the same budget) per runner, and reads each trial's reports:
- trial start-up: from the trial's start (Tune's `timestamp - time_total_s`; Tune stamps whole
  seconds, so +-1 s) to the first optimizer step the loop took (`first_step_unix`);
- train_share: the seconds spent inside optimizer steps (`train_s`), summed over trials, over
  (trial slots x the command's wall time: Ray start-up, data preparation, export included);
  `train_share_tune` is the same over Tune's part alone (first trial start to last trial end);
- where the rest went: evaluation (`eval_s`), trial start-up, and the remainder (checkpoints,
  Tune bookkeeping, slots left idle at the end).

Runners:
- inline  the sweep's default for one CPU worker: the loop runs inside the Tune trial, and
          trials reuse the previous trial's actor (`reuse_actors`), so torch and the trainer
          are already imported;
- fresh   inline with a new actor process per trial (`sweeps.run.reuse_actors` patched to
          False here): the default before actor reuse, kept as the 'before' figure;
- cluster inline, submitted to a Ray that is already running (`--address`; started here with
          ray.init and stopped with ray.shutdown), as with `ray start --head` + `ray job submit`:
          the sweep no longer pays Ray's own start-up;
- train   a Ray Train TorchTrainer per trial (what several workers or GPUs use);
- plain   the lower bound: the same trials (the inline sweep's sampled values, enqueued) run in
          one plain Python process with Optuna, `slots` at a time (threads, one torch thread
          each), calling train_loop directly: no Ray at all.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
RUNNERS = ("inline", "fresh", "cluster", "train", "plain")

# `python -c` body for the fresh runner: sweeps/run.py with actor reuse switched off (fit()
# looks `reuse_actors` up at call time).
FRESH_WRAPPER = """
import sys
sys.path.insert(0, {root!r})
import sweeps.run, sweeps.tuning
sweeps.tuning.reuse_actors = lambda spec: False
sys.exit(sweeps.run.main(sys.argv[1:]))
"""


class RunnerFailed(RuntimeError):
    """One runner's sweep failed; the others still run."""


def trial_reports(folder: Path) -> list[list[dict]]:
    trials = []
    for path in sorted(folder.glob("run_trial_*/result.json")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            trials.append(lines)
    return trials


def sweep_command(runner: str, args, storage: Path, name: str, address: str | None = None) -> list[str]:
    if args.default_sweep:
        # Exactly `python sweeps/run.py --space bimodal_p`: its trials, budget, evaluations, early
        # stopping and W&B logging (offline here), only in a folder of its own.
        flags = ["--space", "bimodal_p", "--storage", str(storage), "--name", name]
        flags += ["--address", address] if address else []
        return [sys.executable, "sweeps/run.py", *flags]
    flags = [
        "--space", "bimodal_p", "--search", "tpe", "--num-samples", str(args.trials), "--max-steps", str(args.steps),
        "--scheduler", "none", "--runner", "inline" if runner in ("fresh", "cluster") else runner, "--storage", str(storage),
        "--name", name, "--wandb-mode", "disabled", "--evals-per-trial", str(args.evals), "--seed", "0",
    ]
    if address:
        flags += ["--address", address]
    for item in args.set or []:
        flags += ["--set", item]
    if runner == "fresh":
        return [sys.executable, "-c", FRESH_WRAPPER.format(root=str(ROOT)), *flags]
    return [sys.executable, "sweeps/run.py", *flags]


def measure_sweep(runner: str, args, storage: Path) -> tuple[dict, Path]:
    name = f"overhead-{runner}"
    address = None
    if runner == "cluster":
        import ray

        # A Ray that outlives the sweep, as a `ray start --head` would; not timed.
        ray.init(address="local", num_cpus=args.slots, include_dashboard=False, log_to_driver=False)
        address = ray.get_runtime_context().gcs_address
    load = common.load_average()
    start = time.time()
    try:
        result = subprocess.run(sweep_command(runner, args, storage, name, address), cwd=args.project, capture_output=True,
                                text=True, env=common.own_ray_environment())
    finally:
        wall = time.time() - start
        if address:
            import ray

            ray.shutdown()
    if result.returncode != 0:
        raise RunnerFailed(f"{runner} sweep failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    reports = trial_reports(storage / name)
    starts = [lines[0]["timestamp"] - lines[0]["time_total_s"] for lines in reports]
    ends = [lines[-1]["timestamp"] for lines in reports]
    startup = [lines[-1]["first_step_unix"] - s for lines, s in zip(reports, starts)]
    row = summarise(
        runner, args, wall, max(ends) - min(starts),
        train=[lines[-1]["train_s"] for lines in reports],
        evals=[sum(r.get("eval_s", 0.0) for r in lines) for lines in reports],
        startup=startup,
        tokens=[lines[-1]["tokens"] for lines in reports],
    )
    # The selection metric's standard error at the trials' last evaluation: cheaper evaluation
    # must not make it noisier.
    finished = [lines[-1] for lines in reports if lines[-1]["step"] == max(r[-1]["step"] for r in reports)]
    for metric in ("pairs_acc", "val_nelbo"):
        ses = [r[f"{metric}_se"] for r in finished if f"{metric}_se" in r]
        if ses:
            row[f"{metric}_se_final"] = statistics.median(ses)
    row["steps_total"] = sum(lines[-1]["step"] for lines in reports)
    row["evaluations"] = sum(len(lines) for lines in reports)
    row["project"] = str(args.project)
    if args.default_sweep:
        row["steps_per_trial"] = max(lines[-1]["step"] for lines in reports)
        row["evals_per_trial"] = max(len(lines) for lines in reports)
        row["sweep"] = "default"
    row["load"] = load
    return row, storage / name


def summarise(runner, args, wall, tune_wall, train, evals, startup, tokens) -> dict:
    slots = args.slots
    capacity = slots * wall
    row = {
        "benchmark": "sweep_overhead",
        "runner": runner,
        "trials": len(train),
        "steps_per_trial": args.steps,
        "evals_per_trial": args.evals,
        "slots": slots,
        "wall_s": wall,
        "tune_wall_s": tune_wall,
        "train_s_total": sum(train),
        "train_s_per_trial": statistics.median(train),
        "eval_s_total": sum(evals),
        "tokens_total": sum(tokens),
        "train_share": sum(train) / capacity,
        "train_share_tune": sum(train) / (slots * tune_wall),
        "eval_share": sum(evals) / capacity,
        "startup_share": sum(startup) / capacity,
        "trial_startup_s": statistics.median(startup),
        "trial_startup_max_s": max(startup),
        "settings": args.set or [],
    }
    row["other_share"] = 1.0 - row["train_share"] - row["eval_share"] - row["startup_share"]
    # Training plus the evaluations the sweep asked for, against everything else (start-up,
    # Ray, bookkeeping, idle slots): the service's own overhead.
    row["work_share"] = row["train_share"] + row["eval_share"]
    row["overhead_share"] = 1.0 - row["work_share"]
    row["target_met"] = row["train_share"] >= 0.85
    return row


# --------------------------------------------------------------------------------------
# The lower bound: one plain process, Optuna, no Ray
# --------------------------------------------------------------------------------------


def measure_plain(args, sweep_folder: Path) -> dict:
    """Run `--plain-worker` in a fresh process (its imports count, as a trial's do)."""
    load = common.load_average()
    start = time.time()
    # OMP_NUM_THREADS: torch.set_num_threads only sets the calling thread's OpenMP pool, and
    # Optuna runs trials in threads of its own, which would otherwise each use every core.
    result = subprocess.run(
        [sys.executable, __file__, "--plain-worker", str(sweep_folder), "--slots", str(args.slots)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    wall = time.time() - start
    if result.returncode != 0:
        raise RunnerFailed(f"plain run failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    worker = json.loads(result.stdout.strip().splitlines()[-1])
    row = summarise("plain", args, wall, worker["optimize_s"], worker["train"], worker["evals"], worker["startup"], worker["tokens"])
    row["load"] = load
    return row


def plain_worker(sweep_folder: Path, slots: int) -> int:
    """Body of the plain process: the sweep's trials again, with Optuna and train_loop only."""
    common.quiet_local_environment()
    import threading

    import optuna
    import torch

    from search_spaces import suggest_values
    from sweeps.trial import trial_config
    from trainer.loop import train_loop

    torch.set_num_threads(1)  # as each inline trial (one CPU each); `slots` trials at once
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from sweeps.spec import SweepSpec

    spec = SweepSpec.load(str(sweep_folder))
    space = spec.space.load()
    values = [lines[0]["config"] for lines in trial_reports(sweep_folder)]
    study = optuna.create_study(
        direction="maximize" if spec.mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=spec.search.seed),
    )
    for v in values:
        study.enqueue_trial({k: x for k, x in v.items() if k in {p.name for p in space.params}})
    results = {"train": [], "evals": [], "startup": [], "tokens": []}
    lock = threading.Lock()
    out_root = Path(tempfile.mkdtemp(prefix="plain-sweep-"))

    def objective(trial):
        begun = time.time()
        torch.set_num_threads(1)  # per thread: OpenMP's thread count is a per-thread setting
        config = trial_config(suggest_values(trial, space), spec)
        reports: list[dict] = []
        train_loop(config, spec.data.data_root, out_root / f"trial_{trial.number}", pairs_dir=spec.data.pairs_dir,
                   report=lambda metrics, _: reports.append(metrics), show_progress=False)
        with lock:
            results["train"].append(reports[-1]["train_s"])
            results["evals"].append(sum(r.get("eval_s", 0.0) for r in reports))
            results["startup"].append(reports[-1]["first_step_unix"] - begun)
            results["tokens"].append(reports[-1]["tokens"])
        return reports[-1][spec.metric]

    start = time.time()
    study.optimize(objective, n_trials=len(values), n_jobs=slots)
    results["optimize_s"] = time.time() - start
    import shutil

    shutil.rmtree(out_root, ignore_errors=True)
    print(json.dumps(results))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 trials of 6 steps, one evaluation, inline + plain")
    parser.add_argument("--runners", help=f"comma list of {', '.join(RUNNERS)} (default: fresh,inline,cluster,plain; quick: inline,plain)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, help="optimizer steps per trial (default 40: about a minute of tiny training here)")
    parser.add_argument("--evals", type=int, help="evaluations per trial (default 2; quick 1)")
    parser.add_argument("--slots", type=int, default=2, help="trials that fit at once (CPUs here)")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", help="passed to sweeps/run.py --set")
    parser.add_argument("--keep", help="keep the sweeps' folders here (default: a temporary folder)")
    parser.add_argument("--default-sweep", action="store_true",
                        help="run exactly the default `sweeps/run.py --space bimodal_p` (its trials, budget, evaluations "
                             "and ASHA; --trials/--steps/--evals/--set are then ignored)")
    parser.add_argument("--project", type=Path, default=ROOT,
                        help="the checkout whose sweeps/run.py runs (e.g. an earlier revision, for a before/after)")
    parser.add_argument("--plain-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_worker:
        return plain_worker(Path(args.plain_worker), args.slots)
    args.steps = args.steps or (6 if args.quick else 40)
    args.evals = args.evals or (1 if args.quick else 2)
    runners = (args.runners or ("inline,plain" if args.quick else "fresh,inline,cluster,plain")).split(",")
    if args.default_sweep and not set(runners) <= {"inline", "cluster"}:
        raise SystemExit("--default-sweep runs the default sweep as it is: use --runners inline or cluster")
    args.project = args.project.resolve()
    for runner in runners:
        if runner not in RUNNERS:
            raise SystemExit(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    common.quiet_local_environment()
    os.environ["TQDM_DISABLE"] = "1"

    rows = []

    def record(row: dict) -> None:
        # Emitted as soon as a runner is done: a later runner's failure loses nothing.
        row["load_end"] = common.load_average()
        rows.append(row)
        common.emit(common.rounded(row))

    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(args.keep or tmp)
        reference = None
        for runner in runners:
            if runner == "plain":
                continue
            try:
                row, folder = measure_sweep(runner, args, storage)
            except RunnerFailed as exc:
                print(f"warning: {exc}", file=sys.stderr)
                continue
            record(row)
            reference = reference or folder
        if "plain" in runners:
            try:
                if reference is None:  # plain needs the trials' values: run the inline sweep first
                    _, reference = measure_sweep("inline", args, storage)
                record(measure_plain(args, reference))
            except RunnerFailed as exc:
                print(f"warning: {exc}", file=sys.stderr)
    if not rows:
        return 1

    common.print_table(
        [{**r, **{k: 100 * r[k] for k in ("train_share", "train_share_tune", "eval_share", "startup_share", "other_share",
                                           "overhead_share")},
          "load1": r["load"][0]} for r in rows],
        [("runner", "runner", ""), ("trials", "trials", ""), ("wall_s", "wall s", ".1f"), ("tune_wall_s", "tune s", ".1f"),
         ("train_s_per_trial", "train s/trial", ".1f"), ("train_share", "train %", ".1f"),
         ("train_share_tune", "train % (tune)", ".1f"), ("eval_share", "eval %", ".1f"), ("startup_share", "start-up %", ".1f"),
         ("other_share", "other %", ".1f"), ("overhead_share", "overhead %", ".1f"),
         ("trial_startup_s", "start-up s (median)", ".2f"), ("steps_total", "steps", ""),
         ("pairs_acc_se_final", "pairs_acc SE (last)", ".4f"), ("load1", "load", ".2f")],
        title=(f"sweep overhead: the default `sweeps/run.py --space bimodal_p` of {args.project}, {args.slots} slots"
               if args.default_sweep else
               f"sweep overhead: {args.trials} trials x {args.steps} steps, {args.evals} evaluation(s) each, {args.slots} slots")
              + " (target: train >= 85%)",
    )
    return 0 if len(rows) == len(runners) else 1


if __name__ == "__main__":
    sys.exit(main())
