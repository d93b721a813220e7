"""Run a hyperparameter sweep: `python sweeps/run.py --space bimodal_p`.

    ray job submit -- python sweeps/run.py --space bimodal_p          # on a running cluster
    python sweeps/run.py --space full --num-samples 32 --gpus-per-worker 0.25
    python sweeps/run.py --space bimodal_p --resume                   # after the driver died
    python sweeps/run.py --list-spaces

Ray Tune + OptunaSearch (TPE by default) over a named search space; each trial trains one
TrainConfig with the shared training loop (inside the trial, or as a Ray Train TorchTrainer
across workers). The corpus is prepared once, before any trial, into the shared Arrow
cache. Results live under <storage>/<name>/; at the end the best config is exported.

This file parses the flags, builds the sweep's SweepSpec (sweeps/spec.py) and hands it to
the layers below: tuning (fit), export, confirm, report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # `python sweeps/run.py` puts sweeps/ on sys.path, not the project root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only light modules at the top: --help, flag and space errors and the dry run's local checks
# answer before torch or Ray is imported (about 6 s on a 2-core machine); the heavy layers are
# imported where they are used.
from search_spaces import SearchSpace, apply_values, builtin_names, list_spaces, load_space
from sweeps import storage
from sweeps.spec import (
    FINISHED_FILE,
    SCHEDULERS,
    SEARCHES,
    SWEEP_FILE,
    DataRef,
    Objective,
    Provenance,
    Resources,
    SearchSettings,
    SpaceSpec,
    SweepError,
    SweepSpec,
    WandbSettings,
    code_version,
    default_optuna_storage,
    package_versions,
)
from trainer.budget import parse_word_count
from trainer.cli import ArgumentParser
from trainer.config import TrainConfig, apply_overrides, parse_overrides
from trainer.errors import UserError
from trainer.plan import CHECKPOINT_BYTES_PER_PARAMETER, resolve_step_budget

# A grid larger than this is almost always a slip (`--search grid --space full` is 630,600 trials).
MAX_GRID_TRIALS = 1000


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
    p.add_argument("--scheduler", choices=SCHEDULERS, default="paired",
                   help="early stopping on training steps (paired: stop a trial only when it trails the rung's "
                   "leader by more than the evaluation's noise, paired over the shared items; asha: halve at each rung)")
    # 4 (with --max-steps 300 and the 2-layer `tiny`): a newcomer's first sweep on the built-in
    # corpus fits ten minutes on a 2-core CPU without native bf16, install included, and still
    # resolves p = 0 from p = 1 (benchmarks/README.md, "first sweep"); two rounds of two trials
    # leave no CPU idle. Real sweeps set their own --num-samples and --max-words.
    p.add_argument("--num-samples", type=int, default=4, help="trials (ignored by grid search)")
    p.add_argument("--allow-large-grid", action="store_true",
                   help=f"run a grid search of more than {MAX_GRID_TRIALS:,} trials (refused otherwise)")
    p.add_argument("--max-concurrent", type=int, default=0, help="at most this many trials at once (0: as resources allow)")
    # 300: on the built-in corpus a 300-step `tiny` trial (its cosine schedule over 300 steps)
    # separates p = 0 from p = 1 on the tuning pairs (0.593 against 0.503; at 120 steps of the
    # old 600-step default every trial scored at chance, so the sweep ranked noise).
    p.add_argument("--max-steps", type=int, default=300, help="per-trial budget in optimizer steps")
    p.add_argument("--max-words", help="per-trial budget in words of training text seen, e.g. 2M (replaces --max-steps)")
    # 3: with ASHA's halving the evaluations fall at its two decision points (1/3 and 2/3 of the
    # budget) and the end; a 4th (at 3/4) would be a decision point for no scheduler here.
    p.add_argument("--evals-per-trial", type=int, default=3, help="evaluations (and early-stopping points) per trial")
    p.add_argument("--preset", choices=["tiny", "small", "base"], default=None, help="model size (default: the base config's)")
    p.add_argument("--config", help="base TrainConfig JSON that the space's values are applied to")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a base config field")
    p.add_argument("--corpus", help="BabyLM-style corpus folder (default: built-in corpus)")
    p.add_argument("--pairs", help="BLiMP-style JSONL folder (default: built-in pairs with the built-in corpus)")
    p.add_argument("--eval-data", help="BabyLM task files laid out like the pipeline's evaluation_data/full_eval (or "
                   "fast_eval): every task found is scored at every evaluation (<task>_acc, wug_adj_rho, wug_past_rho and "
                   "their mean, babylm_score, which --metric can select on)")
    p.add_argument("--metric", help="metric to optimise (pairs_acc when pairs exist, else val_nelbo); "
                   "several as name:mode pairs, e.g. pairs_acc:max,val_nelbo:min, run a multi-objective search")
    p.add_argument("--mode", choices=["min", "max"], help="default: max for accuracies, min otherwise")
    p.add_argument("--decide-on", metavar="METRIC[:MODE]", default="auto",
                   help="what early stopping decides on at the rungs before the full budget (auto: the sweep's "
                   "metric; see the README for why not val_nelbo). The final ranking is always on --metric")
    p.add_argument("--confirm", type=int, default=0, metavar="K",
                   help="after the sweep, rerun the top K configurations at the full budget with fresh seeds")
    p.add_argument("--seeds", type=int, default=None,
                   help="fresh seeds per configuration for --confirm (default 3), or for a study space (default: its own)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (and the base config's seed)")
    p.add_argument("--no-baseline", action="store_true",
                   help="do not run the base config (the recipe's defaults, or --config) as the first trial")
    p.add_argument("--warm-start", metavar="SWEEP",
                   help="<storage>/<name> of an earlier sweep whose full-budget trials that fit this space seed the study")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers (DDP) per trial")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves (and its torch threads)")
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
    p.add_argument("--wandb-project", default="mdlm-sweeps", help="W&B project of the trials' runs")
    p.add_argument("--wandb-entity", help="W&B team or user the runs belong to (default: your default entity)")
    p.add_argument("--optuna-storage", help="RDB URL of the Optuna study, e.g. postgresql://host/db (default: "
                   "sqlite:///<storage>/<name>/optuna.db for local storage, in memory for a URI)")
    p.add_argument("--cache-dir", help="data cache shared by all trials")
    p.add_argument("--dry-run", action="store_true", help="validate everything, print the plan, start nothing")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, set inside `ray job submit`; "
                   "else a local Ray on 127.0.0.1)")
    p.add_argument("--autoscaling", action="store_true",
                   help="the cluster adds nodes on demand: do not refuse trials needing resources it lacks now")
    return p


def resolve_objectives(args, has_pairs: bool, has_eval_data: bool = False) -> tuple[Objective, ...]:
    """One objective, or several (`name:mode,...`) for a multi-objective search."""
    if args.metric and ("," in args.metric or ":" in args.metric):
        objectives = []
        for part in args.metric.split(","):
            name, _, mode = part.strip().partition(":")
            if mode not in ("min", "max"):
                raise SweepError(f"--metric {part.strip()!r}: write name:max or name:min (e.g. pairs_acc:max,val_nelbo:min)")
            objectives.append(resolve_metric(name, mode, has_pairs, has_eval_data=has_eval_data))
        if len({o.metric for o in objectives}) != len(objectives):
            raise SweepError(f"--metric {args.metric!r} names a metric twice")
        return tuple(objectives)
    return (resolve_metric(args.metric, args.mode, has_pairs, has_eval_data=has_eval_data),)


def resolve_metric(metric: str | None, mode: str | None, has_pairs: bool, flag: str = "--metric",
                   has_eval_data: bool = False) -> Objective:
    """The objective a name stands for, from the metric registry (trainer/metrics.py): reported by
    trials, selectable, measurable on this data; its direction unless `mode` says otherwise."""
    from trainer.metrics import MetricError, selectable

    metric = metric or ("pairs_acc" if has_pairs else "val_nelbo")
    try:
        entry = selectable(metric)
    except MetricError as exc:
        raise SweepError(f"{flag} {exc}") from None
    if entry.needs_pairs and not has_pairs:
        raise SweepError(f"{flag} {metric} needs minimal pairs: pass --pairs or use the built-in corpus")
    if entry.needs_eval_data and not has_eval_data:
        raise SweepError(f"{flag} {metric} needs BabyLM task files: pass --eval-data (a folder laid out like the "
                         "pipeline's evaluation_data/full_eval)")
    return Objective(metric=metric, mode=mode or entry.mode)


def resolve_decision(args, objectives) -> Objective | None:
    """What early stopping decides on (None: the sweep's first objective, the `auto` default).

    Measured (benchmarks/rung_predictiveness.py, README "Early stopping that keeps the winner"):
    on pilot runs over p in [0, 1], val_nelbo's early ranking agreed with the final pairs_acc
    a little better than pairs_acc's own (Kendall tau 0.60 against 0.47 at a third of the budget),
    but only through the gross failures: among the configurations that ended close, val_nelbo
    favoured p = 0.1-0.25 over p = 0 by z = -16 (paired) at the first rung while p = 0 ended within
    noise of the best on pairs_acc. Deciding on val_nelbo (ASHA's halving or a paired stop) would
    stop p = 0; deciding on the selection metric itself, paired, does not. So `auto` decides on
    the sweep's own metric."""
    if args.decide_on == "auto":
        return None
    name, _, mode = args.decide_on.partition(":")
    objective = resolve_metric(name, mode or None, has_pairs=True, flag="--decide-on", has_eval_data=True)
    return None if objective == objectives[0] else objective


def base_config(args, space: SearchSpace) -> TrainConfig:
    """The config every trial starts from: --config (or the defaults), the flags, --set, and
    the space's fixed values (so the plan and a word budget see what the trials will train)."""
    config = TrainConfig.from_json_file(args.config) if args.config else TrainConfig()
    data = config.as_dict()
    if args.preset and args.preset != config.preset:
        data["preset"], data["model"] = args.preset, None
    if args.corpus:
        data["corpus"] = str(Path(args.corpus).expanduser().resolve())
    if args.pairs:
        data["pairs"] = str(Path(args.pairs).expanduser().resolve())
    if args.eval_data:
        data["eval_data"] = str(Path(args.eval_data).expanduser().resolve())
    eval_every = max(1, args.max_steps // max(1, args.evals_per_trial))
    data.update(max_steps=args.max_steps, eval_every=eval_every, checkpoint_every=eval_every, seed=args.seed)
    if args.max_words is not None:
        data["max_words"] = parse_word_count(args.max_words)
    apply_overrides(data, parse_overrides(args.set or []))
    return apply_values(TrainConfig.parse(data), space.fixed)


# Interim evaluations of a sweep score a quarter of the validation rows unless it selects on one
# of their metrics: ~2 training steps saved per evaluation of a `tiny` trial (benchmarks/
# sweep_overhead.py); the last evaluation, which ranks the trials, scores every row.
INTERIM_VAL_SUBSAMPLE = 4


def interim_validation(config: TrainConfig, objectives, overrides: list[str],
                       decision: Objective | None = None) -> TrainConfig:
    """The base config with `interim_val_subsample` set for the sweep, unless --set gave it: every
    row when the sweep selects or decides early stops on a validation metric."""
    if any(item.split("=", 1)[0].strip() == "interim_val_subsample" for item in overrides):
        return config
    from trainer.metrics import lookup

    selects_on_validation = any(getattr(lookup(o.metric), "validation", False)
                                for o in (*objectives, *([decision] if decision else [])))
    return apply_values(config, {"interim_val_subsample": 1 if selects_on_validation else INTERIM_VAL_SUBSAMPLE})


def validate_args(args) -> None:
    for flag, value, minimum in (
        ("--num-samples", args.num_samples, 1),
        ("--max-steps", args.max_steps, 1),
        ("--workers-per-trial", args.workers_per_trial, 1),
        ("--evals-per-trial", args.evals_per_trial, 1),
        ("--max-concurrent", args.max_concurrent, 0),
        ("--confirm", args.confirm, 0),
        ("--seeds", 3 if args.seeds is None else args.seeds, 2),
    ):
        if value < minimum:
            raise SweepError(f"{flag} must be at least {minimum}, got {value}")
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise SweepError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
    if args.confirm == 1:
        raise SweepError("--confirm needs at least 2 configurations to compare (the winner and the runner-up)")
    if args.runner == "inline" and (args.workers_per_trial > 1):
        raise SweepError("--runner inline runs one worker per trial; use --runner train for --workers-per-trial > 1")


def resources_of(args) -> Resources:
    runner = args.runner
    if runner == "auto":
        runner = "inline" if args.workers_per_trial == 1 and args.gpus_per_worker == 0 else "train"
    return Resources(runner=runner, workers_per_trial=args.workers_per_trial, cpus_per_worker=args.cpus_per_worker,
                     gpus_per_worker=args.gpus_per_worker)


def plan_text(args, space: SearchSpace, config: TrainConfig, objectives, resources: Resources, experiment: str) -> str:
    trials = planned_trials(args, space)
    goal = ", ".join(f"{o.metric} ({o.mode})" for o in objectives)
    decision = resolve_decision(args, objectives)
    scheduler = "none" if len(objectives) > 1 or space.study else args.scheduler
    lines = [
        f"{'study' if space.study else 'sweep'} {experiment}",
        space.describe(),
        f"search {'grid x seeds' if space.study else args.search}, scheduler {scheduler} on 'step'"
        + (f" deciding on {decision.metric} ({decision.mode})" if decision and scheduler != "none" else "") + ", "
        f"{trials} trials of " + (f"{config.max_words:,} words" if config.max_words is not None else
                                   f"{config.max_steps} steps (evaluated every {config.eval_every})")
        + (f", measuring {goal}, the held-out pairs and val_nelbo" if space.study else f", optimising {goal}")
        + (" (multi-objective: Pareto front, no early stopping)" if len(objectives) > 1 else ""),
        f"each trial: preset {config.preset}, runner {resources.runner}, {resources.workers_per_trial} worker(s) x "
        f"{resources.cpus_per_worker:g} CPU + {resources.gpus_per_worker:g} GPU ({resources.cpus_per_trial:g} CPU per trial)",
        f"data: {config.corpus or 'built-in corpus'}; pairs: {config.pairs or ('built-in pairs' if config.corpus is None else 'none')}",
    ]
    lines.append(baseline_point(args, space, config)[1])
    if args.warm_start:
        lines.append(f"warm start: the study begins with the trials of {args.warm_start} that fit this sweep")
    if args.confirm:
        lines.append(f"then: confirm the top {args.confirm} configurations with {args.seeds or 3} fresh seeds each at the full budget")
    return "\n".join(lines)


def preflight(args, space: SearchSpace, config: TrainConfig, root: str) -> None:
    """Every check a run makes before it prepares data or starts Ray, shared by --dry-run and the
    real run so the dry run promises what the run will do: the corpus and pairs are folders of
    the right files, the data cache and the storage take files (a probe file, created and
    removed), the grid's size. Raises UserError naming the flag at fault. Imports neither torch
    nor Ray, and leaves nothing behind."""
    from trainer.data.pairs import PairsError, load_pairs
    from trainer.data.prepare import DataError, corpus_layout
    from trainer.data.sources import default_cache_dir

    if config.corpus is not None:
        try:
            corpus_layout(Path(config.corpus))
        except DataError as exc:
            raise SweepError(f"--corpus: {exc}") from None
    if config.pairs is not None:
        try:
            load_pairs(config.pairs)
        except PairsError as exc:
            raise SweepError(f"--pairs: {exc}") from None
    if config.eval_data is not None:
        from trainer.zero_shot import TaskDataError, load_suite

        try:
            suite = load_suite(config.eval_data, config.pairs_heldout_fraction, config.eval_items_per_uid)
        except TaskDataError as exc:
            raise SweepError(f"--eval-data: {exc}") from None
        for task in suite.skipped:
            print(f"--eval-data: no {task} files in {config.eval_data}: {task} is not scored", flush=True)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    try:
        storage.probe_folder(cache)
    except OSError as exc:
        flag = "--cache-dir" if args.cache_dir else "the data cache (set it with --cache-dir or $MDLM_CACHE_DIR)"
        raise SweepError(f"{flag} {cache} cannot hold the prepared data: {exc.filename}: "
                         f"{(exc.strerror or str(exc)).lower()}") from None
    try:
        storage.check_writable(root, contact=not args.dry_run)
    except OSError as exc:
        raise SweepError(f"--storage {args.storage} cannot take the sweep's files: "
                         f"{exc.filename + ': ' if exc.filename else ''}{(exc.strerror or str(exc)).lower()}") from None
    trials = planned_trials(args, space)
    if args.search == "grid" and not space.study and trials > MAX_GRID_TRIALS and not args.allow_large_grid:
        raise SweepError(f"--search grid over space {space.name} is {trials:,} trials (every grid point once); "
                         f"narrow the space, use --search tpe with --num-samples, or pass --allow-large-grid")


def dry_run_checks(args, space: SearchSpace, config: TrainConfig, resources: Resources, root: str) -> str:
    """What a real run would meet, checked without starting anything or writing anything: the
    corpus and pairs, the cluster's CPUs and GPUs, the word budget in steps, the grid's size and
    the storage the trials will fill. Raises UserError for what would fail."""
    from sweeps.tuning import check_resources
    from trainer.data.pairs import load_pairs
    from trainer.data.sources import find_prepared
    from trainer.plan import parameter_count

    lines = []
    if config.pairs:
        lines.append(f"pairs: {len(load_pairs(config.pairs))} minimal pairs in {config.pairs}")
    prepared = find_prepared(config, args.cache_dir)  # reads and hashes the corpus (bad files fail here)
    if prepared is not None:
        lines.append(f"data: prepared in the cache ({prepared.root}, {prepared.words['train']:,} training words)")
    else:
        lines.append("data: not prepared yet; the sweep prepares it once before the first trial")
    if config.max_words is not None:
        if prepared is not None:
            steps = resolve_step_budget(config, prepared.row_words(), args.evals_per_trial).max_steps
            lines.append(f"budget: {config.max_words:,} words per trial = {steps:,} steps of {config.batch_size} rows "
                         f"on this data")
        else:
            lines.append(f"budget: {config.max_words:,} words per trial; the step count is known once the corpus "
                         f"is prepared (python -m trainer.data.prepare, or a run without --dry-run)")
    total = planned_cluster_resources()
    if not args.autoscaling:
        check_resources(total, resources)
    lines.append(f"cluster: {total.get('CPU', 0):g} CPU(s), {total.get('GPU', 0):g} GPU(s); each trial takes "
                 f"{resources.cpus_per_trial:g} CPU(s) and {resources.gpus_per_trial:g} GPU(s)")
    trials = planned_trials(args, space)
    if args.search == "grid" and not space.study and trials > args.num_samples:
        lines.append(f"note: grid search runs every one of the space's {trials} grid points, more than "
                     f"--num-samples {args.num_samples} (which grid search ignores)")
    # A checkpoint's size as the run plan projects it (trainer/plan.py): the dry run prepares no data, so no plan.
    parameters = parameter_count(config, prepared.vocab_size if prepared else config.vocab_size)
    per_trial = CHECKPOINT_BYTES_PER_PARAMETER * parameters
    confirm = args.confirm * (args.seeds or 3)
    lines.append(f"storage: {root} ({'remote: not contacted by --dry-run' if storage.is_uri(root) else 'writable: a probe file was created and removed'}); "
                 f"about {per_trial / 1e6:,.0f} MB per trial (its one checkpoint), "
                 f"{per_trial * (trials + confirm) / 1e9:,.2f} GB for {trials + confirm} trials")
    lines.append("dry run: nothing was started and nothing was written")
    return "\n".join(lines)


def study_seed_count(args, space: SearchSpace) -> int:
    """Seeds per configuration of a study space (its own, or --seeds); 0 for a sweep."""
    return (args.seeds or space.study["seeds"]) if space.study else 0


def planned_trials(args, space: SearchSpace) -> int:
    if space.study:
        return space.grid_size(args.search_optional) * study_seed_count(args, space)
    return space.grid_size(args.search_optional) if args.search == "grid" else args.num_samples


def planned_cluster_resources() -> dict:
    """The resources a run would see: the cluster in RAY_ADDRESS (joined and left again), else
    this machine's CPUs and GPUs (what a local Ray would offer), without starting Ray."""
    if os.environ.get("RAY_ADDRESS"):
        import ray

        from trainer.train import check_reachable, connect_ray

        check_reachable(os.environ["RAY_ADDRESS"])
        connect_ray(log_to_driver=False)
        try:
            return dict(ray.cluster_resources())
        finally:
            ray.shutdown()
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


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


def build_spec(args, argv, root: str, name: str, space: SearchSpace, config: TrainConfig,
               objectives, resources: Resources) -> SweepSpec:
    """Prepare the data (once, for every trial) and write down everything the sweep is: its base
    config's run plan is the spec's base config and data."""
    from sweeps.warm_start import warm_start
    from trainer.plan import plan_run

    plan = plan_run(config, args.cache_dir, evals_per_trial=args.evals_per_trial)
    config = plan.config
    command = [Path(sys.argv[0]).name if sys.argv else "run.py", *(argv if argv is not None else sys.argv[1:])]
    if space.study and args.seeds:
        space = dataclasses.replace(space, study={**space.study, "seeds": args.seeds})
    baseline, baseline_note = baseline_point(args, space, config)
    warm = None
    if args.warm_start:
        warm = warm_start(storage.normalise(args.warm_start), space, config, objectives,
                          plan.data_hash, args.search_optional)
        print(warm.summary(), flush=True)
    return SweepSpec(
        name=name,
        storage=root,
        space=SpaceSpec.of(space),
        search=SearchSettings(algorithm="grid" if space.study else args.search,
                              scheduler="none" if len(objectives) > 1 or space.study else args.scheduler,
                              num_samples=args.num_samples, decision=resolve_decision(args, objectives),
                              max_concurrent=args.max_concurrent, include_optional=args.search_optional,
                              evals_per_trial=args.evals_per_trial, seed=args.seed,
                              optuna_storage=None if args.search == "grid" or space.study else
                              args.optuna_storage or default_optuna_storage(root, name),
                              baseline=baseline, baseline_note=baseline_note, warm_start=warm),
        objectives=objectives,
        base_config=config,
        data=DataRef.of(plan),
        resources=resources,
        wandb=WandbSettings(mode=args.wandb_mode or default_wandb_mode(), project=args.wandb_project,
                            entity=args.wandb_entity, dir=None if storage.is_uri(root) else storage.join(root, name)),
        provenance=Provenance(code_version=code_version(), versions=package_versions(), command=" ".join(command),
                              created=time.strftime("%Y-%m-%dT%H:%M:%S")),
    )


def baseline_point(args, space: SearchSpace, config: TrainConfig) -> tuple[dict | None, str]:
    """The base config's point of the space, which runs as the sweep's first trial, and why not when
    it does not."""
    if space.study:
        return None, f"a study: every grid point trains with each of {study_seed_count(args, space)} seeds"
    if args.no_baseline:
        return None, "no baseline: --no-baseline"
    if args.search == "grid":
        return None, "no baseline trial: grid search runs every grid point"
    try:
        point = space.values_of(config, args.search_optional)
    except UserError as exc:
        return None, f"no baseline trial: the base config is not a point of the space ({exc})"
    return point, "the base config runs first: " + ", ".join(f"{k} = {v}" for k, v in point.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        try:
            for space in list_spaces():
                print(space.describe() + "\n")
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        validate_args(args)
        if args.address:
            os.environ["RAY_ADDRESS"] = args.address
        root, name = experiment_location(args)
        experiment = storage.join(root, name)
        if args.export:
            from sweeps.export import export_sweep

            export_sweep(experiment, pick=args.pick)
            return 0
        if args.resume:
            if not storage.exists(storage.join(experiment, SWEEP_FILE)):
                raise SweepError(f"--resume: no sweep at {experiment} (missing {SWEEP_FILE})")
            finished = finished_note(experiment)
            if finished:
                print(finished)
                return 0
            spec = SweepSpec.load(experiment)
            if os.environ.get("RAY_ADDRESS"):
                from trainer.train import check_reachable

                check_reachable(os.environ["RAY_ADDRESS"])  # seconds, not Ray's minute of retries
        else:
            space = load_space(args.space)
            config = base_config(args, space)
            if storage.exists(storage.join(experiment, SWEEP_FILE)):
                raise SweepError(f"sweep {experiment} already exists: pass --resume to continue it, or another --name")
            resources = resources_of(args)
            objectives = resolve_objectives(args, has_pairs=config.pairs is not None or config.corpus is None,
                                            has_eval_data=config.eval_data is not None)
            config = interim_validation(config, objectives, args.set or [], resolve_decision(args, objectives))
            if space.study and (args.confirm or args.warm_start):
                raise SweepError("a study space trains every configuration over seeds already: "
                                 "--confirm and --warm-start do not apply")
            if len(objectives) > 1 and args.search == "cmaes":
                raise SweepError("--search cmaes is single-objective; use tpe or random for several metrics")
            if args.warm_start and args.search == "grid":
                raise SweepError("--warm-start seeds an Optuna study; grid search has none (use tpe, random or cmaes)")
            if args.warm_start:
                SweepSpec.load(storage.normalise(args.warm_start))  # a readable sweep, before any slow work
            preflight(args, space, config, root)
            print(plan_text(args, space, config, objectives, resources, experiment), flush=True)
            if args.dry_run:
                print(dry_run_checks(args, space, config, resources, root), flush=True)
                return 0
            if not args.autoscaling:
                from sweeps.tuning import check_resources

                # Refused here, before the data is prepared or Ray is started (reading the
                # cluster's resources checks that RAY_ADDRESS answers first).
                check_resources(planned_cluster_resources(), resources)
            elif os.environ.get("RAY_ADDRESS"):
                from trainer.train import check_reachable

                check_reachable(os.environ["RAY_ADDRESS"])  # seconds, not Ray's minute of retries
            spec = build_spec(args, argv, root, name, space, config, objectives, resources)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # what the checks above could not foresee (a disk filling up, a lost mount)
        print(f"error: {exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", file=sys.stderr)
        return 2
    return run_sweep(args, spec, experiment)


def finished_note(experiment: str) -> str | None:
    """What --resume says of a sweep that already ended (None while it has work left)."""
    marker = storage.join(experiment, FINISHED_FILE)
    if not storage.exists(marker):
        return None
    ended = json.loads(storage.read_text(marker))
    return (f"sweep {experiment} finished at {ended.get('finished', '?')}: nothing to resume. Its results: "
            f"{ended.get('report') or storage.join(experiment, 'report')}; "
            f"the best config: python sweeps/run.py --export --name {Path(experiment).name}")


def run_sweep(args, spec: SweepSpec, experiment: str) -> int:
    """Start (or join) Ray, run the trials, export, confirm, report."""
    from sweeps.confirm import run_confirmation
    from sweeps.export import export_sweep
    from sweeps.results import read_trials
    from sweeps.study import write_study
    from sweeps.tuning import check_cluster_resources, fit
    from sweeps.wandb_summary import log_sweep_summary
    from trainer.train import connect_ray

    wandb_mode = args.wandb_mode or spec.wandb.mode
    if wandb_mode in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = wandb_mode  # Ray's W&B callback reads the mode from the environment
    quiet_terminal()
    started = connect_ray(include_dashboard=True, log_to_driver=False)
    try:
        check_cluster_resources(spec, args.autoscaling)
    except UserError as exc:
        if started:
            import ray

            ray.shutdown()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.resume:  # the experiment folder is only created once everything checked out
        spec.save()
    log_ray_to_file(spec)
    try:
        fit(spec, resume=args.resume)
        try:
            if spec.space.study:
                write_study(spec, read_trials(spec))  # a study picks no winner: nothing to export
            else:
                export_sweep(experiment)
                if args.confirm:
                    run_confirmation(spec, args.confirm, args.seeds or 3)
                    export_sweep(experiment)  # the best config now comes from the confirmed ranking
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        if started:
            import ray

            ray.shutdown()
    index = write_report_safely(experiment)
    storage.write_text(storage.join(experiment, FINISHED_FILE), json.dumps(
        {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "report": str(index) if index else None}) + "\n")
    try:
        folder = log_sweep_summary(spec, wandb_mode, index)
        if folder:
            print(f"W&B summary run: {folder}")
    except Exception as exc:  # noqa: BLE001 - W&B is a mirror of results that are already on disk
        print(f"warning: could not write the W&B summary run ({type(exc).__name__}: {exc})", file=sys.stderr)
    return 0


def quiet_terminal() -> None:
    """The terminal shows the sweep's own lines (tuning.ConsoleLines); Ray's, Tune's, Optuna's
    and W&B's progress output and warnings go to their logs (errors still show)."""
    import logging

    import optuna

    os.environ.setdefault("WANDB_SILENT", "true")  # W&B's debug logs keep it
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune banners or tables
    # The driver's core worker logs to stderr too; Ray's session logs keep every level.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("ray").handlers:
        handler.setLevel(logging.ERROR)


def log_ray_to_file(spec: SweepSpec) -> None:
    """Ray's and Tune's log records (warnings included) go to <experiment>/driver.log on local storage."""
    import logging

    if storage.is_uri(spec.storage):
        return
    log_file = logging.FileHandler(Path(spec.experiment) / "driver.log")
    log_file.setLevel(logging.INFO)
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("ray").addHandler(log_file)


def write_report_safely(experiment: str) -> Path | None:
    """The report is a reading aid: a plotting failure must not fail a finished sweep."""
    from sweeps.report import write_report

    try:
        path = write_report(experiment)
        print(f"report: {path}")
        return path
    except Exception as exc:  # noqa: BLE001 - reported, and the sweep's results stand
        print(f"warning: could not write the report ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              f"retry with: python sweeps/report.py {experiment}", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
