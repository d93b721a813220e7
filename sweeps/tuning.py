"""Ray Tune for a SweepSpec: search algorithm, scheduler, trainable, run config, cluster
checks, and `fit`.

Everything here reads the spec; nothing reads flags. The layer above (results, export,
report, confirm) reads what `fit` leaves in the sweep folder.
"""

from __future__ import annotations

from functools import partial

from ray.tune.search.optuna import OptunaSearch

from search_spaces import suggest_values
from sweeps.spec import SweepError, SweepSpec
from sweeps.trial import GRID_KEY, run_trial
from trainer.train import ClusterError


class DivergenceAwareOptunaSearch(OptunaSearch):
    """Ray Tune's OptunaSearch, told the truth about diverged trials.

    A diverged trial reports NaN for its objectives (so Tune's schedulers, which skip NaN,
    never rank it). Optuna refuses NaN as a value and would leave such a trial RUNNING in its
    study forever; here it is recorded as FAIL instead, which TPE and the other samplers treat
    as "no information", never as a good score."""

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
        return None, {GRID_KEY: tune.grid_search(space.grid_points(settings.include_optional))}
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
    searcher = DivergenceAwareOptunaSearch(
        space=partial(suggest_values, space=space, include_optional=settings.include_optional),
        metric=metric,
        mode=mode,
        sampler=sampler,
    )
    if settings.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=settings.max_concurrent)
    return searcher, {}


def build_scheduler(spec: SweepSpec):
    """Early stopping on training steps; none for a multi-objective sweep (it would judge on one metric)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    config = spec.base_config
    name = "none" if spec.multi_objective else spec.search.scheduler
    grace = config.eval_every
    if name == "asha":
        return ASHAScheduler(time_attr="step", max_t=config.max_steps, grace_period=grace, reduction_factor=2)
    if name == "hyperband":
        return HyperBandScheduler(time_attr="step", max_t=config.max_steps, reduction_factor=2)
    if name == "median":
        return MedianStoppingRule(time_attr="step", grace_period=grace, min_samples_required=3)
    return FIFOScheduler()


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


def run_config(spec: SweepSpec, *, wandb: bool = True):
    from ray import tune

    callbacks = []
    if wandb and spec.wandb.mode != "disabled":
        callbacks.append(wandb_callback(project=spec.wandb.project, entity=spec.wandb.entity, group=spec.name,
                                        mode=spec.wandb.mode, dir=spec.wandb.dir))
    return tune.RunConfig(
        name=spec.name,
        storage_path=spec.storage,
        callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=spec.resources.max_trial_failures),
        verbose=1,
    )


def check_cluster_resources(spec: SweepSpec, autoscaling: bool) -> None:
    """Refuse a sweep whose trials could never be placed: Tune would wait for them forever."""
    import ray

    if autoscaling:
        return
    total = ray.cluster_resources()
    resources = spec.resources
    workers = resources.workers_per_trial
    gpus_needed = resources.gpus_per_trial
    cpus_needed = resources.cpus_per_worker * workers if resources.runner == "inline" else resources.worker_cpus * workers
    hint = " (an autoscaling cluster that adds such nodes on demand: pass --autoscaling)"
    if gpus_needed and total.get("GPU", 0) < gpus_needed:
        raise ClusterError(f"each trial needs {gpus_needed:g} GPU(s) ({workers} worker(s) x --gpus-per-worker "
                           f"{resources.gpus_per_worker:g}) but the cluster has {total.get('GPU', 0):g}{hint}")
    if total.get("CPU", 0) < cpus_needed:
        raise ClusterError(f"each trial needs {cpus_needed:g} CPU(s) but the cluster has {total.get('CPU', 0):g}{hint}")


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
