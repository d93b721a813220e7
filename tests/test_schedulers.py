"""Early stopping: the baseline trial is out of every scheduler's reach (HyperBand's own pausing and
stopping included), and the scheduler ranks on the sweep's decision metric.

No Ray cluster: the Ray schedulers are driven as Tune's controller drives them, one trial
running at a time, through a stand-in controller that stops trials the way
`TuneController.stop_trial` does (telling the scheduler)."""

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler

from sweeps.tuning import build_scheduler
from tests_spec import spec_for

MAX_STEPS, EVERY = 40, 10
BASELINE_P = 0.1


class FakeTrial:
    """What the schedulers read of a Tune trial: id, config, status, last result."""

    def __init__(self, trial_id: str, derivative_power: float):
        self.trial_id = trial_id
        self.config = {"schedule": "bimodal_gaussian", "derivative_power": derivative_power}
        self.status = Trial.PENDING
        self.is_saving = False
        self.last_result = {}

    def __repr__(self):
        return self.trial_id


class FakeController:
    """The part of TuneController a scheduler calls, recording what happened to each trial."""

    def __init__(self, scheduler, trials):
        self.scheduler, self.trials = scheduler, trials
        self.paused, self.stopped_early, self.started, self.finished = [], [], [], []

    def get_trials(self):
        return list(self.trials)

    def get_live_trials(self):
        return {t for t in self.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)}

    def stop_trial(self, trial):
        # As TuneController.stop_trial: a waiting trial is removed, a running one completed.
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
        if int(trial.last_result.get("step", 0)) < MAX_STEPS:
            self.stopped_early.append(trial)
        trial.status = Trial.TERMINATED


def drive(scheduler, trials, metrics, tune_metric=("pairs_acc", "max")) -> FakeController:
    """Run every trial to its end as Tune would, one at a time: choose, report each evaluation,
    act on the scheduler's decision (pause, stop, continue), until none is left to run."""
    # Tune hands its TuneConfig metric to the scheduler and raises when this returns False.
    if tune_metric:
        assert scheduler.set_search_properties(*tune_metric) is True
    controller = FakeController(scheduler, trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    for _ in range(1000):
        trial = scheduler.choose_trial_to_run(controller)
        if trial is None:
            break
        if trial not in controller.started:
            controller.started.append(trial)
        trial.status = Trial.RUNNING
        while trial.status == Trial.RUNNING:
            step = int(trial.last_result.get("step", 0)) + EVERY
            trial.last_result = {"step": step, **metrics(trial, step)}
            decision = scheduler.on_trial_result(controller, trial, trial.last_result)
            if decision == TrialScheduler.STOP or step >= MAX_STEPS:
                controller.stop_trial(trial)  # the trial returns at its budget: completed, told once
                if step >= MAX_STEPS:
                    controller.finished.append(trial)
            elif decision == TrialScheduler.PAUSE:
                trial.status = Trial.PAUSED
                controller.paused.append(trial)
    else:
        raise AssertionError("the scheduler never ran out of trials")
    return controller


def trials_and_metrics(n_others=13, baseline_at=6):
    """The baseline (p = 0.1) among `n_others` trials; it is the worst on every metric at every
    evaluation. Trial `x` (just after it) is the best on pairs_acc and the worst of the others on
    val_nelbo; for the rest, the better their val_nelbo the worse their pairs_acc."""
    others = [FakeTrial(f"t{i}", 0.3 + 0.01 * i) for i in range(n_others)]
    others[baseline_at] = FakeTrial("x", 0.9)
    baseline = FakeTrial("baseline", BASELINE_P)
    trials = others[:baseline_at] + [baseline] + others[baseline_at:]
    quality = {t.trial_id: 0.1 + 0.05 * i for i, t in enumerate(others)}
    quality["x"] = 0.0

    def metrics(trial, step):
        if trial is baseline:
            return {"val_nelbo": 9.0, "pairs_acc": 0.0}
        q = quality[trial.trial_id]
        return {"val_nelbo": 5.0 - q - step / 100, "pairs_acc": 0.9 - q + step / 1000}

    return trials, baseline, metrics


def spec_deciding(scheduler: str, decision=None):
    search = {"scheduler": scheduler, "baseline": {"derivative_power": BASELINE_P}}
    if decision:
        search["decision"] = {"metric": decision[0], "mode": decision[1]}
    return spec_for(max_steps=MAX_STEPS, eval_every=EVERY).with_changes(search=search)


PLAIN = {
    "asha": lambda metric, mode: ASHAScheduler(time_attr="step", metric=metric, mode=mode, max_t=MAX_STEPS,
                                               grace_period=EVERY, reduction_factor=2),
    "hyperband": lambda metric, mode: HyperBandScheduler(time_attr="step", metric=metric, mode=mode,
                                                         max_t=MAX_STEPS, reduction_factor=2),
    "median": lambda metric, mode: MedianStoppingRule(time_attr="step", metric=metric, mode=mode,
                                                      grace_period=EVERY, min_samples_required=3),
}


@pytest.mark.parametrize("name", ["asha", "hyperband", "median"])
@pytest.mark.parametrize("decision", [None, ("val_nelbo", "min")])
def test_the_baseline_is_started_and_never_paused_or_stopped(name, decision):
    trials, baseline, metrics = trials_and_metrics()
    # The same trials under the plain Ray scheduler: the baseline, worst everywhere, is paused
    # or stopped (so the scenario does test the wrapper).
    metric, mode = decision or ("pairs_acc", "max")
    plain = drive(PLAIN[name](metric, mode), trials, metrics, tune_metric=None)
    assert baseline in plain.paused + plain.stopped_early

    trials, baseline, metrics = trials_and_metrics()
    run = drive(build_scheduler(spec_deciding(name, decision)), trials, metrics)
    assert baseline in run.started and baseline in run.finished
    assert baseline not in run.paused and baseline not in run.stopped_early
    assert run.stopped_early  # the scheduler still stops others
    assert all(t.status == Trial.TERMINATED for t in trials)


@pytest.mark.parametrize("name", ["asha", "hyperband", "median"])
def test_the_scheduler_ranks_on_the_decision_metric_not_tunes(name):
    # x is the best trial on pairs_acc (the sweep's objective, Tune's metric) and the worst of
    # the others on val_nelbo: deciding on val_nelbo stops it early, deciding on pairs_acc does not.
    trials, _, metrics = trials_and_metrics()
    on_nelbo = drive(build_scheduler(spec_deciding(name, ("val_nelbo", "min"))), trials, metrics)
    assert "x" in [t.trial_id for t in on_nelbo.stopped_early]
    trials, _, metrics = trials_and_metrics()
    on_pairs = drive(build_scheduler(spec_deciding(name)), trials, metrics)
    assert "x" in [t.trial_id for t in on_pairs.finished]


def test_decision_metric_is_given_to_the_scheduler_and_kept():
    scheduler = build_scheduler(spec_deciding("asha", ("val_nelbo", "min")))
    assert scheduler.set_search_properties("pairs_acc", "max") is True
    assert (scheduler.metric, scheduler._mode) == ("val_nelbo", "min")
    assert build_scheduler(spec_deciding("hyperband")).metric == "pairs_acc"  # default: the first objective


def test_paired_stopping_stops_only_trials_clearly_behind_on_the_shared_items():
    """--scheduler paired: at each rung a trial is compared with the rung's leader on the same pairs;
    it stops only when it trails by more than the paired noise (Bonferroni over the trials it could
    be compared with), so a close runner-up trains on while a trial at chance stops."""
    from trainer.eval_items import pairs_record

    n = 1000
    keys = [f"p/{i}" for i in range(n)]
    rng = np.random.default_rng(0)
    leader_bits = rng.random(n) < 0.75

    def bits_for(trial_id):
        bits = leader_bits.copy()
        if trial_id == "close":  # loses 10 of the leader's right pairs, wins 6 of its wrong ones: z = -1.0
            right, wrong = np.flatnonzero(bits), np.flatnonzero(~bits)
            bits[right[:10]] = False
            bits[wrong[:6]] = True
            return bits
        if trial_id in ("chance", "baseline"):  # a coin: hundreds of discordant pairs, clearly behind
            return rng.random(n) < 0.5
        return bits

    trials = [FakeTrial("leader", 0.3), FakeTrial("close", 0.4), FakeTrial("chance", 0.9),
              FakeTrial("baseline", BASELINE_P)]
    fixed = {t.trial_id: bits_for(t.trial_id) for t in trials}

    def metrics(trial, step):
        bits = fixed[trial.trial_id]
        return {"pairs_acc": float(bits.mean()), "items": {"pairs": pairs_record(bits.tolist(), keys)}}

    scheduler = build_scheduler(spec_deciding("paired"))
    run = drive(scheduler, trials, metrics)
    assert [t.trial_id for t in run.stopped_early] == ["chance"], scheduler.stops
    assert {"leader", "close", "baseline"} <= {t.trial_id for t in run.finished}
    stop = scheduler.stops["chance"]
    assert stop["step"] == EVERY and stop["leader"] == "leader" and stop["z"] < -stop["critical_z"]
    assert stop["paired_over"].startswith("1000 shared pairs")


def test_paired_stopping_decides_at_the_first_rung_only():
    """A trial that falls clearly behind only after the first rung trains on: later, curves cross."""
    from trainer.eval_items import pairs_record

    n = 1000
    keys = [f"p/{i}" for i in range(n)]
    rng = np.random.default_rng(1)
    good = rng.random(n) < 0.75
    coin = rng.random(n) < 0.5
    trials = [FakeTrial("leader", 0.3), FakeTrial("late", 0.4)]

    def metrics(trial, step):
        bits = coin if (trial.trial_id == "late" and step > EVERY) else good
        return {"pairs_acc": float(bits.mean()), "items": {"pairs": pairs_record(bits.tolist(), keys)}}

    run = drive(build_scheduler(spec_deciding("paired")), trials, metrics)
    assert not run.stopped_early and {t.trial_id for t in run.finished} == {"leader", "late"}
