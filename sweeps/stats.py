"""How sure a sweep's numbers are: comparisons within noise, rank agreement between budgets.

Pure functions on numbers (no Ray, no files), each checked against a hand-computed case in
tests/test_stats.py.

- `compare(a, b, se_a, se_b)`: is a's lead over b larger than the noise of the two numbers?
  z = (a - b) / sqrt(se_a^2 + se_b^2); "distinguishable" when |z| > 1.96 (a two-sided 95%
  normal test). Trials of a sweep are scored on the same pairs, rows and masks, so their
  errors are positively correlated and the difference is less noisy than this combined SE
  says: the test errs towards "not distinguishable", which is the safe side for a claim.
- `paired_proportions(a, b)`: two runs' right/wrong on the *same* n pairs. The difference of
  accuracies is (n10 - n01) / n, n10 = pairs only a got right, n01 = pairs only b got right;
  pairs both got right or both got wrong say nothing about the difference (McNemar's logic).
  Its standard error over resampled evaluation sets (pairs drawn from the same population) is
      se = sqrt(n10 + n01 - (n10 - n01)^2 / n) / n,
  which is far below the combined binomial SE when the runs agree on most pairs.
- `paired_ratio_difference(a, b, weights)`: two runs' val_nelbo (or val_acc) on the *same* rows
  with the same masks, each a ratio sum(a_i) / sum(w_i) with common denominators w_i; the
  difference is sum(a_i - b_i) / sum(w_i), whose SE over rows is the delta-method SE of that
  ratio (rows as the sampling unit).
- `paired_grouped_proportions(a, b, groups, weights)`: a BabyLM task's score is a weighted mean
  of per-UID accuracies, sum_g w_g acc_g; on the same items the difference is
  sum_g w_g mean_g(d), d_i = a_i - b_i in {-1, 0, 1}, with variance sum_g w_g^2 var_g(d) / n_g
  (var_g the within-UID variance of d, mean(d^2) - mean(d)^2: with one group of weight 1 this is
  exactly paired_proportions' McNemar SE).
- `paired_correlation_difference(a, b, human)`: two runs' Spearman correlations with the same
  human ratings on the same items; the SE of the difference is its standard deviation over
  bootstrap resamples of the items, the same resamples for both runs.
- `mean_of_comparisons(parts)`: the equal-weight mean of several independent paired differences
  (babylm_score over its tasks): the mean of the differences, SE sqrt(sum se^2) / k.
- `kendall_tau(x, y)`: rank agreement of two lists (tau-b, ties allowed), in [-1, 1].

What a paired test can and cannot say: it conditions on the training runs as they are (one seed
each) and treats the evaluation items as the random sample, so "distinguishable" means the two
trained models differ on this kind of item beyond the luck of which items were drawn. How much a
configuration's number moves with its training seed is another noise, which only more seeds
measure (`--confirm`, the studies).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

Z_95 = 1.959963984540054  # two-sided 95% point of the standard normal
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    difference: float  # a - b, in the metric's units
    se: float  # standard error of the difference (NaN when a side has none)
    z: float
    distinguishable: bool

    paired_over: str = ""  # what the difference was paired over ("1350 shared pairs"), empty if unpaired
    unpaired: "Comparison | None" = None  # a paired verdict keeps the combined-SE figure beside it

    def words(self, metric: str, a_name: str, b_name: str) -> str:
        """One sentence for a reader; `difference` is a's lead (positive = a is better)."""
        verb = "beats" if self.difference >= 0 else "trails"
        lead = f"{a_name} {verb} {b_name} by {abs(self.difference):.4f} {metric}"
        if not math.isfinite(self.se):
            return f"{lead}; no standard error was reported, so whether that is more than noise is unknown"
        if self.paired_over:
            verdict = (f"more than the evaluation's noise (paired over {self.paired_over})" if self.distinguishable
                       else f"within the evaluation's noise (paired over {self.paired_over}): not distinguishable "
                            "at this budget")
            beside = (f"; unpaired, with the two numbers' own SEs combined: standard error {self.unpaired.se:.4f}, "
                      f"z = {self.unpaired.z:.2f}") if self.unpaired is not None and math.isfinite(self.unpaired.se) else ""
            return f"{lead} (paired standard error {self.se:.4f}, z = {self.z:.2f}): {verdict}{beside}"
        verdict = ("more than the noise of the two numbers" if self.distinguishable else
                   "within noise: not distinguishable at this budget; run --confirm")
        return f"{lead} (standard error {self.se:.4f}, z = {self.z:.2f}): {verdict}"


def compare(a: float, b: float, se_a: float | None, se_b: float | None) -> Comparison:
    se = math.sqrt(se_a ** 2 + se_b ** 2) if se_a is not None and se_b is not None else math.nan
    return _verdict(a - b, se)


def _verdict(difference: float, se: float, paired_over: str = "") -> Comparison:
    # Plain floats (a difference of numpy arrays' means is numpy's): a verdict is written to JSON.
    difference, se = float(difference), float(se)
    if not math.isfinite(se):
        return Comparison(difference, math.nan, math.nan, False, paired_over)
    z = difference / se if se > 0 else (math.inf if difference else 0.0)
    return Comparison(difference, se, z, abs(z) > Z_95, paired_over)


def paired_proportions(a: Sequence[bool], b: Sequence[bool], unit: str = "pairs") -> Comparison:
    """a's accuracy minus b's on the same items (see the module docstring)."""
    if len(a) != len(b):
        raise ValueError("paired_proportions needs the same items on both sides")
    n = len(a)
    if n == 0:
        return Comparison(math.nan, math.nan, math.nan, False, f"0 shared {unit}")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    difference = (only_a - only_b) / n
    se = math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    return _verdict(difference, se, f"{n} shared {unit}, {only_a + only_b} discordant")


def paired_ratio_difference(a: Sequence[float], b: Sequence[float], weights: Sequence[float],
                            unit: str = "rows") -> Comparison:
    """sum(a) / sum(w) - sum(b) / sum(w) over the same rows, with its delta-method SE over rows."""
    if not len(a) == len(b) == len(weights):
        raise ValueError("paired_ratio_difference needs the same rows on both sides")
    n = len(a)
    total = float(sum(weights))
    if n < 2 or total == 0.0:
        return Comparison(math.nan, math.nan, math.nan, False, f"{n} shared {unit}")
    d = [x - y for x, y in zip(a, b)]
    difference = sum(d) / total
    mean_weight = total / n
    spread = sum((di - difference * w) ** 2 for di, w in zip(d, weights)) / (n * (n - 1))
    return _verdict(difference, math.sqrt(spread) / mean_weight, f"{n} shared {unit}")




def paired_grouped_proportions(a: Sequence[bool], b: Sequence[bool], groups: Sequence[int],
                               weights: Sequence[float], unit: str = "items") -> Comparison:
    """sum_g w_g (accuracy of a - accuracy of b within group g) on the same items (see the module
    docstring); `groups[i]` indexes `weights`."""
    if not len(a) == len(b) == len(groups):
        raise ValueError("paired_grouped_proportions needs the same items on both sides")
    by_group: dict[int, list[int]] = {}
    for x, y, g in zip(a, b, groups):
        by_group.setdefault(int(g), []).append(int(bool(x)) - int(bool(y)))
    if not by_group:
        return Comparison(math.nan, math.nan, math.nan, False, f"0 shared {unit}")
    difference = variance = 0.0
    discordant = 0
    for g, d in by_group.items():
        mean = sum(d) / len(d)
        difference += weights[g] * mean
        variance += weights[g] ** 2 * max(sum(v * v for v in d) / len(d) - mean ** 2, 0.0) / len(d)
        discordant += sum(1 for v in d if v)
    return _verdict(difference, math.sqrt(variance), f"{len(a)} shared {unit}, {discordant} discordant")


def paired_correlation_difference(a: Sequence[float], b: Sequence[float], human: Sequence[float],
                                  unit: str = "rated items") -> Comparison:
    """Spearman(a, human) - Spearman(b, human) on the same items, with a paired bootstrap SE."""
    import numpy as np

    from trainer.zero_shot import bootstrap_indices, spearman

    if not len(a) == len(b) == len(human):
        raise ValueError("paired_correlation_difference needs the same items on both sides")
    n = len(a)
    difference = spearman(a, human) - spearman(b, human)
    if n < 3 or not math.isfinite(difference):
        return Comparison(difference, math.nan, math.nan, False, f"{n} shared {unit}")
    x, y, h = np.asarray(a, dtype=float), np.asarray(b, dtype=float), np.asarray(human, dtype=float)
    draws = [spearman(x[i], h[i]) - spearman(y[i], h[i]) for i in bootstrap_indices(n)]
    return _verdict(difference, float(np.nanstd(draws, ddof=1)), f"{n} shared {unit}, bootstrap")


def mean_of_comparisons(parts: Sequence[Comparison], over: str = "") -> Comparison:
    """The equal-weight mean of independent differences, SE sqrt(sum se^2) / k."""
    if not parts:
        return Comparison(math.nan, math.nan, math.nan, False, over)
    k = len(parts)
    return _verdict(sum(p.difference for p in parts) / k, math.sqrt(sum(p.se ** 2 for p in parts)) / k,
                    over or f"{k} parts")


def paired_on_items(metric: str, a_items: dict, b_items: dict) -> Comparison | None:
    """a's `metric` minus b's from two evaluations' item records (as the evaluations' `items`
    hold them), or None when the metric has no items or they did not score the same items."""
    from trainer.metrics import lookup

    entry = lookup(metric)
    part = entry.items if entry else None  # which record of the evaluation's items holds its evidence
    if part in ("tasks", "tasks_heldout"):  # babylm_score: every task both evaluations scored
        return _paired_tasks(part.removeprefix("tasks"), a_items, b_items)
    if part is None or part not in a_items or part not in b_items:
        return None
    x, y = a_items[part], b_items[part]
    if x["fingerprint"] != y["fingerprint"] or x["n"] != y["n"]:
        return None
    return _paired_record(metric, x, y)


def _paired_record(metric: str, x: dict, y: dict) -> Comparison | None:
    from trainer.eval_items import pairs_correct, ratings_arrays, rows_arrays, task_arrays

    if "p_first" in x:  # a correlation task
        (a, human), (b, _) = ratings_arrays(x), ratings_arrays(y)
        return paired_correlation_difference(a, b, human)
    if "uid_index" in x:  # an accuracy task: per-UID accuracies, weighted
        (a, groups, weights), (b, _, _) = task_arrays(x), task_arrays(y)
        return paired_grouped_proportions(a, b, groups, weights)
    if "correct" in x and "bound" not in x:
        return paired_proportions(pairs_correct(x), pairs_correct(y))
    x, y = rows_arrays(x), rows_arrays(y)
    numerator, denominator = ("bound", "tokens") if metric == "val_nelbo" else ("correct", "masked")
    if not (x[denominator] == y[denominator]).all():
        return None  # other masks: not the same items after all
    return paired_ratio_difference(x[numerator], y[numerator], x[denominator])


def _paired_tasks(suffix: str, a_items: dict, b_items: dict) -> Comparison | None:
    """babylm_score's difference: the mean over the tasks of each task's paired difference; None
    unless both evaluations scored the same tasks on the same items."""
    from trainer.metrics import TASKS, task_metric

    present = [t for t in TASKS if t + suffix in a_items]
    if not present or present != [t for t in TASKS if t + suffix in b_items]:
        return None
    parts, shared = [], 0
    for task in present:
        x, y = a_items[task + suffix], b_items[task + suffix]
        if x["fingerprint"] != y["fingerprint"] or x["n"] != y["n"]:
            return None
        parts.append(_paired_record(task_metric(task), x, y))
        shared += x["n"]
    return mean_of_comparisons(parts, f"{shared} shared items of {len(parts)} tasks")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of paired lists: (concordant - discordant) / sqrt((n0 - ties_x)(n0 - ties_y))."""
    n = len(x)
    if n != len(y):
        raise ValueError("kendall_tau needs two lists of the same length")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


# --- over seeds: Student's t ----------------------------------------------------------


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (Simpson's rule on the density)."""
    if t < 0:
        return 1.0 - student_t_cdf(-t, df)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    n = 2000  # even; the density is smooth, so the error is far below what matters here
    h = t / n
    total = density(0.0) + density(t) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
    return 0.5 + total * h / 3


def student_t_quantile(p: float, df: int) -> float:
    """The t value with P(T <= t) = p, by bisection (0.5 < p < 1)."""
    low, high = 0.0, 1000.0
    for _ in range(80):
        middle = (low + high) / 2
        if student_t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def paired_difference(winner: list[float], runner_up: list[float], level: float = CONFIDENCE) -> dict:
    """Mean of winner - runner-up over matched seeds and its t interval."""
    diffs = [a - b for a, b in zip(winner, runner_up)]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return {"mean": mean, "ci_low": -math.inf, "ci_high": math.inf, "level": level, "n": len(diffs)}
    half = student_t_quantile(0.5 + level / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "level": level, "n": len(diffs)}
