"""Per-item evaluation records: what a paired comparison of two runs needs.

Every run of a sweep scores the same tuning pairs and the same validation rows with the same
masks, so the difference of two runs is best judged item by item (the items' own difficulty
cancels). An evaluation therefore keeps, beside its summary numbers,

- per tuning pair, whether the run got it right (a bit array, in the order the pairs were
  scored, with a fingerprint of that order);
- per validation row scored, its NELBO bound term (sum over its masked tokens of CE / m) and
  its real-token count, and its correct and masked counts (the terms of val_nelbo and val_acc),
  with a fingerprint of the rows and the subsample they came from.

- per BabyLM task item (trainer/zero_shot.py), whether the run chose the correct candidate and
  which UID the item belongs to, with each UID's weight in the task's score; for a correlation
  task (wug), the probability the run gave the first candidate and the human ratio.

The records ride in the evaluation's metrics under `items` ({"pairs", "pairs_heldout", "val",
and one per task: "<task>", "<task>_heldout"}),
so they reach metrics.jsonl, Tune's result.json (where the results reader finds them) and the
early-stopping scheduler, which compares trials on them. Arrays are base64 of little-endian
numpy buffers: a 1,384-pair, 224-row evaluation adds about 6 kB.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Iterable, Sequence

import numpy as np

def _encode(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def _decode(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def fingerprint(keys: Iterable[str]) -> str:
    """A short hash of an ordered list of item keys: two records compare item by item only when equal."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def pairs_record(correct: Sequence[bool], keys: Sequence[str]) -> dict:
    bits = np.asarray(correct, dtype=bool)
    return {"n": int(bits.size), "fingerprint": fingerprint(keys), "correct": _encode(np.packbits(bits), "uint8")}


def pairs_correct(record: dict) -> np.ndarray:
    """The bool array of a pairs record."""
    return np.unpackbits(_decode(record["correct"], "uint8"))[: record["n"]].astype(bool)


def rows_record(row_ids: Sequence[int], bound: np.ndarray, tokens: np.ndarray, correct: np.ndarray,
                masked: np.ndarray) -> dict:
    return {"n": int(len(row_ids)), "fingerprint": fingerprint(str(int(i)) for i in row_ids),
            "bound": _encode(bound, "float64"), "tokens": _encode(tokens, "int32"),
            "correct": _encode(correct, "int32"), "masked": _encode(masked, "int32")}


def rows_arrays(record: dict) -> dict[str, np.ndarray]:
    """bound (float64), tokens, correct, masked (int) per scored row."""
    return {"bound": _decode(record["bound"], "float64"), "tokens": _decode(record["tokens"], "int32"),
            "correct": _decode(record["correct"], "int32"), "masked": _decode(record["masked"], "int32")}


def task_record(correct: Sequence[bool], uids: Sequence[str], keys: Sequence[str], weights: dict[str, float]) -> dict:
    """An accuracy task's items: right or wrong, each item's UID (an index into `uids` of the
    record) and each UID's weight in the task's score."""
    names = sorted(set(uids))
    index = {u: i for i, u in enumerate(names)}
    return {**pairs_record(correct, [f"{u}\t{k}" for u, k in zip(uids, keys)]), "uids": names,
            "uid_index": _encode(np.asarray([index[u] for u in uids]), "uint16"),
            "uid_weight": [weights[u] for u in names]}


def task_arrays(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct as bool, the UID index of each item, each UID's weight) of a task record."""
    return (pairs_correct(record), _decode(record["uid_index"], "uint16").astype(np.int64),
            np.asarray(record["uid_weight"], dtype=np.float64))


def ratings_record(first_probability: Sequence[float], ratio: Sequence[float], keys: Sequence[str]) -> dict:
    """A correlation task's items: the run's probability of the first candidate, the human ratio."""
    return {"n": len(keys), "fingerprint": fingerprint(keys), "p_first": _encode(np.asarray(first_probability), "float64"),
            "ratio": _encode(np.asarray(ratio), "float64")}


def ratings_arrays(record: dict) -> tuple[np.ndarray, np.ndarray]:
    return _decode(record["p_first"], "float64"), _decode(record["ratio"], "float64")
