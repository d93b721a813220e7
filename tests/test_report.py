"""The sweep report: every figure's numbers are the trial results, the page is self-contained
and renders in a browser.

Fast tests render synthetic results (no Ray) to reach every section: importance, schedule
colouring, held-out pairs, confirmation, Pareto front. The slow tests run one real small sweep
and compare the plotted numbers with Tune's result.json files, read here independently."""

import base64
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweeps import report  # noqa: E402
from sweeps.results import trial_state  # noqa: E402
from sweeps.spec import SweepSpec  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UIDS = ["anaphor_number_agreement", "determiner_noun_agreement", "subject_verb_agreement_simple"]


# --- helpers ------------------------------------------------------------------------------


def axes_of(data: dict, figure: str) -> list[dict]:
    return data["figures"][figure]["axes"]


def check_page(folder: Path) -> tuple[str, dict]:
    """index.html references every PNG, each PNG is valid, the inlined copies are those files."""
    import matplotlib.image

    page = (folder / "index.html").read_text()
    data = json.loads((folder / "data.json").read_text())
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs and pngs == sorted(f["file"] for f in data["figures"].values())
    for name in pngs:
        raw = (folder / name).read_bytes()
        assert raw.startswith(PNG_MAGIC) and len(raw) > 1000, name
        assert matplotlib.image.imread(folder / name).shape[0] > 100
        assert f'href="{name}"' in page
        assert base64.b64encode(raw).decode() in page  # works as a single file too
    # Self-contained: no scripts, no stylesheets or images from elsewhere.
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    return page, data


def is_dominated(a, b, signs) -> bool:
    """b dominates a (signs: +1 maximise, -1 minimise)."""
    better_or_equal = all(s * y >= s * x for x, y, s in zip(a, b, signs))
    return better_or_equal and any(s * y > s * x for x, y, s in zip(a, b, signs))


# --- fast: synthetic results through every section ------------------------------------------


SYNTHETIC_SPACE = {
    "description": "test space", "fixed": {},
    "search": {
        "schedule": {"type": "categorical", "choices": ["linear", "cosine", "gaussian", "bimodal_gaussian"]},
        "derivative_power": {"type": "float", "low": 0.0, "high": 1.0},
        "gaussian_mean": {"type": "float", "low": 0.1, "high": 0.5, "when": {"schedule": "gaussian"}},
        "bimodal_right_rate": {"type": "float", "low": 0.5, "high": 4.0, "log": True},
        "frequency_curriculum": {"type": "bool"},
        "model.num_layers": {"type": "int", "low": 1, "high": 4},
    },
}


def make_spec(objectives=(("pairs_acc", "max"), ("val_nelbo", "min")), space=SYNTHETIC_SPACE, **config) -> SweepSpec:
    """A SweepSpec as run.py writes it, for results that never ran on Ray."""
    from sweeps.spec import DataRef, Objective, Provenance, SearchSettings, SpaceSpec
    from trainer.config import TrainConfig

    return SweepSpec(
        name="synthetic", storage="/nonexistent", space=SpaceSpec(name="full", **space),
        search=SearchSettings(algorithm="tpe", scheduler="asha"),
        objectives=tuple(Objective(metric=m, mode=d) for m, d in objectives),
        base_config=TrainConfig(max_steps=30, schedule="cosine", **config),
        data=DataRef(data_root="/nonexistent", data_hash="abc123"),
        provenance=Provenance(code_version="deadbeef", created="2026-01-01T00:00:00", command="run.py"),
    )


def synthetic(n: int = 10, seed: int = 0) -> tuple[SweepSpec, list[dict]]:
    """A `full`-like space (categorical, conditional, log, bool, int) with held-out pairs."""
    rng = np.random.default_rng(seed)
    sweep = make_spec()
    schedules = ["linear", "cosine", "gaussian", "bimodal_gaussian"]
    rows = []
    for i in range(n):
        values = {"schedule": schedules[i % 4], "derivative_power": float(rng.uniform(0, 1)),
                  "bimodal_right_rate": float(np.exp(rng.uniform(np.log(0.5), np.log(4)))),
                  "frequency_curriculum": bool(i % 2), "model.num_layers": int(rng.integers(1, 5))}
        if values["schedule"] == "gaussian":
            values["gaussian_mean"] = float(rng.uniform(0.1, 0.5))
        steps = [10, 20] if i == 3 else [10, 20, 30]  # trial 3 early-stopped
        history = []
        for step in steps:
            metrics = {"step": step, "val_nelbo": float(5 - step / 10 + rng.normal()), "pairs_acc": float(rng.uniform(0.4, 0.9)),
                       "pairs_acc_heldout": float(rng.uniform(0.4, 0.9))}
            metrics.update({f"pairs_acc/{u}": float(rng.uniform(0, 1)) for u in UIDS})
            metrics.update({f"pairs_acc_heldout/{u}": float(rng.uniform(0, 1)) for u in UIDS})
            history.append(metrics)
        status = "TERMINATED"
        if i == n - 1:
            status, history = "ERROR", []  # failed before reporting
        if i == n - 2:
            status, history = "ERROR", history[:1]  # failed after one report
        metrics = dict(history[-1]) if history else {}
        rows.append({"trial_id": f"t{i:02d}", "number": i + 1, "status": status, "values": values,
                     "state": trial_state(status, metrics.get("step", 0), 30), "metrics": metrics, "history": history})
    return sweep, rows


CONFIRMATION = {
    "metric": "pairs_acc", "mode": "max", "seeds": 3,
    "configs": [
        {"rank": 1, "trial_id": "t01", "values": {"derivative_power": 0.1}, "seeds": [0, 1, 2],
         "values_per_seed": [0.81, 0.83, 0.79], "mean": 0.81, "std": 0.02, "heldout_mean": 0.78, "heldout_std": 0.03},
        {"rank": 2, "trial_id": "t02", "values": {"derivative_power": 0.5}, "seeds": [0, 1, 2],
         "values_per_seed": [0.75, 0.77, 0.76], "mean": 0.76, "std": 0.01, "heldout_mean": None, "heldout_std": None},
        {"rank": 3, "trial_id": "t03", "values": {"derivative_power": 0.9}, "seeds": [],  # every run failed
         "values_per_seed": [], "mean": math.nan, "std": math.nan, "heldout_mean": None, "heldout_std": None},
    ],
    "difference": {"winner": "t01", "runner_up": "t02", "mean": 0.05, "ci_low": 0.02, "ci_high": 0.08, "level": 0.95,
                   "distinguishable": True, "statement": "t01 beats t02 by 0.05 (95% CI 0.02 to 0.08)."},
}


def test_every_section_from_synthetic_results(tmp_path):
    sweep, rows = synthetic()
    index = report.render_report(sweep, rows, tmp_path / "report", experiment="synthetic", confirmation=CONFIRMATION)
    page, data = check_page(index.parent)
    for name in ("optimization_history", "param_importances", "slice", "metric_vs_params", "learning_curves",
                 "paradigms", "confirmation", "pareto_front"):
        assert name in data["figures"], name
    finished = [r for r in rows if r["status"] == "TERMINATED"]

    # Optimisation history: each finished trial's metric, in creation order; errored ones are FAIL.
    assert [t["state"] for t in data["study_trials"]] == ["COMPLETE"] * 8 + ["FAIL"] * 2
    (history_ax,) = axes_of(data, "optimization_history")
    points = next(s["points"] for s in history_ax["scatters"] if s["points"])
    assert [y for _, y in points] == [r["metrics"]["pairs_acc"] for r in finished]

    # Importance of every searched parameter (PED-ANOVA scores conditional ones too).
    assert set(data["importances"]) == set(sweep.space.search)
    assert math.isclose(sum(data["importances"].values()), 1.0)

    # Metric vs numeric parameters, one colour (legend entry) per schedule.
    panels = {ax["xlabel"]: ax for ax in axes_of(data, "metric_vs_params")}
    assert set(panels) == {"derivative_power", "gaussian_mean", "bimodal_right_rate", "model.num_layers"}
    for scatter in panels["derivative_power"]["scatters"]:
        schedule = scatter["label"].removeprefix("schedule = ")
        expected = [[r["values"]["derivative_power"], r["metrics"]["pairs_acc"]] for r in finished
                    if r["values"]["schedule"] == schedule]
        assert scatter["points"] == expected
    assert len(panels["derivative_power"]["scatters"]) == 4

    # Held-out pairs beside pairs_acc: a second panel per paradigm, a leaderboard column.
    paradigm_axes = axes_of(data, "paradigms")
    assert [ax["title"] for ax in paradigm_axes] == ["pairs_acc by paradigm", "pairs_acc_heldout by paradigm"]
    by_id = {r["trial_id"]: r for r in rows}
    for ax, family in zip(paradigm_axes, ("pairs_acc", "pairs_acc_heldout")):
        assert ax["yticklabels"] == UIDS
        for bar in ax["bars"]:
            trial = by_id[bar["label"].split()[1]]
            assert bar["values"] == [trial["metrics"][f"{family}/{u}"] for u in UIDS]
    leaderboard = page.split('<section id="leaderboard">')[1].split("</section>")[0]
    assert ">pairs_acc_heldout</th>" in leaderboard

    # Confirmation: bars are the means; the statement is on the page.
    (conf_ax,) = axes_of(data, "confirmation")
    assert conf_ax["bars"][0]["values"] == [0.81, 0.76] and conf_ax["bars"][1]["values"] == [0.78]
    assert CONFIRMATION["difference"]["statement"] in page

    # Pareto front: exactly the non-dominated full-budget trials (t03 stopped early).
    signs = (1, -1)
    objective = {r["trial_id"]: (r["metrics"]["pairs_acc"], r["metrics"]["val_nelbo"]) for r in finished
                 if r["metrics"]["step"] == 30}
    front = {t for t, v in objective.items() if not any(is_dominated(v, w, signs) for w in objective.values())}
    assert set(data["pareto_trials"]) == front
    (pareto_ax,) = axes_of(data, "pareto_front")
    plotted = sorted(tuple(p) for s in pareto_ax["scatters"] for p in s["points"])
    assert plotted == sorted(objective.values())


def test_report_says_why_importance_is_omitted(tmp_path):
    _, rows = synthetic(n=3)
    sweep = make_spec(objectives=(("pairs_acc", "max"),))
    rows = rows[:1]
    index = report.render_report(sweep, rows, tmp_path / "report")
    page, data = check_page(index.parent)
    assert "Omitted: needs at least 2 finished trials; this sweep has 1." in page
    assert "param_importances" not in data["figures"] and "pareto_front" not in data["figures"]


def test_distributions_from_recorded_space():
    """sweep.json records the space as data; read back from JSON, the study's distributions
    are the space's own (bounds, log scale, choices and types kept)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from search_spaces import load_space

    space = load_space("full")
    spec = make_spec(space=space.as_data())
    spec = SweepSpec.model_validate_json(spec.to_json())  # through sweep.json
    assert spec.space.load().params == space.params
    rows = [{"values": {"schedule": "gaussian", "derivative_power": 0.3, "gaussian_mean": 0.2, "frequency_weighting": "rank",
                        "frequency_curriculum": True, "model.time_conditioning": False, "bimodal_right_rate": 1.0}}]
    dists = report.distributions(spec, rows)
    assert dists["schedule"] == CategoricalDistribution(["linear", "cosine", "cosine_squared", "gaussian", "bimodal_gaussian"])
    assert dists["derivative_power"] == FloatDistribution(0.0, 1.0)
    assert dists["gaussian_mean"] == FloatDistribution(0.1, 0.5)
    assert dists["bimodal_right_rate"] == FloatDistribution(0.5, 4.0, log=True)
    assert dists["frequency_curriculum"] == CategoricalDistribution([False, True])
    assert set(dists) == set(rows[0]["values"])  # only what trials sampled
    ints = make_spec(space={"search": {"model.num_layers": {"type": "int", "low": 1, "high": 8, "log": True}}})
    assert report.distributions(ints, [{"values": {"model.num_layers": 3}}])["model.num_layers"] == IntDistribution(1, 8, log=True)


def test_cli_rejects_a_folder_that_is_not_a_sweep(tmp_path):
    result = subprocess.run([sys.executable, "sweeps/report.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ") and "not a sweep" in result.stderr


# --- slow: a real sweep -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, cache_dir):
    store = tmp_path_factory.mktemp("sweeps")
    env = {**os.environ, "MDLM_CACHE_DIR": str(cache_dir), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)  # a local Ray, stopped by run.py at the end
    result = subprocess.run(
        [sys.executable, "sweeps/run.py", "--space", "bimodal_p", "--num-samples", "4", "--max-steps", "12",
         "--evals-per-trial", "2", "--scheduler", "none", "--wandb-mode", "offline", "--storage", str(store),
         "--name", "rep", "--cache-dir", str(cache_dir), "--set", "seq_length=32", "--set", "batch_size=8",
         "--set", "micro_batch_size=8", "--set", "val_rows=32", "--set", "eval_pairs_per_paradigm=5",
         "--confirm", "2", "--seeds", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return store / "rep"


@pytest.fixture(scope="module")
def report_index(sweep_dir):
    return report.write_report(str(sweep_dir))


def tune_results(folder: Path) -> list[tuple[str, list[dict]]]:
    """(trial_id, result.json lines) of every trial that finished without error, in creation
    order, read straight from the trial folders (run_trial_<id>_<counter>_...)."""
    trials = []
    for path in folder.glob("run_trial_*/result.json"):
        if (path.parent / "error.txt").exists():
            continue
        _, _, trial_id, counter, *_ = path.parent.name.split("_")
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            trials.append((int(counter), trial_id, lines))
    return [(trial_id, lines) for _, trial_id, lines in sorted(trials)]


def wandb_records(path: Path):
    """The protobuf records of an offline W&B run file (run-*.wandb): W&B's 7-byte header, then
    LevelDB's log format (32 KiB blocks; each fragment a 7-byte header: crc32c, length, type
    1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2

    raw, pos, pending, block = path.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(raw):
        room = block - pos % block
        length, kind = int.from_bytes(raw[pos + 4:pos + 6], "little"), raw[pos + 6]
        if room < 7 or (length == 0 and kind == 0):  # a block's padding
            pos += room
            continue
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_runs(folder: Path) -> list[dict]:
    """Every offline W&B run under a sweep folder: {name, tags, config} as W&B recorded them."""
    runs = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"name": None, "tags": [], "config": {}}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["name"], run["tags"] = record.run.display_name, list(record.run.tags)
                updates = record.run.config.update
            elif kind == "config":
                updates = record.config.update
            else:
                continue
            run["config"].update({item.key: json.loads(item.value_json) for item in updates})
        runs.append(run)
    return runs


@pytest.mark.slow
def test_results_open_in_optuna_wandb_and_the_leaderboard(sweep_dir, report_index):
    import csv

    import optuna

    from trainer.config import TrainConfig

    spec = SweepSpec.load(str(sweep_dir))
    finished = dict(tune_results(sweep_dir))
    # Optuna: the study lives in the sweep folder and opens as any Optuna user opens one.
    assert spec.search.optuna_storage == f"sqlite:///{sweep_dir / 'optuna.db'}"
    study = optuna.load_study(study_name=spec.study_name, storage=spec.search.optuna_storage)
    complete = {t.user_attrs["trial_id"]: t.value for t in study.trials if t.state.name == "COMPLETE"}
    assert complete and set(complete) == set(finished)
    assert all(complete[t] == pytest.approx(lines[-1]["pairs_acc"]) for t, lines in finished.items())
    # W&B: every trial's run carries the whole config, the data hash and the code version;
    # one summary run carries the spec.
    runs = wandb_runs(sweep_dir)
    trials = [r for r in runs if "searched" in r["config"]]
    summaries = [r for r in runs if "spec_version" in r["config"]]
    assert len(trials) == 4 and len(summaries) == 1, [(r["name"], sorted(r["config"])[:5]) for r in runs]
    fields = set(TrainConfig.model_fields)
    for run in trials:
        config = run["config"]
        assert fields <= set(config), fields - set(config)
        assert config["data_hash"] == spec.data.data_hash and config["code_version"] == spec.provenance.code_version
        assert config["trial_state"] == "finished"  # --scheduler none: every trial trains its budget
        assert run["tags"] == ["bimodal_p", "bimodal_gaussian", "finished"]
        assert run["name"].startswith("#") and "derivative_power=" in run["name"]
    summary = summaries[0]
    assert summary["name"] == "rep (summary)" and summary["config"]["data"]["data_hash"] == spec.data.data_hash
    # Ray Tune reads the folder as any Tune experiment.
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(sweep_dir), default_metric="pairs_acc", default_mode="max")
    assert len(analysis.trials) == 4 and analysis.get_best_config()["derivative_power"] is not None
    # The leaderboard says what happened to each trial, and which one was the baseline: the
    # base config (p = 0.1, the recipe's), queued to run first.
    board = list(csv.DictReader(io.StringIO((sweep_dir / "leaderboard.csv").read_text())))
    assert board and all(row["state"] == "finished" for row in board)
    (baseline,) = [row for row in board if row["baseline"] == "yes"]
    assert float(baseline["derivative_power"]) == 0.1 and float(baseline["pairs_acc_se"]) > 0
    first = min(study.trials, key=lambda t: t.number)
    assert first.user_attrs.get("baseline") and first.user_attrs["trial_id"] == baseline["trial_id"]
    page = (sweep_dir / "report" / "index.html").read_text()
    assert "Gain over the baseline" in page or "The baseline (the base config, run first) is the best trial" in page
    assert "Does early stopping stop the right trials?" in page


@pytest.mark.slow
def test_report_of_a_real_sweep_plots_the_results(sweep_dir, report_index):
    index = report_index
    assert index == sweep_dir / "report" / "index.html"
    page, data = check_page(index.parent)
    results = tune_results(sweep_dir)
    assert len(results) >= 2
    last = {trial_id: lines[-1] for trial_id, lines in results}
    metric = data["metric"]
    assert metric == "pairs_acc"

    # Optimisation history: the metric of each trial, in the order the search proposed them.
    (ax,) = axes_of(data, "optimization_history")
    points = next(s["points"] for s in ax["scatters"] if s["points"])
    assert [y for _, y in points] == [lines[-1][metric] for _, lines in results]
    assert [t["trial_id"] for t in data["study_trials"] if t["state"] == "COMPLETE"] == [t for t, _ in results]

    # Learning curves: each plotted trial's full history, metric and val_nelbo by step.
    history = dict(results)
    curves = axes_of(data, "learning_curves")
    assert [ax["ylabel"] for ax in curves] == [metric, "val_nelbo"]
    for ax in curves:
        assert ax["lines"]
        for line in ax["lines"]:
            lines = history[line["label"].split()[1]]
            assert line["x"] == [r["step"] for r in lines] and line["y"] == [r[ax["ylabel"]] for r in lines]

    # Per-paradigm bars: pairs_acc/<UID> (and pairs_acc_heldout/<UID> when reported) of the best
    # trials, none better left out.
    families = ["pairs_acc"] + (["pairs_acc_heldout"] if any("pairs_acc_heldout" in v for v in last.values()) else [])
    paradigm_axes = axes_of(data, "paradigms")
    assert [ax["title"] for ax in paradigm_axes] == [f"{f} by paradigm" for f in families]
    uids = sorted(k.split("/", 1)[1] for k in next(iter(last.values())) if k.startswith("pairs_acc/"))
    for ax, family in zip(paradigm_axes, families):
        assert ax["yticklabels"] == uids and len(ax["bars"]) == min(3, len(last))
        shown = [bar["label"].split()[1] for bar in ax["bars"]]
        for bar, trial_id in zip(ax["bars"], shown):
            assert bar["values"] == [last[trial_id][f"{family}/{u}"] for u in uids]
    assert min(last[t][metric] for t in shown) >= max((v[metric] for t, v in last.items() if t not in shown), default=0)
    if len(families) == 2:
        leaderboard = page.split('<section id="leaderboard">')[1].split("</section>")[0]
        assert ">pairs_acc_heldout</th>" in leaderboard

    # Header and leaderboard.
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    for text in (sweep["data"]["data_hash"], sweep["provenance"]["code_version"], "bimodal_p", "tpe", "pairs_acc (max)"):
        assert text in page
    for trial_id in last:
        assert f">{trial_id}</td>" in page


@pytest.mark.slow
def test_confirmation_of_a_real_sweep(sweep_dir, report_index):
    """--confirm 2 --seeds 2: the top two configurations rerun at the full budget with two fresh
    seeds each; the summary's numbers are those runs' results, read here from Tune's files."""
    confirmation = json.loads((sweep_dir / "confirmation.json").read_text())
    runs = {}
    for path in (sweep_dir / "confirm").glob("run_trial_*/params.json"):
        values = json.loads(path.read_text())["grid_point"]
        lines = [json.loads(l) for l in (path.parent / "result.json").read_text().splitlines() if l.strip()]
        runs[(json.dumps({k: v for k, v in values.items() if k != "seed"}, sort_keys=True), values["seed"])] = lines[-1]
    assert len(runs) == 4 and all(r["step"] == 12 for r in runs.values())
    assert len(confirmation["configs"]) == 2 and confirmation["seed_values"] == [1000, 1001]
    for entry in confirmation["configs"]:
        key = json.dumps(entry["values"], sort_keys=True)
        values = [runs[(key, seed)]["pairs_acc"] for seed in (1000, 1001)]
        assert entry["values_per_seed"] == values
        assert entry["mean"] == pytest.approx(sum(values) / 2)
        assert entry["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
        assert entry["heldout_per_seed"] == [runs[(key, seed)]["pairs_acc_heldout"] for seed in (1000, 1001)]
    first, second = confirmation["configs"]
    assert first["mean"] >= second["mean"]
    difference = confirmation["difference"]
    assert difference["mean"] == pytest.approx(first["mean"] - second["mean"])
    assert difference["ci_low"] <= difference["mean"] <= difference["ci_high"]
    assert difference["distinguishable"] == (difference["ci_low"] > 0)
    # The exported best config is the confirmed winner, and the report shows the statement.
    best = json.loads((sweep_dir / "best_config.json").read_text())
    assert best["provenance"]["trial_id"] == first["trial_id"] and best["provenance"]["selected_by"] == "confirmation"
    page = report_index.read_text()
    assert difference["statement"].split(":")[0].split(" (")[0] in page


@pytest.mark.slow
def test_report_is_idempotent_and_works_on_a_uri(sweep_dir, report_index, tmp_path):
    first = report_index
    files = sorted(p.name for p in first.parent.iterdir())
    (first.parent / "stale.png").write_bytes(b"old")
    second = report.write_report(str(sweep_dir))
    assert second == first and sorted(p.name for p in second.parent.iterdir()) == files

    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report"))
    local = report.write_report(f"file://{copy}")
    assert local.parent != copy / "report"  # built in a local temp folder, then uploaded
    assert sorted(p.name for p in (copy / "report").iterdir()) == sorted(p.name for p in local.parent.iterdir())
    shutil.rmtree(local.parent.parent)


@pytest.mark.slow
def test_cli_rejects_a_sweep_without_results(tmp_path, sweep_dir):
    (tmp_path / "sweep.json").write_text((sweep_dir / "sweep.json").read_text())
    result = subprocess.run([sys.executable, "sweeps/report.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium); "
                                             "the headless render check needs it")
def test_report_renders_in_headless_chromium(report_index, tmp_path):
    import matplotlib.image

    index = report_index
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,4000", index.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert shot.exists(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 500  # text alone gives a few dozen greys; figures give many colours
    # Figures are drawn down the page, not just the header: the lower half is not blank.
    lower = pixels[pixels.shape[0] // 2:]
    assert (lower < 0.9).any(axis=-1).mean() > 0.02


def test_report_says_in_words_when_the_winner_is_within_noise(tmp_path):
    _, rows = synthetic(n=4)
    sweep = make_spec(objectives=(("pairs_acc", "max"),))
    finished = [r for r in rows if r["status"] == "TERMINATED" and r["metrics"].get("step") == 30][:2]
    for row, (acc, se) in zip(finished, ((0.52, 0.03), (0.48, 0.04))):
        row["metrics"].update(pairs_acc=acc, pairs_acc_se=se)
        row["history"][-1].update(pairs_acc=acc, pairs_acc_se=se)
    for row in rows:
        if row not in finished:
            row["metrics"]["pairs_acc"] = 0.1
    page = (report.render_report(sweep, rows, tmp_path / "near")).read_text()
    assert "0.52 ± 0.03" in page
    assert (f"the best trial ({finished[0]['trial_id']}, finished) beats the runner-up ({finished[1]['trial_id']}, "
            "finished) by 0.0400 "
            "pairs_acc (standard error 0.0500, z = 0.80): within noise: not distinguishable at this budget; run --confirm") in page
    finished[0]["metrics"]["pairs_acc"] = 0.70
    page = (report.render_report(sweep, rows, tmp_path / "far")).read_text()
    assert "more than the noise of the two numbers" in page
