"""Warm start: an earlier sweep's completed trials seed a new sweep's Optuna study.

`--warm-start <storage>/<earlier sweep>` takes every trial of the earlier sweep that

1. ran this very code: the earlier sweep's code version (`provenance.code_version`, a git
   commit, `-dirty` when the tree had changes) is this code's. Another version may train or
   score the same config differently (the validation rows and their order, the masks, the
   metrics' definitions), so every trial of such a sweep is left out, under a reason naming
   both versions. (A `-dirty` version names its commit, not the uncommitted changes.)
2. was evaluated in the precision this code evaluates in (`trainer.evaluate.EVAL_PRECISION`,
   each trial's `eval_precision`): a metric computed in another precision is another
   measurement, and a trial that did not record its precision (a sweep older than the
   field) cannot be shown to match, so both are left out, saying which;
3. trained its full budget (an early-stopped trial's number is from fewer steps),
4. reported a finite value for every objective of the new sweep,
5. is a point of the new space (its config's value for each of the new space's searched
   parameters lies in that parameter's range or choices, `when` conditions respected), and
6. trained what the new sweep's trials will train apart from the searched parameters: its
   config equals the new base config on every other field (evaluation and checkpoint
   cadence, seed and the corpus's path aside), on the same data (content hash),

and hands it to the new study as a COMPLETE trial with its value(s), so the sampler starts
from what is known instead of blind. Every trial left out is counted under its reason.
"""

from __future__ import annotations

import math
from collections import Counter

import trainer.evaluate
from search_spaces import SearchSpace, apply_values
from sweeps.results import read_trials
from sweeps.spec import Objective, SweepSpec, WarmStart, code_version
from trainer.config import TrainConfig
from trainer.errors import UserError

# Fields that do not change what a trial measures: how often and how closely it is looked at
# before its end, its seed (noise, not the configuration), whether the encoder is compiled, and
# the corpus's path (the data itself is compared by content hash).
NOT_WHAT_IS_MEASURED = ("eval_every", "checkpoint_every", "checkpoint_words", "interim_val_subsample", "seed",
                        "compile", "corpus")


def warm_start(source: str, space: SearchSpace, base_config: TrainConfig, objectives: tuple[Objective, ...],
               data_hash: str, include_optional: bool = False, current_code_version: str | None = None,
               current_eval_precision: str | None = None) -> WarmStart:
    """The earlier sweep's trials that fit the new sweep, and the count of those that do not.

    `current_code_version` (default: `sweeps.spec.code_version()`) and `current_eval_precision`
    (default: `trainer.evaluate.EVAL_PRECISION`) are this code's; they are parameters for tests."""
    earlier = SweepSpec.load(source)
    current_code_version = current_code_version or code_version()
    current_eval_precision = current_eval_precision or evaluation_precision()
    if earlier.data.data_hash != data_hash:
        rows = read_trials(earlier)
        return WarmStart(source=source, left_out={"trained on other data (content hash differs)": len(rows)})
    if earlier.provenance.code_version != current_code_version:
        rows = read_trials(earlier)
        reason = f"from code version {earlier.provenance.code_version}, not this code's {current_code_version}"
        return WarmStart(source=source, left_out={reason: len(rows)})
    taken, left_out = [], Counter()
    for row in read_trials(earlier):
        reason, params = fit(row, space, base_config, objectives, include_optional)
        reason = reason or precision_mismatch(row, current_eval_precision)
        if reason:
            left_out[reason] += 1
            continue
        taken.append({"trial_id": row["trial_id"], "params": params,
                      "values": [row["metrics"][o.metric] for o in objectives]})
    return WarmStart(source=source, trials=taken, left_out=dict(left_out))


def evaluation_precision() -> str:
    """The precision this code computes metrics in."""
    # getattr: the constant is new; float32 is what evaluation ran in before it was named.
    return getattr(trainer.evaluate, "EVAL_PRECISION", "float32")


def precision_mismatch(row: dict, current: str) -> str:
    """Why a trial's metrics cannot stand beside this code's by their precision ('' when they can)."""
    recorded = row.get("eval_precision")
    if recorded is None:
        return f"evaluation precision not recorded (this code evaluates in {current})"
    if recorded != current:
        return f"evaluated in {recorded}, not this code's {current}"
    return ""


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
