"""Confirmation stage: is the sweep's winner really better than the runner-up?

A sweep ranks configurations by one noisy number each (one seed, often an early-stopped
budget). `--confirm K --seeds S` reruns the top K configurations at the full budget with
S fresh seeds each (the same seeds for every configuration, so differences are paired:
a seed fixes initialisation, data order and masks), then reports per configuration the
mean and sample standard deviation of the metric, and for winner minus runner-up a
paired t confidence interval. When the interval contains 0 the winner is not
distinguishable from the runner-up, and the report says so.

Results: `<storage>/<name>/confirmation.json`; Tune's files under `<storage>/<name>/confirm/`.
The exported best config then comes from the confirmed ranking.
"""

from __future__ import annotations

import json
import math
import statistics

from sweeps import storage
from sweeps.results import CONFIRM_DIR, CONFIRMATION_FILE, rank, read_trials, reported
from sweeps.spec import SweepSpec
from sweeps.stats import CONFIDENCE, paired_difference, student_t_cdf, student_t_quantile  # noqa: F401 (re-exported)
from sweeps.trial import GRID_KEY
from sweeps.tuning import reuse_actors, run_config, trainable

FRESH_SEED_OFFSET = 1000  # confirmation seeds never coincide with the sweep's own seed


# --- statistics (pure) --------------------------------------------------------------


def summarize(configs: list[dict], metric: str, mode: str, seeds: list[int]) -> dict:
    """configs: [{"trial_id", "values", "sweep_rank", "per_seed": {seed: metrics}}] -> confirmation document."""
    sign = 1.0 if mode == "max" else -1.0
    summaries = []
    for entry in configs:
        values = [entry["per_seed"][s][metric] for s in seeds if s in entry["per_seed"] and metric in entry["per_seed"][s]]
        heldout = [entry["per_seed"][s]["pairs_acc_heldout"] for s in seeds
                   if s in entry["per_seed"] and "pairs_acc_heldout" in entry["per_seed"][s]]
        summaries.append({
            "trial_id": entry["trial_id"],
            "sweep_rank": entry["sweep_rank"],
            "values": entry["values"],
            "seeds": [s for s in seeds if s in entry["per_seed"] and metric in entry["per_seed"][s]],
            "values_per_seed": values,
            "mean": statistics.fmean(values) if values else math.nan,
            "std": statistics.stdev(values) if len(values) > 1 else math.nan,
            "heldout_per_seed": heldout,
            "heldout_mean": statistics.fmean(heldout) if heldout else None,
            "heldout_std": statistics.stdev(heldout) if len(heldout) > 1 else None,
        })
    ranked = sorted(summaries, key=lambda s: (not s["values_per_seed"], -sign * s["mean"] if s["values_per_seed"] else 0))
    for position, entry in enumerate(ranked, start=1):
        entry["rank"] = position
    document = {"metric": metric, "mode": mode, "seeds": len(seeds), "seed_values": seeds, "configs": ranked,
                "difference": None}
    if len(ranked) >= 2 and ranked[1]["values_per_seed"]:
        winner, runner_up = ranked[0], ranked[1]
        common = [s for s in winner["seeds"] if s in runner_up["seeds"]]
        a = [winner["values_per_seed"][winner["seeds"].index(s)] for s in common]
        b = [runner_up["values_per_seed"][runner_up["seeds"].index(s)] for s in common]
        diff = paired_difference([sign * x for x in a], [sign * x for x in b])
        # Report in the metric's own direction (winner - runner-up).
        low, high = sorted((sign * diff["ci_low"], sign * diff["ci_high"]))
        distinguishable = diff["ci_low"] > 0
        better = "higher" if mode == "max" else "lower"
        statement = (
            f"{winner['trial_id']} is {better} than {runner_up['trial_id']} by {sign * diff['mean']:+.4f} {metric} "
            f"({int(diff['level'] * 100)}% CI {low:+.4f} to {high:+.4f}, paired over {len(common)} seeds)"
        )
        statement += (": the winner is distinguishable from the runner-up." if distinguishable else
                      ": the interval contains 0, so the winner is NOT distinguishable from the runner-up.")
        document["difference"] = {
            "winner": winner["trial_id"], "runner_up": runner_up["trial_id"], "mean": sign * diff["mean"],
            "ci_low": low, "ci_high": high, "level": diff["level"], "n_seeds": len(common),
            "distinguishable": distinguishable, "statement": statement,
        }
    return document


def format_table(document: dict) -> str:
    metric = document["metric"]
    lines = [f"confirmation: top {len(document['configs'])} configurations x {document['seeds']} fresh seeds, {metric}:"]
    for entry in document["configs"]:
        held = (f"  held-out pairs {entry['heldout_mean']:.4f} +- {entry['heldout_std'] or 0:.4f}"
                if entry["heldout_mean"] is not None else "")
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(entry["values"].items()))
        lines.append(f"  #{entry['rank']} {entry['trial_id']} (sweep rank {entry['sweep_rank']}): "
                     f"{entry['mean']:.4f} +- {entry['std']:.4f}{held}  [{shown}]")
    if document["difference"]:
        lines.append("  " + document["difference"]["statement"])
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- running it on Ray ------------------------------------------------------------------


def confirmation_points(rows: list[dict], top_k: int, seeds: list[int]) -> list[dict]:
    """Grid points: every (configuration, seed) pair. `rows` are ranked trial rows."""
    points = []
    for position, row in enumerate(rows[:top_k], start=1):
        for seed in seeds:
            points.append({"values": {**row["values"], "seed": seed}, "source_trial": row["trial_id"], "sweep_rank": position})
    return points


def fresh_seeds(base_seed: int, count: int) -> list[int]:
    return [base_seed + FRESH_SEED_OFFSET + i for i in range(count)]


def run_confirmation(spec: SweepSpec, top_k: int, num_seeds: int) -> dict:
    """Run (or finish) the confirmation trials of a finished sweep; write confirmation.json."""
    from ray import tune

    rows = rank(reported(read_trials(spec), spec.metric), spec)
    seeds = fresh_seeds(spec.search.seed, num_seeds)
    points = confirmation_points(rows, top_k, seeds)
    # The confirmation stage is a sweep of its own inside the sweep folder: <experiment>/confirm.
    confirm_spec = spec.with_changes(name=CONFIRM_DIR, storage=spec.experiment)
    if tune.Tuner.can_restore(confirm_spec.experiment):
        tuner = tune.Tuner.restore(confirm_spec.experiment, trainable=trainable(confirm_spec),
                                   resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable(confirm_spec),
            param_space={GRID_KEY: tune.grid_search([p["values"] for p in points])},
            tune_config=tune.TuneConfig(max_concurrent_trials=spec.search.max_concurrent or None,
                                        reuse_actors=reuse_actors(confirm_spec)),
            run_config=run_config(confirm_spec, wandb=False),
        )
    results = tuner.fit()
    by_source: dict[str, dict] = {}
    for point in points:
        by_source.setdefault(point["source_trial"], {
            "trial_id": point["source_trial"], "sweep_rank": point["sweep_rank"],
            "values": {k: v for k, v in point["values"].items() if k != "seed"}, "per_seed": {}})
    for result in results:
        values = dict(result.config.get(GRID_KEY) or {})
        metrics = result.metrics or {}
        if result.error is not None or metrics.get("step", 0) < spec.full_budget:
            continue  # a failed or short run is not a full-budget measurement
        seed = values.pop("seed")
        for point in points:
            if point["values"] == {**values, "seed": seed}:
                by_source[point["source_trial"]]["per_seed"][seed] = metrics
    document = summarize(list(by_source.values()), spec.metric, spec.mode, seeds)
    document["budget_steps"] = spec.full_budget
    storage.write_text(storage.join(spec.experiment, CONFIRMATION_FILE), json.dumps(document, indent=2))
    print(format_table(document), flush=True)
    return document
