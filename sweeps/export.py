"""Export a sweep's best config for final training: `python sweeps/export.py <storage>/<name>`.

Writes, inside the sweep folder:
- best_config.json: {"config": <TrainConfig>, "provenance": {...}, "final_command": "..."};
  `python -m trainer.train --config best_config.json` accepts it unchanged.
- leaderboard.csv: every trial ranked, with its searched parameters and last metrics.

Ranking: trials that trained their full budget come first (an early-stopped trial's
number is from fewer steps, so it is not comparable), then by the sweep's metric.
When a confirmation stage ran (`--confirm`), its configurations come first, in their
confirmed order (mean over fresh seeds), and the best config is the confirmed winner.
A multi-objective sweep has no single best: the Pareto front is listed and `--pick`
chooses the exported point (default: the front's best on the first objective).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.cli import ArgumentParser
from sweeps import storage
from sweeps.trial import GRID_KEY, trial_config

METRIC_COLUMNS = ("step", "words_seen", "val_nelbo", "val_acc", "pairs_acc", "pairs_acc_heldout", "train_loss", "tokens_per_s")


class ExportError(ValueError):
    """The folder holds no exportable sweep; one line."""


def load_sweep(experiment: str) -> dict:
    path = storage.join(experiment, "sweep.json")
    if not storage.exists(path):
        raise ExportError(f"{experiment} is not a sweep folder (no sweep.json)")
    return json.loads(storage.read_text(path))


def trial_rows(experiment: str, sweep: dict) -> list[dict]:
    """One row per trial that reported at least once: id, status, values, config, last metrics."""
    from ray.tune import ExperimentAnalysis

    try:
        analysis = ExperimentAnalysis(experiment, default_metric=sweep["metric"], default_mode=sweep["mode"])
    except Exception as exc:  # Ray raises several types for a missing/unreadable state
        raise ExportError(f"cannot read Tune results in {experiment}: {str(exc).splitlines()[0]}") from None
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        diverged = bool(last.get("diverged"))
        if sweep["metric"] not in last and not diverged:
            continue
        values = dict(trial.config)
        values.update(values.pop(GRID_KEY, None) or {})
        rows.append(
            {
                "trial_id": trial.trial_id,
                "status": "DIVERGED" if diverged else trial.status,
                "reason": last.get("diverged_reason", ""),
                "values": values,
                "config": trial_config(trial.config, sweep["base_config"]),
                "metrics": {k: v for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                "path": trial.path,
            }
        )
    return rows


def rank(rows: list[dict], sweep: dict) -> list[dict]:
    metric, sign = sweep["metric"], (-1.0 if sweep["mode"] == "max" else 1.0)
    full_budget = sweep["base_config"]["max_steps"]

    def key(row):
        value = row["metrics"].get(metric, math.nan)
        bad = not math.isfinite(value)
        return (row["metrics"].get("step", 0) < full_budget, bad, sign * value if not bad else 0.0)

    return sorted(rows, key=key)


def leaderboard_csv(rows: list[dict], sweep: dict) -> str:
    params = sorted({name for row in rows for name in row["values"]})
    extra = sorted({k for row in rows for k in row["metrics"] if k.startswith("pairs_acc/")})
    header = ["rank", "trial_id", "status", *params, *METRIC_COLUMNS, *extra, "reason"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for position, row in enumerate(rows, start=1):
        metrics = row["metrics"]
        writer.writerow(
            [position, row["trial_id"], row["status"], *(row["values"].get(p, "") for p in params),
             *(metrics.get(m, "") for m in METRIC_COLUMNS), *(metrics.get(m, "") for m in extra), row.get("reason", "")]
        )
    return buffer.getvalue()


def final_command(experiment: str) -> str:
    return f"python sweeps/final.py {experiment}"


def dominates(a: dict, b: dict, objectives: list) -> bool:
    """a is at least as good as b on every objective and better on one."""
    better = False
    for metric, mode in objectives:
        x, y = a["metrics"].get(metric, math.nan), b["metrics"].get(metric, math.nan)
        if not (math.isfinite(x) and math.isfinite(y)):
            return False
        if (x < y) if mode == "max" else (x > y):
            return False
        better |= x != y
    return better


def pareto_front(rows: list[dict], objectives: list) -> list[dict]:
    """Full-budget trials that no other full-budget trial dominates, best first on the first objective."""
    candidates = [r for r in rows if all(math.isfinite(r["metrics"].get(m, math.nan)) for m, _ in objectives)]
    front = [r for r in candidates if not any(dominates(other, r, objectives) for other in candidates)]
    metric, mode = objectives[0]
    return sorted(front, key=lambda r: (-1 if mode == "max" else 1) * r["metrics"][metric])


def pick_from_front(front: list[dict], pick: str | None) -> dict:
    if pick is None:
        return front[0]
    if pick.isdigit():
        index = int(pick)
        if not 1 <= index <= len(front):
            raise ExportError(f"--pick {pick}: the Pareto front has {len(front)} points (pick 1..{len(front)} or a trial id)")
        return front[index - 1]
    for row in front:
        if row["trial_id"] == pick:
            return row
    raise ExportError(f"--pick {pick}: no Pareto-optimal trial with that id (front: {', '.join(r['trial_id'] for r in front)})")


def apply_confirmation(rows: list[dict], confirmation: dict | None) -> list[dict]:
    """Confirmed configurations first, in confirmed order; the rest keep the sweep's order."""
    if not confirmation or not confirmation.get("configs"):
        return rows
    order = {entry["trial_id"]: entry["rank"] for entry in confirmation["configs"] if entry["values_per_seed"]}
    confirmed = sorted((r for r in rows if r["trial_id"] in order), key=lambda r: order[r["trial_id"]])
    return confirmed + [r for r in rows if r["trial_id"] not in order]


def export_sweep(experiment: str, top: int = 5, quiet: bool = False, pick: str | None = None) -> dict:
    """Write best_config.json and leaderboard.csv; print the top trials. Returns the best row."""
    from sweeps.confirm import load_confirmation

    sweep = load_sweep(experiment)
    rows = rank(trial_rows(experiment, sweep), sweep)
    if not rows:
        raise ExportError(f"no trial of {experiment} has reported '{sweep['metric']}' yet")
    objectives = sweep.get("objectives") or [[sweep["metric"], sweep["mode"]]]
    confirmation = load_confirmation(experiment)
    front = None
    if len(objectives) > 1:
        full = [r for r in rows if r["metrics"].get("step", 0) >= sweep["base_config"]["max_steps"]]
        front = pareto_front(full or rows, objectives)
        if not front:
            raise ExportError(f"no trial of {experiment} has reported all of {', '.join(m for m, _ in objectives)}")
        best = pick_from_front(front, pick)
    else:
        if pick is not None:
            raise ExportError("--pick chooses a point of a multi-objective sweep's Pareto front; this sweep has one metric")
        rows = apply_confirmation(rows, confirmation)
        best = rows[0]
        if not math.isfinite(best["metrics"].get(sweep["metric"], math.nan)):
            raise ExportError(f"no trial of {experiment} reported a finite {sweep['metric']} "
                              f"({sum(r['status'] == 'DIVERGED' for r in rows)} of {len(rows)} diverged); nothing to export")
    best_path = storage.join(experiment, "best_config.json")
    document = {
        "config": best["config"].as_dict(),
        "provenance": {
            "sweep": sweep["name"],
            "experiment": experiment,
            "trial_id": best["trial_id"],
            "metric": sweep["metric"],
            "mode": sweep["mode"],
            "value": best["metrics"].get(sweep["metric"]),
            "step": best["metrics"].get("step"),
            "searched_values": best["values"],
            "data_hash": sweep["data_hash"],
            "pairs_split": sweep.get("pairs_split"),
            "validation": sweep.get("validation"),
            "code_version": sweep["code_version"],
            "space": sweep["space"],
            "search": sweep["search"],
            "scheduler": sweep["scheduler"],
            "selected_by": ("pareto_front" if front else "confirmation" if confirmation and confirmation.get("configs")
                            else "sweep_ranking"),
            "objectives": objectives,
            "metrics": {k: v for k, v in best["metrics"].items() if k in METRIC_COLUMNS or k == "pairs_acc_heldout"},
        },
        "final_command": final_command(experiment),
    }
    if confirmation and not front:
        document["provenance"]["confirmation"] = {
            "seeds": confirmation["seed_values"],
            "configs": [{k: e[k] for k in ("trial_id", "rank", "mean", "std", "heldout_mean", "heldout_std")}
                        for e in confirmation["configs"]],
            "difference": confirmation["difference"],
        }
    storage.write_text(best_path, json.dumps(document, indent=2))
    storage.write_text(storage.join(experiment, "leaderboard.csv"), leaderboard_csv(rows, sweep))
    if not quiet:
        print(summary_table(rows[:top], sweep))
        if front:
            print(pareto_table(front, objectives))
            print(f"exported Pareto point: {best['trial_id']} (choose another with --pick N or --pick <trial id>)")
        print(f"best config: {best_path}\nleaderboard: {storage.join(experiment, 'leaderboard.csv')}")
        print(f"final training: {document['final_command']}")
    return best


def summary_table(rows: list[dict], sweep: dict) -> str:
    metric = sweep["metric"]
    params = sorted({name for row in rows for name in row["values"]})
    header = f"{'rank':>4}  {'trial':<12} {'steps':>6} {metric:>12}  " + "  ".join(params)
    lines = [f"top {len(rows)} trials of {sweep['name']} by {metric} ({sweep['mode']}):", header]
    for position, row in enumerate(rows, start=1):
        value = row["metrics"].get(metric, math.nan)
        shown = "  ".join(_fmt(row["values"].get(p, "-")) for p in params)
        lines.append(f"{position:>4}  {row['trial_id']:<12} {row['metrics'].get('step', 0):>6} {value:>12.4f}  {shown}")
    return "\n".join(lines)


def pareto_table(front: list[dict], objectives: list) -> str:
    names = [m for m, _ in objectives]
    lines = [f"Pareto front ({len(front)} trials) over " + ", ".join(f"{m} ({d})" for m, d in objectives) + ":"]
    for position, row in enumerate(front, start=1):
        shown = "  ".join(f"{m}={row['metrics'][m]:.4f}" for m in names)
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(row["values"].items()))
        lines.append(f"  {position}. {row['trial_id']}  {shown}  [{values}]")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = ArgumentParser(prog="python sweeps/export.py", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="<storage>/<name> of a sweep")
    parser.add_argument("--top", type=int, default=5, help="trials to print")
    parser.add_argument("--pick", help="multi-objective sweeps: the Pareto point to export (its number in the printed "
                        "front, or a trial id; default 1, the best on the first metric)")
    args = parser.parse_args(argv)
    try:
        export_sweep(storage.normalise(args.experiment), top=args.top, pick=args.pick)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
