"""A sweep's report as one static page: `python sweeps/report.py <storage>/<name>`.

Writes `<experiment>/report/`:
- index.html: header (what ran, on which data and code), optimisation history, parameter
  importance, metric against each searched parameter, learning curves of the top trials,
  per-paradigm minimal-pair accuracy, the leaderboard, and (when present) the confirmation
  runs and the Pareto front. No server, no external JS/CSS: figures are inlined as base64 and
  link to the PNG files beside the page.
- one PNG per figure, and data.json: the exact series each figure draws, read back from the
  matplotlib artists after plotting, so a test (or a reader) can check them against Tune's files.

Optuna's plots run on an in-memory study rebuilt from the trial results (sweeps/results.py),
with distributions from the search space recorded in sweep.json (the SweepSpec). For a
pyarrow.fs URI (s3://...) the report is built in a local temporary folder and uploaded to
`<experiment>/report/`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib
import numpy as np

matplotlib.use("Agg")  # headless: the report is written by drivers and CI, never shown

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.collections import FillBetweenPolyCollection, PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from sweeps import storage  # noqa: E402
from sweeps.export import leaderboard_csv  # noqa: E402
from sweeps.results import (  # noqa: E402
    best_against_baseline,
    load_confirmation,
    rank,
    read_trials,
    reported,
    rung_agreement,
    winner_against_runner_up,
)
from sweeps.spec import SweepSpec  # noqa: E402
from sweeps.schedulers import STOPS_FILE  # noqa: E402
from sweeps.stats import Z_95  # noqa: E402
from sweeps.study import MEASURES as STUDY_MEASURES  # noqa: E402
from sweeps.study import load_study  # noqa: E402
from trainer.cli import ArgumentParser  # noqa: E402
from trainer.errors import UserError  # noqa: E402
from trainer.metrics import chance  # noqa: E402

REPORT_DIR = "report"
TOP_CURVES = 5  # trials in the learning-curve figure
TOP_PARADIGMS = 3  # trials in the per-paradigm bar chart
HELDOUT = "pairs_acc_heldout"
PAIRS_PREFIXES = ("pairs_acc/", f"{HELDOUT}/")
DPI = 100


class ReportError(UserError):
    """The folder holds nothing to report on; one line."""


# --- the in-memory Optuna study -------------------------------------------------------------


def searched_names(spec: SweepSpec, rows: list[dict]) -> list[str]:
    """Searched parameters that some trial has a value for, in the space's order."""
    present = {name for row in rows for name in row["values"]}
    return [name for name in spec.space.search if name in present]


def distributions(spec: SweepSpec, rows: list[dict]) -> dict:
    """Optuna distributions of the searched parameters, from the space the sweep recorded.
    A categorical keeps the sampled objects themselves (a value read back from Tune's files
    may differ in type from the space's choice, e.g. 1 for 1.0)."""
    from optuna.distributions import CategoricalDistribution

    params = {p.name: p for p in spec.space.load().params}
    result = {}
    for name in searched_names(spec, rows):
        dist = params[name].distribution()
        if isinstance(dist, CategoricalDistribution):
            choices = list(dist.choices)
            for value in (row["values"][name] for row in rows if name in row["values"]):
                if value not in choices:
                    matches = [i for i, c in enumerate(choices) if str(c) == str(value)]
                    if matches:
                        choices[matches[0]] = value
                    else:
                        choices.append(value)
            dist = CategoricalDistribution(choices)
        result[name] = dist
    return result


def _params(row: dict, dists: dict) -> tuple[dict, dict]:
    params, used = {}, {}
    for name, dist in dists.items():
        if name in row["values"]:
            value = row["values"][name]
            params[name] = float(value) if type(dist).__name__ == "FloatDistribution" else value
            used[name] = dist
    return params, used


def stored_study(spec: SweepSpec):
    """The sweep's own Optuna study (sweep.json's `search.optuna_storage`), or None when the
    sweep kept none (grid search, storage SQLite cannot use) or it cannot be opened."""
    if not spec.search.optuna_storage:
        return None
    import optuna

    try:
        study = optuna.load_study(study_name=spec.study_name, storage=spec.search.optuna_storage)
    except Exception:  # noqa: BLE001 - missing database or study: the report rebuilds one
        return None
    # Warm-start trials (an earlier sweep's) are the sampler's prior, not this sweep's results.
    if any("warm_start_from" in t.user_attrs or "trial_id" not in t.user_attrs for t in study.trials):
        return None
    return study


def build_study(spec: SweepSpec, rows: list[dict], objectives: list[tuple[str, str]]):
    """An in-memory study with one trial per finished Tune trial, in creation order.

    As Ray's OptunaSearch tells the sampler: a trial that ended (early-stopped or not) is
    COMPLETE with its last reported value(s); an errored or non-finite one is FAIL."""
    import optuna
    from optuna.trial import TrialState, create_trial

    dists = distributions(spec, rows)
    directions = ["maximize" if mode == "max" else "minimize" for _, mode in objectives]
    study = optuna.create_study(directions=directions, study_name=spec.name)
    for row in rows:
        if row["status"] not in ("TERMINATED", "ERROR", "DIVERGED"):
            continue  # still running or pending: nothing final to show yet
        params, used = _params(row, dists)
        values = [row["metrics"].get(metric, math.nan) for metric, _ in objectives]
        complete = row["status"] == "TERMINATED" and all(math.isfinite(v) for v in values)
        intermediate = {}
        if len(objectives) == 1:
            intermediate = {int(r["step"]): r[objectives[0][0]] for r in row["history"]
                            if "step" in r and math.isfinite(r.get(objectives[0][0], math.nan))}
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE if complete else TrialState.FAIL,
                values=values if complete else None,
                params=params,
                distributions=used,
                intermediate_values=intermediate,
                user_attrs={"trial_id": row["trial_id"], "tune_status": row["status"]},
            )
        )
    return study


# --- noise: standard errors, chance, full-budget trials -----------------------------------


def is_accuracy(metric: str) -> bool:
    """A choice among options, with a chance level (the metric registry's `chance`: minimal-pair
    accuracies, overall and per paradigm)."""
    return chance(metric) is not None


def standard_error_in(record: dict, metric: str) -> float | None:
    """The standard error reported beside `metric` (`<metric>_se`) in one result, if any."""
    value = record.get(f"{metric}_se")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def nothing_learned(best: dict, metric: str) -> str | None:
    """The report's first sentence when the best trial's pair accuracy is within noise of chance
    (best - 0.5 <= 1.96 standard errors); None when it is not, or when no standard error says."""
    value, se = best["metrics"].get(metric), standard_error_in(best["metrics"], metric)
    level = chance(metric)
    if level is None or se is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if value - level > Z_95 * se:
        return None
    return (f"Nothing was learned at this budget: the best trial's {metric} {value:.3f} ± {se:.3f} (one standard "
            f"error) is within noise of chance ({level}): {value:.3f} − {level} = {value - level:+.3f} is no more "
            f"than 1.96 standard errors ({Z_95 * se:.3f}).")


def full_budget_split(spec: SweepSpec, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(trials that trained the full budget, trials stopped early), both finished with a finite
    metric. A stopped trial's number is from fewer steps: it must not sit beside full-budget ones."""
    finished = [r for r in rows if r["status"] == "TERMINATED"
                and math.isfinite(r["metrics"].get(spec.metric, math.nan))]
    full = [r for r in finished if r["metrics"].get("step", 0) >= spec.full_budget]
    return full, [r for r in finished if r not in full]


def budget_caption(full: int, stopped: int) -> str:
    """How many trials a figure rests on, for its caption."""
    trials = f"{full} full-budget trial{'s' if full != 1 else ''}"
    if not stopped:
        return f"from {trials} (none was stopped early)"
    return f"from {trials}; {stopped} stopped early {'is' if stopped == 1 else 'are'} left out"


def paradigm_pair_counts(metrics: dict, family: str, paradigms: list[str], cap: int | None) -> tuple[dict, str]:
    """Pairs scored per paradigm of one trial, and how that is known: "reported" (the trainer's
    `pairs_n/<paradigm>`, `pairs_heldout_n/<paradigm>`, or a `<family>/<paradigm>_n` key), "at
    the cap" (the trial scored as many pairs as `cap` per paradigm allows, so every paradigm has
    exactly `cap`), "at least" (the others hold at most `cap` each, which leaves this many at
    least: the standard errors are upper bounds), or "unknown" (empty dict).

    The trial's total comes from the trainer's `pairs_scored` / `pairs_heldout_scored` (or a
    `<family>_scored`) key, else from its binomial standard error: n = p (1 - p) / se^2."""
    stem = family.replace("_acc", "")  # the trainer's names: pairs_acc -> pairs, pairs_acc_heldout -> pairs_heldout
    counts = {p: metrics.get(f"{stem}_n/{p}", metrics.get(f"{family}/{p}_n")) for p in paradigms}
    if all(isinstance(n, (int, float)) and n > 0 for n in counts.values()):
        return counts, "reported"
    total = metrics.get(f"{stem}_scored", metrics.get(f"{family}_scored"))
    p, se = metrics.get(family), standard_error_in(metrics, family)
    if total is None and isinstance(p, (int, float)) and se:
        total = round(p * (1 - p) / se ** 2)
    if not total or not cap:
        return {}, "unknown"
    fewest = total - (len(paradigms) - 1) * cap
    if fewest >= cap:
        return dict.fromkeys(paradigms, cap), "at the cap"
    if fewest >= 1:
        return dict.fromkeys(paradigms, fewest), "at least"
    return {}, "unknown"


# --- figures: data in, figure out ---------------------------------------------------------


def _optuna_figure(axes) -> Figure:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def _scatter_with_errors(ax, points: list[tuple[float, float, float | None]], **style) -> None:
    """(x, y, se) points with vertical ±1.96 SE bars where the SE is known, in the points' colour."""
    ax.scatter([x for x, _, _ in points], [y for _, y, _ in points], zorder=3, **style)
    known = [(x, y, se) for x, y, se in points if se is not None]
    if known:
        colour = style.get("color", style.get("edgecolors", "black"))
        ax.errorbar([x for x, _, _ in known], [y for _, y, _ in known], yerr=[Z_95 * se for _, _, se in known],
                    fmt="none", ecolor=colour, elinewidth=1.2, capsize=3, alpha=0.8, zorder=2,
                    label=f"_{style.get('label', '')} ±1.96 SE")


def _chance_line(ax, metric: str, axis: str = "y") -> None:
    """The chance level of a two-way choice on an accuracy axis; autoscaling keeps it in view. A
    horizontal line is also named on itself (not every panel has a legend); a vertical one (bars
    by paradigm, Pareto front) is named in the legend, as text would cross the bars."""
    level = chance(metric)
    if level is None:
        return
    style = {"color": "black", "alpha": 0.7}
    if axis == "y":
        ax.axhline(level, linestyle="--", linewidth=1, label="chance", zorder=1, **style)
        ax.text(0.995, level, "chance", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8, **style)
    else:
        ax.axvline(level, linestyle="--", linewidth=1, label="chance", zorder=1, **style)


def _metric_axis(ax, metric: str) -> None:
    ax.set_ylabel(metric)
    _chance_line(ax, metric)
    ax.grid(alpha=0.3)


def _log_axis(axis) -> None:
    """A log axis labelled with plain numbers (1, 2, 5 per decade), never overlapping minor
    labels such as "2×10⁰3×10⁰"."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def _spread(points: list[tuple], width: float = 0.3) -> list[tuple]:
    """Points (x, ...) in their order, those that share an x spread evenly over `width` around it
    so that none hides another (categorical choices, integer parameters)."""
    counts, seen, out = Counter(p[0] for p in points), Counter(), []
    for x, *rest in points:
        count, index = counts[x], seen[x]
        seen[x] += 1
        out.append((x + (index / (count - 1) - 0.5) * width if count > 1 else x, *rest))
    return out


def _integers(points: list[tuple]) -> bool:
    """An integer parameter: every x a whole number (bools are categorical, not integers)."""
    return all(isinstance(p[0], int) and not isinstance(p[0], bool) for p in points)


def _panel_grid(count: int, width: float = 5.0, height: float = 4.0, columns: int = 3):
    """A figure with `count` panels, at most `columns` to a row (wide figures shrink unreadably)."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(max(6, width * columns), height * rows), layout="constrained")
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for extra in axes[count:]:
        fig.delaxes(extra)
    return fig, axes[:count]


def optimization_history_figure(trials: list[dict], metric: str, mode: str = "max") -> Figure:
    """trials: {"number", "value", "se", "full_budget"} per finished trial: its value by Optuna trial
    number with ±1.96 SE bars (hollow: stopped early, a lower-budget value), and the best
    full-budget value so far."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    full = [(t["number"], t["value"], t["se"]) for t in trials if t["full_budget"]]
    stopped = [(t["number"], t["value"], t["se"]) for t in trials if not t["full_budget"]]
    colour = matplotlib.colormaps["tab10"](0)
    if full:
        _scatter_with_errors(ax, full, color=colour, s=36, label=f"{metric} (full budget)")
        best = np.maximum.accumulate if mode == "max" else np.minimum.accumulate
        ax.plot([x for x, _, _ in full], best([y for _, y, _ in full]), drawstyle="steps-post", color="tab:red",
                label="best so far (full budget)")
    if stopped:
        _scatter_with_errors(ax, stopped, facecolors="none", edgecolors=colour, s=36,
                             label="stopped early (lower-budget value)")
    ax.set_xlabel("trial number (Optuna)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    known = any(t["se"] is not None for t in trials)
    ax.set_title(f"{metric} of each finished trial " + ("(bars: ±1.96 SE)" if known else "(no standard error reported)"))
    _metric_axis(ax, metric)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4)  # below: bars fill the axes
    return fig


def importance_figure(study, metric: str, evaluator) -> Figure:
    from optuna.visualization.matplotlib import plot_param_importances

    fig = _optuna_figure(plot_param_importances(study, evaluator=evaluator, target_name=metric))
    fig.set_size_inches(8, max(2.5, 0.6 * len(study.best_trial.params) + 1.5))
    return fig


def slice_figure(points: dict[str, list[tuple]], metric: str, log_scaled: frozenset = frozenset(),
                 categories: dict[str, list[str]] | None = None) -> Figure:
    """points[parameter] = [(value, metric, se), ...]: one panel per parameter, ±1.96 SE bars.
    Categorical parameters (`categories[name]`: their choices, in order) sit at evenly spaced
    positions, the trials of one choice spread a little so that none hides another."""
    categories = categories or {}
    fig, axes = _panel_grid(len(points))
    colour = matplotlib.colormaps["tab10"](0)
    for ax, (name, pts) in zip(axes, points.items()):
        if name in categories:
            choices = categories[name]
            pts = _spread([(choices.index(str(value)), y, se) for value, y, se in pts])
            long = max(map(len, choices)) > 6
            ax.set_xticks(range(len(choices)), choices, rotation=20 if long else 0, ha="right" if long else "center")
            ax.set_xlim(-0.5, len(choices) - 0.5)
        elif name in log_scaled:
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
        elif _integers(pts):
            pts = _spread(pts)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _scatter_with_errors(ax, pts, color=colour, s=36, edgecolors="black", linewidths=0.5)
        ax.set_xlabel(name)
        ax.set_title(f"{metric} vs {name}")
        _metric_axis(ax, metric)
    return fig


def metric_vs_params_figure(points: dict[str, list[tuple[float, float, str, float | None]]], metric: str,
                            log_scaled: frozenset = frozenset()) -> Figure:
    """One panel per numeric parameter: (value, metric, schedule, se) points with ±1.96 SE bars, one
    colour per schedule; log-searched parameters on a log axis."""
    fig, axes = _panel_grid(len(points))
    schedules = sorted({s for pts in points.values() for _, _, s, _ in pts})
    colours = {s: matplotlib.colormaps["tab10"](i % 10) for i, s in enumerate(schedules)}
    for ax, name in zip(axes, points):
        integers = name not in log_scaled and _integers(points[name])
        shown = _spread(points[name]) if integers else points[name]
        for schedule in schedules:
            group = [(x, y, se) for x, y, s, se in shown if s == schedule]
            if group:
                _scatter_with_errors(ax, group, color=colours[schedule], label=f"schedule = {schedule}", s=40,
                                     edgecolors="black", linewidths=0.5)
        if integers:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        elif name in log_scaled:
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
        ax.set_xlabel(name)
        ax.set_title(f"{metric} vs {name}")
        _metric_axis(ax, metric)
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)  # below: points fill the axes
    return fig


def learning_curves_figure(curves: dict[str, dict[str, list[tuple]]], panels: list[str]) -> Figure:
    """curves[trial_label][metric] = [(step, value, se), ...]: one panel per metric, one line per
    trial with its ±1.96 SE band shaded (where the SE is known)."""
    fig = Figure(figsize=(6 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, metric in zip(axes, panels):
        banded = False
        for i, (label, series) in enumerate(curves.items()):
            points = series.get(metric) or []
            if not points:
                continue
            # Shrinking markers of different shapes keep identical curves all visible.
            (line,) = ax.plot([s for s, _, _ in points], [v for _, v, _ in points], marker="osD^v"[i % 5],
                              markersize=9 - 1.2 * (i % 5), linewidth=2.2 - 0.3 * (i % 5), label=label)
            known = [(s, v, se) for s, v, se in points if se is not None]
            if known:  # labelled as its line: data.json pairs them; the legend shows lines only
                banded = True
                ax.fill_between([s for s, _, _ in known], [v - Z_95 * se for _, v, se in known],
                                [v + Z_95 * se for _, v, se in known], color=line.get_color(), alpha=0.12,
                                linewidth=0, label=label)
        ax.set_xlabel("step")
        steps = sorted({s for series in curves.values() for s, _, _ in series.get(metric) or []})
        if len(steps) <= 8:
            ax.set_xticks(steps)  # the evaluations themselves
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Without a band the spread of the curves has no scale: say so rather than let it pass as one.
        ax.set_title(f"{metric} by step " + ("(shaded: ±1.96 SE)" if banded else "(no standard error reported)"))
        _metric_axis(ax, metric)
    # Below the panel (curves and bands fill it); lines only, each band is its line's.
    axes[0].legend(handles=axes[0].lines, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    return fig


def paradigm_figure(bars: dict[str, dict[str, dict[str, float]]],
                    errors: dict[str, dict[str, dict[str, float]]] | None = None, by: str = "paradigm") -> Figure:
    """bars[family][trial_label][paradigm] = accuracy: grouped horizontal bars, a panel per family
    (pairs_acc, and pairs_acc_heldout when reported per paradigm); errors (same keys) = the
    binomial standard error of a bar, drawn as ±1.96 SE (bars without one have none)."""
    errors = errors or {}
    families = list(bars)
    paradigms = sorted({p for family in bars.values() for per in family.values() for p in per})
    most_trials = max(len(per_trial) for per_trial in bars.values())
    height = max(3.0, 0.16 * len(paradigms) * most_trials + 1.2)
    fig = Figure(figsize=(8 * len(families), height), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, family in zip(axes, families):
        trials = list(bars[family])
        width = 0.8 / max(1, len(trials))
        low, high = 0.0, 1.0
        for i, label in enumerate(trials):
            per = bars[family][label]
            shown = [p for p in paradigms if p in per]
            ys = [j - 0.4 + width * (i + 0.5) for j, p in enumerate(paradigms) if p in per]
            ses = errors.get(family, {}).get(label, {})
            half = [Z_95 * ses[p] if p in ses else math.nan for p in shown]
            ax.barh(ys, [per[p] for p in shown], height=width, label=label,
                    xerr=half if any(math.isfinite(h) for h in half) else None,
                    error_kw={"ecolor": "black", "elinewidth": 1, "capsize": 2})
            bounds = [(per[p] - h, per[p] + h) for p, h in zip(shown, half) if math.isfinite(h)]
            low, high = min([low, *(lo for lo, _ in bounds)]), max([high, *(hi for _, hi in bounds)])
        ax.set_yticks(range(len(paradigms)), paradigms, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(low - 0.02, high + 0.02)  # accuracy's whole range, wider where an error bar reaches past it
        _chance_line(ax, family, axis="x")
        ax.set_xlabel(f"{family} (accuracy)")
        ax.set_title(f"{family} by {by}")
        # Below the panel: inside, it would cover bars and their error bars.
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4)
    return fig


def confirmation_figure(configs: list[dict], metric: str) -> Figure:
    """Mean ± std over seeds per confirmed config (held-out beside it when present), seeds as dots.
    Configs whose confirmation runs all failed (no values) are left out."""
    configs = [c for c in configs if c.get("values_per_seed")]
    fig = Figure(figsize=(max(5, 1.8 * len(configs) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    labels = [f"#{c.get('rank')} {c.get('trial_id')}" for c in configs]
    has_heldout = any(c.get("heldout_mean") is not None for c in configs)
    width = 0.38 if has_heldout else 0.6
    xs = list(range(len(configs)))
    main_x = [x - width / 2 for x in xs] if has_heldout else xs
    ax.bar(main_x, [c["mean"] for c in configs], width=width, yerr=[_finite_or_zero(c.get("std")) for c in configs],
           capsize=5, label=f"{metric} (mean ± std)")
    for x, c in zip(main_x, configs):
        seeds = c.get("values_per_seed") or []
        ax.scatter([x] * len(seeds), seeds, color="black", s=14, zorder=3,
                   label="per seed" if x == main_x[0] else None)
    if has_heldout:
        pairs = [(x + width / 2, c) for x, c in zip(xs, configs) if c.get("heldout_mean") is not None]
        ax.bar([x for x, _ in pairs], [c["heldout_mean"] for _, c in pairs], width=width,
               yerr=[_finite_or_zero(c.get("heldout_std")) for _, c in pairs], capsize=5, label=f"{HELDOUT} (mean ± std)")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel(metric)
    _chance_line(ax, metric)
    ax.set_title("confirmation runs over seeds")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)  # below: bars fill the axes
    return fig


def _finite_or_zero(value) -> float:
    """A standard deviation to draw: none (one seed: NaN or null) draws as no error bar."""
    return float(value) if value is not None and math.isfinite(value) else 0.0


def pareto_figure(study, names: list[str], standard_errors: dict[int, list[float | None]] | None = None) -> Figure:
    """Optuna's Pareto-front plot; for two objectives, ±1.96 SE bars on both axes
    (standard_errors[trial number] = one SE per objective, None where unknown) and the chance
    line on an accuracy axis."""
    from optuna.visualization.matplotlib import plot_pareto_front

    fig = _optuna_figure(plot_pareto_front(study, target_names=names))
    fig.set_size_inches(7, 5)
    if len(names) == 2:
        ax = fig.axes[0]
        for trial in study.trials:
            ses = (standard_errors or {}).get(trial.number)
            if trial.values is None or not ses or all(se is None for se in ses):
                continue
            x_se, y_se = ses
            ax.errorbar(*trial.values, xerr=None if x_se is None else Z_95 * x_se,
                        yerr=None if y_se is None else Z_95 * y_se, fmt="none", ecolor="grey", elinewidth=1,
                        capsize=2, zorder=1, label=f"_trial {trial.number} ±1.96 SE")
        for points in ax.collections:  # Optuna's "Best Trial" reads as one winner; they are the front
            points.set_label({"Best Trial": "Pareto-optimal", "Trial": "dominated"}.get(points.get_label(),
                                                                                      points.get_label()))
        _chance_line(ax, names[0], axis="x")
        _chance_line(ax, names[1], axis="y")
        ax.legend(fontsize=8)
    return fig


# --- figure data read back from the artists ------------------------------------------------


def figure_data(fig) -> list[dict]:
    """What each axes draws: lines (x, y), scatter points, bar values with tick labels, error bars
    (each bar's low and high end), shaded bands (lower and upper edge by x), the axis limits and
    the axes' offset texts (empty: the tick labels are the numbers themselves)."""
    out = []
    for ax in fig.axes:
        entry = {
            "title": ax.get_title(),
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "xlim": _plain(list(ax.get_xlim())),
            "ylim": _plain(list(ax.get_ylim())),
            "offsets": [ax.xaxis.get_offset_text().get_text(), ax.yaxis.get_offset_text().get_text()],
            "lines": [{"label": line.get_label(), "x": _plain(line.get_xdata()), "y": _plain(line.get_ydata())}
                      for line in ax.lines],
            "scatters": [{"label": c.get_label(), "points": _plain(c.get_offsets())}
                         for c in ax.collections if isinstance(c, PathCollection)],
            "bands": [_band(c) for c in ax.collections if isinstance(c, FillBetweenPolyCollection)],
            "errorbars": [],
            "bars": [],
            "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
            "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
        }
        of_bars = set()
        for container in ax.containers:
            if isinstance(container, BarContainer):
                horizontal = getattr(container, "orientation", "vertical") == "horizontal"
                positions = [p.get_y() + p.get_height() / 2 if horizontal else p.get_x() + p.get_width() / 2
                             for p in container.patches]
                bar = {"label": container.get_label(), "orientation": "horizontal" if horizontal else "vertical",
                       "positions": _plain(positions), "values": _plain(container.datavalues)}
                if container.errorbar is not None:
                    of_bars.add(id(container.errorbar))
                    bar["errors"] = _error_ends(container.errorbar)[0]
                entry["bars"].append(bar)
        for container in ax.containers:
            if isinstance(container, ErrorbarContainer) and id(container) not in of_bars:
                for ends in _error_ends(container):
                    entry["errorbars"].append({"label": container.get_label(), **ends})
        out.append(entry)
    return out


def _error_ends(container: ErrorbarContainer) -> list[dict]:
    """Each error-bar collection of an errorbar() call: {"axis": the axis the bars run along,
    "at": their position on the other axis, "low", "high": their ends}."""
    out = []
    along_axes = ["x"] * container.has_xerr + ["y"] * container.has_yerr  # matplotlib's order
    for axis, collection in zip(along_axes, container.lines[2]):
        along, across = (0, 1) if axis == "x" else (1, 0)
        segments = collection.get_segments()
        out.append({"axis": axis, "at": _plain([float(s[0][across]) for s in segments]),
                    "low": _plain([float(min(s[0][along], s[1][along])) for s in segments]),
                    "high": _plain([float(max(s[0][along], s[1][along])) for s in segments])})
    return out


def _band(collection) -> dict:
    """A fill_between band as its lower and upper edge at each x (the polygon's vertices)."""
    edges: dict[float, list[float]] = {}
    for path in collection.get_paths():
        for x, y in path.vertices:
            edges.setdefault(float(x), []).append(float(y))
    xs = sorted(edges)
    return {"label": collection.get_label(), "x": xs, "lower": [min(edges[x]) for x in xs],
            "upper": [max(edges[x]) for x in xs]}


def _plain(values):
    """numpy/masked arrays -> JSON lists (NaN/masked -> None)."""
    if isinstance(values, np.ma.MaskedArray):
        values = values.filled(np.nan)
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [_plain(v) for v in values]
    if isinstance(values, float) and not math.isfinite(values):
        return None
    if isinstance(values, (int, float, str)) or values is None:
        return values
    return str(values)


# --- the page -------------------------------------------------------------------------------


def _no_offsets(fig) -> None:
    """Tick labels that are the numbers themselves: matplotlib's offset notation ("+6.961" in a
    corner) zooms a reader into differences far smaller than the noise without saying so."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis, getattr(ax, "zaxis", None)):
            if axis is not None and isinstance(axis.get_major_formatter(), ScalarFormatter):
                axis.get_major_formatter().set_useOffset(False)


@contextmanager
def _report_context():
    """Optuna's matplotlib plots are 'experimental' (a warning each) and set the ggplot style
    globally; study creation logs at INFO. Keep all of that inside the report, and give every
    figure, ours too, Optuna's ggplot look."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A slice of one trial has a zero-width axis; matplotlib widens it and says so.
            warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
            plt.style.use("ggplot")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


class _Page:
    """Collects sections, saves figures as PNG (plus their data) and writes index.html."""

    def __init__(self, out_dir: Path, inline_images: bool):
        self.out_dir, self.inline = out_dir, inline_images
        self.sections: list[tuple[str, str, str]] = []  # (anchor, title, html)
        self.figures: dict[str, dict] = {}

    def figure(self, name: str, fig, caption: str) -> str:
        """Save `fig` as <name>.png, record its data, close it; the <figure> html."""
        path = self.out_dir / f"{name}.png"
        _no_offsets(fig)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        # Read back after drawing: automatic tick labels exist only once the figure is drawn.
        self.figures[name] = {"file": path.name, "caption": caption, "axes": figure_data(fig)}
        plt.close(fig)  # a no-op for a bare Figure; frees Optuna's pyplot figures
        src = f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}" if self.inline else path.name
        return (f'<figure><a href="{path.name}"><img src="{src}" alt="{html.escape(caption)}"></a>'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def section(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def write(self, title: str, header: str) -> Path:
        toc = " · ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in self.sections)
        body = "\n".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>\n{b}\n</section>' for a, t, b in self.sections)
        page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
                f"<h1>{html.escape(title)}</h1>\n{header}\n<nav>{toc}</nav>\n{body}\n</body></html>\n")
        index = self.out_dir / "index.html"
        index.write_text(page, encoding="utf-8")
        return index


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1250px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
nav{margin:1em 0;font-size:.95em} a{color:#0b5cad}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0} th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f3f3f3} td.text,th.text{text-align:left} tr.best td{background:#eef7ee}
.scroll{overflow-x:auto} .note{color:#555;font-style:italic}
.warning{background:#fff4e0;border-left:4px solid #e69500;padding:.4em .7em}
.headline{font-size:1.15em;font-weight:600}
.verdict{background:#eef7ee;border-left:4px solid #3a9a3a;padding:.4em .7em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:.85em;color:#555}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em} dt{font-weight:600} dd{margin:0}
"""


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return "–" if math.isnan(value) else f"{value:.4g}"
    return "–" if value is None else str(value)


def _table(header: list[str], rows: list[list], text_columns: set[int] = frozenset(), highlight: set[int] = frozenset()) -> str:
    def cell(tag, i, value):
        cls = ' class="text"' if i in text_columns else ""
        return f"<{tag}{cls}>{html.escape(_fmt(value))}</{tag}>"

    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"
    body = "".join(
        f'<tr{" class=best" if r in highlight else ""}>' + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
        for r, row in enumerate(rows)
    )
    return f'<div class="scroll"><table>{head}{body}</table></div>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def header_html(spec: SweepSpec, rows: list[dict], experiment: str) -> str:
    counts = Counter("stopped early" if row["state"].startswith("stopped") else row["state"] for row in rows)
    with_results = len(reported(rows, spec.metric))
    space_lines = [f"{k} = {v}" for k, v in spec.space.fixed.items()]
    space_lines += [f"{p.name}: {p.describe()}" for p in spec.space.load().params]
    config = spec.base_config
    items = [
        ("sweep", spec.name),
        ("experiment", experiment),
        ("space", f"{spec.space.name} — {spec.space.description}"),
        ("space definition", "; ".join(space_lines) or "–"),
        ("search", spec.search.algorithm + (" (optional parameters searched)" if spec.search.include_optional else "")),
        ("scheduler", spec.search.scheduler),
        ("objective", ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives)),
        ("trials", f"{len(rows)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}); "
                   f"{with_results} reported {spec.metric}"),
        ("budget", f"{config.max_steps} steps per trial, preset {config.preset}"),
        ("data hash", spec.data.data_hash),
        ("code version", spec.provenance.code_version),
        ("created", spec.provenance.created),
        ("command", spec.provenance.command),
        ("report written", time.strftime("%Y-%m-%d %H:%M:%S")),
    ]
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items) + "</dl>"


def objectives_of(spec: SweepSpec) -> list[tuple[str, str]]:
    return [(o.metric, o.mode) for o in spec.objectives]


def schedule_of(row: dict, spec: SweepSpec) -> str:
    return str(row["values"].get("schedule", spec.base_config.schedule))


def _label(row: dict, position: int) -> str:
    return f"#{position} {row['trial_id']}"


def leaderboard_rows(csv_text: str, rows: list[dict]) -> tuple[list[str], list[list]]:
    """The leaderboard CSV as (header, rows), with pairs_acc_heldout beside pairs_acc when the
    results have it and the CSV does not (export.py's columns predate it)."""
    table = list(csv.reader(io.StringIO(csv_text)))
    header, body = table[0], [r for r in table[1:] if r]
    by_id = {row["trial_id"]: row["metrics"] for row in rows}
    if HELDOUT not in header and any(HELDOUT in m for m in by_id.values()):
        where = header.index("pairs_acc") + 1 if "pairs_acc" in header else len(header)
        id_col = header.index("trial_id")
        header = header[:where] + [HELDOUT] + header[where:]
        body = [r[:where] + [by_id.get(r[id_col], {}).get(HELDOUT, "")] + r[where:] for r in body]

    def number(cell):
        try:
            return int(cell) if re.fullmatch(r"-?\d+", str(cell)) else float(cell)
        except (TypeError, ValueError):
            return cell

    # Numbers for the numeric columns, so they are formatted alike (a hex trial id such as
    # "1e512345" must stay text).
    keep = {i for i, name in enumerate(header) if name in ("trial_id", "status", "state")}
    return header, [[c if i in keep else number(c) for i, c in enumerate(r)] for r in body]


def render_report(
    spec: SweepSpec,
    rows: list[dict],
    out_dir: Path,
    *,
    experiment: str = "",
    leaderboard_text: str | None = None,
    confirmation: dict | None = None,
    study_document: dict | None = None,
    inline_images: bool = True,
) -> Path:
    """Write index.html, the PNGs and data.json for these rows into `out_dir`; returns index.html.
    No Ray here: the rows are `results.read_trials`' (or a test's) plain dicts."""
    metric, mode = spec.metric, spec.mode
    ranked = rank(reported(rows, metric), spec)
    if not ranked:
        raise ReportError(f"no trial of {experiment or spec.name} has reported '{metric}' yet")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [*out_dir.glob("*.png"), out_dir / "index.html", out_dir / "data.json"]:
        old.unlink(missing_ok=True)  # idempotent: a figure left out this time must not linger
    page = _Page(out_dir, inline_images)
    objectives = objectives_of(spec)
    extra: dict = {}
    with _report_context():
        # The sweep's own study when it kept one (what optuna-dashboard shows too); else one
        # rebuilt from Tune's results.
        study = (stored_study(spec) if not spec.multi_objective else None) or build_study(spec, rows, [(metric, mode)])
        extra["study_trials"] = [
            {"number": t.number, "trial_id": t.user_attrs["trial_id"], "state": t.state.name, "value": t.value}
            for t in study.trials
        ]
        if study_document:
            # A study's answer is its table over seeds; its "best trial" is one lucky seed (two seeds
            # of one configuration differ well beyond the evaluation's noise), so none is named.
            _study_section(page, study_document)
        else:
            _best_section(page, spec, ranked, confirmation)
        _history_section(page, spec, study, rows, metric)
        _importance_section(page, spec, rows, metric, extra)
        _parameters_section(page, spec, rows, metric)
        _rungs_section(page, spec, rows, extra)
        _curves_section(page, ranked, metric)
        _paradigm_section(page, spec, ranked)
        _suite_section(page, ranked)
        _leaderboard_section(page, spec, ranked, leaderboard_text)
        if confirmation:
            _confirmation_section(page, confirmation)
        if len(objectives) > 1:
            _pareto_section(page, spec, rows, objectives, extra)
    # The first thing a reader sees, when it is true: a chance-level winner is no winner.
    headline = nothing_learned(ranked[0], metric)
    data = {"experiment": experiment, "metric": metric, "mode": mode, "headline": headline, **extra,
            "figures": page.figures}
    (out_dir / "data.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    header = header_html(spec, rows, experiment)
    if headline:
        header = f'<p class="warning headline">{html.escape(headline)}</p>' + header
    return page.write(f"Sweep report: {spec.name}", header)


def _best_section(page: _Page, spec: SweepSpec, ranked: list[dict], confirmation: dict | None) -> None:
    best, metric = ranked[0], spec.metric
    full = spec.full_budget
    values = ", ".join(f"{k} = {_fmt(v)}" for k, v in best["values"].items())
    se = best["metrics"].get(f"{metric}_se")
    shown = _fmt(best["metrics"][metric]) + (f" ± {_fmt(se)}" if isinstance(se, (int, float)) and math.isfinite(se) else "")
    text = (f"<p>Best trial <b>{html.escape(best['trial_id'])}</b>: {html.escape(metric)} = "
            f"<b>{shown}</b> after {best['metrics'].get('step', '?')} of {full} steps; "
            f"{html.escape(values)}.</p>")
    if best["metrics"].get("step", 0) < full:
        text += _note("No trial trained its full budget; the best is an early-stopped trial.")
    found = winner_against_runner_up(ranked, spec)
    if found is not None and not (confirmation or {}).get("configs"):
        _, _, comparison = found
        words = comparison.words(metric, f"the best trial ({found[0]['trial_id']}, {found[0]['state']})",
                                 f"the runner-up ({found[1]['trial_id']}, {found[1]['state']})")
        text += f'<p class="{"verdict" if comparison.distinguishable else "warning"}">{html.escape(words)}.</p>'
    se = best["metrics"].get(f"{metric}_se")
    if isinstance(se, (int, float)) and math.isfinite(se):
        text += _note("± is one standard error of the number on this evaluation set (pairs: binomial over the "
                      "pairs scored; validation: over the rows scored).")
    text += _note("Verdicts compare two trials on the items both scored (the same pairs; the same rows with the same "
                  "masks): the paired standard error comes from the items on which they differ, and the unpaired "
                  "figure (the two numbers' own errors combined) stands beside it. A paired verdict says the two "
                  "trained models differ on this kind of item beyond the luck of which items were drawn; it cannot "
                  "say how much a configuration's number moves with its training seed: that is what --confirm "
                  "and the study spaces measure.")
    confirmed = [c for c in (confirmation or {}).get("configs") or [] if c.get("values_per_seed")]
    if confirmed:
        text += (f"<p>Retrained over seeds, the confirmed winner is <b>{html.escape(str(confirmed[0].get('trial_id')))}</b> "
                 f'(see <a href="#confirmation">confirmation</a>).</p>')
    against = best_against_baseline(ranked, spec)
    if against is not None:
        top, baseline, comparison = against
        if top is baseline:
            text += ('<p class="warning">The baseline (the base config, run first) is the best trial: no point of '
                     'the space beat it at this budget.</p>')
        else:
            words = comparison.words(metric, f"the best trial ({top['trial_id']})", f"the baseline ({baseline['trial_id']}, "
                                     "the base config)")
            text += f'<p class="{"verdict" if comparison.distinguishable else "warning"}">Gain over the baseline: {html.escape(words)}.</p>'
    elif spec.search.baseline_note:
        text += _note(spec.search.baseline_note + ".")
    if spec.search.warm_start:
        text += _note(spec.search.warm_start.summary() + ".")
    page.section("best", "Best trial", text)


def _rungs_section(page: _Page, spec: SweepSpec, rows: list[dict], extra: dict) -> None:
    """Kendall's tau between each rung's metric and the full budget's: does early stopping keep
    the trials that end best?"""
    table = rung_agreement(rows, spec)
    extra["rung_agreement"] = table
    stopped = {}
    for row in rows:
        if row["state"].startswith("stopped at step "):
            step = int(row["state"].rsplit(" ", 1)[1])
            stopped[step] = stopped.get(step, 0) + 1
    if not table:
        body = _note("Fewer than two trials trained the full budget with an evaluation before it, so whether "
                     "low-budget rankings predict final ones cannot be checked here.")
        page.section("rungs", "Does early stopping stop the right trials?", body)
        return
    decision = spec.decision
    body = (f"<p>Early stopping ({html.escape(spec.search.scheduler)}) decided every stop on "
            f"<b>{html.escape(decision.metric)}</b> ({html.escape(decision.mode)}). Each row compares the trials' "
            f"{html.escape(decision.metric)} at an evaluation before the full budget ({spec.full_budget} steps) with "
            f"their final {html.escape(spec.metric)}, which ranks them, over the trials that trained the full budget "
            "(Kendall's tau: 1 = the same order, 0 = no relation, -1 = reversed).</p>")
    body += _table(["step", "trials compared", "Kendall tau", "trials stopped here"],
                   [[r["step"], r["trials"], r["tau"], stopped.get(r["step"], 0)] for r in table])
    reasons_path = storage.join(spec.experiment, STOPS_FILE)
    reasons = json.loads(storage.read_text(reasons_path)) if storage.exists(reasons_path) else {}
    if reasons:
        body += "<p>Why each trial stopped (paired over the items both trials scored at that step):</p>"
        body += _table(["trial", "step", "decided on", "trailed", "z", "stop when z <", "over"],
                       [[t, r["step"], r["metric"], r["leader"], r["z"], -r["critical_z"], r["paired_over"]]
                        for t, r in sorted(reasons.items(), key=lambda item: item[1]["step"])], text_columns={0, 2, 3, 6})
    weak = [r for r in table if math.isfinite(r["tau"]) and r["tau"] < 0.4 and stopped.get(r["step"])]
    for r in weak:
        few = " (only two or three trials: little evidence either way)" if r["trials"] < 4 else ""
        body += (f'<p class="warning">At step {r["step"]} the ranking barely predicted the final one '
                 f'(tau = {r["tau"]:.2f} over {r["trials"]} trials{few}), and {stopped[r["step"]]} trial(s) were stopped '
                 "there: early stopping at this budget may have thrown away the eventual winner. Give trials more "
                 "steps before the first decision (fewer --evals-per-trial) or use --scheduler none.</p>")
    if not weak:
        body += _note("Where trials were stopped, the rankings at that step agreed with the final ones "
                      "(or no trial was stopped).")
    page.section("rungs", "Does early stopping stop the right trials?", body)


def _study_section(page: _Page, document: dict) -> None:
    """A study's table (sweeps/study.py): per configuration mean ± SE over seeds, the paired-by-seed
    difference with its interval, and the paper's direction beside it."""
    measures = [m for m, _ in STUDY_MEASURES]
    names = {"pairs_acc_all": "pairs_acc (all pairs)", "pairs_acc_heldout": "held-out pairs", "val_nelbo": "val_nelbo"}
    paper = document.get("paper") or {}
    header = ["configuration", "seeds", *[names[m] + " (mean ± SE)" for m in measures]]
    if paper.get("metric"):
        header.append(f"paper {paper['metric']}")
    rows = []
    for config in document["configs"]:
        cells = [f"{config[m]['mean']:.4f} ± {config[m]['se']:.4f}" for m in measures]
        rows.append([config["label"], len(config["seeds"]), *cells]
                    + ([config.get("paper_score") if config.get("paper_score") is not None else "-"]
                       if paper.get("metric") else []))
    body = (f"<p>Every configuration trained {document['budget_steps']} steps with each of "
            f"{len(document['seeds'])} seeds; ± is the standard error over seeds (training noise, which a one-seed "
            "sweep cannot see).</p>")
    body += _table(header, rows, text_columns={0})
    level = int(document["confidence"] * 100)
    for d in document["differences"]:
        lines = []
        for m in measures:
            if d.get(m):
                lines.append(f"{names[m]}: {d[m]['mean']:+.4f} [{d[m]['ci_low']:+.4f}, {d[m]['ci_high']:+.4f}]"
                             + ("" if d[m]["distinguishable"] else " (contains 0)"))
        paper_text = (f" The paper ({html.escape(paper.get('source', ''))}): {d['paper']:+.2f} {html.escape(paper.get('metric', ''))}."
                      if d.get("paper") is not None else "")
        agrees = d["agreement"].startswith("agrees")
        body += (f"<p>({html.escape(d['a'])}) − ({html.escape(d['b'])}), paired by seed over {len(d['seeds'])} seeds, "
                 f"{level}% t intervals: {html.escape('; '.join(lines))}.{paper_text}</p>"
                 f'<p class="{"verdict" if agrees else "warning"}">{html.escape(d["agreement"])}.</p>')
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), squeeze=False)
    for ax, m in zip(axes[0], measures):
        for position, config in enumerate(document["configs"]):
            values = config[m]["per_seed"]
            ax.scatter([position] * len(values), values, color="0.55", s=18, zorder=2,
                       label="one seed" if position == 0 else None)
            if math.isfinite(config[m]["se"]):
                ax.errorbar([position], [config[m]["mean"]], yerr=[Z_95 * config[m]["se"]], fmt="o", color="C0",
                            capsize=5, zorder=3, label="mean ± 1.96 SE" if position == 0 else None)
        if chance(m) is not None:
            ax.axhline(chance(m), color="0.2", linestyle="--", linewidth=1, label="chance")
        ax.set_xticks(range(len(document["configs"])), [c["label"] for c in document["configs"]], rotation=10,
                      fontsize=8)
        ax.set_xlim(-0.6, len(document["configs"]) - 0.4)
        ax.set_title(names[m])
        ax.ticklabel_format(axis="y", useOffset=False)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    figure = page.figure("study", fig, "Each configuration's seeds (grey) and their mean ± 1.96 standard errors over seeds.")
    page.section("study", "Study: the ablation over seeds", body + figure)


def _history_section(page: _Page, spec: SweepSpec, study, rows: list[dict], metric: str) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(states=(TrialState.COMPLETE,))
    if not complete:
        page.section("history", "Optimisation history", _note("No trial has finished yet."))
        return
    by_id = {row["trial_id"]: row for row in rows}
    trials = []
    for t in complete:
        row = by_id.get(t.user_attrs["trial_id"])
        metrics = row["metrics"] if row else {}
        trials.append({"number": t.number, "value": t.value, "se": standard_error_in(metrics, metric),
                       "full_budget": row is None or metrics.get("step", 0) >= spec.full_budget})
    body = page.figure("optimization_history", optimization_history_figure(trials, metric, spec.mode),
                       f"{metric} of each finished trial in the order the search proposed it (Optuna trial number), "
                       "with ±1.96 standard-error bars where the trial reported one, and the best full-budget value so "
                       "far. Hollow: stopped early, so its value is from fewer steps.")
    mapping = ", ".join(f"{t.number} = {t.user_attrs['trial_id']}" for t in study.trials)
    page.section("history", "Optimisation history", body + _note(f"Trial numbers: {mapping}."))


def _importance_section(page: _Page, spec: SweepSpec, rows: list[dict], metric: str, extra: dict) -> None:
    """Importances from full-budget trials only, and only from enough of them: with fewer trials
    than parameters + 2, any split of the variation fits the noise."""
    import optuna

    full, stopped = full_budget_split(spec, rows)
    searched = searched_names(spec, rows)
    needed = len(searched) + 2
    varying = [name for name in searched if len({repr(r["values"].get(name)) for r in full}) > 1]
    reason = None
    if len(full) < needed:
        reason = (f"{len(full)} trial{'s' if len(full) != 1 else ''} trained the full budget; importances of "
                  f"{len(searched)} searched parameters need at least {needed} (parameters + 2)")
    elif not varying:
        reason = "no searched parameter varies across the full-budget trials"
    elif len(varying) == 1:
        # Shares of the variation among one parameter: it is 1 by construction, whatever the noise.
        reason = (f"only {varying[0]} varies, so it gets all of the variation by construction; "
                  "see the metric against it below")
    elif len({r["metrics"][metric] for r in full}) < 2:
        reason = f"every full-budget trial has the same {metric}, so no parameter explains any of it"
    evaluator = importance_evaluator()
    if reason is None:
        study = build_study(spec, full, [(metric, spec.mode)])
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except Exception as exc:  # Optuna raises for spaces it cannot split (e.g. all-conditional)
            reason = f"Optuna could not compute them: {str(exc).splitlines()[0]}"
    if reason is not None:
        page.section("importance", "Parameter importance", _note(f"No importance chart: {reason}."))
        return
    extra["importances"] = importances
    body = _within_noise_warning(full, metric)
    body += page.figure("param_importances", importance_figure(study, metric, evaluator),
                       f"Share of the variation in {metric} attributed to each parameter "
                       f"({type(evaluator).__name__}), {budget_caption(len(full), len(stopped))}.")
    table = _table(["parameter", "importance"], [[k, v] for k, v in importances.items()], text_columns={0})
    note = _note("Few trials make importances rough; read them as a hint, not a measurement.") if len(full) < 10 else ""
    page.section("importance", "Parameter importance", body + table + note)


def _within_noise_warning(full: list[dict], metric: str) -> str:
    """A warning when the best and the worst full-budget trial are within noise of each other
    (difference <= 1.96 combined standard errors): importances then apportion noise."""
    ordered = sorted(full, key=lambda r: r["metrics"][metric])
    low, high = ordered[0]["metrics"], ordered[-1]["metrics"]
    se_low, se_high = standard_error_in(low, metric), standard_error_in(high, metric)
    if se_low is None or se_high is None:
        return ""
    noise = Z_95 * math.hypot(se_low, se_high)
    if high[metric] - low[metric] > noise:
        return ""
    return (f'<p class="warning">The full-budget trials\' {html.escape(metric)} all lie within noise of each other '
            f"(highest {high[metric]:.4g}, lowest {low[metric]:.4g}: a difference of {high[metric] - low[metric]:.4g}, "
            f"no more than 1.96 combined standard errors, {noise:.4g}). The importances below apportion that noise; "
            "they say nothing about the parameters.</p>")


def importance_evaluator():
    """PED-ANOVA: Optuna's default evaluator since 4.x. (fANOVA, the older default, needs
    scikit-learn, which this project does not install.) Named here so the table and the
    plot use the same one."""
    import optuna

    return optuna.importance.PedAnovaImportanceEvaluator()


def _parameters_section(page: _Page, spec: SweepSpec, rows: list[dict], metric: str) -> None:
    from optuna.distributions import CategoricalDistribution

    full, stopped = full_budget_split(spec, rows)
    names = [n for n in searched_names(spec, rows) if any(n in r["values"] for r in full)]
    if not names:
        why = "No trial has trained its full budget yet" if not full else "No full-budget trial has a searched parameter"
        page.section("parameters", "Metric against each parameter", _note(f"{why}."))
        return
    dists = distributions(spec, rows)
    log_scaled = frozenset(n for n, d in dists.items() if getattr(d, "log", False))
    categories = {n: [str(c) for c in d.choices if any(str(r["values"].get(n)) == str(c) for r in full)]
                  for n, d in dists.items() if isinstance(d, CategoricalDistribution)}
    resting_on = budget_caption(len(full), len(stopped))
    if any(standard_error_in(r["metrics"], metric) is not None for r in full):
        resting_on = f"±1.96 standard-error bars; {resting_on}"
    else:
        resting_on = f"no trial reported a standard error, so the noise is not shown; {resting_on}"
    slices = {name: [(r["values"][name], r["metrics"][metric], standard_error_in(r["metrics"], metric))
                     for r in full if name in r["values"]] for name in names}
    body = page.figure("slice", slice_figure(slices, metric, log_scaled, categories),
                       f"{metric} against each searched parameter; {resting_on}.")
    numeric = {name: [(r["values"][name], r["metrics"][metric], schedule_of(r, spec),
                       standard_error_in(r["metrics"], metric)) for r in full if _is_number(r["values"].get(name))]
               for name in names if name not in categories}
    numeric = {name: pts for name, pts in numeric.items() if pts}
    if numeric:
        body += page.figure("metric_vs_params", metric_vs_params_figure(numeric, metric, log_scaled),
                            f"{metric} against each numeric parameter, coloured by noise schedule; {resting_on}.")
    page.section("parameters", "Metric against each parameter", body)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _curves_section(page: _Page, ranked: list[dict], metric: str) -> None:
    panels = [metric] + (["val_nelbo"] if metric != "val_nelbo" else [])
    curves = {}
    for position, row in enumerate(ranked[:TOP_CURVES], start=1):
        curves[_label(row, position)] = {
            m: [(r["step"], r[m], standard_error_in(r, m)) for r in row["history"] if "step" in r and m in r]
            for m in panels
        }
    if not any(points for series in curves.values() for points in series.values()):
        page.section("curves", "Learning curves", _note("The trials' result histories are empty."))
        return
    body = page.figure("learning_curves", learning_curves_figure(curves, panels),
                       f"{' and '.join(panels)} at each evaluation of the top {len(curves)} trials (legend: rank, trial); "
                       "shaded: ±1.96 standard errors of each number on its evaluation set.")
    page.section("curves", "Learning curves", body)


def _paradigm_section(page: _Page, spec: SweepSpec, ranked: list[dict]) -> None:
    top = [(position, row) for position, row in enumerate(ranked[:TOP_PARADIGMS], start=1)]
    bars: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    how_known: dict[str, set] = {}
    for prefix in PAIRS_PREFIXES:
        family = prefix.rstrip("/")
        for position, row in top:
            metrics = row["metrics"]
            per = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
            # `<paradigm>_n` / `<paradigm>_se` beside a paradigm's accuracy are its count and SE, not paradigms.
            per = {p: v for p, v in per.items() if not (p.endswith(("_n", "_se")) and p.rsplit("_", 1)[0] in per)}
            if not per:
                continue
            label = _label(row, position)
            bars.setdefault(family, {})[label] = per
            config = row.get("config") or spec.base_config
            counts, known = paradigm_pair_counts(metrics, family, sorted(per), config.eval_pairs_per_paradigm)
            errors.setdefault(family, {})[label] = {p: math.sqrt(v * (1 - v) / counts[p]) for p, v in per.items()
                                                     if p in counts}
            how_known.setdefault(known, set()).add(f"{row['trial_id']} {family}")
    if not bars:
        page.section("paradigms", "Minimal pairs by paradigm", _note("No trial reported per-paradigm pair accuracy."))
        return
    body = page.figure("paradigms", paradigm_figure(bars, errors),
                       "Minimal-pair accuracy per paradigm of the best trials (dashed: chance, 0.5); error bars: ±1.96 "
                       "binomial standard errors, sqrt(p (1 − p) / n) over the n pairs of the paradigm. "
                       + _pair_count_words(how_known))
    overall = ["pairs_acc"] + ([HELDOUT] if any(HELDOUT in r["metrics"] for _, r in top) else [])
    table = _table(["rank", "trial", *overall], [[p, r["trial_id"], *(r["metrics"].get(m, math.nan) for m in overall)]
                                                 for p, r in top], text_columns={1})
    page.section("paradigms", "Minimal pairs by paradigm", body + table)


def _suite_section(page: _Page, ranked: list[dict]) -> None:
    """The BabyLM tasks of the best trials (only when the sweep scored them): each task's score on
    its tuning items and, when reported, its held-out items, with ±1.96 SE bars."""
    from trainer.metrics import TASKS, task_metric

    top = [(position, row) for position, row in enumerate(ranked[:TOP_PARADIGMS], start=1)
           if "babylm_score" in row["metrics"]]
    if not top:
        return
    bars: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    for suffix, family in (("", "BabyLM tasks, tuning items"), ("_heldout", "BabyLM tasks, held-out items")):
        for position, row in top:
            metrics = row["metrics"]
            names = {task: f"{task_metric(task)}{suffix}" for task in TASKS}
            per = {task: metrics[name] for task, name in names.items() if name in metrics}
            if per:
                label = _label(row, position)
                bars.setdefault(family, {})[label] = per
                errors.setdefault(family, {})[label] = {task: metrics[f"{names[task]}_se"] for task in per
                                                        if f"{names[task]}_se" in metrics}
    body = page.figure("suite", paradigm_figure(bars, errors, by="task"),
                       "Each BabyLM task's score for the best trials, as the official pipeline computes it: the "
                       "mean of its per-UID accuracies, or for wug Spearman's rho against the human ratios; error "
                       "bars: ±1.96 standard errors (per-UID binomial variances combined; a bootstrap for rho). "
                       "Chance differs by task: 0.5 for two candidates; entity tracking has as many as its items "
                       "give; 0 for a correlation.")
    columns = ["babylm_score"] + (["babylm_score_heldout"] if any("babylm_score_heldout" in r["metrics"] for _, r in top)
                                  else [])
    table = _table(["rank", "trial", *columns], [[p, r["trial_id"], *(r["metrics"].get(m, math.nan) for m in columns)]
                                                 for p, r in top], text_columns={1})
    page.section("suite", "BabyLM tasks", body + table)


def _pair_count_words(how_known: dict[str, set]) -> str:
    """Where each bar's n comes from, in words (paradigm_pair_counts' kinds)."""
    words = {
        "reported": "n as the trial reported it per paradigm",
        "at the cap": "n = eval_pairs_per_paradigm: the trial scored that many pairs in every paradigm",
        "at least": ("upper bounds: the pairs per paradigm are not reported, so n is the fewest a paradigm can have "
                     "(the trial's total less eval_pairs_per_paradigm for every other paradigm)"),
        "unknown": "no error bars: the pairs per paradigm are not reported and cannot be bounded",
    }
    if set(how_known) <= {"reported", "at the cap"}:
        return "Pair counts: " + "; ".join(words[k] for k in how_known) + "."
    by_kind = [f"{words[k]} ({', '.join(sorted(how_known[k]))})" for k in words if k in how_known]
    return "Pair counts: " + "; ".join(by_kind) + "."


def _leaderboard_section(page: _Page, spec: SweepSpec, ranked: list[dict], leaderboard_text: str | None) -> None:
    source = "From leaderboard.csv, in export.py's order (confirmed configs first when a confirmation ran)"
    if not leaderboard_text:
        leaderboard_text = leaderboard_csv(ranked)
        source = (f"Computed from the trial results: trials that trained their full budget first, "
                  f"then by {spec.metric} ({spec.mode})")
    header, body = leaderboard_rows(leaderboard_text, ranked)
    text_cols = {i for i, h in enumerate(header) if h in ("trial_id", "status", "state")} | {
        i for i, h in enumerate(header) if any(isinstance(r[i], str) and r[i] for r in body if i < len(r))}
    note = _note(f"{source}.")
    page.section("leaderboard", "Leaderboard", _table(header, body, text_columns=text_cols, highlight={0}) + note)


def _confirmation_section(page: _Page, confirmation: dict) -> None:
    metric, configs = confirmation.get("metric", "?"), confirmation.get("configs") or []
    body = ""
    if configs:
        body += page.figure("confirmation", confirmation_figure(configs, metric),
                            f"{metric} of the top configs retrained with {confirmation.get('seeds', '?')} seeds.")
        has_heldout = any(c.get("heldout_mean") is not None for c in configs)
        header = ["rank", "trial", "sweep rank", "values", "seeds", f"{metric} per seed", "mean", "std"]
        header += ["heldout mean", "heldout std"] if has_heldout else []
        table_rows = []
        for c in configs:
            values = ", ".join(f"{k} = {_fmt(v)}" for k, v in (c.get("values") or {}).items())
            per_seed = ", ".join(_fmt(float(v)) for v in c.get("values_per_seed") or []) or "no run finished"
            row = [c.get("rank"), c.get("trial_id"), c.get("sweep_rank"), values, " ".join(map(str, c.get("seeds") or [])),
                   per_seed, _or_nan(c.get("mean")), _or_nan(c.get("std"))]
            if has_heldout:
                row += [_or_nan(c.get("heldout_mean")), _or_nan(c.get("heldout_std"))]
            table_rows.append(row)
        body += _table(header, table_rows, text_columns={1, 3, 4, 5})
    diff = confirmation.get("difference")
    if diff:
        level = diff.get("level", 0.95)
        body += (f"<p>{html.escape(str(diff.get('winner')))} − {html.escape(str(diff.get('runner_up')))}: "
                 f"{_fmt(diff.get('mean'))} (CI {level:.0%}: [{_fmt(diff.get('ci_low'))}, {_fmt(diff.get('ci_high'))}]); "
                 f"distinguishable: <b>{'yes' if diff.get('distinguishable') else 'no'}</b>.</p>")
        if diff.get("statement"):
            body += f"<p><b>{html.escape(str(diff['statement']))}</b></p>"
    page.section("confirmation", "Confirmation over seeds", body or _note("confirmation.json lists no configs."))


def _or_nan(value) -> float:
    return math.nan if value is None else float(value)


def _pareto_section(page: _Page, spec: SweepSpec, rows: list[dict], objectives: list[tuple[str, str]], extra: dict) -> None:
    # As export.py: an early-stopped trial's numbers are from fewer steps, so the front is
    # drawn over full-budget trials when there are any.
    full = [r for r in rows if r["metrics"].get("step", 0) >= spec.full_budget]
    study = build_study(spec, full or rows, objectives)
    names = [m for m, _ in objectives]
    front = study.best_trials  # the Pareto-optimal trials for a multi-objective study
    extra["pareto_trials"] = [t.user_attrs["trial_id"] for t in front]
    if not front:
        page.section("pareto", "Pareto front", _note("No finished trial reports every objective."))
        return
    body = ""
    if len(objectives) in (2, 3):
        by_id = {row["trial_id"]: row for row in rows}
        ses = {t.number: [standard_error_in(by_id[t.user_attrs["trial_id"]]["metrics"], m) for m in names]
               for t in study.trials}
        body += page.figure("pareto_front", pareto_figure(study, names, ses),
                            f"Trials by {' and '.join(f'{m} ({mode})' for m, mode in objectives)}; "
                            "best trials are the Pareto-optimal ones"
                            + ("; ±1.96 standard-error bars." if len(objectives) == 2 else "."))
    else:
        body += _note(f"Optuna plots Pareto fronts of 2 or 3 objectives; this sweep has {len(objectives)}.")
    params = sorted({p for t in front for p in t.params})
    table = _table(["trial", *names, *params],
                   [[t.user_attrs["trial_id"], *t.values, *(t.params.get(p, "–") for p in params)] for t in front],
                   text_columns={0})
    page.section("pareto", "Pareto front", body + f"<p>{len(front)} Pareto-optimal trial(s):</p>" + table)


# --- entry points ---------------------------------------------------------------------------


def write_report(experiment: str, *, inline_images: bool = True) -> Path:
    """Write `<experiment>/report/` (index.html, PNGs, data.json); returns the local index.html.

    Idempotent: rerunning replaces the report. For a pyarrow.fs URI the report is built in a
    local temporary folder (kept, so the returned page can be opened) and uploaded."""
    experiment = storage.normalise(experiment)
    spec = SweepSpec.load(experiment)
    rows = read_trials(spec, experiment)
    leaderboard = storage.join(experiment, "leaderboard.csv")
    inputs = {
        "leaderboard_text": storage.read_text(leaderboard) if storage.exists(leaderboard) else None,
        "confirmation": load_confirmation(spec),
        "study_document": load_study(spec),
    }
    if not storage.is_uri(experiment):
        return render_report(spec, rows, Path(experiment) / REPORT_DIR, experiment=experiment,
                             inline_images=inline_images, **inputs)
    local = Path(tempfile.mkdtemp(prefix="sweep-report-")) / REPORT_DIR
    index = render_report(spec, rows, local, experiment=experiment, inline_images=inline_images, **inputs)
    upload_folder(local, storage.join(experiment, REPORT_DIR))
    return index


def upload_folder(local: Path, uri: str) -> None:
    """Replace the folder at `uri` with the files of `local` (storage.py writes text only)."""
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(uri)
    fs.create_dir(path, recursive=True)
    fs.delete_dir_contents(path, missing_dir_ok=True)
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python sweeps/report.py", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="<storage>/<name> of a sweep (local folder or pyarrow.fs URI)")
    parser.add_argument("--no-inline", action="store_true", help="link the PNGs instead of embedding them in index.html")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        index = write_report(args.experiment, inline_images=not args.no_inline)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
