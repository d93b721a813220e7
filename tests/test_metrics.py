"""The metric registry (trainer/metrics.py) against what a run really reports, and the sweep's
use of it: every reported metric with a standard error is registered, every registered item
record is in the evaluation's items, directions and refusals are the registry's."""

import pytest

from trainer.metrics import METRICS, MetricError, column_names, lookup, metric, selectable
from trainer.loop import train_loop

from test_loop import prepared, small_config  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def last_metrics(prepared, tmp_path_factory):  # noqa: F811
    data, pairs = prepared
    return train_loop(small_config(max_steps=4, eval_every=4, checkpoint_every=4), data.root,
                      tmp_path_factory.mktemp("metrics"), pairs_dir=pairs, show_progress=False)


def test_every_metric_a_run_reports_with_an_se_is_registered(last_metrics):
    reported = {k[:-3] for k in last_metrics if k.endswith("_se")}
    assert {"val_nelbo", "val_acc", "pairs_acc", "pairs_acc_heldout"} <= reported
    for name in reported:
        entry = lookup(name)
        assert entry is not None and entry.has_se, name
    per_paradigm = [k for k in last_metrics if k.startswith("pairs_acc/")]
    assert per_paradigm and all(lookup(k).name == "pairs_acc/" for k in per_paradigm)
    assert "train_loss" in last_metrics and lookup("train_loss").has_se is False


def test_every_registered_item_record_is_in_the_evaluation(last_metrics):
    for entry in METRICS:
        if entry.items and not entry.needs_eval_data:  # the tasks' records: tests/test_zero_shot.py
            assert entry.items in last_metrics["items"], entry.name
        if not entry.family and not entry.needs_eval_data:  # this run has no BabyLM task files
            assert entry.name in last_metrics, entry.name


def test_directions_chance_and_columns():
    assert {m.name: m.mode for m in METRICS if not m.family and not m.needs_eval_data} == {
        "val_nelbo": "min", "val_acc": "max", "pairs_acc": "max", "pairs_acc_heldout": "max", "train_loss": "min"}
    # The BabyLM tasks: accuracies and their mean, higher is better; the held-out parts never selectable.
    suite = [m for m in METRICS if m.needs_eval_data]
    assert suite and all(m.mode == "max" and m.selectable == ("heldout" not in m.name) for m in suite)
    assert lookup("pairs_acc/anaphor_agreement").chance == 0.5 and lookup("val_acc").chance is None
    assert lookup("pairs_acc_se") is None and lookup("pairs_acc/") is None
    columns = column_names()
    for entry in METRICS:
        if entry.columns and entry.has_se:
            assert columns[columns.index(entry.name) + 1] == f"{entry.name}_se"


def test_refusals_name_the_reason_and_the_closest_names():
    with pytest.raises(MetricError, match="never selected on"):
        selectable("pairs_acc_heldout")
    with pytest.raises(MetricError, match="never selected on"):
        selectable("pairs_acc_heldout/anaphor_agreement")
    with pytest.raises(MetricError, match="did you mean 'pairs_acc'"):
        metric("pair_acc")
    assert selectable("pairs_acc/anaphor_agreement").mode == "max"


def test_the_sweep_resolves_objectives_from_the_registry():
    from sweeps.run import resolve_metric
    from sweeps.spec import SweepError

    assert resolve_metric("val_acc", None, has_pairs=False).mode == "max"
    assert resolve_metric("train_loss", None, has_pairs=False).mode == "min"
    assert resolve_metric(None, None, has_pairs=True).metric == "pairs_acc"
    with pytest.raises(SweepError, match="--metric pairs_acc/x needs minimal pairs"):
        resolve_metric("pairs_acc/x", None, has_pairs=False)
    with pytest.raises(SweepError, match="--decide-on pairs_acc_heldout: the held-out pairs"):
        resolve_metric("pairs_acc_heldout", None, has_pairs=True, flag="--decide-on")
