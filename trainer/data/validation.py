"""Which validation rows a run scores: one fixed sample that represents every source file,
in an order whose every prefix of whole rate blocks represents them too.

`val_nelbo` and `val_acc` score `val_rows` rows of the validation shard. Taking the first
rows in file order would score only the first file (on a BabyLM `dev/` folder, the
alphabetically first of six domains). Instead the rows are a stratified random sample:

- strata are the source files (each file's rows, recorded per split by prepare.py);
- file f gets k_f rows in proportion to its N_f rows, k_f = n N_f / N rounded by largest
  remainder (so the k_f sum to n exactly), and its rows are drawn without replacement;
- the draw uses a fixed seed that depends on nothing of the run, so every trial of every
  sweep on the same data scores the very same rows (common random numbers).

With proportional allocation the sample mean is an unbiased estimate of the mean over the
whole validation split.

The order of the rows matters too, because trainer/evaluate.py scores row i at the mask rate
m_{i mod K} (K = `val_mask_rates`) and an interim evaluation scores only the first
ceil(B / s) of the B blocks of K consecutive rows (`interim_keep`, s = `interim_val_subsample`).
So the rows are returned in this order:

1. a proportional interleave of the files: file f's j-th drawn row (j = 0..k_f-1, in the
   random order of the draw) is placed by the key (j + 1/2) / k_f, ties to the earlier file.
   That is the Sainte-Lague sequence, so every prefix holds each file's share of the
   prefix to within about a row (measured over every block prefix of 1,500 random splits of
   1 to 8 files: at most 1.35 rows off);
2. inside each block of K rows, rows swap places while that spreads some file's rows more
   evenly over the K rates, so each file meets every rate about equally often (measured as
   above: within 1.25 rows of k_f / K; the file-sorted order gave within 1). A block is kept
   or dropped whole, so this changes no block prefix's file mix; without it two equal files
   would alternate and meet only the odd or only the even rates.

So the interim subsample keeps every file's share and every rate's share (to a row), each
scored row with the very masks it has in the full evaluation, and its rows within a file are
a random subset of the file's drawn rows: it estimates approximately the same number as the
full sample, with a larger standard error (about sqrt(s) times). numpy only: no torch, no
files beyond the manifest.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np

# Fixed on purpose, like the validation masks' seed in trainer/evaluate.py.
VALIDATION_ROWS_SEED = 20_250_601
# TrainConfig.val_mask_rates' default: the block the rows are balanced over when not told.
DEFAULT_NUM_RATES = 8


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Largest-remainder apportionment of n rows over strata of the given sizes (ties: earlier first)."""
    total = int(sum(sizes))
    if n >= total:
        return [int(size) for size in sizes]
    quotas = [n * size / total for size in sizes]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def proportional_interleave(counts: Sequence[int]) -> list[tuple[int, int]]:
    """(file, j) for every row j of every file, ordered by (j + 1/2) / k_f, ties to the earlier file.

    Exact fractions: a float key could order two equal keys by rounding instead of by file."""
    keys = [(Fraction(2 * j + 1, 2 * k), f, j) for f, k in enumerate(counts) for j in range(k)]
    return [(f, j) for _, f, j in sorted(keys)]


def spread_over_rates(files: np.ndarray, num_rates: int) -> np.ndarray:
    """A reordering of positions, only within blocks of `num_rates`, that evens out how often each
    file sits at each rate (position mod num_rates). Returns the new order of positions.

    Local search: swap two rows of different files in one block whenever that lowers the sum
    of squared (file, rate) counts; the sum is a non-negative integer that drops at every swap,
    so it ends (in a few passes)."""
    files = np.asarray(files)
    n = len(files)
    order = np.arange(n)
    if n == 0 or num_rates < 2:
        return order
    at_rate = np.zeros((int(files.max()) + 1, num_rates), dtype=np.int64)
    np.add.at(at_rate, (files, order % num_rates), 1)
    current = files.copy()
    swapped = True
    while swapped:
        swapped = False
        for start in range(0, n, num_rates):
            width = min(num_rates, n - start)
            for a in range(width):
                for b in range(a + 1, width):
                    f, g = current[start + a], current[start + b]
                    if f == g:
                        continue
                    # f moves from rate a to rate b and g from b to a: the change in the sum of squares.
                    change = 2 * (at_rate[f, b] - at_rate[f, a] + at_rate[g, a] - at_rate[g, b] + 2)
                    if change < 0:
                        at_rate[f, a] -= 1
                        at_rate[f, b] += 1
                        at_rate[g, b] -= 1
                        at_rate[g, a] += 1
                        current[start + a], current[start + b] = g, f
                        order[start + a], order[start + b] = order[start + b], order[start + a]
                        swapped = True
    return order


def validation_rows(spans: Sequence[tuple[str, int, int]], n: int, seed: int = VALIDATION_ROWS_SEED,
                    num_rates: int = DEFAULT_NUM_RATES) -> tuple[np.ndarray, dict]:
    """Row indices of the validation sample, in the order described in the module's docstring,
    and a description of it for provenance.

    `spans` are (file, first row, end row) per source file, as `PreparedData.source_rows("val")`
    gives them; `num_rates` is the evaluation's number of mask rates (`val_mask_rates`).
    """
    sizes = [end - start for _, start, end in spans]
    counts = allocate(sizes, n)
    drawn = []
    for index, ((_, start, end), k) in enumerate(zip(spans, counts)):
        rng = np.random.default_rng([seed, index])
        # In the random order of the draw: any first j of a file's rows are a random subset of it.
        drawn.append(start + rng.choice(end - start, size=k, replace=False))
    interleaved = proportional_interleave(counts)
    files = np.array([f for f, _ in interleaved], dtype=np.int64)
    rows = np.array([drawn[f][j] for f, j in interleaved], dtype=np.int64)
    rows = rows[spread_over_rates(files, num_rates)]
    description = {
        "method": "stratified by source file, in proportion to its rows; seeded, the same rows for every trial",
        "order": (f"files interleaved in proportion (every prefix of whole blocks of {num_rates} rows keeps each "
                  f"file's share), each file spread evenly over the {num_rates} mask rates"),
        "seed": seed,
        "rows": int(len(rows)),
        "of": int(sum(sizes)),
        "files": [{"path": path, "rows": k, "of": size} for (path, _, _), k, size in zip(spans, counts, sizes)],
    }
    return rows, description


def interim_keep(n_rows: int, num_rates: int, subsample: int) -> np.ndarray:
    """Which of the sample's rows an interim evaluation scores (bool over rows, in sample order):
    the first ceil(B / subsample) of the B blocks of `num_rates` consecutive rows.

    Whole blocks, so every rate keeps its share; a prefix of the interleaved order, so every file
    keeps its share (to a row). One block in every `subsample` would not do that: a stride can
    fall in step with a file's spacing in the interleave (two files of 160 and 352 rows of 512:
    one block in 4 keeps 48 and 80 where 40 and 88 are their shares)."""
    blocks = -(-n_rows // num_rates)
    return np.arange(n_rows) // num_rates < -(-blocks // subsample)
