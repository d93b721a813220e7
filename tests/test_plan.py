"""The run plan (trainer/plan.py): the facts of a run before it runs, checked against the
functions the training loop itself uses, and the same plan recorded in a sweep's spec."""

import json

import pytest

from trainer.budget import resolve_max_steps
from trainer.config import TrainConfig
from test_zero_shot import eval_data  # noqa: F401  (the fixture: a few items of each BabyLM task)
from trainer.plan import CHECKPOINT_BYTES_PER_PARAMETER, RunPlan, plan_run


@pytest.fixture(scope="module")
def plan(cache_dir) -> RunPlan:
    """The built-in corpus and pairs under a word budget, planned as a sweep plans its base config."""
    return plan_run(TrainConfig(preset="tiny", max_words=50_000), cache_dir, evals_per_trial=4, show_progress=False)


def test_the_budget_is_the_loops(plan, cache_dir):
    from trainer.data.sources import resolve_data

    prepared = resolve_data(plan.config, cache_dir, show_progress=False).prepared
    assert plan.data_root == str(prepared.root) and plan.data_hash == prepared.content_hash
    assert plan.vocab_size == prepared.vocab_size
    assert plan.total_steps == resolve_max_steps(plan.config, prepared.row_words())
    # A sweep's word budget is fixed to its steps, evaluated `evals_per_trial` times.
    assert plan.config.max_steps == plan.total_steps and plan.config.eval_every == max(1, plan.total_steps // 4)


def test_parameters_and_checkpoint_size(plan):
    from trainer.model import build_model, count_parameters

    # An independent count: a real model, not the plan's meta-device one.
    assert plan.parameters == count_parameters(build_model(plan.config.model, plan.vocab_size))
    assert plan.checkpoint_bytes == CHECKPOINT_BYTES_PER_PARAMETER * plan.parameters == 16 * plan.parameters


def test_data_descriptions(plan):
    assert plan.pairs_dir is not None and plan.pairs_split["tuning_pairs"] > 0  # the built-in pairs
    assert plan.validation is not None and plan.eval_suite is None


def test_round_trips_through_json(plan):
    again = RunPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan


def test_loop_arguments(plan):
    assert plan.loop_arguments() == {"config": plan.config, "data_root": plan.data_root, "pairs_dir": plan.pairs_dir}
    assert TrainConfig.parse(plan.loop_config()["config"]) == plan.config


def test_with_config_recounts_on_the_same_data(plan):
    data = plan.config.as_dict()
    data.update(preset="small", model=None)
    small = plan.with_config(TrainConfig.parse(data))
    assert small.config.preset == "small" and small.parameters > plan.parameters
    assert (small.data_root, small.data_hash, small.pairs_split, small.validation) == \
           (plan.data_root, plan.data_hash, plan.pairs_split, plan.validation)
    assert plan.with_config(plan.config) == plan


def test_a_sweep_records_the_plan(plan, tmp_path):
    from tests_spec import spec_for
    from sweeps.spec import DataRef, SweepSpec

    spec = spec_for().with_changes(storage=str(tmp_path), base_config=plan.config, data=DataRef.of(plan))
    spec.save()
    assert SweepSpec.load(spec.experiment).plan == plan


def test_a_sweep_json_from_before_plans_still_loads(tmp_path):
    from tests_spec import spec_for
    from sweeps.spec import SweepSpec

    spec = spec_for().with_changes(storage=str(tmp_path))
    raw = json.loads(spec.to_json())
    raw["data"] = {k: raw["data"][k] for k in ("data_root", "data_hash", "pairs_dir", "pairs_split", "validation")}
    (tmp_path / spec.name).mkdir()
    (tmp_path / spec.name / "sweep.json").write_text(json.dumps(raw))
    old = SweepSpec.load(spec.experiment)
    assert old.plan.data_root == spec.data.data_root and old.plan.parameters is None


def test_the_evaluation_tasks(plan, eval_data):  # noqa: F811
    import dataclasses

    from trainer.plan import eval_suite
    from trainer.zero_shot import LOADERS, load_suite

    config = TrainConfig(eval_data=str(eval_data), eval_items_per_uid=None)
    suite, loaded = eval_suite(config), load_suite(eval_data, config.pairs_heldout_fraction, None)
    assert suite.folder == str(eval_data) and suite.tasks == tuple(loaded.tuning) and set(suite.tasks) <= set(LOADERS)
    assert suite.items == {t: {"tuning": len(loaded.tuning[t]), "heldout": len(loaded.heldout[t])} for t in suite.tasks}
    assert suite.skipped == loaded.skipped
    with_tasks = dataclasses.replace(plan, eval_suite=suite)
    assert RunPlan.from_dict(json.loads(json.dumps(with_tasks.to_dict()))) == with_tasks
