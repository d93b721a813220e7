"""Confirmation statistics and Pareto selection, against textbook values and hand examples."""

import math

import pytest

from sweeps.confirm import paired_difference, student_t_cdf, student_t_quantile, summarize
from sweeps.export import ExportError, pick_from_front
from sweeps.results import dominates, pareto_front
from sweeps.spec import Objective


@pytest.mark.parametrize("df, quantile", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)])
def test_t_quantiles_match_the_table(df, quantile):
    assert student_t_quantile(0.975, df) == pytest.approx(quantile, abs=2e-3)


def test_t_cdf_closed_forms():
    # df=1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi; df=2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (0.3, 1.0, 4.0):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-6)
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-6)
        assert student_t_cdf(-t, 2) == pytest.approx(1 - student_t_cdf(t, 2), abs=1e-9)


def test_paired_interval_by_hand():
    # Differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3).
    result = paired_difference([0.6, 0.7, 0.8], [0.5, 0.5, 0.5])
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert result["mean"] == pytest.approx(0.2)
    assert result["ci_low"] == pytest.approx(0.2 - half, abs=1e-3)
    assert result["ci_high"] == pytest.approx(0.2 + half, abs=1e-3)


def _entry(trial, rank, per_seed):
    return {"trial_id": trial, "sweep_rank": rank, "values": {"derivative_power": rank / 10},
            "per_seed": {seed: {"pairs_acc": v, "pairs_acc_heldout": v - 0.01} for seed, v in per_seed.items()}}


def test_summary_says_when_the_winner_is_not_distinguishable():
    seeds = [1000, 1001, 1002]
    # The sweep's #2 is better on every seed, by a consistent margin: it becomes the winner, clearly.
    clear = summarize([_entry("a", 1, {1000: 0.60, 1001: 0.62, 1002: 0.61}),
                       _entry("b", 2, {1000: 0.70, 1001: 0.71, 1002: 0.72})], "pairs_acc", "max", seeds)
    assert [c["trial_id"] for c in clear["configs"]] == ["b", "a"]
    assert clear["configs"][0]["mean"] == pytest.approx(0.71) and clear["configs"][0]["std"] == pytest.approx(0.01)
    assert clear["configs"][0]["heldout_mean"] == pytest.approx(0.70)
    assert clear["difference"]["distinguishable"] and clear["difference"]["ci_low"] > 0
    # Seed noise larger than the gap: the interval straddles 0 and the statement says so.
    noisy = summarize([_entry("a", 1, {1000: 0.60, 1001: 0.70, 1002: 0.62}),
                       _entry("b", 2, {1000: 0.66, 1001: 0.61, 1002: 0.64})], "pairs_acc", "max", seeds)
    diff = noisy["difference"]
    assert not diff["distinguishable"] and diff["ci_low"] < 0 < diff["ci_high"]
    assert "NOT distinguishable" in diff["statement"]


def test_summary_for_a_metric_to_minimise():
    seeds = [1, 2]
    doc = summarize([_entry("a", 1, {1: 0.5, 2: 0.52}), _entry("b", 2, {1: 0.4, 2: 0.41})], "pairs_acc", "min", seeds)
    assert doc["configs"][0]["trial_id"] == "b"
    assert doc["difference"]["mean"] == pytest.approx(-0.105)  # winner minus runner-up, in the metric's units


def _row(trial, acc, nelbo):
    return {"trial_id": trial, "values": {}, "metrics": {"pairs_acc": acc, "val_nelbo": nelbo, "step": 10}}


def test_pareto_front_by_hand():
    objectives = [Objective(metric="pairs_acc", mode="max"), Objective(metric="val_nelbo", mode="min")]
    rows = [_row("a", 0.7, 5.0), _row("b", 0.6, 4.0), _row("c", 0.6, 4.5), _row("d", 0.5, 3.9), _row("e", 0.7, 5.0)]
    assert dominates(rows[1], rows[2], objectives) and not dominates(rows[0], rows[1], objectives)
    front = pareto_front(rows, objectives)
    assert [r["trial_id"] for r in front[:2]] in (["a", "e"], ["e", "a"])  # ties are both optimal
    assert [r["trial_id"] for r in front[2:]] == ["b", "d"]
    assert pick_from_front(front, None)["metrics"]["pairs_acc"] == 0.7
    assert pick_from_front(front, "4")["trial_id"] == "d"
    assert pick_from_front(front, "b")["trial_id"] == "b"
    with pytest.raises(ExportError, match="has 4 points"):
        pick_from_front(front, "9")
    with pytest.raises(ExportError, match="no Pareto-optimal trial"):
        pick_from_front(front, "c")
