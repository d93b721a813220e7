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


# --- --eval-data: the pipeline's predictions matched to trainer.zero_shot's items ---------------


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _official_predictions(results: Path, rows_by_uid: dict) -> None:
    """predictions.json as run.py's save_predictions writes it: {UID: {"predictions": [...]}}."""
    results.mkdir(parents=True, exist_ok=True)
    (results / "predictions.json").write_text(json.dumps(
        {uid: {"predictions": [{"id": f"{uid}_{k}", **row} for k, row in enumerate(rows)]} for uid, rows in rows_by_uid.items()}))


def _swapped(ewok_row: dict) -> dict:
    """The official EWoK file's second line of an item: contexts and targets swapped."""
    return {**ewok_row, "Context1": ewok_row["Context2"], "Context2": ewok_row["Context1"],
            "Target1": ewok_row["Target2"], "Target2": ewok_row["Target1"]}


def test_found_tasks_maps_every_zero_shot_task_to_a_pipeline_task(tmp_path):
    from trainer import zero_shot

    assert set(zero_shot.LOADERS) <= set(official_eval.PIPELINE_TASKS)
    _write_jsonl(tmp_path / "ewok_filtered" / "a.jsonl", [])
    _write_jsonl(tmp_path / "comps" / "comps_base.jsonl", [])
    assert official_eval.found_tasks(tmp_path) == {"ewok": tmp_path / "ewok_filtered", "comps": tmp_path / "comps"}


def test_pred_strings_map_back_to_candidates_per_task(tmp_path):
    """`pred` is the completion: EWoK's with its leading space, entity tracking's option, COMPS's
    whole sentence; the k-th prediction of a UID is the k-th item of that UID."""
    ewok = {"Domain": "d", "ConceptA": "", "ConceptB": "", "ContextType": "", "ContextDiff": "", "TargetDiff": "",
            "Context1": "The cup is on the box.", "Context2": "The cup is under the box.",
            "Target1": "The box is under the cup.", "Target2": "The box is on the cup."}
    _write_jsonl(tmp_path / "ewok" / "d.jsonl", [ewok, _swapped(ewok)])
    items = official_eval.items_in_pipeline_order("ewok", tmp_path / "ewok")
    predictions = {"d": [{"pred": " The box is on the cup."}, {"pred": " The box is on the cup."}]}
    assert official_eval.prediction_indices("ewok", items, predictions) == [1, 0]

    et = [{"sample_id": 0, "numops": 0, "input_prefix": "Box one contains the cup. Box one contains ",
           "options": ["the cup.", "nothing.", "the box."], "example_id": 0},
          {"sample_id": 1, "numops": 1, "input_prefix": "Box two contains nothing. Box two contains ",
           "options": ["nothing.", "the cup.", "the box."], "example_id": 1}]
    _write_jsonl(tmp_path / "et" / "regular.jsonl", et)
    items = official_eval.items_in_pipeline_order("entity_tracking", tmp_path / "et")
    predictions = {"regular_0_ops": [{"pred": "the box."}], "regular_1_ops": [{"pred": "nothing."}]}
    assert official_eval.prediction_indices("entity_tracking", items, predictions) == [2, 0]

    comps = {"prefix_acceptable": "A dog", "prefix_unacceptable": "A cup", "property_phrase": "can run."}
    _write_jsonl(tmp_path / "comps" / "comps_wugs.jsonl", [comps, comps])
    items = official_eval.items_in_pipeline_order("comps", tmp_path / "comps")
    predictions = {"wugs": [{"pred": "A cup can run."}, {"pred": "can run."}]}  # the second is no sentence: unmatched
    assert official_eval.prediction_indices("comps", items, predictions) == [1, None]


def test_items_follow_the_pipelines_file_order_when_a_uid_spans_files(tmp_path):
    """read_files.py walks Path.iterdir unsorted; predictions of a UID are numbered in that order."""
    for stem in ("b", "a"):
        _write_jsonl(tmp_path / f"{stem}.jsonl",
                     [{"sentence_good": f"from {stem}", "sentence_bad": "x", "field": "f", "linguistics_term": "t", "UID": "u"}])
    items = official_eval.items_in_pipeline_order("blimp", tmp_path)
    expected = [p.stem for p in tmp_path.iterdir()]
    assert [i.candidates[0].text.removeprefix("from ") for i in items] == expected
    predictions = {"u": [{"pred": f"from {expected[0]}"}, {"pred": "x"}]}
    assert official_eval.prediction_indices("blimp", items, predictions) == [0, 1]


def test_chosen_index_is_torch_max_on_the_cpu_and_agrees_with_decide():
    from trainer import zero_shot
    from trainer.zero_shot import decide

    cases = [[1.0, 1.0], [float("nan"), 0.0], [0.0, float("nan")], [float("nan"), float("nan")],
             [-float("inf"), -float("inf")], [-3.0, -1.0, -1.0], [-1.0, -2.0, -0.5, -0.5]]
    assert [zero_shot.chosen_index(c) for c in cases] == [0, 0, 1, 0, 0, 1, 2]
    assert all((zero_shot.chosen_index(c) == 0) == decide(c, "official") for c in cases)
    assert [official_eval.is_tie(c) for c in ([1.0, 1.0], [1.0, 0.5], [0.0, float("nan")], [-2.0, -1.0, -2.0])] == \
        [True, False, True, False]


def test_compare_task_scores_both_sides_as_run_py_does(tmp_path):
    et = [{"sample_id": k, "numops": ops, "input_prefix": f"Box {k} contains ", "options": ["a.", "b.", "c."],
           "example_id": k} for k, ops in enumerate([0, 0, 1, 1])]
    _write_jsonl(tmp_path / "regular.jsonl", et)
    _write_jsonl(tmp_path / "ambiref.jsonl", et[:2])
    items = official_eval.items_in_pipeline_order("entity_tracking", tmp_path)
    by_uid = {}
    for item in items:
        by_uid.setdefault(item.uid, []).append(item)
    # Pipeline: right on regular_0 (both), half of regular_1, wrong on ambiref_0.
    pipeline = {id(i): c for i, c in zip(by_uid["regular_0_ops"], [0, 0])}
    pipeline.update({id(i): c for i, c in zip(by_uid["regular_1_ops"], [0, 2])})
    pipeline.update({id(i): c for i, c in zip(by_uid["ambiref_0_ops"], [1, 1])})
    ours_scores = {0: [-1.0, -2.0, -3.0], 2: [-2.0, -2.0, -1.0], 1: [-2.0, -1.0, -2.0]}
    ours = [ours_scores[pipeline[id(i)]] for i in items]
    ours[items.index(by_uid["regular_1_ops"][0])] = [-1.0, -1.0, -1.5]  # a tie: goes to the first, as the pipeline's
    record, rows = official_eval.compare_task("entity_tracking", items, [pipeline[id(i)] for i in items], ours)
    # run.py: the mean over splits of each split's mean over its numops UIDs: ((1 + 0.5) / 2 + 0) / 2
    assert record["pipeline_score"] == pytest.approx(0.375)
    assert record["ours_score"] == pytest.approx(0.375)
    assert record["same_decision"] == 1.0 and record["ties"] == 1 and record["items"] == 6
    assert record["unmatched_predictions"] == 0
    assert [r["uid"] for r in rows] == [i.uid for i in items] and all(r["same"] for r in rows)
    # One disagreement and one unmatched prediction.
    choices = [pipeline[id(i)] for i in items]
    choices[0], choices[1] = 2 if choices[0] != 2 else 1, None
    record, rows = official_eval.compare_task("entity_tracking", items, choices, ours)
    assert record["same_decision"] == pytest.approx(4 / 6) and record["unmatched_predictions"] == 1
    assert rows[1]["pipeline"] is None and not rows[1]["same"]


def test_compare_task_wug_gives_both_rhos_and_the_largest_probability_gap(tmp_path):
    from trainer import zero_shot

    ratios = [0.9, 0.1, 0.5, 0.7]
    _write_jsonl(tmp_path / "wug_adj_nominalization.jsonl",
                 [{"sentences": f"A {k}ity.\tA {k}ness.", "ratio": r} for k, r in enumerate(ratios)])
    items = official_eval.items_in_pipeline_order("wug_adj", tmp_path)
    ours = [[-1.0, -3.0], [-4.0, -1.0], [-2.0, -2.0], [-1.5, -2.0]]
    p_ours = [zero_shot.first_probability(s) for s in ours]
    pipeline_p = [p_ours[0], p_ours[1] + 1e-6, p_ours[2], 0.99]  # the last ranks differently
    pred = [{"pred": c.text} for item, s in zip(items, ours) for c in [item.candidates[zero_shot.chosen_index(s)]]]
    choices = official_eval.prediction_indices("wug_adj", items, {"wug_adj": pred})
    record, rows = official_eval.compare_task("wug_adj", items, choices, ours, pipeline_p)
    assert record["ours_score"] == pytest.approx(zero_shot.spearman(p_ours, ratios))
    assert record["pipeline_score"] == pytest.approx(zero_shot.spearman(pipeline_p, ratios))
    assert record["ours_score"] == pytest.approx(1.0) and record["pipeline_score"] == pytest.approx(0.8)
    assert record["max_p_first_difference"] == pytest.approx(0.99 - p_ours[3])
    assert record["same_decision"] == 1.0 and record["ties"] == 1
    assert rows[3]["ratio"] == 0.7 and rows[3]["p_first_pipeline"] == 0.99


def test_reported_average_reads_the_wug_report_and_prediction_rows_keep_prob(tmp_path):
    (tmp_path / "best_temperature_report.txt").write_text(
        "TEMPERATURE: 1.00\n\n### UID SPEARMAN'S RHO\navg: 0.42\n\n### AVERAGE SPEARMAN'S RHO\n0.42\n\n")
    assert official_eval.reported_average(tmp_path) == 0.42
    _official_predictions(tmp_path, {"wug_adj": [{"pred": "A 0ity.", "prob": 0.75}]})
    rows = official_eval.pipeline_prediction_rows(tmp_path)
    assert rows == {"wug_adj": [{"id": "wug_adj_0", "pred": "A 0ity.", "prob": 0.75}]}
    assert official_eval.matched_predictions([], rows) == []
