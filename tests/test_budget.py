"""Word budgets (BabyLM counts words of raw text, repeats included), word-count
checkpoints, and the tuning / held-out split of the minimal pairs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from trainer.budget import (
    BABYLM_CHECKPOINT_WORDS,
    BudgetError,
    checkpoint_name,
    parse_checkpoint_words,
    parse_word_count,
    resolve_max_steps,
    rows_for_words,
    steps_for_words,
    words_seen,
)
from trainer.config import TrainConfig
from trainer.data.dataset import TokenShard, epoch_permutation
from trainer.data.pairs import MinimalPair, split_pairs
from trainer.data.prepare import prepare_corpus
from trainer.data.tokenizer import NUM_SPECIAL_TOKENS, load_tokenizer

from conftest import SMALL_MODEL

WORDS = ["apple", "banana", "cherry", "damson", "elder"]


@pytest.fixture(scope="module")
def one_token_words(tmp_path_factory):
    """A corpus of one-word lines whose words are frequent enough to become single tokens,
    so a row's word count is simply its number of non-special tokens."""
    root = tmp_path_factory.mktemp("words")
    corpus = root / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    train_lines = [WORDS[i] for i in rng.integers(0, len(WORDS), 1000)]
    # Documents of 50 lines (blank-line separated), so rows also hold </s> separators.
    text = "\n\n".join("\n".join(train_lines[i : i + 50]) for i in range(0, 1000, 50))
    (corpus / "fruit.train").write_text(text + "\n")
    (corpus / "fruit.dev").write_text("\n".join(WORDS * 4) + "\n")
    data = prepare_corpus(corpus, root / "cache", vocab_size=300, seq_length=16, show_progress=False)
    return data, len(train_lines)


def test_parse_word_counts():
    assert parse_word_count("10M") == 10_000_000
    assert parse_word_count("2.5m") == 2_500_000
    assert parse_word_count("500K") == 500_000
    assert parse_word_count("1B") == 1_000_000_000
    assert parse_word_count("12345") == 12345
    for bad in ("ten", "-5", "0", "1.5", "3X"):
        with pytest.raises(BudgetError):
            parse_word_count(bad)
    assert parse_checkpoint_words("5M, 1M,1M") == [1_000_000, 5_000_000]


def test_babylm_schedule_is_the_challenges():
    # Every 1M up to 10M, every 10M up to 100M, every 100M up to 1B: 9 + 9 + 10 counts.
    schedule = parse_checkpoint_words("babylm")
    assert schedule == list(BABYLM_CHECKPOINT_WORDS) and len(schedule) == 28
    assert schedule[:10] == [n * 10**6 for n in range(1, 11)]
    assert schedule[9:19] == [n * 10**7 for n in range(1, 11)]
    assert schedule[18:] == [n * 10**8 for n in range(1, 11)]
    assert [checkpoint_name(w) for w in (10**6, 10**7, 10**9, 500_000)] == ["chck_1M", "chck_10M", "chck_1000M", "chck_500K"]


def test_row_word_counts_are_exact(one_token_words):
    data, n_words = one_token_words
    tok = load_tokenizer(data.tokenizer_path)
    assert all(len(tok.encode(w).ids) == 1 for w in WORDS), "premise: every word is one token"
    rows = TokenShard(data.train_path).rows(np.arange(data.manifest["rows"]["train"]))
    text_tokens_per_row = (rows >= NUM_SPECIAL_TOKENS).sum(axis=1)
    np.testing.assert_array_equal(data.row_words("train"), text_tokens_per_row)
    assert data.words["train"] == n_words == data.row_words("train").sum()


def test_words_seen_against_brute_force():
    rng = np.random.default_rng(1)
    row_words = rng.integers(0, 30, size=37)
    order = np.concatenate([epoch_permutation(37, 5, e) for e in range(4)])
    cumulative = np.concatenate([[0], np.cumsum(row_words[order])])
    for rows in (0, 1, 36, 37, 38, 100, 148):
        assert words_seen(row_words, rows, seed=5) == cumulative[rows]
    for target in (1, 17, int(row_words.sum()), int(row_words.sum()) + 1, 3 * int(row_words.sum()) - 2):
        need = rows_for_words(row_words, target, seed=5)
        assert cumulative[need] >= target and cumulative[need - 1] < target
        step = steps_for_words(row_words, target, batch_size=8, seed=5)
        assert cumulative[min(step * 8, 148)] >= target and cumulative[(step - 1) * 8] < target


def test_over_ten_epochs_is_refused():
    row_words = np.full(100, 10)  # 1,000 words in 100 rows
    config = TrainConfig(max_steps=101, batch_size=10, micro_batch_size=10)
    with pytest.raises(BudgetError, match=r"10\.10 epochs.*over max_epochs 10 by 0\.10 epochs \(100 words\)"):
        resolve_max_steps(config, row_words)
    assert resolve_max_steps(config.model_copy(update={"max_steps": 100}), row_words) == 100
    words = TrainConfig(max_words=10_500, batch_size=10, micro_batch_size=10)
    with pytest.raises(BudgetError, match="500 words"):
        resolve_max_steps(words, row_words)
    assert resolve_max_steps(words.model_copy(update={"max_words": 2_001}), row_words) == 21


def _config(**overrides):
    base = dict(model=SMALL_MODEL, vocab_size=300, seq_length=16, val_rows=8, eval_pairs_per_paradigm=None, lr=3e-3)
    base.update(overrides)
    return TrainConfig.parse(base)


def test_loop_counts_words_exactly_and_checkpoints_at_counts(one_token_words, tmp_path):
    from trainer.loop import train_loop

    data, n_words = one_token_words
    num_rows = data.manifest["rows"]["train"]
    # One optimizer step = one epoch, so after k steps exactly k * n_words words were seen.
    config = _config(batch_size=num_rows, micro_batch_size=num_rows, max_steps=3, eval_every=1, checkpoint_every=3,
                     checkpoint_words=[n_words // 2, n_words, n_words + 1, 100 * n_words])
    train_loop(config, data.root, tmp_path, show_progress=False)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["words_seen"]) for m in lines] == [(1, n_words), (2, 2 * n_words), (3, 3 * n_words)]
    saved = [json.loads(line) for line in (tmp_path / "word_checkpoints.jsonl").read_text().splitlines()]
    # The first step at or past each count: step 1 covers n/2 and n, step 2 covers n+1;
    # 100n is beyond the run and never written.
    assert [(s["checkpoint_words"], s["step"], s["words_seen"]) for s in saved] == [
        (n_words // 2, 1, n_words), (n_words, 1, n_words), (n_words + 1, 2, 2 * n_words)]
    for s in saved:
        assert (tmp_path / s["name"] / "config.json").exists()


def test_word_budget_ends_at_the_first_step_past_it(one_token_words, tmp_path):
    from trainer.loop import train_loop

    data, n_words = one_token_words
    config = _config(batch_size=8, micro_batch_size=8, max_words=n_words // 3, eval_every=1000, checkpoint_every=1000)
    final = train_loop(config, data.root, tmp_path, show_progress=False)
    row_words = data.row_words("train")
    before = words_seen(row_words, (final["step"] - 1) * 8, config.seed)
    assert final["words_seen"] >= n_words // 3 > before
    assert final["words_seen"] == words_seen(row_words, final["step"] * 8, config.seed)


def test_cli_refuses_an_over_budget_run_in_one_line(one_token_words, tmp_path):
    data, n_words = one_token_words
    corpus = data.manifest["corpus_path"]
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "trainer.train", "--corpus", corpus, "--cache-dir", str(tmp_path / "cache"),
         "--max-words", str(11 * n_words), "--set", "vocab_size=300", "--set", "seq_length=16", "--out", str(out),
         "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: max_words") and "over max_epochs 10 by 1.00 epochs" in lines[-1]
    assert "Traceback" not in result.stderr and not out.exists()


def test_pair_split_is_deterministic_disjoint_and_per_paradigm():
    pairs = [MinimalPair(f"good {p} {i}", f"bad {p} {i}", f"paradigm{p}", str(i)) for p in range(3) for i in range(400)]
    tuning, held_out = split_pairs(pairs, 0.5)
    assert not {id(p) for p in tuning} & {id(p) for p in held_out} and len(tuning) + len(held_out) == len(pairs)
    for p in range(3):  # every paradigm is split, near the requested share (binomial sd 10)
        n_held = sum(pair.paradigm == f"paradigm{p}" for pair in held_out)
        assert 160 < n_held < 240
    # Independent of order and of the rest of the folder: a pair keeps its side.
    shuffled = list(reversed(pairs[::2]))
    _, held_again = split_pairs(shuffled, 0.5)
    assert {(p.good, p.bad) for p in held_again} == {(p.good, p.bad) for p in held_out if p in shuffled}
    assert split_pairs(pairs, 0.0) == (pairs, [])
