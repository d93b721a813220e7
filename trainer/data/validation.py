"""Which validation rows a run scores: one fixed sample that represents every source file.

`val_nelbo` and `val_acc` score `val_rows` rows of the validation shard. Taking the first
rows in file order would score only the first file (on a BabyLM `dev/` folder, the
alphabetically first of six domains). Instead the rows are a stratified random sample:

- strata are the source files (each file's rows, recorded per split by prepare.py);
- file f gets k_f rows in proportion to its N_f rows, k_f = n N_f / N rounded by largest
  remainder (so the k_f sum to n exactly), and its rows are drawn without replacement;
- the draw uses a fixed seed that depends on nothing of the run, so every trial of every
  sweep on the same data scores the very same rows (common random numbers).

With proportional allocation the sample mean is an unbiased estimate of the mean over the
whole validation split. numpy only: no torch, no files beyond the manifest.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Fixed on purpose, like the validation masks' seed in trainer/evaluate.py.
VALIDATION_ROWS_SEED = 20_250_601


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


def validation_rows(spans: Sequence[tuple[str, int, int]], n: int, seed: int = VALIDATION_ROWS_SEED
                    ) -> tuple[np.ndarray, dict]:
    """Row indices (sorted) of the validation sample and a description of it for provenance.

    `spans` are (file, first row, end row) per source file, as `PreparedData.source_rows("val")`
    gives them.
    """
    sizes = [end - start for _, start, end in spans]
    counts = allocate(sizes, n)
    picked = []
    for index, ((_, start, end), k) in enumerate(zip(spans, counts)):
        rng = np.random.default_rng([seed, index])
        picked.append(start + np.sort(rng.choice(end - start, size=k, replace=False)))
    rows = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    description = {
        "method": "stratified by source file, in proportion to its rows; seeded, the same rows for every trial",
        "seed": seed,
        "rows": int(len(rows)),
        "of": int(sum(sizes)),
        "files": [{"path": path, "rows": k, "of": size} for (path, _, _), k, size in zip(spans, counts, sizes)],
    }
    return rows.astype(np.int64), description
