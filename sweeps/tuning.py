"""Ray Tune for a SweepSpec: search algorithm, scheduler (built in sweeps/schedulers.py),
trainable, run config, cluster checks, and `fit`.

Everything here reads the spec; nothing reads flags. The layer above (results, export,
report, confirm) reads what `fit` leaves in the sweep folder.
"""

from __future__ import annotations

import math
import time
from functools import partial

from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from search_spaces import suggest_values
# build_scheduler is this module's too (fit uses it; tests and benchmarks import it from here). The
# Baseline* names stay importable here: a sweep's tuner.pkl, which --resume reads, pickled its
# scheduler under this module's name.
from sweeps.schedulers import BaselineASHA, BaselineHyperBand, BaselineMedianStopping, build_scheduler  # noqa: F401
from sweeps.spec import Resources, SweepError, SweepSpec
from sweeps.trial import GRID_KEY, is_baseline, run_trial, trial_values
from trainer.train import ClusterError


class DivergenceAwareOptunaSearch(OptunaSearch):
    """Ray Tune's OptunaSearch, told the truth about diverged trials.

    A diverged trial reports NaN for its objectives (so Tune's schedulers, which skip NaN,
    never rank it). Optuna refuses NaN as a value and would leave such a trial RUNNING in its
    study forever; here it is recorded as FAIL instead, which TPE and the other samplers treat
    as "no information", never as a good score."""

    def suggest(self, trial_id: str):
        suggestion = super().suggest(trial_id)
        if trial_id in self._ot_trials:  # the study names its trials as Tune does (the report maps them)
            self._ot_trials[trial_id].set_user_attr("trial_id", trial_id)
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get("diverged"):
            return  # no intermediate value: NaN is not one
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and result.get("diverged"):
            super().on_trial_complete(trial_id, result=None, error=True)  # recorded as FAIL
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def build_search(spec: SweepSpec):
    """(search algorithm or None, param_space) for the Tuner."""
    from ray import tune

    space = spec.space.load()
    settings = spec.search
    if settings.algorithm == "grid":
        points = space.grid_points(settings.include_optional)
        if spec.study_seeds:  # a study: every point with every seed (the seed is a config field)
            points = [{**point, "seed": seed} for point in points for seed in spec.study_seeds]
        return None, {GRID_KEY: tune.grid_search(points)}
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    if settings.algorithm == "tpe":
        # A few random trials first, then TPE (Optuna's default is 10, too many for small sweeps).
        sampler = optuna.samplers.TPESampler(seed=settings.seed,
                                             n_startup_trials=max(2, min(10, settings.num_samples // 3)))
    elif settings.algorithm == "random":
        sampler = optuna.samplers.RandomSampler(seed=settings.seed)
    else:
        if spec.multi_objective:
            raise SweepError("--search cmaes is single-objective; use tpe or random for several metrics")
        sampler = optuna.samplers.CmaEsSampler(seed=settings.seed, warn_independent_sampling=False)
    metric = list(spec.objective_names) if spec.multi_objective else spec.metric
    mode = [o.mode for o in spec.objectives] if spec.multi_objective else spec.mode
    storage = optuna_storage(spec)
    prepare_study(spec, storage)
    searcher = DivergenceAwareOptunaSearch(
        space=partial(suggest_values, space=space, include_optional=settings.include_optional),
        metric=metric,
        mode=mode,
        sampler=sampler,
        study_name=spec.study_name,
        storage=storage,
    )
    if settings.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=settings.max_concurrent)
    return searcher, {}


def optuna_storage(spec: SweepSpec):
    """The study's storage: the RDB in `search.optuna_storage` (it outlives the driver: `--resume`
    continues the same study, and `optuna.load_study` / `optuna-dashboard` open it), else memory."""
    import optuna

    if not spec.search.optuna_storage:
        return optuna.storages.InMemoryStorage()
    # SQLite waits for a lock instead of failing at once when a dashboard is reading.
    engine = {"connect_args": {"timeout": 60}} if spec.search.optuna_storage.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(spec.search.optuna_storage, engine_kwargs=engine)


def prepare_study(spec: SweepSpec, storage) -> None:
    """Seed a new study before the searcher opens it: the warm-start trials as COMPLETE trials
    with their values, then the baseline (the base config's point) queued to run first."""
    import optuna
    from optuna.trial import TrialState, create_trial

    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.objectives]
    study = optuna.create_study(storage=storage, study_name=spec.study_name, directions=directions,
                                load_if_exists=True)
    if study.trials:
        return  # a study that already ran (a rerun into the same database): leave it as it is
    space = spec.space.load()
    distributions = {p.name: p.distribution() for p in space.params}
    for trial in (spec.search.warm_start.trials if spec.search.warm_start else []):
        study.add_trial(create_trial(
            state=TrialState.COMPLETE, values=trial["values"], params=trial["params"],
            distributions={name: distributions[name] for name in trial["params"]},
            user_attrs={"warm_start_from": spec.search.warm_start.source, "trial_id": f"warm:{trial['trial_id']}"},
        ))
    if spec.search.baseline is not None:
        study.enqueue_trial(spec.search.baseline, user_attrs={"baseline": True})


def reuse_actors(spec: SweepSpec) -> bool:
    """Inline trials run in a reused Ray actor: the next trial finds torch and the trainer
    already imported (median start-up 4.5 s -> 1.0 s on 2 CPUs, benchmarks/sweep_overhead.py).
    train_loop seeds and builds everything it uses, so a trial's results do not depend on the
    process it ran in. A `train` trial only drives a TorchTrainer; its workers are new anyway."""
    return spec.resources.runner == "inline"


def trainable(spec: SweepSpec):
    from ray import tune

    fn = tune.with_parameters(run_trial, spec=spec)
    resources = spec.resources
    if resources.runner == "inline":
        wanted = {"CPU": resources.cpus_per_worker}
        if resources.gpus_per_worker:
            wanted["GPU"] = resources.gpus_per_worker
    else:
        # The trial itself only drives a TorchTrainer; its workers hold the real resources.
        wanted = {"CPU": 0.01}
    return tune.with_resources(fn, wanted)


def trial_state_of(trial, spec: SweepSpec, failed: bool = False) -> str:
    """A Tune trial's end in words (as results.trial_state says it from the files)."""
    last = trial.last_result or {}
    if last.get("diverged"):
        return "diverged"
    if failed:
        return "error"
    step = int(last.get("step", 0) or 0)
    return "finished" if step >= spec.full_budget else f"stopped at step {step}"


def trial_label(trial, values: dict) -> str:
    """A run name a person can read: the trial's number and what it searched."""
    number = (trial.experiment_tag or "").split("_", 1)[0]
    shown = " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                     for k, v in sorted(values.items()))
    return f"#{number} {shown}".strip()


def wandb_callback(spec: SweepSpec):
    """Ray's W&B callback, made to carry what a W&B user expects of a sweep's runs:
    - each trial's run holds the whole TrainConfig, the data hash and the code version, not
      only the searched values; a readable name (trial number and values); tags (space,
      schedule, and at the end the trial's state: finished, stopped at step N, diverged);
    - charts use the training step as their x-axis (Ray logs by report count otherwise);
    - its finaliser's noise at interpreter exit (AttributeError once `ray` is torn down) is swallowed.
    Offline here (WANDB_MODE=offline), unchanged online."""
    from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem, _WandbLoggingActor

    from sweeps.trial import trial_config

    class StepAxisLoggingActor(_WandbLoggingActor):
        def _handle_result(self, result):
            if not getattr(self, "_step_axis", False):
                self._wandb.define_metric("step")
                self._wandb.define_metric("*", step_metric="step")
                self._step_axis = True
            if "trial_state" in result and self._wandb.run is not None:
                self._wandb.run.tags = (*(self._wandb.run.tags or ()), str(result["trial_state"]))
            return super()._handle_result(result)

    class SweepWandbLoggerCallback(WandbLoggerCallback):
        _logger_actor_cls = StepAxisLoggingActor
        AUTO_CONFIG_KEYS = [*WandbLoggerCallback.AUTO_CONFIG_KEYS, "trial_state"]

        def log_trial_start(self, trial):
            values = trial_values(trial.config)
            config = trial_config(trial.config, spec)
            self.kwargs.update(
                name=trial_label(trial, values),
                tags=[spec.space.name, config.schedule],
                config={**config.as_dict(), "searched": values, "data_hash": spec.data.data_hash,
                        "code_version": spec.provenance.code_version, "sweep": spec.name},
            )
            super().log_trial_start(trial)

        def log_trial_end(self, trial, failed: bool = False):
            if trial in self._trial_queues:
                self._trial_queues[trial].put((_QueueItem.RESULT, {"trial_state": trial_state_of(trial, spec, failed)}))
            super().log_trial_end(trial, failed)

        def __del__(self):
            try:
                super().__del__()
            except Exception:
                pass

    # The per-item records (base64 arrays for paired comparisons) are evidence, not charts.
    return SweepWandbLoggerCallback(project=spec.wandb.project, entity=spec.wandb.entity, group=spec.name,
                                    mode=spec.wandb.mode, dir=spec.wandb.dir, excludes=["items"])


class ConsoleLines(Callback):
    """One compact line per trial event, and a short table of the best finished trials each time
    one ends: what a person watching a sweep needs (Tune's own tables print every metric of
    every report, per-paradigm accuracies included; they stay in the logs)."""

    def __init__(self, spec: SweepSpec, top: int = 5):
        self.spec, self.top = spec, top
        self.ended: dict[str, tuple[float, str, str]] = {}
        self.last_train_s: dict[str, float] = {}
        self.warned_eval_cost = False

    def _name(self, trial) -> str:
        return trial_label(trial, trial_values(trial.config))

    def _line(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        role = "  (baseline: the base config)" if is_baseline(trial_values(trial.config), self.spec) else ""
        self._line(f"start    {trial.trial_id}  {self._name(trial)}{role}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("diverged"):
            return  # said once, when it ends
        names = dict.fromkeys((*self.spec.objective_names, "val_nelbo", "train_loss"))  # in order, once each
        shown = "  ".join(f"{m} {result[m]:.4f}" + (f"+-{result[m + '_se']:.4f}" if isinstance(result.get(m + "_se"), float)
                                                   else "")
                          for m in names if isinstance(result.get(m), (int, float)))
        self._line(f"step {int(result.get('step', 0)):>6} {trial.trial_id}  {shown}")
        self._warn_if_evaluation_is_costly(trial, result)

    def _warn_if_evaluation_is_costly(self, trial, result) -> None:
        """Evaluation should cost at most about a tenth of a trial: say so once when an evaluation
        took more than 15% of the time since the last one (measured, so it holds for any pair set,
        model and machine)."""
        train_s, eval_s = result.get("train_s"), result.get("eval_s")
        if not isinstance(train_s, (int, float)) or not isinstance(eval_s, (int, float)) or self.warned_eval_cost:
            return
        previous = self.last_train_s.get(trial.trial_id, 0.0)
        self.last_train_s[trial.trial_id] = train_s
        share = eval_s / max(eval_s + train_s - previous, 1e-9)
        if share > 0.15:
            self.warned_eval_cost = True
            pairs = result.get("pairs_scored")
            self._line(f"note     evaluation took {share:.0%} of {trial.trial_id}'s time since its last one "
                       f"({eval_s:.0f} s" + (f", {int(pairs)} tuning pairs" if pairs else "") + "): "
                       "fewer pairs (--set eval_pairs_per_paradigm=N) or fewer --evals-per-trial leave more for training")

    def on_trial_complete(self, iteration, trials, trial, **info):
        state = trial_state_of(trial, self.spec)
        value = (trial.last_result or {}).get(self.spec.metric, math.nan)
        reason = (trial.last_result or {}).get("diverged_reason", "")
        self._line(f"end      {trial.trial_id}  {state}  {self.spec.metric} {value:.4f}" + (f"  ({reason})" if reason else ""))
        self.ended[trial.trial_id] = (value, state, self._name(trial))
        finite = [(v, t, st, n) for t, (v, st, n) in self.ended.items() if math.isfinite(v)]
        finite.sort(key=lambda r: -r[0] if self.spec.mode == "max" else r[0])
        if finite:
            print(f"           best so far by {self.spec.metric} ({len(self.ended)} of the trials ended):", flush=True)
            for value, trial_id, state, name in finite[: self.top]:
                print(f"             {value:.4f}  {trial_id}  {state:<18} {name}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(f"error    {trial.trial_id}  {self._name(trial)}  (see {trial.path}/error.txt; retried once)")


def run_config(spec: SweepSpec, *, wandb: bool = True):
    from ray import tune

    callbacks = []
    if wandb and spec.wandb.mode != "disabled":
        callbacks.append(wandb_callback(spec))
    return tune.RunConfig(
        name=spec.name,
        storage_path=spec.storage,
        callbacks=[*callbacks, ConsoleLines(spec)],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=spec.resources.max_trial_failures),
        verbose=0,  # ConsoleLines speaks instead
    )


def check_resources(total: dict, resources: Resources) -> None:
    """Refuse trials that could never be placed on a cluster with `total` resources: Tune would
    wait for them forever."""
    workers = resources.workers_per_trial
    gpus_needed = resources.gpus_per_trial
    cpus_needed = resources.cpus_per_worker * workers if resources.runner == "inline" else resources.worker_cpus * workers
    hint = " (an autoscaling cluster that adds such nodes on demand: pass --autoscaling)"
    if gpus_needed and total.get("GPU", 0) < gpus_needed:
        raise ClusterError(f"each trial needs {gpus_needed:g} GPU(s) ({workers} worker(s) x --gpus-per-worker "
                           f"{resources.gpus_per_worker:g}) but the cluster has {total.get('GPU', 0):g}{hint}")
    if total.get("CPU", 0) < cpus_needed:
        raise ClusterError(f"each trial needs {cpus_needed:g} CPU(s) but the cluster has {total.get('CPU', 0):g}{hint}")


def check_cluster_resources(spec: SweepSpec, autoscaling: bool) -> None:
    """check_resources against the Ray cluster this process is connected to."""
    import ray

    if not autoscaling:
        check_resources(ray.cluster_resources(), spec.resources)


def fit(spec: SweepSpec, resume: bool = False):
    """Run (or, with `resume`, continue) the sweep's trials; returns Tune's ResultGrid."""
    from ray import tune

    if resume:
        if not tune.Tuner.can_restore(spec.experiment):
            raise SweepError(f"{spec.experiment} holds no restorable Tune state")
        tuner = tune.Tuner.restore(spec.experiment, trainable=trainable(spec), resume_unfinished=True,
                                   resume_errored=True)
        return tuner.fit()
    searcher, param_space = build_search(spec)
    tuner = tune.Tuner(
        trainable(spec),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            # A multi-objective searcher carries its metrics itself; Tune's single metric stays unset.
            metric=None if spec.multi_objective else spec.metric,
            mode=None if spec.multi_objective else spec.mode,
            search_alg=searcher,
            scheduler=build_scheduler(spec),
            num_samples=1 if spec.search.algorithm == "grid" else spec.search.num_samples,
            max_concurrent_trials=spec.search.max_concurrent or None,
            reuse_actors=reuse_actors(spec),
        ),
        run_config=run_config(spec),
    )
    return tuner.fit()
