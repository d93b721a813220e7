"""How sure a sweep's numbers are: comparisons within noise, rank agreement between budgets.

Pure functions on numbers (no Ray, no files), each checked against a hand-computed case in
tests/test_stats.py.

- `compare(a, b, se_a, se_b)`: is a's lead over b larger than the noise of the two numbers?
  z = (a - b) / sqrt(se_a^2 + se_b^2); "distinguishable" when |z| > 1.96 (a two-sided 95%
  normal test). Trials of a sweep are scored on the same pairs, rows and masks, so their
  errors are positively correlated and the difference is less noisy than this combined SE
  says: the test errs towards "not distinguishable", which is the safe side for a claim.
- `kendall_tau(x, y)`: rank agreement of two lists (tau-b, ties allowed), in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

Z_95 = 1.959963984540054  # two-sided 95% point of the standard normal


@dataclass(frozen=True)
class Comparison:
    difference: float  # a - b, in the metric's units
    se: float  # standard error of the difference (NaN when a side has none)
    z: float
    distinguishable: bool

    def words(self, metric: str, a_name: str, b_name: str) -> str:
        """One sentence for a reader; `difference` is a's lead (positive = a is better)."""
        verb = "beats" if self.difference >= 0 else "trails"
        lead = f"{a_name} {verb} {b_name} by {abs(self.difference):.4f} {metric}"
        if not math.isfinite(self.se):
            return f"{lead}; no standard error was reported, so whether that is more than noise is unknown"
        verdict = ("more than the noise of the two numbers" if self.distinguishable else
                   "within noise: not distinguishable at this budget; run --confirm")
        return f"{lead} (standard error {self.se:.4f}, z = {self.z:.2f}): {verdict}"


def compare(a: float, b: float, se_a: float | None, se_b: float | None) -> Comparison:
    se = math.sqrt(se_a ** 2 + se_b ** 2) if se_a is not None and se_b is not None else math.nan
    difference = a - b
    if not math.isfinite(se):
        return Comparison(difference, math.nan, math.nan, False)
    z = difference / se if se > 0 else (math.inf if difference else 0.0)
    return Comparison(difference, se, z, abs(z) > Z_95)


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
