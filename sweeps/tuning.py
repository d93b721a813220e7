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
    """One W&B run per trial (sweeps/loggers.py: public Ray Tune and W&B APIs only), carrying
    what a W&B user expects of a sweep's runs:
    - each trial's run holds the whole TrainConfig, the data hash and the code version, not
      only the searched values; a readable name (trial number and values); tags (space,
      schedule, and at the end the trial's state: finished, stopped at step N, diverged);
    - charts use the training step as their x-axis (not Tune's report count);
    - the driver only queues W&B's work (a background thread does it) and waits for it once, at
      the experiment's end.
    Offline here (WANDB_MODE=offline), unchanged online."""
    from sweeps.loggers import WandbTrialRuns
    from sweeps.trial import trial_config

    def describe(trial) -> dict:
        values = trial_values(trial.config)
        config = trial_config(trial.config, spec)
        return {"name": trial_label(trial, values), "tags": [spec.space.name, config.schedule],
                "config": {**config.as_dict(), "searched": values, "data_hash": spec.data.data_hash,
                           "code_version": spec.provenance.code_version, "sweep": spec.name}}

    def end_state(trial, failed: bool) -> str:
        return trial_state_of(trial, spec, failed)

    # The per-item records (base64 arrays for paired comparisons) are evidence, not charts.
    return WandbTrialRuns(project=spec.wandb.project, entity=spec.wandb.entity, group=spec.name,
                          mode=spec.wandb.mode, dir=spec.wandb.dir, excludes=["items"],
                          describe=describe, end_state=end_state)


POLL_S = 5.0  # how often the driver reads the trials' progress
OVERALL_EVERY_S = 60.0  # how often it prints the sweep's overall line


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def node_cpu_counts() -> dict[str, float]:
    """CPUs of each alive node, by node id."""
    import ray

    return {node["NodeID"]: node.get("Resources", {}).get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")}


class ConsoleLines(Callback):
    """One compact line per trial event, and a short table of the best finished trials each time
    one ends: what a person watching a sweep needs (Tune's own tables print every metric of
    every report, per-paradigm accuracies included; they stay in the logs)."""

    def __init__(self, spec: SweepSpec, top: int = 5):
        self.spec, self.top = spec, top
        self.ended: dict[str, tuple[float, str, str]] = {}
        self.last_train_s: dict[str, float] = {}
        self.warned_eval_cost = False
        # Progress between evaluations (set up in `setup`: an actor handle must not be pickled
        # with the Tuner's state).
        self.board = None
        self.planned = 0
        self.started_at: dict[str, float] = {}  # driver clock when each trial started
        self.latest_step: dict[str, int] = {}
        self.node_of: dict[str, str | None] = {}
        self.threads: dict[str, int] = {}

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        import ray

        from sweeps.trial import ProgressBoard, progress_board_name

        self.planned = int(total_num_samples or 0)
        self.sweep_start = self.last_poll = self.last_overall = time.monotonic()
        try:
            self.board = ray.remote(ProgressBoard).options(
                name=progress_board_name(self.spec), get_if_exists=True, num_cpus=0).remote()
        except Exception:  # noqa: BLE001 - progress lines are a courtesy; the sweep runs without them
            self.board = None

    def on_step_end(self, iteration, trials, **info):
        """About every POLL_S: print the trials' progress and hand freed CPUs to the last trials;
        about every OVERALL_EVERY_S: one line for the whole sweep."""
        now = time.monotonic()
        if self.board is not None and now - self.last_poll >= POLL_S:
            self.last_poll = now
            self._print_progress()
            self._hand_out_threads(trials)
        if self.planned and now - self.last_overall >= OVERALL_EVERY_S:
            self.last_overall = now
            self._line(self.overall_line(trials, now))

    def _print_progress(self) -> None:
        import ray

        try:
            posted = ray.get(self.board.drain.remote(), timeout=2)
        except Exception:  # noqa: BLE001
            return
        for trial_id, record in posted:
            self.latest_step[trial_id] = max(self.latest_step.get(trial_id, 0), int(record["step"]))
            self.node_of[trial_id] = record.get("node_id")
            self._line(f"train    {trial_id}  step {record['step']}/{record['last_step']}  "
                       f"train_loss {record['train_loss']:.4f}  {record['tokens_per_s']:,.0f} tokens/s"
                       + (f"  ({self.threads[trial_id]} threads)" if self.threads.get(trial_id, 0) > 1 else ""))

    def _hand_out_threads(self, trials) -> None:
        """At a sweep's tail (nothing queued, nothing left to create) the CPUs that ended trials
        freed go to the trials still running on the same node, as extra torch threads: the last
        trial no longer trains alone on one of several cores. Only inline CPU trials (a GPU
        trial's speed does not come from CPU threads)."""
        resources = self.spec.resources
        if resources.runner != "inline" or resources.gpus_per_worker > 0:
            return
        running = [t for t in trials if t.status == "RUNNING"]
        waiting = any(t.status == "PENDING" for t in trials) or len(trials) < self.planned
        threads = {}
        if not waiting and running:
            node_cpus = node_cpu_counts()
            by_node: dict[str, list] = {}
            for trial in running:
                node = self.node_of.get(trial.trial_id) or (trial.last_result or {}).get("node_id")
                by_node.setdefault(node, []).append(trial)
            for node, group in by_node.items():
                if node is None or node not in node_cpus:
                    continue
                share = int(node_cpus[node] // len(group))
                if share > resources.cpus_per_worker:
                    threads.update({t.trial_id: share for t in group})
        if threads != self.threads:
            self.threads = threads
            try:
                self.board.set_threads.remote(threads)
            except Exception:  # noqa: BLE001
                pass

    def _step_of(self, trial) -> int:
        """The latest step known of a trial: its last progress line or its last evaluation."""
        return max(self.latest_step.get(trial.trial_id, 0), int((trial.last_result or {}).get("step", 0)))

    def overall_line(self, trials, now: float) -> str:
        """Trials ended / running / queued, elapsed, and an ETA from the measured wall time per
        step of the running trials (evaluations and start-up included); an upper bound, since
        early stopping may end trials sooner."""
        running = [t for t in trials if t.status == "RUNNING"]
        ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        stopped = sum(1 for t in ended if (t.last_result or {}).get("step", 0) < self.spec.base_config.max_steps)
        queued = max(0, self.planned - len(ended) - len(running))
        text = (f"sweep    {len(ended)}/{self.planned} trials ended" + (f" ({stopped} stopped early)" if stopped else "")
                + f", {len(running)} running, {queued} queued; {_duration(now - self.sweep_start)} elapsed")
        budget = self.spec.base_config.max_steps
        rates = []
        for trial in running:
            step = self._step_of(trial)
            if step > 0 and trial.trial_id in self.started_at:
                rates.append((now - self.started_at[trial.trial_id]) / step)
        if rates and running:
            per_step = sorted(rates)[len(rates) // 2]
            remaining = sum(budget - self._step_of(t) for t in running) + queued * budget
            text += f"; about {_duration(remaining * per_step / len(running))} left at most ({per_step:.2f} s a step per trial)"
        return text

    def _name(self, trial) -> str:
        return trial_label(trial, trial_values(trial.config))

    def _line(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started_at.setdefault(trial.trial_id, time.monotonic())
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

    from sweeps.loggers import TensorBoardByStep

    callbacks = []
    if wandb and spec.wandb.mode != "disabled":
        callbacks.append(wandb_callback(spec))
    try:  # TensorBoard curves against the training step; Tune then adds no TensorBoard logger of its own
        callbacks.append(TensorBoardByStep(excludes=["items"]))
    except ImportError:  # no tensorboardX (ray[tune] brings it): no TensorBoard files, as with Tune's
        pass
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
