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
    prompt = "Create a noun out of the following adjective: "
    write_jsonl(root / "wug_adj_nominalization" / "wug_adj_nominalization.jsonl", [
        {"sentences": f"{prompt}{w}able. {w}ability\t{prompt}{w}able. {w}ableness", "ratio": r}
        for w, r in (("blick", 0.8), ("dax", 0.3), ("wug", 0.55), ("fep", 0.1))])
    write_jsonl(root / "wug_past_tense" / "wug_past_tense.jsonl", [
        {"sentences": "today i spling . yesterday i splung .\ttoday i spling . yesterday i splinged .", "ratio": 0.4},
        {"sentences": "today i glit . yesterday i glat .\ttoday i glit . yesterday i glitted .", "ratio": 0.2},
        {"sentences": "today i mip . yesterday i mope .\ttoday i mip . yesterday i mipped .", "ratio": 0.1}])
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


def test_wug_reads_tab_joined_candidates_and_the_human_ratio(eval_data):
    items = zs.load_task("wug_adj", zs.task_folder(eval_data, "wug_adj"))
    assert [i.uid for i in items] == ["wug_adj"] * 4 and [i.ratio for i in items] == [0.8, 0.3, 0.55, 0.1]
    first = items[0].candidates[0]
    assert first.text.endswith("blickability") and (first.start, first.end) == (0, len(first.text))  # all scored
    assert items[0].candidates[1].text.endswith("blickableness")


def test_spearman_by_hand():
    # ranks (1, 2, 3, 4) against (2, 1, 4, 3): d^2 sums to 4, rho = 1 - 6*4/(4*15) = 0.6
    assert zs.spearman([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)
    assert zs.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties share their average rank: x ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): Pearson of those
    rx, ry = [-1.5, 0.0, 0.0, 1.5], [-1.5, -0.5, 0.5, 1.5]
    expected = sum(a * b for a, b in zip(rx, ry)) / math.sqrt(sum(a * a for a in rx) * sum(b * b for b in ry))
    assert zs.spearman([1, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(expected)
    assert list(zs.average_ranks([3.0, 1.0, 3.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]
    assert math.isnan(zs.spearman([1, math.nan, 3], [1, 2, 3]))  # NaN propagates, as scipy's default
    assert math.isnan(zs.spearman([1, 1, 1], [1, 2, 3]))  # constant: no correlation defined


def test_wug_score_is_rho_of_the_softmaxed_first_candidate():
    items = [zs.Item("wug_adj", "wug_adj", (), key=str(k), ratio=r) for k, r in enumerate((0.9, 0.2, 0.5, 0.7))]
    scores = [[-10.0, -12.0], [-9.0, -8.0], [-20.0, -20.0], [-5.0, -5.5]]
    result = zs.ratings_scores(items, scores)
    # p0 = 1 / (1 + exp(s1 - s0)): 0.881, 0.269, 0.5, 0.622: the same order as the ratios
    assert result["p_first"] == pytest.approx([1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1)), 0.5,
                                               1 / (1 + math.exp(-0.5))])
    assert result["score"] == pytest.approx(1.0) and result["n"] == 4
    assert zs.first_probability([0.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    # In float32, as compute_results.py softmaxes: a lead of 20 or 25 nats is exactly 1.0, so two
    # such items tie in Spearman's ranks (the pipeline's rho), where float64 would order them.
    assert zs.first_probabilities([[0.0, -20.0], [0.0, -25.0]]) == [1.0, 1.0]
    assert zs.first_probability([0.0, -1.0]) == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-6)
    # The bootstrap SE of a noisy correlation is near Fisher's for Spearman, (1 - rho^2) sqrt(1.06 / (n - 3))
    rng = __import__("numpy").random.default_rng(1)
    human = rng.uniform(size=200)
    noisy = [zs.Item("wug_adj", "wug_adj", (), key=str(k), ratio=float(h)) for k, h in enumerate(human)]
    model = [[float(h + rng.normal(scale=0.3)), 0.0] for h in human]
    result = zs.ratings_scores(noisy, model)
    assert 0.5 < result["score"] < 0.9
    assert result["se"] == pytest.approx((1 - result["score"] ** 2) * math.sqrt(1.06 / 197), rel=0.3)


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
    from trainer.metrics import METRICS, lookup, task_metric

    data, _ = prepared
    config = small_config(max_steps=2, eval_every=2, checkpoint_every=2, eval_data=str(eval_data),
                          pairs_heldout_fraction=0.0)
    last = train_loop(config, data.root, tmp_path, show_progress=False)
    names = {t: task_metric(t) for t in zs.LOADERS if task_metric(t) in last}
    assert sorted(names) == sorted(zs.LOADERS)  # every task the folder has
    assert names["wug_adj"] == "wug_adj_rho" and -1 <= last["wug_adj_rho"] <= 1
    assert last["babylm_score"] == pytest.approx(sum(last[n] for n in names.values()) / len(names))
    assert last["babylm_score_se"] == pytest.approx(math.sqrt(sum(last[f"{n}_se"] ** 2 for n in names.values()))
                                                    / len(names))
    assert last["entity_tracking_scored"] == 3 and "babylm_score_heldout" not in last  # nothing held out
    for name in ("babylm_score", *names.values()):
        assert lookup(name) is not None and lookup(name).needs_eval_data
    # Each task's per-item record is in the evaluation: the paired comparisons read them.
    items = last["items"]
    assert items["wug_adj"]["n"] == 4 and items["blimp"]["n"] == 1
    for entry in METRICS:
        if entry.needs_eval_data and not entry.name.endswith("_heldout") and entry.items != "tasks":
            assert entry.items in items, entry.name


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
