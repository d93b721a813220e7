"""The sweep's statistics against hand-computed cases."""

import math

import pytest

from sweeps.stats import Z_95, compare, kendall_tau


def test_kendall_tau_by_hand():
    # One swapped pair of six: (5 concordant - 1 discordant) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # Ties: x ties (1, 2), y ties (2, 3); 4 concordant, 0 discordant: 4 / sqrt(5 * 5) = 0.8 (tau-b).
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0 and kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert math.isnan(kendall_tau([1, 1], [2, 3]))  # no pair untied in x: undefined
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1])


def test_compare_by_hand():
    # 0.52 vs 0.48 with standard errors 0.03 and 0.04: se = 0.05, z = 0.8: within noise.
    near = compare(0.52, 0.48, 0.03, 0.04)
    assert near.difference == pytest.approx(0.04) and near.se == pytest.approx(0.05) and near.z == pytest.approx(0.8)
    assert not near.distinguishable and "not distinguishable at this budget; run --confirm" in near.words("pairs_acc", "a", "b")
    # 0.70 vs 0.50, se 0.05 each: z = 0.2 / 0.0707 = 2.83 > 1.96.
    far = compare(0.70, 0.50, 0.05, 0.05)
    assert far.z == pytest.approx(0.2 / math.sqrt(0.005)) and far.distinguishable
    assert far.words("pairs_acc", "a", "b").startswith("a beats b by 0.2000 pairs_acc (standard error 0.0707, z = 2.83)")
    assert "more than the noise" in far.words("pairs_acc", "a", "b")
    assert compare(0.48, 0.52, 0.03, 0.04).words("pairs_acc", "a", "b").startswith("a trails b by 0.0400 pairs_acc")
    # Just inside and just outside the 95% line.
    assert not compare(Z_95 * 0.1 - 1e-6, 0.0, 0.1, 0.0).distinguishable
    assert compare(Z_95 * 0.1 + 1e-6, 0.0, 0.1, 0.0).distinguishable
    assert not compare(0.6, 0.5, None, 0.02).distinguishable and "unknown" in compare(0.6, 0.5, None, 0.02).words("m", "a", "b")


def rows_with_history(finals: dict, at_10: dict, full: int = 30) -> list[dict]:
    rows = []
    for trial, final in finals.items():
        history = [{"step": 10, "pairs_acc": at_10[trial]}] + ([{"step": full, "pairs_acc": final}] if final is not None else [])
        rows.append({"trial_id": trial, "status": "TERMINATED", "history": history, "metrics": dict(history[-1]),
                     "state": "finished" if final is not None else "stopped at step 10"})
    return rows


def test_rung_agreement_by_hand():
    from sweeps.results import rung_agreement
    from tests_spec import spec_for

    spec = spec_for(max_steps=30)
    # Four trials reach step 30; at step 10 their order has one swapped pair of six: tau = 4/6.
    # Trial e stopped at step 10 and does not count.
    rows = rows_with_history({"a": 0.9, "b": 0.7, "c": 0.5, "d": 0.3, "e": None},
                             {"a": 0.6, "b": 0.4, "c": 0.5, "d": 0.1, "e": 0.55})
    (row,) = rung_agreement(rows, spec)
    assert row == {"step": 10, "trials": 4, "tau": pytest.approx(4 / 6)}


def test_warm_start_accounting_by_hand():
    from search_spaces import parse_space
    from sweeps.spec import Objective
    from sweeps.warm_start import fit
    from trainer.config import TrainConfig

    space = parse_space({"search": {"derivative_power": {"type": "float", "low": 0.0, "high": 0.5}}}, "narrow", "test")
    base = TrainConfig(max_steps=30)
    objective = (Objective(metric="pairs_acc", mode="max"),)

    def row(p, state="finished", acc=0.6, **config):
        return {"state": state, "metrics": {"pairs_acc": acc}, "config": TrainConfig(max_steps=30, derivative_power=p, **config)}

    cases = [
        (row(0.2), ""),                                                    # taken
        (row(0.4, seed=7, eval_every=5), ""),                              # seed and cadence do not matter
        (row(0.8), "outside the new space"),                               # p above the narrowed range
        (row(0.3, state="stopped at step 10"), "did not train its full budget"),
        (row(0.3, state="diverged", acc=math.nan), "diverged"),
        (row(0.3, acc=math.nan), "no finite value for the new objective(s)"),
        (row(0.3, lr=1e-3), "config differs from the new base config (lr)"),
    ]
    for candidate, reason in cases:
        found, point = fit(candidate, space, base, objective)
        assert found == reason, (candidate["config"].derivative_power, found)
        assert (point == {"derivative_power": candidate["config"].derivative_power}) == (reason == "")


def test_early_stopping_never_stops_the_baseline():
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from sweeps.tuning import build_scheduler
    from tests_spec import spec_for

    spec = spec_for(max_steps=40, eval_every=10).with_changes(
        search={"scheduler": "asha", "baseline": {"derivative_power": 0.1}})
    good = SimpleNamespace(trial_id="good", config={"schedule": "bimodal_gaussian", "derivative_power": 0.5})
    base = SimpleNamespace(trial_id="base", config={"schedule": "bimodal_gaussian", "derivative_power": 0.1})
    weak = SimpleNamespace(trial_id="weak", config={"schedule": "bimodal_gaussian", "derivative_power": 0.9})

    def decisions(scheduler):
        scheduler.set_search_properties("pairs_acc", "max")
        for trial in (good, base, weak):
            scheduler.on_trial_add(None, trial)
        scheduler.on_trial_result(None, good, {"step": 10, "pairs_acc": 0.9})
        return (scheduler.on_trial_result(None, base, {"step": 10, "pairs_acc": 0.1}),
                scheduler.on_trial_result(None, weak, {"step": 10, "pairs_acc": 0.1}))

    plain = ASHAScheduler(time_attr="step", max_t=40, grace_period=10, reduction_factor=2)
    assert decisions(plain) == (TrialScheduler.STOP, TrialScheduler.STOP)  # ASHA alone drops both
    assert decisions(build_scheduler(spec)) == (TrialScheduler.CONTINUE, TrialScheduler.STOP)


# --- paired comparisons -----------------------------------------------------------------


def test_paired_proportions_by_hand():
    from sweeps.stats import paired_proportions

    # 10 pairs: 3 only a got right, 1 only b, 6 concordant. Difference (3 - 1) / 10 = 0.2;
    # se = sqrt(3 + 1 - (3 - 1)^2 / 10) / 10 = sqrt(3.6) / 10.
    a = [1, 1, 1, 0, 1, 1, 0, 0, 1, 0]
    b = [0, 0, 0, 1, 1, 1, 0, 0, 1, 0]
    result = paired_proportions([bool(x) for x in a], [bool(x) for x in b])
    assert result.difference == pytest.approx(0.2)
    assert result.se == pytest.approx(math.sqrt(3.6) / 10)
    assert result.z == pytest.approx(0.2 / (math.sqrt(3.6) / 10))
    assert result.paired_over == "10 shared pairs, 4 discordant"
    # The combined binomial SE of 0.6 and 0.4 over 10 pairs each is larger: pairing can only help
    # when the runs agree on most items.
    assert compare(0.6, 0.4, math.sqrt(0.24 / 10), math.sqrt(0.24 / 10)).se > result.se
    # Identical runs: no discordant pair, difference 0 with SE 0.
    same = paired_proportions([True, False, True], [True, False, True])
    assert same.difference == 0 and same.se == 0 and not same.distinguishable
    with pytest.raises(ValueError):
        paired_proportions([True], [True, False])


def test_paired_ratio_difference_by_hand():
    from sweeps.stats import paired_ratio_difference

    # Rows: a = (2, 4, 6), b = (1, 3, 5), tokens w = (1, 2, 3). d = (1, 1, 1), D = 3 / 6 = 0.5;
    # residuals d - D w = (0.5, 0, -0.5), sum of squares 0.5, / (n (n - 1)) = 1/12, sqrt / mean(w) = 2.
    result = paired_ratio_difference([2, 4, 6], [1, 3, 5], [1, 2, 3])
    assert result.difference == pytest.approx(0.5)
    assert result.se == pytest.approx(math.sqrt(0.5 / 6) / 2)
    assert result.paired_over == "3 shared rows"


def test_paired_se_matches_the_spread_over_resampled_evaluation_sets():
    """The reported paired SE is the standard deviation of the difference over evaluation sets
    drawn afresh from the same population of items (checked by simulation)."""
    import numpy as np

    from sweeps.stats import paired_proportions, paired_ratio_difference

    rng = np.random.default_rng(0)
    # A population of items: each has a difficulty; model b is slightly better than a, and both
    # get most items right or wrong together (as two trials of one sweep do).
    population = 200_000
    difficulty = rng.normal(size=population)
    a_right = (difficulty + 0.3 * rng.normal(size=population)) < 0.30
    b_right = (difficulty + 0.3 * rng.normal(size=population)) < 0.36
    n, draws = 1000, 400
    differences, reported = [], []
    for _ in range(draws):
        pick = rng.integers(0, population, size=n)
        result = paired_proportions(a_right[pick].tolist(), b_right[pick].tolist())
        differences.append(result.difference)
        reported.append(result.se)
    assert np.std(differences) == pytest.approx(np.mean(reported), rel=0.1)
    # ... and well below the unpaired combined SE (about half here).
    unpaired = math.sqrt(2 * 0.6 * 0.4 / n)
    assert np.mean(reported) < 0.6 * unpaired

    # Rows: token counts vary, per-row bound terms of the two runs are strongly correlated.
    tokens = rng.integers(5, 60, size=population).astype(float)
    base = tokens * rng.gamma(4.0, 1.2, size=population)
    a_bound = base * (1 + 0.05 * rng.normal(size=population))
    b_bound = base * (0.97 + 0.05 * rng.normal(size=population))
    differences, reported = [], []
    for _ in range(draws):
        pick = rng.integers(0, population, size=300)
        result = paired_ratio_difference(a_bound[pick], b_bound[pick], tokens[pick])
        differences.append(result.difference)
        reported.append(result.se)
    assert np.std(differences) == pytest.approx(np.mean(reported), rel=0.1)


def test_paired_verdict_in_words_keeps_the_unpaired_figure():
    from sweeps.stats import paired_proportions

    unpaired = compare(0.62, 0.58, 0.02, 0.02)
    paired = paired_proportions([True] * 50 + [False] * 950, [False] * 10 + [True] * 0 + [False] * 990)
    words = type(paired)(paired.difference, paired.se, paired.z, paired.distinguishable, paired.paired_over,
                         unpaired).words("pairs_acc", "a", "b")
    assert "paired standard error" in words and "paired over 1000 shared pairs, 50 discordant" in words
    assert f"z = {unpaired.z:.2f}" in words and "unpaired" in words


def test_paired_grouped_proportions_by_hand():
    from sweeps.stats import paired_grouped_proportions, paired_proportions

    # UID 0 (weight 0.5): a = 1100, b = 0101, d = (1, 0, 0, -1): mean 0, var 2/4 - 0 = 0.5, / 4.
    # UID 1 (weight 0.5): a = 11, b = 00, d = (1, 1): mean 1, var 0.
    # Difference 0.5 * 0 + 0.5 * 1 = 0.5; variance 0.25 * 0.125 + 0 = 0.03125.
    a = [True, True, False, False, True, True]
    b = [False, True, False, True, False, False]
    result = paired_grouped_proportions(a, b, [0, 0, 0, 0, 1, 1], [0.5, 0.5])
    assert result.difference == pytest.approx(0.5)
    assert result.se == pytest.approx(math.sqrt(0.03125))
    assert result.paired_over == "6 shared items, 4 discordant"
    # One group of weight 1 is the McNemar case exactly.
    x = [1, 1, 1, 0, 1, 1, 0, 0, 1, 0]
    y = [0, 0, 0, 1, 1, 1, 0, 0, 1, 0]
    grouped = paired_grouped_proportions(x, y, [0] * 10, [1.0])
    plain = paired_proportions([bool(v) for v in x], [bool(v) for v in y])
    assert (grouped.difference, grouped.se) == pytest.approx((plain.difference, plain.se))


def test_paired_grouped_se_matches_the_spread_over_resampled_evaluation_sets():
    """A task's macro-average over UIDs of unequal size and difficulty: the reported paired SE is
    the spread of the difference over item sets drawn afresh within each UID (simulated)."""
    import numpy as np

    from sweeps.stats import paired_grouped_proportions

    rng = np.random.default_rng(2)
    sizes, weights = [40, 120, 15], [1 / 3, 1 / 3, 1 / 3]
    population = 50_000
    pools = []
    for shift in (0.0, 0.8, -0.5):
        difficulty = rng.normal(size=population) + shift
        pools.append(((difficulty + 0.4 * rng.normal(size=population)) < 0.2,
                      (difficulty + 0.4 * rng.normal(size=population)) < 0.3))
    differences, reported = [], []
    for _ in range(400):
        a, b, groups = [], [], []
        for g, (size, (a_right, b_right)) in enumerate(zip(sizes, pools)):
            pick = rng.integers(0, population, size=size)
            a += a_right[pick].tolist()
            b += b_right[pick].tolist()
            groups += [g] * size
        result = paired_grouped_proportions(a, b, groups, weights)
        differences.append(result.difference)
        reported.append(result.se)
    assert np.std(differences) == pytest.approx(np.mean(reported), rel=0.12)


def test_paired_correlation_and_the_suite_mean_from_item_records():
    import numpy as np

    from sweeps.stats import paired_correlation_difference, paired_grouped_proportions, paired_on_items
    from trainer.eval_items import ratings_record, task_record
    from trainer.zero_shot import spearman

    rng = np.random.default_rng(3)
    human = rng.uniform(size=60)
    good = human + rng.normal(scale=0.1, size=60)  # close to the people
    poor = human + rng.normal(scale=0.6, size=60)
    result = paired_correlation_difference(good, poor, human)
    assert result.difference == pytest.approx(spearman(good, human) - spearman(poor, human))
    assert 0 < result.se < 0.3 and result.paired_over == "60 shared rated items, bootstrap"
    same = paired_correlation_difference(good, good, human)
    assert same.difference == 0 and same.se == 0

    keys = [f"item{i}" for i in range(60)]
    uids = ["u1"] * 20 + ["u2"] * 40
    right_a, right_b = rng.uniform(size=60) < 0.7, rng.uniform(size=60) < 0.5
    weights = {"u1": 0.5, "u2": 0.5}
    a_items = {"blimp": task_record(right_a, uids, keys, weights), "wug_adj": ratings_record(good, human, keys)}
    b_items = {"blimp": task_record(right_b, uids, keys, weights), "wug_adj": ratings_record(poor, human, keys)}
    blimp = paired_on_items("blimp_acc", a_items, b_items)
    expected = paired_grouped_proportions(right_a, right_b, [0] * 20 + [1] * 40, [0.5, 0.5])
    assert (blimp.difference, blimp.se) == pytest.approx((expected.difference, expected.se))
    wug = paired_on_items("wug_adj_rho", a_items, b_items)
    assert wug.difference == pytest.approx(result.difference)
    suite = paired_on_items("babylm_score", a_items, b_items)  # the mean of the two tasks' differences
    assert suite.difference == pytest.approx((blimp.difference + wug.difference) / 2)
    assert suite.se == pytest.approx(math.sqrt(blimp.se ** 2 + wug.se ** 2) / 2)
    assert suite.paired_over == "120 shared items of 2 tasks"
    # Verdicts go into best_config.json and the report: plain Python numbers, JSON as they are.
    import dataclasses
    import json

    for verdict in (blimp, wug, suite):
        json.dumps(dataclasses.asdict(verdict))
        assert type(verdict.distinguishable) is bool and type(verdict.difference) is float
    # Not the same tasks, or not the same items: no paired verdict.
    assert paired_on_items("babylm_score", a_items, {"blimp": b_items["blimp"]}) is None
    other = {**b_items, "blimp": task_record(right_b, uids, [k + "x" for k in keys], weights)}
    assert paired_on_items("blimp_acc", a_items, other) is None and paired_on_items("babylm_score", a_items, other) is None
