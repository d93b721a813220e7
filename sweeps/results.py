"""One reader of a sweep's results, for export, report and confirmation alike.

`read_trials(spec)` turns Tune's files into one plain row per trial Tune knows:

    trial_id   Tune's trial id
    number     creation order (Tune's experiment tag starts with it)
    status     Tune's status (TERMINATED, ERROR, RUNNING, PENDING), or DIVERGED
    state      what happened, in words: "finished", "stopped at step N", "diverged",
               "running", "error"
    reason     why a diverged trial ended
    values     the searched values
    config     the trial's TrainConfig
    metrics    the last reported result (numbers only)
    history    every reported result (numbers only), in order
    path       the trial's folder
    eval_precision  the precision its metrics were computed in (None: not recorded)
    items      per evaluation, what a paired comparison needs (trainer/eval_items.py), with its
               step ([] when none were reported)

and the rest of this module ranks them, finds a Pareto front and applies a confirmation.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from typing import Sequence

from sweeps import storage
from sweeps.spec import Objective, SweepError, SweepSpec
from sweeps.stats import Comparison, compare, kendall_tau, paired_on_items
from sweeps.trial import is_baseline, trial_config, trial_values

CONFIRMATION_FILE = "confirmation.json"
CONFIRM_DIR = "confirm"


def read_trials(spec: SweepSpec, experiment: str | None = None) -> list[dict]:
    """Every trial of the sweep (or of `experiment`, e.g. its confirmation stage), in creation order."""
    from ray.tune import ExperimentAnalysis

    experiment = experiment or spec.experiment
    try:
        analysis = ExperimentAnalysis(experiment, default_metric=spec.metric, default_mode=spec.mode)
        frames = analysis.trial_dataframes
    except Exception as exc:  # Ray raises several types for a missing/unreadable state
        raise SweepError(f"cannot read Tune results in {experiment}: {str(exc).splitlines()[0]}") from None
    rows = []
    for position, trial in enumerate(analysis.trials):
        last = numeric(trial.last_result or {})
        diverged = bool((trial.last_result or {}).get("diverged"))
        frame = frames.get(trial.trial_id)
        # NaN in the dataframe is padding (a key some results lack), not a reported value.
        history = [] if frame is None or frame.empty else [numeric(r, drop_nan=True) for r in frame.to_dict("records")]
        status = "DIVERGED" if diverged else trial.status
        rows.append({
            "trial_id": trial.trial_id,
            "number": _tag_counter(trial.experiment_tag, position),
            "status": status,
            "state": trial_state(status, last.get("step", 0), spec.full_budget),
            "reason": (trial.last_result or {}).get("diverged_reason", ""),
            "values": trial_values(trial.config),
            "config": trial_config(trial.config, spec),
            "metrics": last,
            "history": history,
            "path": trial.path,
            "eval_precision": (trial.last_result or {}).get("eval_precision"),
            "items": _items_of(trial),
        })
    rows.sort(key=lambda row: row["number"])
    for row in rows:  # the base config's trial, queued first (run.py: baseline_point)
        row["baseline"] = False
    first = next((row for row in rows if is_baseline(row["values"], spec)), None)
    if first is not None:
        first["baseline"] = True
    return rows


def _items_of(trial) -> list[dict]:
    """Every evaluation's per-item records (trainer/eval_items.py) with its step, from the trial's
    result.json (Tune's dataframes keep numbers only), or [] when none were reported."""
    path = storage.join(trial.path, "result.json")
    try:
        text = storage.read_text(path) if storage.exists(path) else ""
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        if '"items"' not in line:
            continue
        result = json.loads(line)
        if isinstance(result.get("items"), dict):
            records.append({"step": result.get("step"), **result["items"]})
    return records


def trial_state(status: str, step: int, full_budget: int) -> str:
    """What happened to a trial, in words a leaderboard can show."""
    if status == "DIVERGED":
        return "diverged"
    if status == "ERROR":
        return "error"
    if status in ("RUNNING", "PENDING", "PAUSED"):
        return status.lower()
    return "finished" if step >= full_budget else f"stopped at step {step}"


def _tag_counter(tag: str | None, fallback: int) -> int:
    match = re.match(r"(\d+)", tag or "")
    return int(match.group(1)) if match else fallback


def numeric(record: dict, drop_nan: bool = False) -> dict:
    """The numeric entries of a result (not bools), as Python numbers."""
    import numpy as np

    out = {}
    for key, value in record.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            continue
        if drop_nan and math.isnan(value):
            continue
        out[key] = int(value) if key == "step" else value.item() if isinstance(value, np.generic) else value
    return out


def reported(rows: list[dict], metric: str) -> list[dict]:
    """Rows that reported `metric` at least once, or diverged (a diverged trial reports NaN)."""
    return [row for row in rows if metric in row["metrics"] or row["status"] == "DIVERGED"]


def rank(rows: list[dict], spec: SweepSpec) -> list[dict]:
    """Full-budget trials first (an early-stopped trial's number is from fewer steps, so it is
    not comparable), then by the sweep's objective; non-finite values last."""
    sign = -1.0 if spec.mode == "max" else 1.0

    def key(row):
        value = row["metrics"].get(spec.metric, math.nan)
        bad = not math.isfinite(value)
        return (row["metrics"].get("step", 0) < spec.full_budget, bad, sign * value if not bad else 0.0)

    return sorted(rows, key=key)


def dominates(a: dict, b: dict, objectives: Sequence[Objective]) -> bool:
    """a is at least as good as b on every objective and better on one."""
    better = False
    for objective in objectives:
        x, y = a["metrics"].get(objective.metric, math.nan), b["metrics"].get(objective.metric, math.nan)
        if not (math.isfinite(x) and math.isfinite(y)):
            return False
        if objective.better(y, x):
            return False
        better |= x != y
    return better


def pareto_front(rows: list[dict], objectives: Sequence[Objective]) -> list[dict]:
    """Trials that no other trial dominates (finite objectives only), best first on the first objective."""
    usable = [r for r in rows if all(math.isfinite(r["metrics"].get(o.metric, math.nan)) for o in objectives)]
    front = [r for r in usable if not any(dominates(other, r, objectives) for other in usable)]
    first = objectives[0]
    return sorted(front, key=lambda r: (-1.0 if first.mode == "max" else 1.0) * r["metrics"][first.metric])


def standard_error(row: dict, metric: str) -> float | None:
    """The standard error a trial reported beside `metric` (`<metric>_se`), if any."""
    value = row["metrics"].get(f"{metric}_se")
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def items_at(row: dict, step: int) -> dict | None:
    return next((record for record in reversed(row.get("items") or []) if record.get("step") == step), None)


def paired_items_difference(a: dict, b: dict, metric: str, step: int | None = None) -> Comparison | None:
    """a's `metric` minus b's on the items both scored at `step` (default: each one's last
    evaluation, which must be at the same step), or None when they did not score the same items."""
    a_step = step if step is not None else a["metrics"].get("step")
    b_step = step if step is not None else b["metrics"].get("step")
    if a_step != b_step:
        return None
    a_items, b_items = items_at(a, a_step), items_at(b, b_step)
    if not a_items or not b_items:
        return None
    return paired_on_items(metric, a_items, b_items)


def judge(a: dict, b: dict, spec: SweepSpec, metric: str | None = None) -> Comparison:
    """Is a better than b on `metric` (default: the sweep's)? Paired over the shared items where
    both runs recorded them (the verdict), with the unpaired combined-SE figure beside it; the
    unpaired figure alone otherwise. Positive difference = a is better, whatever the mode."""
    metric = metric or spec.metric
    mode = next((o.mode for o in spec.objectives if o.metric == metric), spec.mode)
    sign = 1.0 if mode == "max" else -1.0
    unpaired = compare(sign * a["metrics"][metric], sign * b["metrics"][metric],
                       standard_error(a, metric), standard_error(b, metric))
    paired = paired_items_difference(a, b, metric)
    if paired is None or not math.isfinite(paired.difference):
        return unpaired
    return Comparison(sign * paired.difference, paired.se, sign * paired.z, paired.distinguishable,
                      paired.paired_over, unpaired)


def winner_against_runner_up(ranked: list[dict], spec: SweepSpec) -> tuple[dict, dict, Comparison] | None:
    """The best two full-budget trials with a finite objective (else the best two of any budget)
    and whether the first's lead is more than the noise of the two numbers."""
    usable = [r for r in ranked if math.isfinite(r["metrics"].get(spec.metric, math.nan))]
    full = [r for r in usable if r["metrics"].get("step", 0) >= spec.full_budget]
    pool = full if len(full) >= 2 else usable
    if len(pool) < 2:
        return None
    best, runner_up = pool[0], pool[1]
    return best, runner_up, judge(best, runner_up, spec)


def best_against_baseline(ranked: list[dict], spec: SweepSpec) -> tuple[dict, dict, Comparison] | None:
    """The best full-budget trial against the baseline trial (the base config), when both exist."""
    baseline = next((r for r in ranked if r.get("baseline")), None)
    usable = [r for r in ranked if math.isfinite(r["metrics"].get(spec.metric, math.nan))
              and r["metrics"].get("step", 0) >= spec.full_budget]
    if baseline is None or not usable or baseline not in usable:
        return None  # no baseline, or it diverged or did not train its full budget: nothing comparable
    best = usable[0]
    return best, baseline, judge(best, baseline, spec)


def rung_agreement(rows: list[dict], spec: SweepSpec) -> list[dict]:
    """For each evaluation step before the full budget (a rung where an early-stopping scheduler
    decides), Kendall's tau between the trials' decision metric there (`spec.decision`, signed so
    that larger is better) and their selection metric at the full budget, over the trials that
    reached the full budget: did the evidence the scheduler decided on predict the final ranking?"""
    decision, metric = spec.decision, spec.metric
    sign = (1.0 if decision.mode == "max" else -1.0) * (1.0 if spec.mode == "max" else -1.0)
    finals, at_step = {}, {}
    for row in rows:
        if row["metrics"].get("step", 0) < spec.full_budget or row["status"] == "DIVERGED":
            continue
        final = [h for h in row["history"] if math.isfinite(h.get(metric, math.nan))]
        if not final:
            continue
        finals[row["trial_id"]] = final[-1][metric]
        for h in row["history"]:
            if int(h.get("step", 0)) < spec.full_budget and math.isfinite(h.get(decision.metric, math.nan)):
                at_step.setdefault(int(h["step"]), {})[row["trial_id"]] = sign * h[decision.metric]
    table = []
    for step in sorted(at_step):
        trials = sorted(at_step[step])
        if len(trials) < 2:
            continue
        tau = kendall_tau([at_step[step][t] for t in trials], [finals[t] for t in trials])
        table.append({"step": step, "trials": len(trials), "tau": tau})
    return table


def load_confirmation(spec: SweepSpec) -> dict | None:
    path = storage.join(spec.experiment, CONFIRMATION_FILE)
    return json.loads(storage.read_text(path)) if storage.exists(path) else None


def apply_confirmation(rows: list[dict], confirmation: dict | None) -> list[dict]:
    """Confirmed configurations first, in confirmed order; the rest keep the sweep's order."""
    if not confirmation or not confirmation.get("configs"):
        return rows
    order = {entry["trial_id"]: entry["rank"] for entry in confirmation["configs"] if entry["values_per_seed"]}
    confirmed = sorted((r for r in rows if r["trial_id"] in order), key=lambda r: order[r["trial_id"]])
    return confirmed + [r for r in rows if r["trial_id"] not in order]
