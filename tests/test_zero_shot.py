"""BabyLM's zero-shot tasks (trainer/zero_shot.py) against the official pipeline's rules
(babylm-org/babylm-eval 45fe2c1): files in the official formats written here from the loader's
field names, the scored tokens, the decision rule, the aggregation, and a brute-force scorer (one
forward pass per masked token, no batching) for a small model."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from trainer import zero_shot as zs
from trainer.config import ModelConfig
from trainer.data.tokenizer import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, load_tokenizer
from trainer.model import build_model
from trainer.objective import subs_logits

from conftest import SMALL_MODEL
from test_loop import prepared  # noqa: F401  (the fixture: a toy corpus, prepared)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def eval_data(tmp_path):
    """A `full_eval` folder with a few items of each task, as the official files hold them."""
    root = tmp_path / "full_eval"
    write_jsonl(root / "blimp_filtered" / "anaphor_agreement.jsonl", [
        {"sentence_good": "the cat sees herself .", "sentence_bad": "the cat sees himselves .", "field": "morphology",
         "linguistics_term": "anaphor_agreement", "UID": "anaphor_agreement", "pair_id": 0}])
    write_jsonl(root / "supplement_filtered" / "hypernym.jsonl", [
        {"sentence_good": "a dog is an animal .", "sentence_bad": "an animal is a dog .", "row": 3}])
    write_jsonl(root / "ewok_filtered" / "social-properties.jsonl", [
        {"Domain": "social-properties", "Context1": "the cat is kind.", "Context2": "the cat is mean.",
         "Target1": "the cat helps.", "Target2": "the cat bites.", "ConceptA": "kind"}])
    write_jsonl(root / "entity_tracking" / "regular.jsonl", [
        {"sample_id": 0, "numops": 0, "input_prefix": "Box 1 contains the hat. Box 1 contains ",
         "options": ["the hat.", "the shell.", "nothing."], "example_id": 0},
        {"sample_id": 1, "numops": 1, "input_prefix": "Box 2 contains ", "options": ["nothing.", "the hat."]}])
    write_jsonl(root / "entity_tracking" / "ambiref.jsonl", [
        {"sample_id": 0, "numops": 0, "input_prefix": "Box 3 contains ", "options": ["the cup.", "the hat."]}])
    write_jsonl(root / "comps" / "comps_wugs_dist-before.jsonl", [
        {"prefix_acceptable": "a robin is a bird.", "prefix_unacceptable": "a dog is a mammal.",
         "property_phrase": "therefore, a robin can fly."}])
    return root


def test_loaders_read_the_official_layout(eval_data):
    items = {task: zs.load_task(task, zs.task_folder(eval_data, task)) for task in zs.LOADERS}
    assert [i.uid for i in items["blimp"]] == ["anaphor_agreement"]
    assert [i.uid for i in items["blimp_supplement"]] == ["hypernym"]  # no `field`: the file's name
    ewok = items["ewok"][0]
    assert ewok.uid == "social-properties"
    assert [c.text for c in ewok.candidates] == ["the cat is kind. the cat helps.", "the cat is kind. the cat bites."]
    assert ewok.candidates[0].text[ewok.candidates[0].start:] == "the cat helps."
    tracking = items["entity_tracking"]
    assert sorted(i.uid for i in tracking) == ["ambiref_0_ops", "regular_0_ops", "regular_1_ops"]
    first = next(i for i in tracking if i.uid == "regular_0_ops")
    assert first.candidates[1].text == "Box 1 contains the hat. Box 1 contains the shell."  # no separator
    assert len(first.candidates) == 3  # "nothing." is scored like any option, as the official code does
    comps = items["comps"][0]
    assert comps.uid == "wugs_dist_before" and comps.candidates[1].text == "a dog is a mammal. therefore, a robin can fly."
    assert zs.task_folder(eval_data, "comps").name == "comps" and zs.task_folder(eval_data / "nope", "ewok") is None


def test_a_malformed_line_is_one_line_naming_file_and_line(tmp_path):
    write_jsonl(tmp_path / "ewok_filtered" / "x.jsonl", [{"Domain": "d", "Context1": "c", "Target1": "t"}])
    with pytest.raises(zs.TaskDataError, match=r"x.jsonl:1 lacks the field\(s\) Target2"):
        zs.load_task("ewok", tmp_path / "ewok_filtered")


def test_scored_tokens_are_those_ending_after_the_boundary():
    # "ab c": tokens a(0,1) b(1,2) c(3,4); the completion starts at 3: only c.
    assert zs.scored_token_positions([(0, 1), (1, 2), (3, 4)], 3) == [2]
    # A token straddling the boundary (a leading space kept in its offsets) counts; specials never do.
    assert zs.scored_token_positions([(0, 0), (0, 2), (2, 5), (5, 9), (0, 0)], 3) == [2, 3]


def test_decisions_follow_torch_max_and_the_strict_rule_refuses_ties():
    official = [zs.decide(s) for s in ([1.0, 1.0], [math.nan, 0.0], [0.0, math.nan], [-2.0, -1.0, -3.0], [-1.0, -2.0])]
    assert official == [True, True, False, False, True]
    for scores, expected in (([1.0, 1.0], False), ([math.nan, 0.0], False), ([-1.0, -2.0], True)):
        assert zs.decide(scores, ties="strict") is expected
    # The rule is torch's own (CPU): the first maximal index, NaN the largest.
    for scores in ([1.0, 1.0], [math.nan, 0.0], [0.0, math.nan], [-2.0, -1.0, -3.0]):
        assert (torch.max(torch.tensor([scores]), dim=1)[1].item() == 0) == zs.decide(scores)


def test_task_scores_aggregate_as_the_official_run():
    item = lambda uid: zs.Item("entity_tracking", uid, (), key=uid)  # noqa: E731
    items = [item("regular_0_ops")] * 2 + [item("regular_1_ops")] * 4 + [item("ambiref_0_ops")] * 2
    correct = [True, False, True, True, True, False, True, True]
    # regular: mean(0.5, 0.75) = 0.625; ambiref: 1.0; the task: mean of the two splits.
    result = zs.task_scores("entity_tracking", items, correct)
    assert result["score"] == pytest.approx((0.625 + 1.0) / 2)
    se = math.sqrt((0.25 ** 2) * 0.25 / 2 + (0.25 ** 2) * 0.1875 / 4 + (0.5 ** 2) * 0.0)
    assert result["se"] == pytest.approx(se)
    blimp = zs.task_scores("blimp", [zs.Item("blimp", u, (), key=u) for u in "aab"], [True, False, True])
    assert blimp["score"] == pytest.approx((0.5 + 1.0) / 2)  # macro over UIDs, not over items


def brute_force_score(model, tokenizer, candidate):
    """One forward pass per scored token, the whole text visible but that token."""
    encoding = tokenizer.encode(candidate.text)
    ids = [BOS_ID, *encoding.ids]
    real = sum(1 for t in ids if t >= NUM_SPECIAL_TOKENS)
    total = 0.0
    for position in zs.scored_token_positions(encoding.offsets, candidate.start):
        masked = torch.tensor([ids])
        masked[0, position + 1] = MASK_ID
        logits = model(masked, torch.ones_like(masked, dtype=torch.bool), torch.tensor([1.0 / real]), condition=True)
        log_probs = F.log_softmax(subs_logits(logits[0, position + 1], NUM_SPECIAL_TOKENS), dim=-1)
        total += float(log_probs[ids[position + 1]])
    return total


def test_scores_agree_with_a_brute_force_scorer(prepared, eval_data):  # noqa: F811
    data, _ = prepared
    tokenizer = load_tokenizer(data.tokenizer_path)
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SMALL_MODEL), data.vocab_size).eval()
    for task in zs.LOADERS:
        items = zs.load_task(task, zs.task_folder(eval_data, task))
        decisions, scores = zs.score_items(model, items, tokenizer, bos_id=BOS_ID, max_length=128,
                                           num_special=NUM_SPECIAL_TOKENS, mask_id=MASK_ID, pad_id=PAD_ID, batch_size=3)
        for item, decision, item_scores in zip(items, decisions, scores):
            with torch.no_grad():
                expected = [brute_force_score(model, tokenizer, c) for c in item.candidates]
            assert item_scores == pytest.approx(expected, abs=1e-4), (task, item.uid)
            assert decision == zs.decide(expected)
        # The scored tokens spell the completion (the target, option or phrase), nothing of its context.
        candidate = items[0].candidates[0]
        encoding = tokenizer.encode(candidate.text)
        scored = [encoding.ids[p] for p in zs.scored_token_positions(encoding.offsets, candidate.start)]
        assert tokenizer.decode(scored).strip() == candidate.text[candidate.start:].strip(), task


def test_a_run_scores_the_suite_and_its_mean(prepared, eval_data, tmp_path):  # noqa: F811
    from test_loop import small_config

    from trainer.loop import train_loop
    from trainer.metrics import lookup

    data, _ = prepared
    config = small_config(max_steps=2, eval_every=2, checkpoint_every=2, eval_data=str(eval_data),
                          pairs_heldout_fraction=0.0)
    last = train_loop(config, data.root, tmp_path, show_progress=False)
    tasks = [t for t in zs.LOADERS if f"{t}_acc" in last]
    assert sorted(tasks) == sorted(zs.LOADERS)  # every task the folder has
    assert last["babylm_score"] == pytest.approx(sum(last[f"{t}_acc"] for t in tasks) / len(tasks))
    assert last["babylm_score_se"] == pytest.approx(math.sqrt(sum(last[f"{t}_acc_se"] ** 2 for t in tasks)) / len(tasks))
    assert last["entity_tracking_scored"] == 3 and "babylm_score_heldout" not in last  # nothing held out
    for name in ("babylm_score", *(f"{t}_acc" for t in tasks)):
        assert lookup(name) is not None and lookup(name).needs_eval_data


def test_the_sweep_selects_on_the_suite_only_with_task_files(eval_data, tmp_path, capsys):
    from sweeps.run import main

    common = ["--storage", str(tmp_path / "store"), "--dry-run", "--metric", "babylm_score"]
    assert main(common) == 2
    assert "--metric babylm_score needs BabyLM task files: pass --eval-data" in capsys.readouterr().err
    assert main([*common, "--eval-data", str(eval_data)]) == 0
    assert "optimising babylm_score (max)" in capsys.readouterr().out
    assert main([*common, "--eval-data", str(tmp_path / "nothing")]) == 2
    assert "--eval-data: no task folder in" in capsys.readouterr().err
    assert main(["--storage", str(tmp_path / "store"), "--dry-run", "--metric", "ewok_acc_heldout",
                 "--eval-data", str(eval_data)]) == 2
    assert "never selected on" in capsys.readouterr().err
