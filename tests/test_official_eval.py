"""benchmarks/official_eval.py: the pieces that decide what the official pipeline is fed and how its
output is matched to ours. The pipeline itself is not in this project; the script runs it in a
session that has it (see the README), so here only the inputs and the bookkeeping are checked, on
hand-made data."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import official_eval  # noqa: E402

from trainer.data.pairs import MinimalPair, load_pairs  # noqa: E402


def test_pairs_files_keep_our_order_per_paradigm_and_load_back(tmp_path):
    """The pipeline reads a file without `field` as one UID (the file's stem) in line order, so the
    k-th prediction of a UID must be the k-th pair we wrote for that paradigm."""
    pairs = [MinimalPair("A b.", "B a.", "p/one", "0"), MinimalPair("C d.", "D c.", "two", "0"),
             MinimalPair("E f.", "F e.", "p/one", "1")]
    by_file = official_eval.write_pairs(pairs, tmp_path)
    assert list(by_file) == ["p_one", "two"]
    assert [p.good for p in by_file["p_one"]] == ["A b.", "E f."]
    rows = [json.loads(line) for line in (tmp_path / "p_one.jsonl").read_text().splitlines()]
    assert rows == [{"sentence_good": "A b.", "sentence_bad": "B a."}, {"sentence_good": "E f.", "sentence_bad": "F e."}]
    # Our own loader reads the same files back (paradigm = stem when there is no UID).
    assert [(p.good, p.paradigm) for p in load_pairs(tmp_path)] == [("A b.", "p_one"), ("E f.", "p_one"), ("C d.", "two")]


def test_standin_aoa_words_have_the_pipelines_format():
    sentences = ["the dog ran", "a dog sat", "my dog ate", "the cat hid", "a cat slept", "Dog first", "x y dog."]
    words = official_eval.standin_aoa_words(sentences, words=2, contexts=2)
    # The pipeline's load_eval: {word: [{"context": ...}, ...]}, words of two letters or more.
    assert set(words) == {"dog", "cat"}
    assert words["dog"] == [{"context": "the"}, {"context": "a"}]
    assert words["cat"] == [{"context": "the"}, {"context": "a"}]
    # A word is only counted where text precedes it, and never with its punctuation.
    assert "ran" in official_eval.standin_aoa_words(sentences, words=10, contexts=1)
    assert "ran" not in official_eval.standin_aoa_words(sentences, words=10, contexts=2)
    assert all(len(w) > 1 for w in official_eval.standin_aoa_words(sentences, words=10, contexts=1))


def test_reported_average_predictions_and_aoa_summary_read_the_pipelines_files(tmp_path):
    # predictions.json as the pipeline's save_predictions writes it
    (tmp_path / "predictions.json").write_text(json.dumps({"p_one": {"predictions": [
        {"id": "p_one_0", "pred": "A b."}, {"id": "p_one_1", "pred": "F e."}]}}))
    assert official_eval.pipeline_predictions(tmp_path) == {"p_one": ["A b.", "F e."]}
    (tmp_path / "best_temperature_report.txt").write_text(
        "TEMPERATURE: 1.00\n\n### UID ACCURACY\na: 50.00\nb: 70.00\n\n### AVERAGE ACCURACY\n60.00\n\n")
    assert official_eval.reported_average(tmp_path) == 60.0
    rows = [{"step": "chck_1M", "surprisal": 4.0}, {"step": "chck_1M", "surprisal": 6.0},
            {"step": "chck_2M", "surprisal": 3.0}, {"step": "chck_2M", "surprisal": float("nan")}]
    (tmp_path / "surprisal.json").write_text(json.dumps({"metadata": {"completed_steps": 2}, "results": rows}))
    summary = official_eval.aoa_summary(tmp_path / "surprisal.json")
    assert summary["checkpoints"] == ["chck_1M", "chck_2M"] and summary["rows"] == 4
    assert summary["finite_share"] == pytest.approx(0.75)
    assert summary["mean_surprisal"]["chck_1M"] == pytest.approx(5.0)


def test_corpus_lines_prefer_the_held_out_split(tmp_path):
    (tmp_path / "a.train").write_text("train text\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.dev").write_text("first dev line\n\n  second  \n")
    assert official_eval.corpus_lines(tmp_path) == ["first dev line", "second"]
    (tmp_path / "sub" / "b.dev").unlink()
    assert official_eval.corpus_lines(tmp_path) == ["train text"]
