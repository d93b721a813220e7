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
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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
from trainer.cli import ArgumentParser  # noqa: E402
from trainer.errors import UserError  # noqa: E402

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


# --- figures: data in, figure out ---------------------------------------------------------


def _optuna_figure(axes) -> Figure:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def optimization_history_figure(study, metric: str) -> Figure:
    from optuna.visualization.matplotlib import plot_optimization_history

    fig = _optuna_figure(plot_optimization_history(study, target_name=metric))
    fig.set_size_inches(8, 4.5)
    return fig


def importance_figure(study, metric: str, evaluator) -> Figure:
    from optuna.visualization.matplotlib import plot_param_importances

    fig = _optuna_figure(plot_param_importances(study, evaluator=evaluator, target_name=metric))
    fig.set_size_inches(8, max(2.5, 0.6 * len(study.best_trial.params) + 1.5))
    return fig


def slice_figure(study, params: list[str], metric: str) -> Figure:
    from optuna.visualization.matplotlib import plot_slice

    fig = _optuna_figure(plot_slice(study, params=params, target_name=metric))
    fig.set_size_inches(max(6, 4 * len(params)), 4.5)
    return fig


def metric_vs_params_figure(points: dict[str, list[tuple[float, float, str]]], metric: str,
                            log_scaled: frozenset = frozenset()) -> Figure:
    """One panel per numeric parameter: (value, metric, schedule) points, one colour per schedule;
    log-searched parameters on a log axis."""
    names = list(points)
    fig = Figure(figsize=(max(6, 4.5 * len(names)), 4.2), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    schedules = sorted({s for pts in points.values() for _, _, s in pts})
    colours = {s: matplotlib.colormaps["tab10"](i % 10) for i, s in enumerate(schedules)}
    for ax, name in zip(axes, names):
        for schedule in schedules:
            group = [(x, y) for x, y, s in points[name] if s == schedule]
            if group:
                ax.scatter([x for x, _ in group], [y for _, y in group], color=colours[schedule],
                           label=f"schedule = {schedule}", s=40, edgecolors="black", linewidths=0.5)
        if name in log_scaled:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs {name}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def learning_curves_figure(curves: dict[str, dict[str, list[tuple[int, float]]]], panels: list[str]) -> Figure:
    """curves[trial_label][metric] = [(step, value), ...]: one panel per metric, one line per trial."""
    fig = Figure(figsize=(6 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, metric in zip(axes, panels):
        for i, (label, series) in enumerate(curves.items()):
            points = series.get(metric) or []
            if points:  # shrinking markers of different shapes keep identical curves all visible
                ax.plot([s for s, _ in points], [v for _, v in points], marker="osD^v"[i % 5],
                        markersize=9 - 1.2 * (i % 5), linewidth=2.2 - 0.3 * (i % 5), label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def paradigm_figure(bars: dict[str, dict[str, dict[str, float]]]) -> Figure:
    """bars[family][trial_label][paradigm] = accuracy: grouped horizontal bars, a panel per family
    (pairs_acc, and pairs_acc_heldout when reported per paradigm)."""
    families = list(bars)
    paradigms = sorted({p for family in bars.values() for per in family.values() for p in per})
    most_trials = max(len(per_trial) for per_trial in bars.values())
    height = max(3.0, 0.16 * len(paradigms) * most_trials + 1.2)
    fig = Figure(figsize=(8 * len(families), height), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, family in zip(axes, families):
        trials = list(bars[family])
        width = 0.8 / max(1, len(trials))
        for i, label in enumerate(trials):
            per = bars[family][label]
            ys = [j - 0.4 + width * (i + 0.5) for j, p in enumerate(paradigms) if p in per]
            ax.barh(ys, [per[p] for p in paradigms if p in per], height=width, label=label)
        ax.set_yticks(range(len(paradigms)), paradigms, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)  # chance for a two-way choice
        ax.set_xlabel(f"{family} (accuracy)")
        ax.set_title(f"{family} by paradigm")
        ax.legend(fontsize=8, loc="lower right")
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
    ax.set_title("confirmation runs over seeds")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)  # below: bars fill the axes
    return fig


def _finite_or_zero(value) -> float:
    """A standard deviation to draw: none (one seed: NaN or null) draws as no error bar."""
    return float(value) if value is not None and math.isfinite(value) else 0.0


def pareto_figure(study, names: list[str]) -> Figure:
    from optuna.visualization.matplotlib import plot_pareto_front

    fig = _optuna_figure(plot_pareto_front(study, target_names=names))
    fig.set_size_inches(7, 5)
    return fig


# --- figure data read back from the artists ------------------------------------------------


def figure_data(fig) -> list[dict]:
    """What each axes draws: lines (x, y), scatter points, bar values with tick labels."""
    out = []
    for ax in fig.axes:
        entry = {
            "title": ax.get_title(),
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "lines": [{"label": line.get_label(), "x": _plain(line.get_xdata()), "y": _plain(line.get_ydata())}
                      for line in ax.lines],
            "scatters": [{"label": c.get_label(), "points": _plain(c.get_offsets())}
                         for c in ax.collections if isinstance(c, PathCollection)],
            "bars": [],
            "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
            "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
        }
        for container in ax.containers:
            if isinstance(container, BarContainer):
                horizontal = getattr(container, "orientation", "vertical") == "horizontal"
                positions = [p.get_y() + p.get_height() / 2 if horizontal else p.get_x() + p.get_width() / 2
                             for p in container.patches]
                entry["bars"].append({"label": container.get_label(), "orientation": "horizontal" if horizontal else "vertical",
                                      "positions": _plain(positions), "values": _plain(container.datavalues)})
        out.append(entry)
    return out


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
        _best_section(page, spec, ranked, confirmation)
        _history_section(page, study, metric)
        _importance_section(page, study, metric, extra)
        _parameters_section(page, spec, study, rows, metric)
        _rungs_section(page, spec, rows, extra)
        _curves_section(page, ranked, metric)
        _paradigm_section(page, ranked)
        _leaderboard_section(page, spec, ranked, leaderboard_text)
        if confirmation:
            _confirmation_section(page, confirmation)
        if len(objectives) > 1:
            _pareto_section(page, spec, rows, objectives, extra)
    data = {"experiment": experiment, "metric": metric, "mode": mode, **extra, "figures": page.figures}
    (out_dir / "data.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    return page.write(f"Sweep report: {spec.name}", header_html(spec, rows, experiment))


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
    body = ("<p>Each row compares the trials' " + html.escape(spec.metric) + " at an evaluation before the full "
            f"budget ({spec.full_budget} steps) with their final value, over the trials that trained the full budget "
            "(Kendall's tau: 1 = the same order, 0 = no relation, -1 = reversed). An early-stopping scheduler "
            "decides at these steps on these numbers.</p>")
    body += _table(["step", "trials compared", "Kendall tau", "trials stopped here"],
                   [[r["step"], r["trials"], r["tau"], stopped.get(r["step"], 0)] for r in table])
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


def _history_section(page: _Page, study, metric: str) -> None:
    from optuna.trial import TrialState

    if not study.get_trials(states=(TrialState.COMPLETE,)):
        page.section("history", "Optimisation history", _note("No trial has finished yet."))
        return
    body = page.figure("optimization_history", optimization_history_figure(study, metric),
                       f"{metric} of each finished trial in the order the search proposed it (Optuna trial number), "
                       "with the best so far.")
    mapping = ", ".join(f"{t.number} = {t.user_attrs['trial_id']}" for t in study.trials)
    page.section("history", "Optimisation history", body + _note(f"Trial numbers: {mapping}."))


def _importance_section(page: _Page, study, metric: str, extra: dict) -> None:
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(states=(TrialState.COMPLETE,))
    varying = [name for name in {n for t in complete for n in t.params}
               if len({repr(t.params.get(name)) for t in complete}) > 1]
    reason = None
    if len(complete) < 2:
        reason = f"needs at least 2 finished trials; this sweep has {len(complete)}"
    elif not varying:
        reason = "no searched parameter varies across the finished trials"
    elif len({t.value for t in complete}) < 2:
        reason = f"every finished trial has the same {metric}, so no parameter explains any of it"
    evaluator = importance_evaluator()
    if reason is None:
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except Exception as exc:  # Optuna raises for spaces it cannot split (e.g. all-conditional)
            reason = f"Optuna could not compute them: {str(exc).splitlines()[0]}"
    if reason is not None:
        page.section("importance", "Parameter importance", _note(f"Omitted: {reason}."))
        return
    extra["importances"] = importances
    body = page.figure("param_importances", importance_figure(study, metric, evaluator),
                       f"Share of the variation in {metric} attributed to each parameter "
                       f"({type(evaluator).__name__}).")
    table = _table(["parameter", "importance"], [[k, v] for k, v in importances.items()], text_columns={0})
    note = _note("Few trials make importances rough; read them as a hint, not a measurement.") if len(complete) < 10 else ""
    page.section("importance", "Parameter importance", body + table + note)


def importance_evaluator():
    """PED-ANOVA: Optuna's default evaluator since 4.x. (fANOVA, the older default, needs
    scikit-learn, which this project does not install.) Named here so the table and the
    plot use the same one."""
    import optuna

    return optuna.importance.PedAnovaImportanceEvaluator()


def _parameters_section(page: _Page, spec: SweepSpec, study, rows: list[dict], metric: str) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(states=(TrialState.COMPLETE,))
    names = [n for n in searched_names(spec, rows) if any(n in t.params for t in complete)]
    if not names:
        page.section("parameters", "Metric against each parameter", _note("No finished trial has a searched parameter."))
        return
    body = page.figure("slice", slice_figure(study, names, metric),
                       f"{metric} against each searched parameter (Optuna slice plot; colour = trial number).")
    finished = {t.user_attrs["trial_id"] for t in complete}
    points: dict[str, list] = {}
    for name in names:
        for row in rows:
            value = row["values"].get(name)
            if row["trial_id"] in finished and isinstance(value, (int, float)) and not isinstance(value, bool):
                points.setdefault(name, []).append((value, row["metrics"][metric], schedule_of(row, spec)))
    if points:
        log_scaled = frozenset(n for n, d in distributions(spec, rows).items() if getattr(d, "log", False))
        body += page.figure("metric_vs_params", metric_vs_params_figure(points, metric, log_scaled),
                            f"{metric} against each numeric parameter, coloured by noise schedule.")
    page.section("parameters", "Metric against each parameter", body)


def _curves_section(page: _Page, ranked: list[dict], metric: str) -> None:
    panels = [metric] + (["val_nelbo"] if metric != "val_nelbo" else [])
    curves = {}
    for position, row in enumerate(ranked[:TOP_CURVES], start=1):
        curves[_label(row, position)] = {
            m: [(r["step"], r[m]) for r in row["history"] if "step" in r and m in r] for m in panels
        }
    if not any(points for series in curves.values() for points in series.values()):
        page.section("curves", "Learning curves", _note("The trials' result histories are empty."))
        return
    body = page.figure("learning_curves", learning_curves_figure(curves, panels),
                       f"{' and '.join(panels)} at each evaluation of the top {len(curves)} trials (legend: rank, trial).")
    page.section("curves", "Learning curves", body)


def _paradigm_section(page: _Page, ranked: list[dict]) -> None:
    top = [(position, row) for position, row in enumerate(ranked[:TOP_PARADIGMS], start=1)]
    bars: dict[str, dict] = {}
    for prefix in PAIRS_PREFIXES:
        family = prefix.rstrip("/")
        for position, row in top:
            per = {k[len(prefix):]: v for k, v in row["metrics"].items() if k.startswith(prefix)}
            if per:
                bars.setdefault(family, {})[_label(row, position)] = per
    if not bars:
        page.section("paradigms", "Minimal pairs by paradigm", _note("No trial reported per-paradigm pair accuracy."))
        return
    body = page.figure("paradigms", paradigm_figure(bars),
                       "Minimal-pair accuracy per paradigm of the best trials (dotted: chance).")
    overall = ["pairs_acc"] + ([HELDOUT] if any(HELDOUT in r["metrics"] for _, r in top) else [])
    table = _table(["rank", "trial", *overall], [[p, r["trial_id"], *(r["metrics"].get(m, math.nan) for m in overall)]
                                                 for p, r in top], text_columns={1})
    page.section("paradigms", "Minimal pairs by paradigm", body + table)


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
        body += page.figure("pareto_front", pareto_figure(study, names),
                            f"Trials by {' and '.join(f'{m} ({mode})' for m, mode in objectives)}; "
                            "best trials are the Pareto-optimal ones.")
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


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python sweeps/report.py", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="<storage>/<name> of a sweep (local folder or pyarrow.fs URI)")
    parser.add_argument("--no-inline", action="store_true", help="link the PNGs instead of embedding them in index.html")
    args = parser.parse_args(argv)
    try:
        index = write_report(args.experiment, inline_images=not args.no_inline)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
