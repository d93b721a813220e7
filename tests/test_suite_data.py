"""benchmarks/suite_data.py: the synthetic evaluation folder is read by trainer.zero_shot as the
official files are (every task, the expected UIDs and counts), EWoK holds every item and its swap,
entity tracking keeps the official option rules, and the same seed writes the same bytes."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import suite_data  # noqa: E402

from trainer import zero_shot  # noqa: E402

PARADIGMS = ("agreement_a", "agreement_b")
PER_UID = 4


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The folder written from two small hand-made paradigms (the built-in pairs take a corpus to make)."""
    root = tmp_path_factory.mktemp("suite")
    pairs = root / "pairs"
    pairs.mkdir()
    for uid in PARADIGMS:
        rows = [{"sentence_good": f"The dog {k} runs.", "sentence_bad": f"The dog {k} run.", "field": "morphology",
                 "linguistics_term": "agreement", "UID": uid, "pairID": str(k)} for k in range(PER_UID + 2)]
        (pairs / f"{uid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = root / "eval"
    written = suite_data.write_suite(out, pairs, per_uid=PER_UID, seed=3)
    return out, pairs, written


EXPECTED_UIDS = {
    "blimp": {uid: PER_UID for uid in PARADIGMS},
    "blimp_supplement": {name: PER_UID for name in suite_data.SUPPLEMENT},
    "ewok": {domain: PER_UID for domain in suite_data.EWOK},
    "entity_tracking": {f"{split}_{ops}_ops": PER_UID for split in ("regular", "ambiref") for ops in range(3)},
    "comps": {"base": PER_UID, "wugs": PER_UID},
    "wug_adj": {"wug_adj": PER_UID},
    "wug_past": {"wug_past": PER_UID},
}


def test_every_file_is_read_by_zero_shot_with_the_expected_uids_and_counts(suite):
    out, _, written = suite
    tasks = [task for task in EXPECTED_UIDS if task in zero_shot.LOADERS]  # wug: once zero_shot reads it
    read_folders = set()
    for task in tasks:
        folder = zero_shot.task_folder(out, task)
        assert folder is not None and folder.name == suite_data.FOLDERS[task]
        items = zero_shot.load_task(task, folder)
        assert dict(Counter(item.uid for item in items)) == EXPECTED_UIDS[task], task
        assert all(len(item.candidates) >= 2 for item in items)
        read_folders.add(folder.name)
    assert set(written) == set(suite_data.FOLDERS.values())
    assert read_folders == {suite_data.FOLDERS[t] for t in tasks}


def test_blimp_lines_have_blimps_fields(suite):
    out, _, _ = suite
    row = json.loads((out / "blimp_filtered" / f"{PARADIGMS[0]}.jsonl").read_text().splitlines()[0])
    assert set(row) == {"sentence_good", "sentence_bad", "field", "linguistics_term", "UID", "simple_LM_method",
                        "one_prefix_method", "two_prefix_method", "lexically_identical", "pair_id"}
    assert row["UID"] == PARADIGMS[0] and row["pair_id"] == 0
    for path in (out / "supplement_filtered").glob("*.jsonl"):  # no `field`: the UID is the file's name
        assert all(set(json.loads(line)) == {"sentence_good", "sentence_bad"} for line in path.read_text().splitlines())


def test_ewok_files_hold_every_item_and_its_swap(suite):
    out, _, _ = suite
    for path in (out / "ewok_filtered").glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) % 2 == 0 and all(r["Domain"] == path.stem for r in rows)
        for first, second in zip(rows[0::2], rows[1::2]):
            assert (second["Context1"], second["Context2"]) == (first["Context2"], first["Context1"])
            assert (second["Target1"], second["Target2"]) == (first["Target2"], first["Target1"])
            assert first["Context1"] != first["Context2"] and first["Target1"] != first["Target2"]
        keys = [(r["Context1"], r["Target1"], r["Target2"]) for r in rows]
        assert len(set(keys)) == len(keys)


def test_entity_tracking_follows_the_official_option_rules(suite):
    out, _, _ = suite
    for split in ("regular", "ambiref"):
        rows = [json.loads(line) for line in (out / "entity_tracking" / f"{split}.jsonl").read_text().splitlines()]
        assert [r["numops"] for r in rows] == sorted(r["numops"] for r in rows)
        for r in rows:
            assert set(r) == {"sample_id", "numops", "input_prefix", "options", "example_id"}
            assert r["input_prefix"].endswith(" ") and r["input_prefix"].count(". ") >= r["numops"] + 1
            assert len(r["options"]) == 5 == len(set(r["options"]))
            assert "nothing." not in r["options"][1:] and all(o.endswith(".") and not o.startswith(" ") for o in r["options"])


def test_wug_lines_and_determinism(suite, tmp_path):
    out, pairs, _ = suite
    for folder, stem in (("wug_adj_nominalization", "wug_adj_nominalization"), ("wug_past_tense", "wug_past_tense")):
        rows = [json.loads(line) for line in (out / folder / f"{stem}.jsonl").read_text().splitlines()]
        assert all(set(r) == {"sentences", "ratio"} and len(r["sentences"].split("\t")) == 2 for r in rows)
        assert all(isinstance(r["ratio"], float) and 0 <= r["ratio"] <= 1 for r in rows)
    adj = json.loads((out / "wug_adj_nominalization" / "wug_adj_nominalization.jsonl").read_text().splitlines()[0])
    ity, ness = adj["sentences"].split("\t")
    assert "ity of" in ity and "ness of" in ness
    again = tmp_path / "again"
    suite_data.write_suite(again, pairs, per_uid=PER_UID, seed=3)
    files = sorted(p.relative_to(out) for p in out.rglob("*.jsonl"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.jsonl"))
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_command_line_writes_the_folder(tmp_path, suite, capsys):
    _, pairs, _ = suite
    assert suite_data.main(["--out", str(tmp_path / "cli"), "--items-per-uid", "2", "--pairs", str(pairs)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"]["comps"] == {"comps_base.jsonl": 2, "comps_wugs.jsonl": 2}
    assert summary["files"]["ewok_filtered"]["agent-properties.jsonl"] == 2
