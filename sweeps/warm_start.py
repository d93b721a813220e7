"""Warm start: an earlier sweep's completed trials seed a new sweep's Optuna study.

`--warm-start <storage>/<earlier sweep>` takes every trial of the earlier sweep that

1. trained its full budget (an early-stopped trial's number is from fewer steps),
2. reported a finite value for every objective of the new sweep,
3. is a point of the new space (its config's value for each of the new space's searched
   parameters lies in that parameter's range or choices, `when` conditions respected), and
4. trained what the new sweep's trials will train apart from the searched parameters: its
   config equals the new base config on every other field (evaluation and checkpoint
   cadence, seed and the corpus's path aside), on the same data (content hash),

and hands it to the new study as a COMPLETE trial with its value(s), so the sampler starts
from what is known instead of blind. Every trial left out is counted under its reason.
"""

from __future__ import annotations

import math
from collections import Counter

from search_spaces import SearchSpace, apply_values
from sweeps.results import read_trials
from sweeps.spec import Objective, SweepSpec, WarmStart
from trainer.config import TrainConfig
from trainer.errors import UserError

# Fields that do not change what a trial measures: how often and how closely it is looked at
# before its end, its seed (noise, not the configuration), whether the encoder is compiled, and
# the corpus's path (the data itself is compared by content hash).
NOT_WHAT_IS_MEASURED = ("eval_every", "checkpoint_every", "checkpoint_words", "interim_val_subsample", "seed",
                        "compile", "corpus")


def warm_start(source: str, space: SearchSpace, base_config: TrainConfig, objectives: tuple[Objective, ...],
               data_hash: str, include_optional: bool = False) -> WarmStart:
    """The earlier sweep's trials that fit the new sweep, and the count of those that do not."""
    earlier = SweepSpec.load(source)
    taken, left_out = [], Counter()
    if earlier.data.data_hash != data_hash:
        rows = read_trials(earlier)
        return WarmStart(source=source, left_out={"trained on other data (content hash differs)": len(rows)})
    for row in read_trials(earlier):
        reason, params = fit(row, space, base_config, objectives, include_optional)
        if reason:
            left_out[reason] += 1
            continue
        taken.append({"trial_id": row["trial_id"], "params": params,
                      "values": [row["metrics"][o.metric] for o in objectives]})
    return WarmStart(source=source, trials=taken, left_out=dict(left_out))


def fit(row: dict, space: SearchSpace, base_config: TrainConfig, objectives: tuple[Objective, ...],
        include_optional: bool = False) -> tuple[str, dict]:
    """('' and the trial's point of the new space) when the trial fits, else (why not, {})."""
    if row["state"] == "diverged":
        return "diverged", {}
    if row["state"] != "finished":
        return "did not train its full budget" if row["state"].startswith("stopped") else f"{row['state']}", {}
    values = [row["metrics"].get(o.metric, math.nan) for o in objectives]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return "no finite value for the new objective(s)", {}
    config: TrainConfig = row["config"]
    try:
        point = space.values_of(config, include_optional)
    except UserError:
        return "outside the new space", {}
    expected = apply_values(base_config, point).as_dict()
    trained = config.as_dict()
    differs = sorted(k for k in expected if k not in NOT_WHAT_IS_MEASURED and expected[k] != trained.get(k))
    if differs:
        return f"config differs from the new base config ({', '.join(differs[:3])})", {}
    return "", point
