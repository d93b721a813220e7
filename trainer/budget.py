"""Training budgets in words, as the BabyLM challenge counts them.

The challenge counts words in the raw text (whitespace-separated), not tokens, and
counts repeats: after two epochs over a 10M-word corpus a model has seen 20M words.
The prepared data records the words of every packed row (`PreparedData.row_words`),
and the loop's data order is a pure function of (seed, epoch), so the words seen after
any number of steps follow from the data position alone: nothing extra to checkpoint.

Pure numpy; no torch, no files.
"""

from __future__ import annotations

import math
import re

import numpy as np

from trainer.data.dataset import epoch_permutation
from trainer.errors import UserError

# The challenge's checkpoint schedule: every 1M words up to 10M, every 10M up to
# 100M, every 100M up to 1B (as far as a run goes).
BABYLM_CHECKPOINT_WORDS: tuple[int, ...] = tuple(
    [n * 1_000_000 for n in range(1, 10)]
    + [n * 10_000_000 for n in range(1, 10)]
    + [n * 100_000_000 for n in range(1, 11)]
)

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


class BudgetError(UserError):
    """A budget the run must not start with; one line."""


def parse_word_count(text: str) -> int:
    """'10M' -> 10_000_000, '2.5m' -> 2_500_000, '500k', '1B', '12345'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMbB]?)\s*", str(text))
    if not match:
        raise BudgetError(f"{text!r} is not a word count (examples: 500000, 500K, 10M, 1B)")
    value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value < 1 or value != int(value):
        raise BudgetError(f"{text!r} is not a whole positive number of words")
    return int(value)


def parse_checkpoint_words(text: str) -> list[int]:
    """'babylm' (the challenge's schedule) or a comma-separated list of word counts."""
    if text.strip().lower() == "babylm":
        return list(BABYLM_CHECKPOINT_WORDS)
    counts = sorted({parse_word_count(part) for part in text.split(",") if part.strip()})
    if not counts:
        raise BudgetError("--checkpoint-words needs 'babylm' or a comma-separated list such as 1M,2M,5M")
    return counts


def checkpoint_name(words: int) -> str:
    """The challenge's revision name for a word count: chck_<N>M (no dots, which the
    evaluation pipeline's result folders cannot hold; fractions of a million use K)."""
    if words % 1_000_000 == 0:
        return f"chck_{words // 1_000_000}M"
    if words % 1_000 == 0:
        return f"chck_{words // 1_000}K"
    return f"chck_{words}W"


def words_seen(row_words: np.ndarray, rows_consumed: int, seed: int) -> int:
    """Words in the first `rows_consumed` rows of the loop's data order (epochs wrap)."""
    num_rows = len(row_words)
    epochs, offset = divmod(int(rows_consumed), num_rows)
    total = int(row_words.sum())
    partial = int(row_words[epoch_permutation(num_rows, seed, epochs)[:offset]].sum()) if offset else 0
    return epochs * total + partial


def rows_for_words(row_words: np.ndarray, target_words: int, seed: int) -> int:
    """The fewest rows (in the loop's data order) that hold at least `target_words` words."""
    total = int(row_words.sum())
    if total <= 0:
        raise BudgetError("the training split holds no words")
    full_epochs, remainder = divmod(int(target_words), total)
    if remainder == 0:
        return full_epochs * len(row_words)
    cumulative = np.cumsum(row_words[epoch_permutation(len(row_words), seed, full_epochs)])
    return full_epochs * len(row_words) + int(np.searchsorted(cumulative, remainder, side="left")) + 1


def steps_for_words(row_words: np.ndarray, target_words: int, batch_size: int, seed: int) -> int:
    """The first optimizer step at or past `target_words` words seen."""
    return max(1, math.ceil(rows_for_words(row_words, target_words, seed) / batch_size))


def resolve_max_steps(config, row_words: np.ndarray) -> int:
    """The run's step budget: `max_words` when set (exactly the first step at or past it),
    else `max_steps`. Refuses a budget over `max_epochs` passes over the training data."""
    num_rows, total = len(row_words), int(row_words.sum())
    if config.max_words is not None:
        steps = steps_for_words(row_words, config.max_words, config.batch_size, config.seed)
        budget, words = f"max_words {config.max_words:,}", config.max_words
        epochs = config.max_words / total
    else:
        steps = config.max_steps
        budget = f"max_steps {steps:,} x batch_size {config.batch_size}"
        words = words_seen(row_words, steps * config.batch_size, config.seed)
        epochs = steps * config.batch_size / num_rows
    if epochs > config.max_epochs + 1e-9:
        over_words = words - int(config.max_epochs * total)
        raise BudgetError(
            f"{budget} is {epochs:.2f} epochs of the {total:,}-word training split: over max_epochs "
            f"{config.max_epochs:g} by {epochs - config.max_epochs:.2f} epochs ({over_words:,} words); "
            f"lower the budget or raise max_epochs"
        )
    return steps
