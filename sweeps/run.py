"""Run a hyperparameter sweep: `python sweeps/run.py --space bimodal_p`.

    ray job submit -- python sweeps/run.py --space bimodal_p          # on a running cluster
    python sweeps/run.py --space full --num-samples 32 --gpus-per-worker 0.25
    python sweeps/run.py --space bimodal_p --resume                   # after the driver died
    python sweeps/run.py --list-spaces

Ray Tune + OptunaSearch (TPE by default) over a named search space; each trial trains one
TrainConfig with the shared training loop (inside the trial, or as a Ray Train TorchTrainer
across workers). The corpus is prepared once, before any trial, into the shared Arrow
cache. Results live under <storage>/<name>/; at the end the best config is exported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

if __package__ in (None, ""):
    # `python sweeps/run.py` puts sweeps/ on sys.path, not the project root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_spaces import SpaceError, SearchSpace, builtin_names, list_spaces, load_space, suggest_values
from trainer.cli import ArgumentParser
from sweeps import storage
from sweeps.trial import GRID_KEY, run_trial
from trainer.budget import parse_word_count, resolve_max_steps
from trainer.config import ConfigError, TrainConfig
from trainer.data.validation import validation_rows
from trainer.train import INPUT_ERRORS, ClusterError, check_reachable, connect_ray, parse_overrides

SWEEP_FILE = "sweep.json"
SEARCHES = ("tpe", "random", "grid", "cmaes")
SCHEDULERS = ("asha", "hyperband", "median", "none")


class SweepError(ValueError):
    """Bad sweep input; one line."""


def code_version() -> str:
    """git commit of the project (with -dirty), else the package version."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"mdlm-sweeps {version('mdlm-sweeps')}"
    except Exception:
        return "unknown"


def default_wandb_mode() -> str:
    """Online when the user is logged in (env key or ~/.netrc entry), else offline."""
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"))
    return "online" if logged_in else "offline"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python sweeps/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--space", default="bimodal_p", help=f"built-in space ({', '.join(builtin_names())}) or a .yaml/.json file")
    p.add_argument("--list-spaces", action="store_true", help="describe the built-in search spaces and exit")
    p.add_argument("--search-optional", action="store_true", help="also search the space's optional parameters")
    p.add_argument("--search", choices=SEARCHES, default="tpe", help="Optuna sampler (grid: every grid point once)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha", help="early stopping on training steps")
    p.add_argument("--num-samples", type=int, default=8, help="trials (ignored by grid search)")
    p.add_argument("--max-concurrent", type=int, default=0, help="at most this many trials at once (0: as resources allow)")
    p.add_argument("--max-steps", type=int, default=120, help="per-trial budget in optimizer steps")
    p.add_argument("--max-words", help="per-trial budget in words of training text seen, e.g. 2M (replaces --max-steps)")
    p.add_argument("--evals-per-trial", type=int, default=4, help="evaluations (and early-stopping points) per trial")
    p.add_argument("--preset", choices=["tiny", "small", "base"], default=None, help="model size (default: the base config's)")
    p.add_argument("--config", help="base TrainConfig JSON that the space's values are applied to")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a base config field")
    p.add_argument("--corpus", help="BabyLM-style corpus folder (default: built-in corpus)")
    p.add_argument("--pairs", help="BLiMP-style JSONL folder (default: built-in pairs with the built-in corpus)")
    p.add_argument("--metric", help="metric to optimise (default: pairs_acc when pairs exist, else val_nelbo); "
                   "several as name:mode pairs, e.g. pairs_acc:max,val_nelbo:min, run a multi-objective search")
    p.add_argument("--mode", choices=["min", "max"], help="default: max for accuracies, min otherwise")
    p.add_argument("--confirm", type=int, default=0, metavar="K",
                   help="after the sweep, rerun the top K configurations at the full budget with fresh seeds")
    p.add_argument("--seeds", type=int, default=3, help="fresh seeds per configuration for --confirm")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (and the base config's seed)")
    p.add_argument("--workers-per-trial", type=int, default=1)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="fractions let several trials share a GPU")
    p.add_argument("--runner", choices=["auto", "inline", "train"], default="auto",
                   help="inline: train inside the trial process; train: a TorchTrainer per trial; auto: inline for one CPU worker")
    p.add_argument("--storage", default="runs/sweeps", help="local folder or pyarrow.fs URI (s3://...)")
    p.add_argument("--name", help="sweep name (default: <space>-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the sweep <storage>/<name> (default name: the latest)")
    p.add_argument("--export", action="store_true", help="only export best_config.json from an existing sweep")
    p.add_argument("--pick", help="with --export on a multi-objective sweep: the Pareto point to export (number or trial id)")
    p.add_argument("--wandb-mode", choices=["online", "offline", "disabled"], default=None,
                   help="W&B logging (default: online when logged in, else offline)")
    p.add_argument("--wandb-project", default="mdlm-sweeps")
    p.add_argument("--cache-dir", help="data cache shared by all trials")
    p.add_argument("--dry-run", action="store_true", help="validate everything, print the plan, start nothing")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, set inside `ray job submit`; "
                   "else a local Ray on 127.0.0.1)")
    p.add_argument("--autoscaling", action="store_true",
                   help="the cluster adds nodes on demand: do not refuse trials needing resources it lacks now")
    return p


def resolve_objectives(args, has_pairs: bool) -> list[tuple[str, str]]:
    """[(metric, mode), ...]: one entry, or several for a multi-objective search."""
    if args.metric and ("," in args.metric or ":" in args.metric):
        objectives = []
        for part in args.metric.split(","):
            name, _, mode = part.strip().partition(":")
            if mode not in ("min", "max"):
                raise SweepError(f"--metric {part.strip()!r}: write name:max or name:min (e.g. pairs_acc:max,val_nelbo:min)")
            objectives.append(resolve_metric(argparse.Namespace(metric=name, mode=mode), has_pairs))
        if len({name for name, _ in objectives}) != len(objectives):
            raise SweepError(f"--metric {args.metric!r} names a metric twice")
        return objectives
    return [resolve_metric(args, has_pairs)]


def resolve_metric(args, has_pairs: bool) -> tuple[str, str]:
    metric = args.metric or ("pairs_acc" if has_pairs else "val_nelbo")
    if metric.startswith("pairs_acc") and not has_pairs:
        raise SweepError(f"--metric {metric} needs minimal pairs: pass --pairs or use the built-in corpus")
    if metric.startswith("pairs_acc_heldout"):
        raise SweepError(f"--metric {metric}: the held-out pairs are reported, never selected on (that would tune on "
                         "the evaluation set); use pairs_acc, measured on the tuning pairs")
    known = ("pairs_acc", "val_nelbo", "val_acc", "train_loss")
    if metric not in known and not metric.startswith("pairs_acc/"):
        raise SweepError(f"--metric {metric!r} is not reported by trials; choose one of {', '.join(known)} or pairs_acc/<paradigm>")
    mode = args.mode or ("max" if "acc" in metric else "min")
    return metric, mode


def base_config(args) -> TrainConfig:
    config = TrainConfig.from_json_file(args.config) if args.config else TrainConfig()
    data = config.as_dict()
    if args.preset and args.preset != config.preset:
        data["preset"], data["model"] = args.preset, None
    if args.corpus:
        data["corpus"] = str(Path(args.corpus).expanduser().resolve())
    if args.pairs:
        data["pairs"] = str(Path(args.pairs).expanduser().resolve())
    eval_every = max(1, args.max_steps // max(1, args.evals_per_trial))
    data.update(max_steps=args.max_steps, eval_every=eval_every, checkpoint_every=eval_every, seed=args.seed)
    if args.max_words is not None:
        data["max_words"] = parse_word_count(args.max_words)
    data.update(parse_overrides(args.set or []))
    return TrainConfig.parse(data)


def resolve_step_budget(config: TrainConfig, row_words, evals_per_trial: int) -> TrainConfig:
    """With a word budget, fix max_steps (and the evaluation points) to the exact step count it
    means on this data, so the early-stopping scheduler and the ranking see real steps.
    Raises BudgetError for a budget over max_epochs."""
    steps = resolve_max_steps(config, row_words)
    if config.max_words is None:
        return config
    every = max(1, steps // max(1, evals_per_trial))
    data = config.as_dict()
    data.update(max_steps=steps, eval_every=every, checkpoint_every=every)
    return TrainConfig.parse(data)


def validate_args(args) -> None:
    for flag, value, minimum in (
        ("--num-samples", args.num_samples, 1),
        ("--max-steps", args.max_steps, 1),
        ("--workers-per-trial", args.workers_per_trial, 1),
        ("--evals-per-trial", args.evals_per_trial, 1),
        ("--max-concurrent", args.max_concurrent, 0),
        ("--confirm", args.confirm, 0),
        ("--seeds", args.seeds, 2 if args.confirm else 1),
    ):
        if value < minimum:
            raise SweepError(f"{flag} must be at least {minimum}, got {value}")
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise SweepError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
    if args.confirm == 1:
        raise SweepError("--confirm needs at least 2 configurations to compare (the winner and the runner-up)")
    if args.runner == "inline" and (args.workers_per_trial > 1):
        raise SweepError("--runner inline runs one worker per trial; use --runner train for --workers-per-trial > 1")


def plan_text(args, space: SearchSpace, config: TrainConfig, objectives: list, runner: str, experiment: str) -> str:
    trials = space.grid_size(args.search_optional) if args.search == "grid" else args.num_samples
    goal = ", ".join(f"{m} ({d})" for m, d in objectives)
    per_trial_cpu = args.workers_per_trial * args.cpus_per_worker + (0.01 if runner == "train" else 0.0)
    lines = [
        f"sweep {experiment}",
        space.describe(),
        f"search {args.search}, scheduler {args.scheduler} on 'step', {trials} trials of {config.max_steps} steps "
        f"(evaluated every {config.eval_every}), optimising {goal}"
        + (" (multi-objective: Pareto front, no early stopping)" if len(objectives) > 1 else ""),
        f"each trial: preset {config.preset}, runner {runner}, {args.workers_per_trial} worker(s) x "
        f"{args.cpus_per_worker:g} CPU + {args.gpus_per_worker:g} GPU ({per_trial_cpu:g} CPU per trial)",
        f"data: {config.corpus or 'built-in corpus'}; pairs: {config.pairs or ('built-in pairs' if config.corpus is None else 'none')}",
    ]
    if args.confirm:
        lines.append(f"then: confirm the top {args.confirm} configurations with {args.seeds} fresh seeds each at the full budget")
    return "\n".join(lines)


def experiment_location(args) -> tuple[str, str]:
    root = storage.normalise(args.storage)
    name = args.name
    if name is None and (args.resume or args.export):
        name = latest_sweep(root)
        if name is None:
            raise SweepError(f"no sweep to {'resume' if args.resume else 'export'} under {root}; pass --name")
    if name is None:
        name = f"{Path(args.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if "/" in name or name in (".", ".."):
        raise SweepError(f"--name {name!r} must be a plain folder name")
    return root, name


def latest_sweep(root: str) -> str | None:
    if storage.is_uri(root) or not Path(root).is_dir():
        return None
    sweeps = [p for p in Path(root).iterdir() if (p / SWEEP_FILE).exists()]
    return max(sweeps, key=lambda p: (p / SWEEP_FILE).stat().st_mtime).name if sweeps else None


def build_search(args, space: SearchSpace, metric, mode):
    """(search algorithm or None, param_space) for the Tuner."""
    from ray import tune

    if args.search == "grid":
        return None, {GRID_KEY: tune.grid_search(space.grid_points(args.search_optional))}
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    from sweeps.search import DivergenceAwareOptunaSearch

    seed = args.seed
    if args.search == "tpe":
        # A few random trials first, then TPE (Optuna's default is 10, too many for small sweeps).
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, args.num_samples // 3)))
    elif args.search == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        if isinstance(metric, list):
            raise SweepError("--search cmaes is single-objective; use tpe or random for several metrics")
        sampler = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    searcher = DivergenceAwareOptunaSearch(
        space=partial(suggest_values, space=space, include_optional=args.search_optional),
        metric=metric,
        mode=mode,
        sampler=sampler,
    )
    if args.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=args.max_concurrent)
    return searcher, {}


def build_scheduler(name: str, config: TrainConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    grace = config.eval_every
    if name == "asha":
        return ASHAScheduler(time_attr="step", max_t=config.max_steps, grace_period=grace, reduction_factor=2)
    if name == "hyperband":
        return HyperBandScheduler(time_attr="step", max_t=config.max_steps, reduction_factor=2)
    if name == "median":
        return MedianStoppingRule(time_attr="step", grace_period=grace, min_samples_required=3)
    return FIFOScheduler()


def reuse_actors(sweep: dict) -> bool:
    """Inline trials run in a reused Ray actor: the next trial finds torch and the trainer
    already imported (median start-up 4.5 s -> 1.0 s on 2 CPUs, benchmarks/sweep_overhead.py).
    train_loop seeds and builds everything it uses, so a trial's results do not depend on the
    process it ran in. A `train` trial only drives a TorchTrainer; its workers are new anyway."""
    return sweep["runner"] == "inline"


def trainable_for(sweep: dict):
    from ray import tune

    fn = tune.with_parameters(run_trial, sweep=sweep)
    if sweep["runner"] == "inline":
        resources = {"CPU": sweep["cpus_per_worker"]}
        if sweep["gpus_per_worker"]:
            resources["GPU"] = sweep["gpus_per_worker"]
    else:
        # The trial itself only drives a TorchTrainer; its workers hold the real resources.
        resources = {"CPU": 0.01}
    return tune.with_resources(fn, resources)


def wandb_callback(**kwargs):
    """Ray's W&B callback, whose finaliser can raise at interpreter exit once `ray` is torn
    down (AttributeError on None); that noise is swallowed here."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    class QuietWandbLoggerCallback(WandbLoggerCallback):
        def __del__(self):
            try:
                super().__del__()
            except Exception:
                pass

    return QuietWandbLoggerCallback(**kwargs)


def run_config(sweep: dict, wandb_mode: str, wandb_project: str):
    from ray import tune

    callbacks = []
    if wandb_mode != "disabled":
        callbacks.append(wandb_callback(project=wandb_project, group=sweep["name"], mode=wandb_mode, dir=sweep.get("wandb_dir")))
    return tune.RunConfig(
        name=sweep["name"],
        storage_path=sweep["storage"],
        callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=sweep.get("max_trial_failures", 1)),
        verbose=1,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        try:
            for space in list_spaces():
                print(space.describe() + "\n")
        except SpaceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        validate_args(args)
        if args.address:
            os.environ["RAY_ADDRESS"] = args.address
        if os.environ.get("RAY_ADDRESS") and not args.dry_run:
            check_reachable(os.environ["RAY_ADDRESS"])  # seconds, not Ray's minute of retries
        root, name = experiment_location(args)
        experiment = storage.join(root, name)
        if args.export:
            from sweeps.export import ExportError, export_sweep

            try:
                export_sweep(experiment, pick=args.pick)
            except ExportError as exc:
                raise SweepError(str(exc)) from None
            return 0
        if args.resume:
            if not storage.exists(storage.join(experiment, SWEEP_FILE)):
                raise SweepError(f"--resume: no sweep at {experiment} (missing {SWEEP_FILE})")
            sweep = json.loads(storage.read_text(storage.join(experiment, SWEEP_FILE)))
        else:
            space = load_space(args.space)
            config = base_config(args)
            if storage.exists(storage.join(experiment, SWEEP_FILE)):
                raise SweepError(f"sweep {experiment} already exists: pass --resume to continue it, or another --name")
            runner = args.runner
            if runner == "auto":
                runner = "inline" if args.workers_per_trial == 1 and args.gpus_per_worker == 0 else "train"
            from search_spaces import apply_values

            apply_values(config, space.fixed)
            has_pairs = config.pairs is not None or config.corpus is None
            objectives = resolve_objectives(args, has_pairs)
            metric, mode = objectives[0]
            if len(objectives) > 1:
                if args.search == "cmaes":
                    raise SweepError("--search cmaes is single-objective; use tpe or random for several metrics")
                args.scheduler = "none"  # early stopping on one metric would bias a Pareto search
            if not args.dry_run:
                storage.check_writable(root)
    except (SweepError, SpaceError, *INPUT_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: storage {args.storage} is not writable ({exc.strerror or exc})", file=sys.stderr)
        return 2

    if not args.resume:
        print(plan_text(args, space, config, objectives, runner, experiment), flush=True)
    if args.dry_run:
        return 0

    if args.resume:
        data_root, pairs_dir = sweep["data_root"], sweep["pairs_dir"]
    else:
        from trainer.data.sources import resolve_data

        try:
            run_data = resolve_data(config, args.cache_dir)
            config = resolve_step_budget(config, run_data.prepared.row_words(), args.evals_per_trial)
        except INPUT_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        data_root = str(run_data.data_root)
        pairs_dir = str(run_data.pairs_dir) if run_data.pairs_dir else None
        pairs_split = None
        if pairs_dir:
            from trainer.data.pairs import load_pairs, split_description, split_pairs

            pairs_split = split_description(*split_pairs(load_pairs(pairs_dir), config.pairs_heldout_fraction),
                                            config.pairs_heldout_fraction)
        wandb_mode = args.wandb_mode or default_wandb_mode()
        sweep = {
            "name": name,
            "storage": root,
            "space": space.name,
            "space_file": space.source,
            "space_definition": {"description": space.description, "fixed": space.fixed,
                                 "search": {p.name: p.describe() for p in space.params}},
            "search": args.search,
            "search_optional": args.search_optional,
            "scheduler": args.scheduler,
            "num_samples": args.num_samples,
            "metric": metric,
            "mode": mode,
            "objectives": [list(o) for o in objectives],
            "seed": args.seed,
            "base_config": config.as_dict(),
            "data_root": data_root,
            "data_hash": run_data.prepared.content_hash,
            "pairs_split": pairs_split,
            # Which validation rows every trial scores (one fixed sample over every *.dev file).
            "validation": validation_rows(run_data.prepared.source_rows("val"), config.val_rows)[1],
            "pairs_dir": pairs_dir,
            "runner": runner,
            "workers_per_trial": args.workers_per_trial,
            "cpus_per_worker": args.cpus_per_worker,
            "worker_cpus": args.cpus_per_worker - 0.01 if args.cpus_per_worker >= 1 else args.cpus_per_worker,
            "gpus_per_worker": args.gpus_per_worker,
            "train_storage": storage.join(root, name, "train_runs"),
            "wandb_mode": wandb_mode,
            "wandb_project": args.wandb_project,
            "wandb_dir": None if storage.is_uri(root) else storage.join(root, name),
            "code_version": code_version(),
            "command": " ".join([Path(sys.argv[0]).name if sys.argv else "run.py", *(argv if argv is not None else sys.argv[1:])]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "max_trial_failures": 1,  # a trial whose worker/node died is retried once, from its checkpoint
            "max_worker_failures": 2,  # Ray Train restarts a dead worker group this often within a trial
        }

    wandb_mode = sweep["wandb_mode"] if args.wandb_mode is None else args.wandb_mode
    if wandb_mode in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = wandb_mode  # Ray's W&B callback reads the mode from the environment
    started = connect_ray(include_dashboard=True)
    try:
        try:
            check_cluster_resources(sweep, args.autoscaling)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not args.resume:  # the experiment folder is only created once everything checked out
            storage.write_text(storage.join(experiment, SWEEP_FILE), json.dumps(sweep, indent=2))
        fit(sweep, args, wandb_mode)
        from sweeps.export import ExportError, export_sweep

        try:
            export_sweep(experiment)
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if args.confirm:
            from sweeps.confirm import run_confirmation

            run_confirmation(experiment, args.confirm, args.seeds, max_concurrent=args.max_concurrent)
            export_sweep(experiment)  # the best config now comes from the confirmed ranking
    finally:
        if started:
            import ray

            ray.shutdown()
    write_report_safely(experiment)
    return 0


def check_cluster_resources(sweep: dict, autoscaling: bool) -> None:
    """Refuse a sweep whose trials could never be placed: Tune would wait for them forever."""
    import ray

    total = ray.cluster_resources()
    workers = sweep["workers_per_trial"]
    gpus_needed = sweep["gpus_per_worker"] * workers
    cpus_needed = sweep["cpus_per_worker"] * workers if sweep["runner"] == "inline" else sweep["worker_cpus"] * workers
    hint = " (an autoscaling cluster that adds such nodes on demand: pass --autoscaling)"
    if autoscaling:
        return
    if gpus_needed and total.get("GPU", 0) < gpus_needed:
        raise ClusterError(f"each trial needs {gpus_needed:g} GPU(s) ({workers} worker(s) x --gpus-per-worker "
                           f"{sweep['gpus_per_worker']:g}) but the cluster has {total.get('GPU', 0):g}{hint}")
    if total.get("CPU", 0) < cpus_needed:
        raise ClusterError(f"each trial needs {cpus_needed:g} CPU(s) but the cluster has {total.get('CPU', 0):g}{hint}")


def write_report_safely(experiment: str) -> None:
    """The report is a reading aid: a plotting failure must not fail a finished sweep."""
    try:
        from sweeps.report import write_report

        path = write_report(experiment)
        print(f"report: {path}")
    except Exception as exc:  # noqa: BLE001 - reported, and the sweep's results stand
        print(f"warning: could not write the report ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              f"retry with: python sweeps/report.py {experiment}", file=sys.stderr)


def fit(sweep: dict, args, wandb_mode: str):
    from ray import tune


    experiment = storage.join(sweep["storage"], sweep["name"])
    trainable = trainable_for(sweep)
    if args.resume:
        if not tune.Tuner.can_restore(experiment):
            raise SystemExit(f"error: {experiment} holds no restorable Tune state")
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
        return tuner.fit()
    config = TrainConfig.parse(sweep["base_config"])
    space = load_space(sweep["space_file"])
    args.search_optional = sweep["search_optional"]
    objectives = sweep.get("objectives") or [[sweep["metric"], sweep["mode"]]]
    multi = len(objectives) > 1
    if multi:
        searcher, param_space = build_search(args, space, [m for m, _ in objectives], [d for _, d in objectives])
    else:
        searcher, param_space = build_search(args, space, sweep["metric"], sweep["mode"])
    num_samples = 1 if args.search == "grid" else args.num_samples
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            # A multi-objective searcher carries its metrics itself; Tune's single metric stays unset.
            metric=None if multi else sweep["metric"],
            mode=None if multi else sweep["mode"],
            search_alg=searcher,
            scheduler=build_scheduler(args.scheduler, config),
            num_samples=num_samples,
            max_concurrent_trials=args.max_concurrent or None,
            reuse_actors=reuse_actors(sweep),
        ),
        run_config=run_config(sweep, wandb_mode, sweep["wandb_project"]),
    )
    return tuner.fit()


if __name__ == "__main__":
    sys.exit(main())
