"""BabyLM's zero-shot tasks as the official `mlm` backend scores them, on our model.

An item is a few candidate texts, the first correct, each with the characters that are scored
(the whole sentence for BLiMP; the target after its context for EWoK; the option after its
prefix for entity tracking; the property phrase after its prefix for COMPS). A candidate's score
is its pseudo-log-likelihood over the tokens that overlap its scored characters, one masked copy
per scored token with everything else visible (trainer/evaluate.py); the item is right when the
correct candidate's score is the highest. A task's score is the mean over its UIDs of the
per-UID accuracy, as the official `run.py` aggregates it.

The loaders read the official layout (one folder per task under `evaluation_data/fast_eval` or
`full_eval`); which task reads which fields, and how candidates are built, is in LOADERS. The
rules are those of babylm-org/babylm-eval at 45fe2c1 (2026-04-17, `strict/evaluation_pipeline/
sentence_zero_shot/`: read_files.py, dataset.py, compute_results.py, run.py):
- scored tokens: those whose character offsets end after len(text) - len(completion) (a token
  straddling the boundary counts; special tokens, offsets (0, 0), never do); no truncation there,
  nor here up to the model's positions (max_position, 512 by default: the official entity
  tracking prefixes reach about 250 tokens, past the training rows' 128); a longer text keeps
  its end, where the scored part is;
- a candidate's score: the plain sum of log p(token | the text with that one token masked);
- the prediction: the first candidate with the highest score (torch.max), so an exact tie goes to
  the correct candidate (index 0) and so does a NaN on it. Kept as the official code does it, so
  that our decisions agree item by item; `decide(..., ties="strict")` gives the stricter rule
  (a tie is not a win) that our minimal-pair accuracy uses;
- task score: the unweighted mean over UIDs of per-UID accuracy; entity tracking: the mean over
  its splits (regular, ambiref, move_contents) of each split's mean over its numops UIDs;
- wug (adjective nominalization, past tense): no accuracy. Each item's candidates are scored
  whole, softmaxed over their summed log-probabilities, and the first candidate's probability is
  correlated (Spearman, ties at their average rank, a NaN making it NaN as scipy's default does)
  with the human ratio over all the file's items (compute_results.py, after its 2025-08-10 fix
  that pools every batch), the softmax in float32 as there (first_probabilities says why). Its
  SE is a bootstrap over items (the correlation has no closed form).
Which measure a task reports, and its chance level, is trainer/metrics.py's TASKS.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from trainer.errors import UserError


class TaskDataError(UserError):
    """A task file that does not parse as the official format; one line naming file and line."""


@dataclass(frozen=True)
class Candidate:
    text: str
    start: int  # the scored characters are text[start:end]
    end: int

    @classmethod
    def whole(cls, text: str) -> "Candidate":
        return cls(text, 0, len(text))

    @classmethod
    def after(cls, context: str, scored: str, separator: str = " ") -> "Candidate":
        """`context`, the separator, then `scored`: only `scored` counts."""
        text = context + separator + scored
        return cls(text, len(context) + len(separator), len(text))


@dataclass(frozen=True)
class Item:
    task: str
    uid: str  # the group the task's score averages over
    candidates: tuple[Candidate, ...]  # the first is the correct one
    key: str  # what the tuning / held-out split hashes (the item's own text)
    ratio: float | None = None  # wug: the share of people who chose the first candidate


def scored_token_positions(offsets: Sequence[tuple[int, int]], start: int) -> list[int]:
    """Indices of the tokens the official code scores: those whose characters end after `start`,
    the first scored character (so a token straddling the boundary counts); a special token's
    (0, 0) never does, nor does any empty span."""
    return [i for i, (a, b) in enumerate(offsets) if b > start and b > a]


def encode_candidates(tokenizer, items: Sequence[Item], bos_id: int, max_length: int):
    """Every candidate of every item as token ids (BOS first) with its scored positions; a text
    longer than `max_length` (the model's positions) keeps its end (the scored part comes last).
    BOS is added here, never by the tokenizer (an exported tokenizer.json adds its own)."""
    sequences, scored = [], []
    for item in items:
        for candidate in item.candidates:
            encoding = tokenizer.encode(candidate.text, add_special_tokens=False)
            ids, offsets = list(encoding.ids), list(encoding.offsets)
            positions = scored_token_positions(offsets, candidate.start)
            keep = max_length - 1
            if len(ids) > keep:
                cut = len(ids) - keep
                ids, positions = ids[cut:], [p - cut for p in positions if p >= cut]
            sequences.append([bos_id, *ids])
            scored.append([p + 1 for p in positions])
    return sequences, scored


def chosen_index(scores: Sequence[float]) -> int:
    """The candidate torch.max picks on the CPU, as the official code decides: the first highest
    score, a NaN counting as the highest (the first NaN wins)."""
    best = 0
    for index, value in enumerate(scores[1:], start=1):
        if math.isnan(scores[best]):
            break
        if math.isnan(value) or value > scores[best]:
            best = index
    return best


def decide(scores: Sequence[float], ties: str = "official") -> bool:
    """Whether the first (correct) candidate is chosen. `official`: as torch.max picks
    (chosen_index), so a tie, or a NaN on the correct candidate, is right and a NaN on another
    is wrong; `strict`: only a strictly highest finite score wins."""
    if ties == "strict":
        clean = [s if math.isfinite(s) else -math.inf for s in scores]
        return len(clean) > 1 and clean[0] > max(clean[1:])
    return chosen_index(scores) == 0


# Entity tracking's splits: its score is the mean over these of each one's mean over its UIDs.
ENTITY_SPLITS = ("regular", "ambiref", "move_contents")


def task_scores(task: str, items: Sequence[Item], correct: Sequence[bool]) -> dict:
    """The task's score as the official run.py aggregates per-UID accuracies (a proportion here,
    not x100), with its standard error: the score is a weighted mean of independent per-UID
    proportions, so its variance is the weights' squares times their binomial variances."""
    right: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for item, ok in zip(items, correct):
        count[item.uid] += 1
        right[item.uid] += int(ok)
    per_uid = {uid: right[uid] / count[uid] for uid in sorted(count)}
    weights = uid_weights(task, list(per_uid))
    score = sum(weights[u] * p for u, p in per_uid.items()) if per_uid else math.nan
    variance = sum(weights[u] ** 2 * p * (1 - p) / count[u] for u, p in per_uid.items()) if per_uid else math.nan
    return {"score": score, "se": math.sqrt(variance), "per_uid": per_uid, "n": sum(count.values())}


def uid_weights(task: str, uids: Sequence[str]) -> dict[str, float]:
    """Each UID's weight in the task score: 1/k over k UIDs; for entity tracking 1/(splits present)
    x 1/(that split's UIDs)."""
    if task != "entity_tracking":
        return {u: 1 / len(uids) for u in uids}
    splits = {split: [u for u in uids if u.startswith(split)] for split in ENTITY_SPLITS}
    splits = {split: members for split, members in splits.items() if members}
    return {u: 1 / len(splits) / len(members) for members in splits.values() for u in members}


def average_ranks(values) -> "np.ndarray":
    """1-based ranks, tied values sharing their average rank (scipy.stats.rankdata's default)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = ((starts + ends + 1) / 2)[np.cumsum(first) - 1]
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks; NaN when an input holds a NaN
    or is constant (as scipy.stats.spearmanr returns by default)."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.isnan(x).any() or np.isnan(y).any():
        return math.nan
    rx, ry = average_ranks(x) - (len(x) + 1) / 2, average_ranks(y) - (len(y) + 1) / 2
    norm = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / norm if norm > 0 else math.nan


def first_probabilities(scores: Sequence[Sequence[float]]) -> list[float]:
    """Each item's softmax over its candidates' summed log-probabilities, at the first candidate,
    computed as the official compute_results.py does: the sums stacked into a float32 tensor and
    softmaxed in float32. Not in float64 on purpose: where one candidate leads by more than about
    17 nats, float32 rounds the first probability to exactly 0 or 1, such items tie in Spearman's
    ranking, and the correlation the pipeline reports is the one with those ties (a float64
    softmax changed wug_past's rho from 0.821 to 0.772 on a 20-item check)."""
    import torch

    by_size: dict[int, list[int]] = defaultdict(list)
    for index, item_scores in enumerate(scores):
        by_size[len(item_scores)].append(index)
    result = [math.nan] * len(scores)
    for indices in by_size.values():
        stacked = torch.tensor([list(scores[i]) for i in indices], dtype=torch.float32)
        for i, p in zip(indices, torch.softmax(stacked, dim=1)[:, 0].tolist()):
            result[i] = p
    return result


def first_probability(scores: Sequence[float]) -> float:
    """`first_probabilities` of one item."""
    return first_probabilities([scores])[0]


BOOTSTRAP_RESAMPLES = 1000


def bootstrap_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0):
    """`resamples` draws of n item indices with replacement, the same for a given n and seed (so
    two runs' correlations are resampled alike, and a paired comparison pairs them)."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def ratings_scores(items: Sequence[Item], scores: Sequence[Sequence[float]]) -> dict:
    """A wug task's score: Spearman's rho of each item's first-candidate probability against its
    human ratio, pooled over all items, with a bootstrap SE over items."""
    import numpy as np

    p_first = first_probabilities(scores)
    ratio = [item.ratio for item in items]
    rho = spearman(p_first, ratio)
    se = math.nan
    if len(items) >= 3 and math.isfinite(rho):
        x, y = np.asarray(p_first), np.asarray(ratio)
        draws = [spearman(x[i], y[i]) for i in bootstrap_indices(len(items))]
        se = float(np.nanstd(draws, ddof=1))
    return {"score": rho, "se": se, "n": len(items), "p_first": p_first, "ratio": ratio}


# --- the official files --------------------------------------------------------------------------


def _rows(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise TaskDataError(f"{path}:{number} is not a JSON object") from None
        if not isinstance(row, dict):
            raise TaskDataError(f"{path}:{number} is not a JSON object")
        yield number, row


def _fields(path: Path, number: int, row: dict, *names: str) -> list:
    missing = [n for n in names if n not in row]
    if missing:
        raise TaskDataError(f"{path}:{number} lacks the field(s) {', '.join(missing)}")
    return [row[n] for n in names]


def _blimp(path: Path, number: int, row: dict, task: str) -> Item:
    good, bad = _fields(path, number, row, "sentence_good", "sentence_bad")
    # BLiMP lines carry their UID; the supplement's do not (its UID is the file's name).
    uid = row["UID"] if "field" in row and "UID" in row else path.stem
    return Item(task, uid, (Candidate.whole(good), Candidate.whole(bad)), key=f"{good}\t{bad}")


def _ewok(path: Path, number: int, row: dict, task: str) -> Item:
    domain, context, target1, target2 = _fields(path, number, row, "Domain", "Context1", "Target1", "Target2")
    # Both candidates under Context1; the file holds each item twice, contexts and targets swapped.
    return Item(task, domain, (Candidate.after(context, target1), Candidate.after(context, target2)),
                key=f"{context}\t{target1}\t{target2}")


def _entity_tracking(path: Path, number: int, row: dict, task: str) -> Item:
    prefix, options, numops = _fields(path, number, row, "input_prefix", "options", "numops")
    if not isinstance(options, list) or len(options) < 2:
        raise TaskDataError(f"{path}:{number}: options must be a list of at least two (the correct one first)")
    # No separator: the prefix ends with its own space.
    return Item(task, f"{path.stem}_{numops}_ops", tuple(Candidate.after(prefix, o, separator="") for o in options),
                key=f"{prefix}\t{options[0]}")


def _wug(path: Path, number: int, row: dict, task: str) -> Item:
    sentences, ratio = _fields(path, number, row, "sentences", "ratio")
    candidates = sentences.split("\t") if isinstance(sentences, str) else []
    if len(candidates) < 2 or isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TaskDataError(f"{path}:{number}: sentences must be tab-separated candidates (at least two) "
                            "and ratio a number")
    # The UID is the task's name (read_files.py); every candidate is scored whole, prompt included.
    return Item(task, task, tuple(Candidate.whole(c) for c in candidates), key=sentences, ratio=float(ratio))


COMPS_UIDS = {"comps_base": "base", "comps_wugs": "wugs", "comps_wugs_dist-before": "wugs_dist_before"}


def _comps(path: Path, number: int, row: dict, task: str) -> Item:
    acceptable, unacceptable, phrase = _fields(path, number, row, "prefix_acceptable", "prefix_unacceptable",
                                               "property_phrase")
    uid = COMPS_UIDS.get(path.stem, "wugs_dist_in_between")  # as read_files.py names them
    return Item(task, uid, (Candidate.after(acceptable, phrase), Candidate.after(unacceptable, phrase)),
                key=f"{acceptable}\t{unacceptable}\t{phrase}")


# task -> (its folder names in full_eval / fast_eval, the row reader)
LOADERS: dict[str, tuple[tuple[str, ...], Callable[[Path, int, dict, str], Item]]] = {
    "blimp": (("blimp_filtered", "blimp_fast"), _blimp),
    "blimp_supplement": (("supplement_filtered", "supplement_fast"), _blimp),
    "ewok": (("ewok_filtered", "ewok_fast"), _ewok),
    "entity_tracking": (("entity_tracking", "entity_tracking_fast"), _entity_tracking),
    "comps": (("comps",), _comps),
    "wug_adj": (("wug_adj_nominalization",), _wug),
    "wug_past": (("wug_past_tense",), _wug),
}


def task_folder(eval_data: str | Path, task: str) -> Path | None:
    """The task's folder under an `evaluation_data/full_eval` (or `fast_eval`) folder, if present."""
    names, _ = LOADERS[task]
    return next((Path(eval_data) / name for name in names if (Path(eval_data) / name).is_dir()), None)


def load_task(task: str, folder: str | Path) -> list[Item]:
    """Every item of every *.jsonl in the task's folder, files in name order, lines in file order."""
    _, reader = LOADERS[task]
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise TaskDataError(f"{task}: no *.jsonl files in {folder}")
    return [reader(path, number, row, task) for path in files for number, row in _rows(path)]


def score_items(model, items: Sequence[Item], tokenizer, *, bos_id: int, max_length: int, ties: str = "official",
                **pll_kwargs) -> tuple[list[bool], list[list[float]]]:
    """Each item's decision and its candidates' scores (trainer/evaluate.py's PLL over the
    scored tokens, batched across items and candidates)."""
    from trainer.evaluate import pseudo_log_likelihoods

    sequences, scored = encode_candidates(tokenizer, items, bos_id, max_length)
    plls = pseudo_log_likelihoods(model, sequences, scored=scored, **pll_kwargs)
    scores, at = [], 0
    for item in items:
        scores.append(plls[at:at + len(item.candidates)])
        at += len(item.candidates)
    return [decide(s, ties) for s in scores], scores


# --- the suite in a run's evaluations ------------------------------------------------------------


def is_heldout(item: Item, heldout_fraction: float) -> bool:
    """Held out from selection by a hash of the item's task, UID and text (as minimal pairs are,
    trainer/data/pairs.py): the same item lands on the same side in any file order or subset."""
    key = f"{item.task}\t{item.uid}\t{item.key}".encode("utf-8")
    digest = hashlib.blake2b(key, digest_size=8, person=b"mdlm-tasks").digest()
    return int.from_bytes(digest, "big") / 2.0**64 < heldout_fraction


def split_items(items: Sequence[Item], heldout_fraction: float) -> tuple[list[Item], list[Item]]:
    """(tuning, held_out) within every UID, order kept."""
    return ([i for i in items if not is_heldout(i, heldout_fraction)],
            [i for i in items if is_heldout(i, heldout_fraction)])


def limit_per_uid(items: Sequence[Item], limit: int | None) -> list[Item]:
    """The first `limit` items of each UID (all when None), order kept."""
    if limit is None:
        return list(items)
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for item in items:
        if seen[item.uid] < limit:
            seen[item.uid] += 1
            kept.append(item)
    return kept


@dataclass(frozen=True)
class Suite:
    """The tasks found in an evaluation-data folder, each split into its tuning and held-out parts
    and capped per UID: what every evaluation of a run scores."""

    tuning: dict[str, list[Item]]
    heldout: dict[str, list[Item]]
    skipped: tuple[str, ...]  # tasks with no folder there


def load_suite(eval_data: str | Path, heldout_fraction: float, items_per_uid: int | None) -> Suite:
    """Every task whose folder is in `eval_data`; TaskDataError when none is."""
    tuning, heldout, skipped = {}, {}, []
    for task in LOADERS:
        folder = task_folder(eval_data, task)
        if folder is None:
            skipped.append(task)
            continue
        kept, held = split_items(load_task(task, folder), heldout_fraction)
        tuning[task], heldout[task] = limit_per_uid(kept, items_per_uid), limit_per_uid(held, items_per_uid)
    if not tuning:
        folders = ", ".join(name for names, _ in LOADERS.values() for name in names)
        raise TaskDataError(f"no task folder in {eval_data}: expected a folder laid out like the BabyLM pipeline's "
                            f"evaluation_data/full_eval (or fast_eval), with some of {folders}")
    return Suite(tuning, heldout, tuple(skipped))


def task_result(task: str, items: Sequence[Item], decisions: Sequence[bool], scores) -> tuple[dict, dict]:
    """A task's score (`score`, `se`, `n`) and its per-item record (trainer/eval_items.py)."""
    from trainer.eval_items import ratings_record, task_record
    from trainer.metrics import TASKS

    keys = [item.key for item in items]
    if TASKS[task][0] == "rho":
        result = ratings_scores(items, scores)
        return result, ratings_record(result["p_first"], result["ratio"], keys)
    result = task_scores(task, items, decisions)
    return result, task_record(decisions, [item.uid for item in items], keys,
                               uid_weights(task, sorted({item.uid for item in items})))


def suite_metrics(model, suite: Suite, tokenizer, *, final: bool, bos_id: int, max_length: int,
                  **pll_kwargs) -> tuple[dict, dict]:
    """Each task present scored on its tuning items (`blimp_acc`, `wug_adj_rho`, ... with `_se`;
    trainer/metrics.py names them), `babylm_score` (their equal-weight mean, as the leaderboard
    averages its tasks; SE from theirs, the tasks' items being independent); at the run's last
    evaluation the same on the held-out items (`..._heldout`). Also the per-item records, one per
    task and part, for paired comparisons."""
    from trainer.metrics import task_metric

    metrics, records = {}, {}
    parts = [("", suite.tuning)] + ([("_heldout", suite.heldout)] if final else [])
    for suffix, tasks in parts:
        scores = []
        for task, items in tasks.items():
            if not items:
                continue
            decisions, candidate_scores = score_items(model, items, tokenizer, bos_id=bos_id, max_length=max_length,
                                                      **pll_kwargs)
            result, records[f"{task}{suffix}"] = task_result(task, items, decisions, candidate_scores)
            name = f"{task_metric(task)}{suffix}"
            metrics[name], metrics[f"{name}_se"] = result["score"], result["se"]
            metrics[f"{task}_scored{suffix}"] = result["n"]
            scores.append(result)
        if scores:
            metrics[f"babylm_score{suffix}"] = sum(r["score"] for r in scores) / len(scores)
            metrics[f"babylm_score{suffix}_se"] = math.sqrt(sum(r["se"] ** 2 for r in scores)) / len(scores)
    return metrics, records
