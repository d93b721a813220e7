"""The sweep's results where its users look, written on public APIs: TensorBoard and W&B curves
against the training step (not Tune's report count), one W&B run per trial, no per-item records
in either, and no private Ray name imported anywhere in sweeps/.

The callbacks are driven as Tune drives them (start, results, end, experiment end) with
stand-in trials: no Ray cluster is started."""

import ast
import json
import math
import struct
from pathlib import Path

import pytest

from sweeps.loggers import TensorBoardByStep, WandbTrialRuns
from sweeps.spec import WandbSettings
from sweeps.tuning import run_config, wandb_callback

ROOT = Path(__file__).resolve().parents[1]
STEPS = [4, 8, 12]  # the training steps the trials report at (one report each, iterations 1, 2, 3)


class StandInTrial:
    """What Tune's loggers read of a Trial."""

    def __init__(self, trial_id: str, number: int, folder: Path, config: dict):
        self.trial_id, self.config, self.evaluated_params = trial_id, config, config
        self.local_path = str(folder / f"run_trial_{trial_id}")
        self.experiment_tag = f"{number}_derivative_power={config['derivative_power']}"
        self.experiment_dir_name = folder.name
        self.last_result: dict = {}

    def __str__(self):
        return f"run_trial_{self.trial_id}"


def results(trial: StandInTrial, steps=STEPS, diverge_at=None):
    """The results a trial reports: metrics, Tune's bookkeeping, the per-item records."""
    for iteration, step in enumerate(steps, start=1):
        diverged = diverge_at is not None and step >= diverge_at
        result = {
            "step": step, "training_iteration": iteration, "pairs_acc": math.nan if diverged else 0.5 + step / 100,
            "val_nelbo": 9.0 - step / 10, "pairs_acc/P01": 0.25, "diverged": diverged,
            "items": {"P01": "AAAA/w==", "order": ["P01"]}, "trial_id": trial.trial_id, "pid": 1234,
            "hostname": "node", "date": "2026-01-01_00-00-00", "done": step == steps[-1],
            "config": dict(trial.config), "timestamp": 1767225600 + iteration, "time_total_s": 1.5 * iteration,
        }
        trial.last_result = result
        yield iteration, result


def drive(callback, trials_and_results, failed=()):
    """Tune's calls, in Tune's order."""
    for trial, reports in trials_and_results:
        callback.on_trial_start(iteration=0, trials=[], trial=trial)
        for iteration, result in reports:
            callback.on_trial_result(iteration=iteration, trials=[], trial=trial, result=result)
        if trial.trial_id in failed:
            callback.on_trial_error(iteration=0, trials=[], trial=trial)
        else:
            callback.on_trial_complete(iteration=0, trials=[], trial=trial)
    callback.on_experiment_end(trials=[t for t, _ in trials_and_results])


@pytest.fixture
def spec(tmp_path):
    from tests_spec import spec_for

    return spec_for(schedule="bimodal_gaussian", max_steps=12).with_changes(
        storage=str(tmp_path / "sweeps"), wandb=WandbSettings(mode="offline", dir=str(tmp_path / "sweeps" / "test")))


@pytest.fixture(autouse=True)
def no_ray_cluster():
    import ray

    assert not ray.is_initialized()
    yield
    assert not ray.is_initialized(), "a logger started Ray"


# --- TensorBoard --------------------------------------------------------------------------


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(global step, value)]} of every events file in `folder`, read with TensorBoard's
    own reader when it is installed (the `tensorboard` extra), else from the TFRecord framing
    with tensorboardX's protos (length, its CRC, the Event, its CRC)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        EventAccumulator = None
    if EventAccumulator is not None:
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        raw, pos = path.read_bytes(), 0
        while pos + 12 <= len(raw):
            (length,) = struct.unpack("<Q", raw[pos:pos + 8])
            event = event_pb2.Event.FromString(raw[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_curves_are_against_the_training_step(spec, tmp_path):
    from ray.tune.logger import TBXLoggerCallback

    callbacks = run_config(spec, wandb=False).callbacks
    tensorboard = [c for c in callbacks if isinstance(c, TBXLoggerCallback)]
    # One of its kind: Tune adds its default TensorBoard logger only when none was passed.
    assert len(tensorboard) == 1 and isinstance(tensorboard[0], TensorBoardByStep), callbacks
    trial = StandInTrial("a0001_00000", 1, tmp_path / "exp", {"derivative_power": 0.1})
    diverging = StandInTrial("a0001_00001", 2, tmp_path / "exp", {"derivative_power": 1.0})
    drive(tensorboard[0], [(trial, list(results(trial))), (diverging, list(results(diverging, diverge_at=8)))],
          failed={diverging.trial_id})

    scalars = tensorboard_scalars(Path(trial.local_path))
    assert [step for step, _ in scalars["ray/tune/pairs_acc"]] == STEPS  # not the report count 1, 2, 3
    assert [value for _, value in scalars["ray/tune/val_nelbo"]] == pytest.approx([9.0 - s / 10 for s in STEPS])
    assert [step for step, _ in scalars["ray/tune/pairs_acc/P01"]] == STEPS
    assert not [tag for tag in scalars if "items" in tag], sorted(scalars)  # records are not curves
    assert not {"ray/tune/training_iteration", "ray/tune/pid", "ray/tune/timestamp"} & set(scalars)
    nan_free = tensorboard_scalars(Path(diverging.local_path))
    assert [step for step, _ in nan_free["ray/tune/pairs_acc"]] == [4]  # NaN is no point on a curve
    assert [step for step, _ in nan_free["ray/tune/val_nelbo"]] == STEPS


def test_tensorboard_falls_back_to_the_report_count_without_a_step(tmp_path):
    callback = TensorBoardByStep()
    trial = StandInTrial("a0002_00000", 1, tmp_path, {"derivative_power": 0.5})
    for iteration in (1, 2):
        callback.log_trial_result(iteration, trial, {"training_iteration": iteration, "loss": 1.0 / iteration})
    callback.log_trial_end(trial)
    assert [step for step, _ in tensorboard_scalars(Path(trial.local_path))["ray/tune/loss"]] == [1, 2]


# --- public APIs only ---------------------------------------------------------------------


def private_ray_names(path: Path) -> list[str]:
    """`from ray... import _x`, `import ray._x`, `from ray._x import y` and `ray.x._y` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ray":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names
                      if a.name.split(".")[0] == "ray" and any(p.startswith("_") for p in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "ray":
                found.append(".".join(["ray", *reversed(chain)]))
    return found


def test_sweeps_use_no_private_ray_name():
    found = {path.name: names for path in sorted((ROOT / "sweeps").glob("*.py")) if (names := private_ray_names(path))}
    assert not found, f"private Ray names (they change without notice between releases): {found}"


# --- W&B ----------------------------------------------------------------------------------

from test_report import wandb_records  # noqa: E402  (the one reader of offline run files)




def offline_runs(folder: Path) -> dict[str, dict]:
    """{run id: {name, group, tags, config, history, exit_code, step_metric}} of the offline runs in folder/wandb."""
    runs = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"history": [], "config": {}, "tags": [], "exit_code": None, "step_metric": {}}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(id=record.run.run_id, name=record.run.display_name, group=record.run.run_group,
                           tags=list(record.run.tags))
                run["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                run["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                run["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                       for i in record.history.item})
            elif kind == "metric":
                run["step_metric"][record.metric.glob_name or record.metric.name] = record.metric.step_metric
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
        runs[run["id"]] = run
    return runs


def test_wandb_writes_one_run_per_trial_against_the_training_step(spec, tmp_path):
    callback = next(c for c in run_config(spec).callbacks if isinstance(c, WandbTrialRuns))
    folder = Path(spec.wandb.dir)
    finished = StandInTrial("b0001_00000", 1, folder, {"derivative_power": 0.1})
    stopped = StandInTrial("b0001_00001", 2, folder, {"derivative_power": 0.5})
    errored = StandInTrial("b0001_00002", 3, folder, {"derivative_power": 1.0})
    drive(callback, [(finished, list(results(finished))), (stopped, list(results(stopped, steps=[4, 8]))),
                     (errored, list(results(errored, steps=[4])))], failed={errored.trial_id})

    runs = offline_runs(folder)
    assert sorted(runs) == sorted(t.trial_id for t in (finished, stopped, errored))  # one run per trial
    for trial, steps, state in ((finished, STEPS, "finished"), (stopped, [4, 8], "stopped at step 8"),
                                (errored, [4], "error")):
        run = runs[trial.trial_id]
        assert [row["step"] for row in run["history"]] == steps
        assert [row["val_nelbo"] for row in run["history"]] == pytest.approx([9.0 - s / 10 for s in steps])
        assert run["step_metric"].get("*") == "step"  # every chart's x-axis: the training step
        assert not [k for row in run["history"] for k in row if k.startswith(("items", "config", "done"))]
        assert run["group"] == spec.name and run["name"].startswith(f"#{trial.experiment_tag.split('_')[0]} ")
        assert run["tags"] == ["bimodal_p", "bimodal_gaussian", state]
        config = run["config"]
        assert config["trial_state"] == state and config["searched"] == trial.config
        assert config["data_hash"] == spec.data.data_hash and config["max_steps"] == 12
        assert config["trial_id"] == trial.trial_id and config["trial_log_path"] == trial.local_path
        assert run["exit_code"] == (1 if trial is errored else 0)


def test_callbacks_pickle_without_their_open_files_and_runs(spec, tmp_path):
    """tuner.pkl holds the run config's callbacks (`--resume` reads them back)."""
    from ray import cloudpickle

    callbacks = [wandb_callback(spec), TensorBoardByStep(excludes=["items"])]
    trial = StandInTrial("c0001_00000", 1, tmp_path, {"derivative_power": 0.1})
    tensorboard = callbacks[1]
    tensorboard.log_trial_result(1, trial, {"step": 4, "loss": 1.0})
    for callback in cloudpickle.loads(cloudpickle.dumps(callbacks)):
        assert not getattr(callback, "writers", {}) and not getattr(callback, "_open", set())
    tensorboard.on_experiment_end(trials=[trial])
