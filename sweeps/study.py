"""A study: the paper's ablation as one command, `python sweeps/run.py --space p_study`.

A study space (search_spaces/, with a `study:` section) lists a few configurations as a grid and
a number of seeds; the run trains every configuration with every seed at the full budget (no
early stopping, no search) and this module turns the trials into the study table:

- per configuration, over its seeds: the mean of each measure and its standard error
  (sample standard deviation / sqrt(seeds));
- for the first configuration against each other one, the difference seed by seed (the same
  seed fixes initialisation, data order and masks for both, so the differences are paired) and
  its 95% Student-t interval over seeds: the training noise a one-seed sweep cannot see;
- beside it, the paper's difference (from the space file) and whether the signs agree, and
  whether ours is distinguishable from 0 at this budget.

Measures: `pairs_acc_all` (every minimal pair, tuning and held-out: a study selects nothing, so
both parts are fair evidence), `pairs_acc_heldout`, `val_nelbo`. Written to
`<storage>/<name>/study.json` and printed; the report shows it.
"""

from __future__ import annotations

import json
import math
import statistics

from sweeps import storage
from sweeps.spec import SweepSpec
from sweeps.stats import CONFIDENCE, paired_difference

STUDY_FILE = "study.json"
# (measure, higher is better)
MEASURES = (("pairs_acc_all", True), ("pairs_acc_heldout", True), ("val_nelbo", False))


def all_pairs_accuracy(metrics: dict) -> float | None:
    """Accuracy over tuning and held-out pairs together, weighted by how many each part scored."""
    parts = [(metrics.get("pairs_acc"), metrics.get("pairs_scored")),
             (metrics.get("pairs_acc_heldout"), metrics.get("pairs_heldout_scored"))]
    parts = [(acc, n) for acc, n in parts if isinstance(acc, (int, float)) and isinstance(n, (int, float)) and n > 0]
    if not parts:
        return None
    return sum(acc * n for acc, n in parts) / sum(n for _, n in parts)


def _label(values: dict) -> str:
    return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in sorted(values.items()))


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values) if values else math.nan
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, se


def study_table(spec: SweepSpec, rows: list[dict]) -> dict:
    """The study document from the trial rows (sweeps.results.read_trials)."""
    space = spec.space.load()
    searched = [p.name for p in space.params]
    seeds = spec.study_seeds
    configs: dict[str, dict] = {}
    for point in space.grid_points(spec.search.include_optional):
        values = {k: point[k] for k in searched if k in point}
        configs[_label(values)] = {"values": values, "per_seed": {}}
    for row in rows:
        if row["state"] != "finished":
            continue  # a diverged, failed or short run is not a full-budget measurement
        values = {k: row["values"][k] for k in searched if k in row["values"]}
        entry = configs.get(_label(values))
        if entry is None:
            continue
        metrics = dict(row["metrics"])
        metrics["pairs_acc_all"] = all_pairs_accuracy(metrics)
        entry["per_seed"][int(row["values"].get("seed", row["config"].seed))] = metrics
    paper = (spec.space.study or {}).get("paper") or {}
    paper_scores = {_label(p["values"]): p.get("score") for p in paper.get("points", [])}
    summaries = []
    for label, entry in configs.items():
        summary = {"label": label, "values": entry["values"], "seeds": sorted(entry["per_seed"]),
                   "paper_score": paper_scores.get(label)}
        for measure, _ in MEASURES:
            per_seed = [entry["per_seed"][s].get(measure) for s in sorted(entry["per_seed"])]
            per_seed = [v for v in per_seed if isinstance(v, (int, float)) and math.isfinite(v)]
            summary[measure] = {"per_seed": per_seed, "mean": _mean_se(per_seed)[0], "se": _mean_se(per_seed)[1]}
        summaries.append(summary)
    differences = []
    if summaries:
        first = configs[summaries[0]["label"]]
        for other_summary in summaries[1:]:
            other = configs[other_summary["label"]]
            common = sorted(set(first["per_seed"]) & set(other["per_seed"]))
            difference = {"a": summaries[0]["label"], "b": other_summary["label"], "seeds": common}
            for measure, higher in MEASURES:
                pairs = [(first["per_seed"][s].get(measure), other["per_seed"][s].get(measure)) for s in common]
                pairs = [(x, y) for x, y in pairs if isinstance(x, (int, float)) and isinstance(y, (int, float))]
                if len(pairs) < 2:
                    difference[measure] = None
                    continue
                interval = paired_difference([x for x, _ in pairs], [y for _, y in pairs], CONFIDENCE)
                excludes_zero = interval["ci_low"] > 0 or interval["ci_high"] < 0
                difference[measure] = {**interval, "distinguishable": excludes_zero,
                                       "a_better": (interval["mean"] > 0) == higher}
            paper_a, paper_b = summaries[0]["paper_score"], other_summary["paper_score"]
            difference["paper"] = (paper_a - paper_b) if paper_a is not None and paper_b is not None else None
            sign = difference["paper"] if difference["paper"] is not None else paper.get("direction")
            difference["agreement"] = agreement(sign, difference.get("pairs_acc_all"))
            differences.append(difference)
    return {"study": spec.space.name, "description": spec.space.description, "budget_steps": spec.full_budget,
            "seeds": seeds, "confidence": CONFIDENCE, "paper": paper, "configs": summaries,
            "differences": differences}


def agreement(paper_difference: float | None, ours: dict | None) -> str:
    """Whether our all-pairs difference (a - b) points the paper's way (the sign of
    `paper_difference`), in words."""
    if ours is None:
        return "not measured (fewer than two seeds finished for both)"
    if not paper_difference:
        return "the paper's direction is not in the space file: compare by hand"
    same = (ours["mean"] > 0) == (paper_difference > 0)
    if same and ours["distinguishable"]:
        return "agrees with the paper (same sign, interval excludes 0)"
    if same:
        return "same sign as the paper, but the interval contains 0: not distinguishable at this budget"
    if ours["distinguishable"]:
        return "OPPOSITE to the paper (interval excludes 0)"
    return "opposite sign to the paper, but the interval contains 0: not distinguishable at this budget"


def format_study(document: dict) -> str:
    level = int(document["confidence"] * 100)
    lines = [f"study {document['study']}: {document['description']}",
             f"{len(document['seeds'])} seeds per configuration ({', '.join(map(str, document['seeds']))}), "
             f"{document['budget_steps']} steps each; mean ± standard error over seeds"]
    paper = document.get("paper") or {}
    header = f"  {'configuration':<40} {'pairs_acc (all)':>17} {'held-out pairs':>17} {'val_nelbo':>17}"
    if paper.get("metric"):
        header += f"  paper {paper['metric']}"
    lines.append(header)
    for config in document["configs"]:
        cells = [f"{config[m]['mean']:.4f} ± {config[m]['se']:.4f}" for m, _ in MEASURES]
        paper_cell = f"  {config['paper_score']:g}" if config.get("paper_score") is not None else ""
        lines.append(f"  {config['label']:<40} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17}{paper_cell}")
    for difference in document["differences"]:
        lines.append(f"  difference ({difference['a']}) - ({difference['b']}), paired by seed over "
                     f"{len(difference['seeds'])} seeds, {level}% t interval:")
        for measure, _ in MEASURES:
            d = difference.get(measure)
            if d is None:
                continue
            lines.append(f"    {measure:<18} {d['mean']:+.4f}  [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
                         + ("" if d["distinguishable"] else "  (contains 0)"))
        if difference["paper"] is not None:
            lines.append(f"    paper ({paper.get('metric', '')}, {paper.get('source', '')}): {difference['paper']:+.2f}")
        lines.append(f"    verdict: {difference['agreement']}")
    return "\n".join(lines)


def write_study(spec: SweepSpec, rows: list[dict]) -> dict:
    document = study_table(spec, rows)
    storage.write_text(storage.join(spec.experiment, STUDY_FILE), json.dumps(document, indent=2))
    print(format_study(document), flush=True)
    return document


def load_study(spec: SweepSpec) -> dict | None:
    path = storage.join(spec.experiment, STUDY_FILE)
    return json.loads(storage.read_text(path)) if storage.exists(path) else None
