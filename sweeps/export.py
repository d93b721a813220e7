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

from sweeps import storage
from sweeps.results import (
    apply_confirmation,
    best_against_baseline,
    load_confirmation,
    pareto_front,
    rank,
    read_trials,
    reported,
    standard_error,
    winner_against_runner_up,
)
from sweeps.spec import SweepSpec
from trainer.cli import ArgumentParser
from trainer.errors import UserError
from trainer.metrics import column_names, lookup

# Each metric of the registry beside its standard error (trainer/metrics.py; trainer/evaluate.py
# says how each is computed), between where the trial stood and how fast it trained.
METRIC_COLUMNS = ("step", "words_seen", *column_names(), "tokens_per_s")


class ExportError(UserError):
    """The folder holds no exportable sweep; one line."""


def leaderboard_csv(rows: list[dict]) -> str:
    params = sorted({name for row in rows for name in row["values"]})
    # What only some runs report, as present: each paradigm's tuning accuracy, the BabyLM tasks.
    extra = sorted({k for row in rows for k in row["metrics"]
                    if k.startswith("pairs_acc/") or getattr(lookup(k), "needs_eval_data", False)})
    header = ["rank", "trial_id", "status", "state", "baseline", *params, *METRIC_COLUMNS, *extra, "reason"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for position, row in enumerate(rows, start=1):
        metrics = row["metrics"]
        writer.writerow(
            [position, row["trial_id"], row["status"], row["state"], "yes" if row.get("baseline") else "",
             *(row["values"].get(p, "") for p in params),
             *(metrics.get(m, "") for m in METRIC_COLUMNS), *(metrics.get(m, "") for m in extra), row.get("reason", "")]
        )
    return buffer.getvalue()


def final_command(experiment: str) -> str:
    return f"python sweeps/final.py {experiment}"


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


def export_sweep(experiment: str, top: int = 5, quiet: bool = False, pick: str | None = None) -> dict:
    """Write best_config.json and leaderboard.csv; print the top trials. Returns the best row."""
    spec = SweepSpec.load(experiment)
    rows = rank(reported(read_trials(spec), spec.metric), spec)
    if not rows:
        raise ExportError(f"no trial of {experiment} has reported '{spec.metric}' yet")
    confirmation = load_confirmation(spec)
    front = None
    if spec.multi_objective:
        full = [r for r in rows if r["metrics"].get("step", 0) >= spec.full_budget]
        front = pareto_front(full or rows, spec.objectives)
        if not front:
            raise ExportError(f"no trial of {experiment} has reported all of {', '.join(spec.objective_names)}")
        best = pick_from_front(front, pick)
    else:
        if pick is not None:
            raise ExportError("--pick chooses a point of a multi-objective sweep's Pareto front; this sweep has one metric")
        rows = apply_confirmation(rows, confirmation)
        best = rows[0]
        if not math.isfinite(best["metrics"].get(spec.metric, math.nan)):
            raise ExportError(f"no trial of {experiment} reported a finite {spec.metric} "
                              f"({sum(r['status'] == 'DIVERGED' for r in rows)} of {len(rows)} diverged); nothing to export")
    best_path = storage.join(experiment, "best_config.json")
    document = {
        "config": best["config"].as_dict(),
        "provenance": {
            "sweep": spec.name,
            "experiment": experiment,
            "trial_id": best["trial_id"],
            "metric": spec.metric,
            "mode": spec.mode,
            "value": best["metrics"].get(spec.metric),
            "step": best["metrics"].get("step"),
            "state": best["state"],
            "searched_values": best["values"],
            "data_hash": spec.data.data_hash,
            "pairs_split": spec.data.pairs_split,
            "validation": spec.data.validation,
            "code_version": spec.provenance.code_version,
            "space": spec.space.name,
            "search": spec.search.algorithm,
            "scheduler": spec.search.scheduler,
            "selected_by": ("pareto_front" if front else "confirmation" if confirmation and confirmation.get("configs")
                            else "sweep_ranking"),
            "objectives": [[o.metric, o.mode] for o in spec.objectives],
            "metrics": {k: v for k, v in best["metrics"].items()
                        if k in METRIC_COLUMNS or (lookup(k) is not None and "/" not in k)},
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
    # One sweep-ranked number per configuration: is the winner's lead more than noise? (A
    # confirmation, when it ran, answered that with fresh seeds instead.)
    noise = None if front or document["provenance"]["selected_by"] == "confirmation" else noise_statement(rows, spec)
    if noise:
        document["provenance"]["noise"] = noise
    gain = None if front else baseline_statement(rank(rows, spec), spec)
    document["provenance"]["early_stopping_decided_on"] = (
        None if spec.search.scheduler == "none" else {"metric": spec.decision.metric, "mode": spec.decision.mode})
    document["provenance"]["eval_precision"] = best.get("eval_precision")
    verdicts = {}
    for key, found in (("winner_vs_runner_up", None if front else winner_against_runner_up(rows, spec)),
                       ("best_vs_baseline", None if front else best_against_baseline(rank(rows, spec), spec))):
        if found is not None and found[0] is not found[1]:
            verdicts[key] = {"a": found[0]["trial_id"], "b": found[1]["trial_id"], **comparison_record(found[2])}
    if verdicts:
        document["provenance"]["verdicts"] = verdicts
    if gain:
        document["provenance"]["gain_over_baseline"] = gain
    storage.write_text(best_path, json.dumps(document, indent=2))
    storage.write_text(storage.join(experiment, "leaderboard.csv"), leaderboard_csv(rows))
    if not quiet:
        print(summary_table(rows[:top], spec))
        for statement in (noise, gain):
            if statement:
                print(statement)
        if front:
            print(pareto_table(front, spec))
            print(f"exported Pareto point: {best['trial_id']} (choose another with --pick N or --pick <trial id>)")
        print(f"best config: {best_path}\nleaderboard: {storage.join(experiment, 'leaderboard.csv')}")
        print(f"final training: {document['final_command']}")
    return best


def summary_table(rows: list[dict], spec: SweepSpec) -> str:
    metric = spec.metric
    params = sorted({name for row in rows for name in row["values"]})
    header = f"{'rank':>4}  {'trial':<12} {'state':<20} {metric + ' +- se':>18}  " + "  ".join(params)
    lines = [f"top {len(rows)} trials of {spec.name} by {metric} ({spec.mode}):", header]
    for position, row in enumerate(rows, start=1):
        value, se = row["metrics"].get(metric, math.nan), standard_error(row, metric)
        shown = "  ".join(_fmt(row["values"].get(p, "-")) for p in params)
        number = f"{value:.4f} +- {se:.4f}" if se is not None else f"{value:.4f}"
        lines.append(f"{position:>4}  {row['trial_id']:<12} {row['state']:<20} {number:>18}  {shown}")
    return "\n".join(lines)


def baseline_statement(rows: list[dict], spec: SweepSpec) -> str | None:
    """In words: the best trial's gain over the baseline (the base config), with its noise."""
    found = best_against_baseline(rows, spec)
    if found is None:
        return None
    best, baseline, comparison = found
    if best is baseline:
        return f"the baseline (trial {baseline['trial_id']}, the base config) is the best trial: nothing beat it"
    return "gain over the baseline: " + comparison.words(spec.metric, f"trial {best['trial_id']}",
                                                         f"the baseline (trial {baseline['trial_id']})")


def noise_statement(rows: list[dict], spec: SweepSpec) -> str | None:
    """In words: is the best trial's lead over the runner-up more than noise?"""
    found = winner_against_runner_up(rows, spec)
    if found is None:
        return None
    best, runner_up, comparison = found
    return comparison.words(spec.metric, f"trial {best['trial_id']} ({best['state']})",
                            f"the runner-up {runner_up['trial_id']} ({runner_up['state']})")


def comparison_record(comparison) -> dict:
    """A comparison as numbers (difference = a's lead in the metric's better direction): the paired
    test over shared items when there was one (the verdict), and the unpaired combined-SE figure."""
    def numbers(c):
        return {"difference": c.difference, "se": c.se, "z": c.z, "distinguishable": c.distinguishable}

    if comparison.paired_over:
        return {"test": "paired", "paired_over": comparison.paired_over, **numbers(comparison),
                "unpaired": numbers(comparison.unpaired) if comparison.unpaired is not None else None}
    return {"test": "unpaired", **numbers(comparison)}


def pareto_table(front: list[dict], spec: SweepSpec) -> str:
    names = spec.objective_names
    lines = [f"Pareto front ({len(front)} trials) over " + ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives) + ":"]
    for position, row in enumerate(front, start=1):
        shown = "  ".join(f"{m}={row['metrics'][m]:.4f}" + (f"+-{se:.4f}" if (se := standard_error(row, m)) is not None else "")
                          for m in names)
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(row["values"].items()))
        lines.append(f"  {position}. {row['trial_id']}  {shown}  [{values}]")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python sweeps/export.py", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="<storage>/<name> of a sweep")
    parser.add_argument("--top", type=int, default=5, help="trials to print")
    parser.add_argument("--pick", help="multi-objective sweeps: the Pareto point to export (its number in the printed "
                        "front, or a trial id; default 1, the best on the first metric)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        export_sweep(storage.normalise(args.experiment), top=args.top, pick=args.pick)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
