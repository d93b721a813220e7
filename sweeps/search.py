"""Ray Tune's OptunaSearch, told the truth about diverged trials.

A diverged trial reports NaN for its objectives (so Tune's schedulers, which skip NaN,
never rank it). Optuna refuses NaN as a value and would leave such a trial RUNNING in its
study forever; here it is recorded as FAIL instead, which TPE and the other samplers treat
as "no information", never as a good score.
"""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch


class DivergenceAwareOptunaSearch(OptunaSearch):
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get("diverged"):
            return  # no intermediate value: NaN is not one
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and result.get("diverged"):
            super().on_trial_complete(trial_id, result=None, error=True)  # recorded as FAIL
            return
        super().on_trial_complete(trial_id, result=result, error=error)
