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
PAIRS_PER_PARADIGM = 20  # the synthetic trials score this many pairs in every paradigm, tuning and held-out
STOPPED_EARLY = (3, 5)  # synthetic trials that ASHA stopped at step 20 of 30


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


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def synthetic(n: int = 12, seed: int = 0) -> tuple[SweepSpec, list[dict]]:
    """A `full`-like space (categorical, conditional, log, bool, int) with held-out pairs and a
    standard error beside every metric, as the trainer reports them (pairs: binomial over
    PAIRS_PER_PARADIGM pairs in each of the UIDS)."""
    rng = np.random.default_rng(seed)
    sweep = make_spec(eval_pairs_per_paradigm=PAIRS_PER_PARADIGM)
    scored = PAIRS_PER_PARADIGM * len(UIDS)
    schedules = ["linear", "cosine", "gaussian", "bimodal_gaussian"]
    rows = []
    for i in range(n):
        values = {"schedule": schedules[i % 4], "derivative_power": float(rng.uniform(0, 1)),
                  "bimodal_right_rate": float(np.exp(rng.uniform(np.log(0.5), np.log(4)))),
                  "frequency_curriculum": bool(i % 2), "model.num_layers": int(rng.integers(1, 5))}
        if values["schedule"] == "gaussian":
            values["gaussian_mean"] = float(rng.uniform(0.1, 0.5))
        steps = [10, 20] if i in STOPPED_EARLY else [10, 20, 30]
        history = []
        for step in steps:
            metrics = {"step": step, "val_nelbo": float(5 - step / 10 + rng.normal()), "pairs_acc": float(rng.uniform(0.4, 0.9)),
                       "pairs_acc_heldout": float(rng.uniform(0.4, 0.9)), "val_nelbo_se": float(rng.uniform(0.05, 0.3))}
            metrics["pairs_acc_se"] = binomial_se(metrics["pairs_acc"], scored)
            metrics["pairs_acc_heldout_se"] = binomial_se(metrics["pairs_acc_heldout"], scored)
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
    full_budget = [r for r in finished if r["metrics"]["step"] == 30]

    # Optimisation history: each finished trial's metric, in creation order (full-budget and
    # stopped-early trials as two scatters); errored ones are FAIL.
    assert [t["state"] for t in data["study_trials"]] == ["COMPLETE"] * 10 + ["FAIL"] * 2
    (history_ax,) = axes_of(data, "optimization_history")
    points = sorted(p for s in history_ax["scatters"] for p in s["points"])
    assert [y for _, y in points] == [r["metrics"]["pairs_acc"] for r in finished]
    (stopped,) = [s for s in history_ax["scatters"] if s["label"].startswith("stopped early")]
    assert [x for x, _ in stopped["points"]] == list(STOPPED_EARLY)

    # Importance of every searched parameter (PED-ANOVA scores conditional ones too).
    assert set(data["importances"]) == set(sweep.space.search)
    assert math.isclose(sum(data["importances"].values()), 1.0)

    # Metric vs numeric parameters, one colour (legend entry) per schedule; full-budget trials only.
    panels = {ax["xlabel"]: ax for ax in axes_of(data, "metric_vs_params")}
    assert set(panels) == {"derivative_power", "gaussian_mean", "bimodal_right_rate", "model.num_layers"}
    for scatter in panels["derivative_power"]["scatters"]:
        schedule = scatter["label"].removeprefix("schedule = ")
        expected = [[r["values"]["derivative_power"], r["metrics"]["pairs_acc"]] for r in full_budget
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
    assert ("No importance chart: 1 trial trained the full budget; importances of 5 searched parameters need at "
            "least 7 (parameters + 2).") in page
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
        for line in (line for line in ax["lines"] if line["label"] != "chance"):
            lines = history[line["label"].split()[1]]
            assert line["x"] == [r["step"] for r in lines] and line["y"] == [r[ax["ylabel"]] for r in lines]

    # Per-paradigm bars: pairs_acc/<UID> (and pairs_acc_heldout/<UID> when reported) of the best
    # trials, none better left out.
    families = ["pairs_acc"] + (["pairs_acc_heldout"] if any("pairs_acc_heldout" in v for v in last.values()) else [])
    paradigm_axes = axes_of(data, "paradigms")
    assert [ax["title"] for ax in paradigm_axes] == [f"{f} by paradigm" for f in families]
    uids = sorted(k.split("/", 1)[1] for k in next(iter(last.values()))
                  if k.startswith("pairs_acc/") and not k.endswith(("_n", "_se")))  # a paradigm's count or SE
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


# --- the noise in every figure ---------------------------------------------------------------

Z = 1.96  # half-width of a 95% normal interval, in standard errors


def error_bars(bars: dict) -> list[tuple[float, float, float]]:
    """(position, centre, half-width) of each drawn error bar."""
    return [(at, (lo + hi) / 2, (hi - lo) / 2) for at, lo, hi in zip(bars["at"], bars["low"], bars["high"])]


def flat(pairs) -> list[float]:
    return [v for pair in pairs for v in pair]


def chance_lines(ax: dict) -> list[str]:
    """The orientation of each line labelled "chance" that sits at 0.5."""
    found = []
    for line in ax["lines"]:
        if line["label"] == "chance":
            assert line["y"] == [0.5, 0.5] or line["x"] == [0.5, 0.5], line
            found.append("horizontal" if line["y"] == [0.5, 0.5] else "vertical")
    return found


def test_every_metric_is_drawn_with_its_standard_error(tmp_path):
    """Bands and error bars are ±1.96 times the SE the trial reported beside the very number."""
    sweep, rows = synthetic()
    index = report.render_report(sweep, rows, tmp_path / "report", confirmation=CONFIRMATION)
    _, data = check_page(index.parent)
    by_id = {r["trial_id"]: r for r in rows}
    finished = [r for r in rows if r["status"] == "TERMINATED"]
    full_budget = [r for r in finished if r["metrics"]["step"] == 30]

    # Learning curves: a band per trial line, the history's value ± 1.96 SE at every step.
    for ax in axes_of(data, "learning_curves"):
        metric = ax["ylabel"]
        trial_lines = [line for line in ax["lines"] if line["label"] != "chance"]
        assert trial_lines and len(ax["bands"]) == len(trial_lines)
        for line, band in zip(trial_lines, ax["bands"]):
            history = by_id[line["label"].split()[1]]["history"]
            assert band["label"] == line["label"] and band["x"] == [h["step"] for h in history]
            assert band["lower"] == pytest.approx([h[metric] - Z * h[f"{metric}_se"] for h in history], rel=1e-4)
            assert band["upper"] == pytest.approx([h[metric] + Z * h[f"{metric}_se"] for h in history], rel=1e-4)

    # Optimisation history: a bar on every finished trial (stopped early too), at its trial number.
    (ax,) = axes_of(data, "optimization_history")
    drawn = sorted(bar for bars in ax["errorbars"] for bar in error_bars(bars))
    expected = [(i, r["metrics"]["pairs_acc"], Z * r["metrics"]["pairs_acc_se"]) for i, r in enumerate(finished)]
    assert [at for at, _, _ in drawn] == [i for i, _, _ in expected]
    assert [c for _, c, _ in drawn] == pytest.approx([c for _, c, _ in expected])
    assert [h for _, _, h in drawn] == pytest.approx([h for _, _, h in expected], rel=1e-4)

    # Metric against each parameter: one bar per full-budget trial that has the parameter.
    for figure in ("slice", "metric_vs_params"):
        for ax in axes_of(data, figure):
            name = ax["xlabel"]
            drawn = sorted((c, h) for bars in ax["errorbars"] for _, c, h in error_bars(bars))
            expected = sorted((r["metrics"]["pairs_acc"], Z * r["metrics"]["pairs_acc_se"]) for r in full_budget
                              if name in r["values"])
            assert len(drawn) == len(expected), (figure, name)
            assert flat(drawn) == pytest.approx(flat(expected), rel=1e-4), (figure, name)

    # Per paradigm: binomial bars over the PAIRS_PER_PARADIGM pairs of each paradigm.
    for ax in axes_of(data, "paradigms"):
        family = ax["title"].removesuffix(" by paradigm")
        for bar in ax["bars"]:
            metrics = by_id[bar["label"].split()[1]]["metrics"]
            accuracies = [metrics[f"{family}/{u}"] for u in UIDS]
            assert bar["errors"]["axis"] == "x" and bar["errors"]["at"] == pytest.approx(bar["positions"])
            assert [c for _, c, _ in error_bars(bar["errors"])] == pytest.approx(accuracies)
            assert [h for _, _, h in error_bars(bar["errors"])] == pytest.approx(
                [Z * binomial_se(p, PAIRS_PER_PARADIGM) for p in accuracies], rel=1e-4)

    # Pareto front: both objectives' bars on every full-budget trial.
    (ax,) = axes_of(data, "pareto_front")
    for axis, metric in (("x", "pairs_acc"), ("y", "val_nelbo")):
        drawn = sorted((c, h) for bars in ax["errorbars"] if bars["axis"] == axis for _, c, h in error_bars(bars))
        expected = sorted((r["metrics"][metric], Z * r["metrics"][f"{metric}_se"]) for r in full_budget)
        assert flat(drawn) == pytest.approx(flat(expected), rel=1e-4), axis


def test_paradigm_pair_counts():
    """n per paradigm: reported; exactly the cap when the total fills every paradigm to it; else
    a lower bound (so the SE drawn is an upper bound); else unknown."""
    paradigms = ["a", "b", "c"]
    p = 0.6
    inferred = {"pairs_acc": p, "pairs_acc_se": binomial_se(p, 60)}  # 60 pairs, from the binomial SE
    counts = {"pairs_acc/a_n": 10, "pairs_acc/b_n": 30, "pairs_acc/c_n": 20}
    assert report.paradigm_pair_counts({**inferred, **counts}, "pairs_acc", paradigms, 20) == (
        {"a": 10, "b": 30, "c": 20}, "reported")
    assert report.paradigm_pair_counts(inferred, "pairs_acc", paradigms, 20) == ({"a": 20, "b": 20, "c": 20}, "at the cap")
    # With a cap of 25 the two others hold at most 50 of the 60: each has at least 10.
    assert report.paradigm_pair_counts(inferred, "pairs_acc", paradigms, 25) == ({"a": 10, "b": 10, "c": 10}, "at least")
    assert report.paradigm_pair_counts(inferred, "pairs_acc", paradigms, 40) == ({}, "unknown")
    assert report.paradigm_pair_counts(inferred, "pairs_acc", paradigms, None) == ({}, "unknown")
    assert report.paradigm_pair_counts({"pairs_acc": p}, "pairs_acc", paradigms, 20) == ({}, "unknown")
    # The trainer's own keys: per-paradigm counts of the tuning pairs, totals of both parts.
    trainer_counts = {"pairs_n/a": 12, "pairs_n/b": 30, "pairs_n/c": 18}
    assert report.paradigm_pair_counts({**inferred, **trainer_counts}, "pairs_acc", paradigms, 20) == (
        {"a": 12, "b": 30, "c": 18}, "reported")
    # A reported total wins over the one the SE implies.
    scored = {**inferred, "pairs_scored": 75}
    assert report.paradigm_pair_counts(scored, "pairs_acc", paradigms, 25) == ({"a": 25, "b": 25, "c": 25}, "at the cap")
    held_out = {"pairs_acc_heldout": p, "pairs_acc_heldout_se": binomial_se(p, 60)}
    assert report.paradigm_pair_counts(held_out, "pairs_acc_heldout", paradigms, 20)[1] == "at the cap"
    held_out["pairs_heldout_scored"] = 55  # 55 - 2 x 20: at least 15 each
    assert report.paradigm_pair_counts(held_out, "pairs_acc_heldout", paradigms, 20) == (
        {"a": 15, "b": 15, "c": 15}, "at least")


def test_paradigm_bars_use_reported_pair_counts(tmp_path):
    """Reported counts give each bar its own n: the trainer's `pairs_n/<paradigm>` for the tuning
    pairs, `pairs_acc_heldout/<paradigm>_n` (not drawn as a paradigm) for the held-out ones."""
    _, rows = synthetic(n=6)
    sweep = make_spec(objectives=(("pairs_acc", "max"),), eval_pairs_per_paradigm=PAIRS_PER_PARADIGM)
    counts = {"pairs_acc": dict(zip(UIDS, (10, 30, 20))), "pairs_acc_heldout": dict(zip(UIDS, (25, 5, 15)))}
    for row in rows:
        for record in [row["metrics"], *row["history"]]:
            if "pairs_acc" in record:
                record.update({f"pairs_n/{u}": n for u, n in counts["pairs_acc"].items()})
                record.update({f"pairs_acc_heldout/{u}_n": n for u, n in counts["pairs_acc_heldout"].items()})
    index = report.render_report(sweep, rows, tmp_path / "report")
    page, data = check_page(index.parent)
    by_id = {r["trial_id"]: r for r in rows}
    for ax, family in zip(axes_of(data, "paradigms"), counts, strict=True):
        assert ax["title"] == f"{family} by paradigm" and ax["yticklabels"] == UIDS
        for bar in ax["bars"]:
            metrics = by_id[bar["label"].split()[1]]["metrics"]
            assert [h for _, _, h in error_bars(bar["errors"])] == pytest.approx(
                [Z * binomial_se(metrics[f"{family}/{u}"], counts[family][u]) for u in UIDS], rel=1e-4)
    assert "n as the trial reported it per paradigm" in data["figures"]["paradigms"]["caption"]

    # Neither reported nor bounded (all pairs scored: no cap): no bars, and the caption says why.
    _, rows = synthetic(n=6)
    index = report.render_report(make_spec(objectives=(("pairs_acc", "max"),), eval_pairs_per_paradigm=None), rows,
                                 tmp_path / "unbounded")
    _, data = check_page(index.parent)
    assert not any("errors" in bar for ax in axes_of(data, "paradigms") for bar in ax["bars"])
    assert ("no error bars: the pairs per paradigm are not reported and cannot be bounded"
            in data["figures"]["paradigms"]["caption"])


def test_accuracy_panels_draw_chance(tmp_path):
    """Every panel of pairs_acc, pairs_acc_heldout or a paradigm's accuracy has a line labelled
    "chance" at 0.5, along the accuracy axis; no other panel has one."""
    sweep, rows = synthetic()
    index = report.render_report(sweep, rows, tmp_path / "report", confirmation=CONFIRMATION)
    _, data = check_page(index.parent)
    accuracy = re.compile(r"pairs_acc(_heldout)?(/\w+)?( \(accuracy\))?$")
    panels = 0
    for name, figure in data["figures"].items():
        for ax in figure["axes"]:
            expected = (["horizontal"] if accuracy.match(ax["ylabel"]) else []) + (
                ["vertical"] if accuracy.match(ax["xlabel"]) else [])
            assert chance_lines(ax) == expected, (name, ax["title"], ax["xlabel"], ax["ylabel"])
            panels += bool(expected)
    # history 1, slice 6, metric_vs_params 4, learning curves 1 (not val_nelbo), paradigms 2,
    # confirmation 1, Pareto 1
    assert panels == 16


def test_axes_never_zoom_inside_the_noise(tmp_path, monkeypatch):
    """No axis uses offset notation, and every axis shows every error bar and band whole (and
    chance, on an accuracy axis): near-identical numbers must not look like a trend."""
    sweep, rows = synthetic()
    for row in rows:
        for i, record in enumerate([*row["history"], row["metrics"]]):
            if "val_nelbo" in record:  # 6.9610..6.9615 without an SE: matplotlib would write "+6.961"
                record["val_nelbo"] = 6.961 + 1e-4 * ((row["number"] + i) % 6)
                record.pop("val_nelbo_se")
    pages = {}
    for name, keep_offsets in (("with_offsets", True), ("report", False)):
        if keep_offsets:  # the fixture does provoke offset notation when nothing prevents it
            monkeypatch.setattr(report, "_no_offsets", lambda fig: None)
        else:
            monkeypatch.undo()
        index = report.render_report(sweep, rows, tmp_path / name, confirmation=CONFIRMATION)
        pages[name] = json.loads((index.parent / "data.json").read_text())
    assert any(offset for figure in pages["with_offsets"]["figures"].values() for ax in figure["axes"]
               for offset in ax["offsets"])

    data = pages["report"]
    # Without a band, the curves' spread has no scale, and the title says so.
    assert [ax["title"] for ax in axes_of(data, "learning_curves")] == [
        "pairs_acc by step (shaded: ±1.96 SE)", "val_nelbo by step (no standard error reported)"]
    checked = 0
    for name, figure in data["figures"].items():
        for ax in figure["axes"]:
            assert ax["offsets"] == ["", ""], (name, ax["title"])
            needed = {"x": [], "y": []}
            for bars in ax["errorbars"]:
                needed[bars["axis"]] += bars["low"] + bars["high"]
            for bar in ax["bars"]:
                if "errors" in bar:
                    needed[bar["errors"]["axis"]] += bar["errors"]["low"] + bar["errors"]["high"]
            for band in ax["bands"]:
                needed["y"] += band["lower"] + band["upper"]
            for orientation in chance_lines(ax):
                needed["y" if orientation == "horizontal" else "x"].append(0.5)
            for axis, values in needed.items():
                values = [v for v in values if v is not None]
                if values:
                    low, high = sorted(ax[f"{axis}lim"])
                    assert low <= min(values) and max(values) <= high, (name, ax["title"], axis)
                    checked += 1
    assert checked >= 15


def test_nothing_learned_when_the_best_is_within_noise_of_chance():
    def best(**metrics):
        return {"metrics": metrics}

    sentence = report.nothing_learned(best(pairs_acc=0.52, pairs_acc_se=0.03), "pairs_acc")
    assert sentence.startswith("Nothing was learned at this budget: the best trial's pairs_acc 0.520 ± 0.030")
    assert "within noise of chance (0.5)" in sentence
    assert report.nothing_learned(best(pairs_acc=0.45, pairs_acc_se=0.03), "pairs_acc")  # below chance
    # 1.96 × 0.03 = 0.0588: 0.558 is within noise of 0.5, 0.560 is not.
    assert report.nothing_learned(best(pairs_acc=0.558, pairs_acc_se=0.03), "pairs_acc")
    assert report.nothing_learned(best(pairs_acc=0.560, pairs_acc_se=0.03), "pairs_acc") is None
    assert report.nothing_learned(best(pairs_acc=0.52), "pairs_acc") is None  # no SE: nothing to say
    assert report.nothing_learned(best(val_nelbo=0.52, val_nelbo_se=0.03), "val_nelbo") is None
    assert report.nothing_learned(best(**{"pairs_acc/x": 0.5, "pairs_acc/x_se": 0.1}), "pairs_acc/x")


def test_report_opens_with_nothing_learned_at_chance(tmp_path):
    """The first sentence under the title says nothing was learned, and importances computed from
    trials that differ by less than their noise carry a warning."""
    _, rows = synthetic()
    sweep = make_spec(objectives=(("pairs_acc", "max"),))
    for row in rows:
        for record in [*row["history"], row["metrics"]]:
            if "pairs_acc" in record:  # every trial near chance: 0.47..0.53 over 60 pairs
                record["pairs_acc"] = 0.47 + 0.01 * (row["number"] % 7)
                record["pairs_acc_se"] = binomial_se(record["pairs_acc"], 60)
    index = report.render_report(sweep, rows, tmp_path / "chance")
    page, data = check_page(index.parent)
    first = page.split("</h1>", 1)[1].lstrip()
    assert first.startswith('<p class="warning headline">Nothing was learned at this budget: the best trial&#x27;s '
                            "pairs_acc 0.5")
    assert data["headline"].startswith("Nothing was learned at this budget")
    importance = page.split('<section id="importance">')[1].split("</section>")[0]
    assert "param_importances" in data["figures"] and "all lie within noise of each other" in importance

    sweep, rows = synthetic()  # the best is far above chance, the worst at it
    index = report.render_report(sweep, rows, tmp_path / "learned")
    page, data = check_page(index.parent)
    assert data["headline"] is None and "Nothing was learned" not in page
    assert "within noise of each other" not in page


def test_parameter_figures_rest_on_full_budget_trials(tmp_path):
    """Importance, slice and metric-vs-parameter figures leave out trials stopped early (their
    value is from fewer steps) and say how many they rest on; no importances from too few."""
    sweep, rows = synthetic()
    index = report.render_report(sweep, rows, tmp_path / "report")
    _, data = check_page(index.parent)
    for name in ("param_importances", "slice", "metric_vs_params"):
        assert "from 8 full-budget trials; 2 stopped early are left out" in data["figures"][name]["caption"], name
    stopped_values = {rows[i]["metrics"]["pairs_acc"] for i in STOPPED_EARLY}
    for name in ("slice", "metric_vs_params"):
        plotted = {y for ax in axes_of(data, name) for s in ax["scatters"] for _, y in s["points"]}
        assert plotted and not plotted & stopped_values, name

    # A stopped trial's number changes nothing in the importances.
    for i in STOPPED_EARLY:
        rows[i]["metrics"]["pairs_acc"] = rows[i]["history"][-1]["pairs_acc"] = 0.99
    index = report.render_report(sweep, rows, tmp_path / "changed")
    assert json.loads((index.parent / "data.json").read_text())["importances"] == data["importances"]

    # One full-budget trial fewer than parameters + 2: a note, no chart.
    rows[0]["history"] = rows[0]["history"][:2]
    rows[0]["metrics"] = dict(rows[0]["history"][-1])
    rows[0]["state"] = trial_state(rows[0]["status"], 20, 30)
    index = report.render_report(sweep, rows, tmp_path / "few")
    page, data = check_page(index.parent)
    assert "param_importances" not in data["figures"] and "importances" not in data
    assert ("No importance chart: 7 trials trained the full budget; importances of 6 searched parameters need at "
            "least 8 (parameters + 2).") in page
    assert "from 7 full-budget trials; 3 stopped early are left out" in data["figures"]["slice"]["caption"]
