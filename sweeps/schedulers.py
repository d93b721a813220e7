"""Early stopping for a SweepSpec: Ray Tune's ASHA, HyperBand and median stopping, deciding on
`spec.decision`, with the baseline trial out of their reach.

The baseline (the base config's point of the space) is the reference every other trial's gain
is measured against, so it trains its full budget whatever any scheduler makes of it. Turning a
STOP that `on_trial_result` returns into CONTINUE is not enough: HyperBand pauses trials
at its milestones and, when it halves a bracket, stops the paused losers itself
(`tune_controller.stop_trial`), and the median rule pauses a trial while it waits for samples.
So the baseline is never registered with the Ray scheduler at all: its add, results,
completion, removal and errors are not passed on, its results always CONTINUE, and a pending
or paused baseline is started here (HyperBand only starts trials of its own brackets). The Ray
scheduler cannot stop, pause or rank what it never saw.

A consequence, on purpose: the baseline's results are not among those a rung's cutoff (ASHA),
a bracket's halving (HyperBand) or the median (median stopping) is computed from. The others
race among themselves; the baseline is the yardstick, not a contestant.

The scheduler decides on `spec.decision` (by default the first objective; a sweep may stop on,
say, val_nelbo while it ranks by pairs_acc). That metric is given to the Ray scheduler when it
is built, and Tune's own metric (the ranking objective, in TuneConfig) does not replace it.
"""

from __future__ import annotations

import json
import math
from statistics import NormalDist

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler

from sweeps import storage
from sweeps.spec import SweepSpec
from sweeps.stats import paired_on_items

STOPS_FILE = "stops.json"  # why --scheduler paired stopped each trial: {trial_id: {step, leader, z, ...}}
from sweeps.trial import is_baseline, trial_values


class SparesTheBaseline:
    """Mixin before a Ray Tune scheduler class: the baseline trial never reaches the scheduler."""

    spec: SweepSpec

    def is_baseline(self, trial) -> bool:
        return is_baseline(trial_values(trial.config), self.spec)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        # Tune passes its TuneConfig metric (the ranking objective) here and raises on False; a
        # scheduler built with its own decision metric keeps it.
        if self._metric:
            return True
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        if not self.is_baseline(trial):
            super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        if self.is_baseline(trial):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        if not self.is_baseline(trial):
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        if not self.is_baseline(trial):
            super().on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        if not self.is_baseline(trial):
            super().on_trial_error(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        # The baseline first when it waits (as FIFO would start it): the scheduler does not know it.
        for trial in tune_controller.get_trials():
            if trial.status in (Trial.PENDING, Trial.PAUSED) and self.is_baseline(trial):
                return trial
        return super().choose_trial_to_run(tune_controller)


class PairedStopping(FIFOScheduler):
    """Stop a trial once, at the first rung, and only when the evidence says it is behind: paired
    over the items both scored, it trails the rung's leader on the decision metric by more than
    the evaluation's noise.

    At the first evaluation (`decide_at`, a third of the budget in a default sweep) the trial's
    items (the `items` its result carries: per pair right or wrong, per validation row its NELBO
    terms) are compared with those of the best trial that reached that step so far
    (sweeps.stats.paired_on_items); it stops when z < -z_crit, one-sided at `alpha`, Bonferroni-
    corrected over the trials it could have been compared with. Why so little, measured on pilot
    runs over p in [0, 1] (benchmarks/rung_predictiveness.py, README "Early stopping that keeps
    the winner"): learning curves cross. At the first rung the paired pairs_acc test separated
    only the two configurations that ended worst; at the second it would have stopped p = 0,
    which ended within noise of the best, and on val_nelbo it would have stopped every config
    but one at every rung (val_nelbo differences are real but do not rank pairs_acc). ASHA's
    rank halving stops half the trials at every rung whatever the gaps. Each stop is written,
    with its evidence, to `stops`."""

    def __init__(self, metric: str, mode: str, max_t: int, decide_at: int, alpha: float = 0.05):
        super().__init__()
        self._metric, self._mode, self._max_t, self._alpha = metric, mode, max_t, alpha
        self._decide_at = decide_at
        self._rungs: dict[int, dict[str, tuple[float, dict]]] = {}
        self.stops: dict[str, dict] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # decides on its own metric, whatever Tune ranks by

    def on_trial_result(self, tune_controller, trial, result):
        step, value = result.get("step"), result.get(self._metric)
        items = result.get("items")
        if (not isinstance(step, int) or step != self._decide_at or step >= self._max_t or result.get("diverged")
                or not isinstance(value, (int, float)) or not isinstance(items, dict)):
            return TrialScheduler.CONTINUE
        rung = self._rungs.setdefault(step, {})
        others = {trial_id: entry for trial_id, entry in rung.items() if trial_id != trial.trial_id}
        rung[trial.trial_id] = (value, items)
        if not others:
            return TrialScheduler.CONTINUE
        better = max if self._mode == "max" else min
        leader = better(others, key=lambda trial_id: others[trial_id][0])
        comparison = paired_on_items(self._metric, items, others[leader][1])
        if comparison is None or not math.isfinite(comparison.z):
            return TrialScheduler.CONTINUE
        z = float(comparison.z if self._mode == "max" else -comparison.z)  # positive: this trial is better
        critical = NormalDist().inv_cdf(1 - self._alpha / len(others))
        if z < -critical:
            self.stops[trial.trial_id] = {"step": step, "metric": self._metric, "leader": leader, "z": z,
                                          "critical_z": critical, "paired_over": comparison.paired_over}
            spec = getattr(self, "spec", None)
            if spec is not None:  # the report says why each trial stopped
                storage.write_text(storage.join(spec.experiment, STOPS_FILE), json.dumps(self.stops, indent=1))
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"PairedStopping: {len(self.stops)} trial(s) stopped"


class BaselineASHA(SparesTheBaseline, ASHAScheduler):
    pass


class BaselinePairedStopping(SparesTheBaseline, PairedStopping):
    pass


class BaselineHyperBand(SparesTheBaseline, HyperBandScheduler):
    pass


class BaselineMedianStopping(SparesTheBaseline, MedianStoppingRule):
    pass


def build_scheduler(spec: SweepSpec):
    """Early stopping on training steps, deciding on `spec.decision` (never of the baseline trial);
    none for a multi-objective sweep (it would judge on one metric)."""
    config = spec.base_config
    name = "none" if spec.multi_objective else spec.search.scheduler
    grace = config.eval_every
    decides_on = {"metric": spec.decision.metric, "mode": spec.decision.mode}
    if name == "paired":
        scheduler = BaselinePairedStopping(max_t=config.max_steps, decide_at=grace, **decides_on)
    elif name == "asha":
        scheduler = BaselineASHA(time_attr="step", max_t=config.max_steps, grace_period=grace, reduction_factor=2,
                                 **decides_on)
    elif name == "hyperband":
        scheduler = BaselineHyperBand(time_attr="step", max_t=config.max_steps, reduction_factor=2, **decides_on)
    elif name == "median":
        scheduler = BaselineMedianStopping(time_attr="step", grace_period=grace, min_samples_required=3, **decides_on)
    else:
        return FIFOScheduler()
    scheduler.spec = spec
    return scheduler
