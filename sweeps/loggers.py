"""The sweep's result loggers, on public Ray Tune, W&B and tensorboardX APIs only.

- `TensorBoardByStep`: Tune's TensorBoard files (events.out.tfevents.* in each trial folder),
  with the training step (the result's `step`) as global_step. Tune's own TBXLoggerCallback
  plots against `training_iteration`, the number of reports; being a TBXLoggerCallback, this one
  takes its place (Tune adds its default loggers only when none of their kind was passed).
- `WandbTrialRuns`: one W&B run per trial, written from the driver through wandb's public API
  for several runs in one process (`reinit="create_new"`, wandb >= 0.19.10), charted against the
  training step. wandb's calls run on one background thread: the driver only queues them.

Nothing here knows what a sweep is: the callers (sweeps/tuning.py) say how a trial's run is
named and described, and in what state a trial ended.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import queue
import threading
from typing import Callable

import numpy as np
from ray.tune.logger import LoggerCallback, TBXLoggerCallback

logger = logging.getLogger(__name__)

STEP_KEY = "step"  # the training step a trial reports with every result


def flatten(result: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a/b": 1}, as Tune's loggers name nested results."""
    flat = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def matches(key: str, names) -> bool:
    """Whether `key` is one of `names` or lies under one of them (`items` covers `items/...`)."""
    return any(key == name or key.startswith(name + "/") for name in names)


def scalar(value):
    """The value as a number a chart can plot, else None (strings, lists, records)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, numbers.Real):
        return value
    return None


class TensorBoardByStep(TBXLoggerCallback):
    """Every scalar of every result, against the training step, in the trial's folder.

    As Tune's TBXLoggerCallback writes them (tags `ray/tune/<key>`, NaN skipped, the hyperparameters
    and last scalars for TensorBoard's HParams tab when a trial ends), except: the x-axis is the
    result's `step` (Tune's report count only where a result has none), and only numbers are
    written (the `excludes`, e.g. the per-item `items` records, never)."""

    # Tune's bookkeeping, not metrics (as its own TensorBoard logger leaves them out).
    DROPPED = ("config", "pid", "timestamp", "time_total_s", "training_iteration")

    def __init__(self, excludes=(), step_key: str = STEP_KEY):
        super().__init__()  # imports tensorboardX (ImportError without it, as Tune's own)
        from tensorboardX import SummaryWriter

        self.writer_cls = SummaryWriter
        self.excludes = (*self.DROPPED, *excludes)
        self.step_key = step_key
        self.writers: dict = {}
        self.last_scalars: dict = {}

    def __getstate__(self):  # tuner.pkl holds the callbacks: settings, never open files
        return {**self.__dict__, "writers": {}, "last_scalars": {}}

    def global_step(self, result: dict) -> int:
        step = scalar(result.get(self.step_key))
        if step is None or not math.isfinite(step):
            return int(result.get("training_iteration") or 0)
        return int(step)

    def log_trial_start(self, trial):
        if trial.trial_id in self.writers:
            self.writers.pop(trial.trial_id).close()
        os.makedirs(trial.local_path, exist_ok=True)
        self.writers[trial.trial_id] = self.writer_cls(str(trial.local_path), flush_secs=30)
        self.last_scalars[trial.trial_id] = {}

    def log_trial_result(self, iteration: int, trial, result: dict):
        if trial.trial_id not in self.writers:
            self.log_trial_start(trial)
        writer, step, written = self.writers[trial.trial_id], self.global_step(result), {}
        for key, value in flatten(result).items():
            number = None if matches(key, self.excludes) else scalar(value)
            if number is None or (isinstance(number, float) and math.isnan(number)):
                continue
            written[f"ray/tune/{key}"] = number
            writer.add_scalar(f"ray/tune/{key}", number, global_step=step)
        self.last_scalars[trial.trial_id] = written
        writer.flush()

    def log_trial_end(self, trial, failed: bool = False):
        writer = self.writers.pop(trial.trial_id, None)
        if writer is None:
            return
        scalars = self.last_scalars.pop(trial.trial_id, {})
        params = getattr(trial, "evaluated_params", None)
        if params and scalars:
            self.write_hparams(writer, params, scalars)
        writer.close()

    def on_experiment_end(self, trials, **info):
        for trial_id in list(self.writers):
            self.writers.pop(trial_id).close()
        self.last_scalars.clear()

    @staticmethod
    def write_hparams(writer, params: dict, scalars: dict) -> None:
        """The trial's searched values and last scalars for the HParams tab, in its own events
        file (as Tune writes them; tensorboardX's add_hparams would open a subfolder)."""
        from tensorboardX.summary import hparams

        values = {}
        for key, value in flatten(params).items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, (str, bool, int, float)):
                values[key] = value
            elif value is not None:
                values[key] = str(value)
        try:
            for summary in hparams(hparam_dict=values, metric_dict=scalars):
                writer.file_writer.add_summary(summary)
        except Exception:  # HParams are a convenience: never fail a sweep for them
            logger.exception("could not write the trial's hyperparameters to TensorBoard")


class WandbTrialRuns(LoggerCallback):
    """One W&B run per trial: id the trial id, in `group`, its config the trial's (or what
    `describe` says), every result logged with the training step as the charts' x-axis.

    What Ray's WandbLoggerCallback logged, it logs: each result's numbers (flattened `a/b`),
    except `done`, `should_checkpoint`, `config` and the `excludes`; Tune's bookkeeping keys
    (trial id, host, pid, date, ...) go to the run's config, so does `trial_log_path`. A trial
    that pauses, is retried after a failure or is restarted keeps its open run; when it ends its
    run gets `end_state(trial, failed)` (if given) as config `trial_state` and as a tag, and is
    finished (marked failed when the trial errored). At the experiment's end the runs still open
    are finished and the driver waits up to `finish_timeout_s` for W&B to write (and, online,
    upload) everything. A resumed sweep reopens each trial's run (`resume="allow"`).

    `describe(trial)` returns wandb.init arguments for the trial's run (name, tags, config).
    W&B's work (init, log, finish) runs on one background thread, in the order the driver asked
    for it; an error there is logged and costs that trial's run, never the sweep.
    """

    EXCLUDED = ("done", "should_checkpoint", "config")
    CONFIG_KEYS = ("trial_id", "experiment_tag", "node_ip", "experiment_id", "hostname", "pid", "date", "trial_state")

    def __init__(self, project: str | None = None, *, group: str | None = None, entity: str | None = None,
                 mode: str | None = None, dir: str | None = None, excludes=(),
                 describe: Callable | None = None, end_state: Callable | None = None,
                 finish_timeout_s: float = 600.0, step_key: str = STEP_KEY):
        self.project, self.group, self.entity, self.mode, self.dir = project, group, entity, mode, dir
        self.excludes = (*self.EXCLUDED, *excludes)
        self.describe, self.end_state = describe, end_state
        self.finish_timeout_s = finish_timeout_s
        self.step_key = step_key
        self._reset()

    def _reset(self) -> None:
        self._open: set[str] = set()  # driver: trials whose run is open (or being opened)
        self._jobs: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._runs: dict = {}  # worker thread: trial id -> wandb Run

    def __getstate__(self):  # tuner.pkl holds the callbacks: settings, never threads or runs
        return {k: v for k, v in self.__dict__.items() if k not in ("_open", "_jobs", "_worker", "_runs")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    # --- the driver: Tune's hooks only queue work ------------------------------------------
    def setup(self, **info):
        """Online, W&B credentials are settled before the first trial, on the driver (as Ray's
        callback did): found (WANDB_API_KEY, `wandb login`'s .netrc; the key is not verified),
        else asked for at a terminal, else the sweep stops here (wandb's UsageError) rather than
        losing every trial's run later. Offline or disabled: nothing to do."""
        mode = self.mode or os.environ.get("WANDB_MODE") or "online"
        if mode not in ("offline", "disabled", "dryrun"):
            import wandb

            wandb.login(verify=False)

    def log_trial_start(self, trial):
        if trial.trial_id in self._open:
            return  # paused and resumed, retried or restarted: the same run goes on
        self._open.add(trial.trial_id)
        self._submit(self._open_run, trial.trial_id, self.init_kwargs(trial))

    def log_trial_result(self, iteration: int, trial, result: dict):
        if trial.trial_id not in self._open:
            self.log_trial_start(trial)
        row, config = {}, {}
        for key, value in flatten(result).items():
            if matches(key, self.excludes):
                continue
            if matches(key, self.CONFIG_KEYS):
                config[key] = value
            elif (number := scalar(value)) is not None:
                row[key] = number
        self._submit(self._log, trial.trial_id, row, config)

    def log_trial_end(self, trial, failed: bool = False):
        if trial.trial_id not in self._open:
            return
        self._open.discard(trial.trial_id)
        state = self.end_state(trial, failed) if self.end_state else None
        self._submit(self._close_run, trial.trial_id, state, failed)

    def on_experiment_end(self, trials, **info):
        for trial_id in sorted(self._open):  # interrupted or never ended: finished, no end state
            self._submit(self._close_run, trial_id, None, False)
        self._open.clear()
        self.wait(self.finish_timeout_s)

    def init_kwargs(self, trial) -> dict:
        """wandb.init's arguments for the trial's run (plain data: the worker adds the rest)."""
        described = dict(self.describe(trial)) if self.describe else {}
        config = described.pop("config", None)
        if config is None:
            config = {k: v for k, v in trial.config.items() if k != "callbacks" and not matches(k, self.excludes)}
        logdir = str(trial.local_path)
        return {
            "id": trial.trial_id, "name": str(trial), "project": self.project, "entity": self.entity,
            "group": self.group or getattr(trial, "experiment_dir_name", None), "mode": self.mode,
            "dir": self.dir or logdir, "config": {**config, "trial_log_path": logdir},
            **described,
        }

    def wait(self, timeout_s: float | None = None) -> bool:
        """Let the worker finish what was queued (then it stops); False if it is still busy
        after `timeout_s` (it goes on in the background; wandb finishes its runs at exit)."""
        worker, jobs = self._worker, self._jobs
        self._worker = self._jobs = None
        if worker is None:
            return True
        jobs.put(None)
        worker.join(timeout_s)
        if worker.is_alive():
            logger.warning("W&B is still writing the trials' runs after %s s; it goes on in the background",
                           timeout_s)
            return False
        return True

    def _submit(self, work: Callable, *args) -> None:
        if self._worker is None:
            self._jobs = queue.Queue()
            self._worker = threading.Thread(target=self._work, args=(self._jobs,), name="wandb-trial-runs",
                                            daemon=True)
            self._worker.start()
        self._jobs.put((work, args))

    # --- the worker thread: every wandb call -----------------------------------------------
    def _work(self, jobs: queue.Queue) -> None:
        while (job := jobs.get()) is not None:
            work, args = job
            try:
                work(*args)
            except Exception as exc:  # the run is lost, the sweep goes on (as with Ray's logging actors)
                logger.warning("W&B: %s for trial %s failed: %s", work.__name__.strip("_"), args[0], exc)

    def _open_run(self, trial_id: str, init: dict) -> None:
        import wandb

        os.makedirs(init["dir"], exist_ok=True)
        run = wandb.init(**init, resume="allow", reinit="create_new", allow_val_change=True,
                         # the driver's console is every trial's: no run captures it
                         settings=wandb.Settings(console="off"))
        run.define_metric(self.step_key)
        run.define_metric("*", step_metric=self.step_key)
        self._runs[trial_id] = run

    def _log(self, trial_id: str, row: dict, config: dict) -> None:
        run = self._runs.get(trial_id)
        if run is None:
            return  # its run could not be opened (said once, then)
        if config:
            run.config.update(config, allow_val_change=True)
        if row:
            run.log(row)

    def _close_run(self, trial_id: str, state: str | None, failed: bool) -> None:
        run = self._runs.pop(trial_id, None)
        if run is None:
            return
        if state:
            run.config.update({"trial_state": state}, allow_val_change=True)
            run.tags = (*(run.tags or ()), state)
        run.finish(exit_code=1 if failed else 0)
