"""Every user mistake gets one line that names it, exit status 2, no traceback, within
seconds, before any cluster work, and nothing written into an existing experiment or
output folder. One table covers the CLI, search spaces, corpora, pairs, Arrow caches,
checkpoints, configs, storage and the cluster."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import SMALL_MODEL, write_toy_corpus

pytestmark = pytest.mark.slow

FAST_SWEEP = ["--num-samples", "1", "--max-steps", "4", "--wandb-mode", "disabled"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the cases point at: a toy corpus with its prepared cache, a checkpoint, an
    existing sweep folder, broken inputs of every kind."""
    from trainer.config import TrainConfig
    from trainer.data.prepare import prepare_corpus
    from trainer.loop import train_loop

    root = tmp_path_factory.mktemp("bad")
    w = {"root": root}
    w["corpus"] = write_toy_corpus(root / "corpus", train_lines=300, dev_lines=40)
    w["cache"] = root / "cache"
    prepared = prepare_corpus(w["corpus"], w["cache"] / "prepared", vocab_size=300, seq_length=32, show_progress=False)
    for name, damage in (("truncated", "truncate"), ("corrupted", "flip")):
        cache = root / f"cache_{name}"
        shutil.copytree(w["cache"], cache)
        shard = cache / "prepared" / prepared.root.name / "train.arrow"
        data = bytearray(shard.read_bytes())
        if damage == "truncate":
            shard.write_bytes(bytes(data[: len(data) // 2]))
        else:  # same size, different bytes: only the hash check can see it
            middle = len(data) // 2
            data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
            shard.write_bytes(bytes(data))
        w[f"cache_{name}"] = cache
    # A checkpoint written by a different model size than the tiny preset.
    config = TrainConfig.parse(dict(model=SMALL_MODEL, vocab_size=300, seq_length=32, batch_size=8, micro_batch_size=8,
                                    max_steps=1, eval_every=1, checkpoint_every=1, val_rows=8))
    train_loop(config, prepared.root, root / "small_run", show_progress=False)
    w["checkpoint"] = next((root / "small_run" / "checkpoints").glob("step_*"))
    (root / "garbage_ckpt").mkdir()
    (root / "garbage_ckpt" / "state.pt").write_bytes(b"not a torch file")
    # Corpus folders.
    (root / "empty_corpus").mkdir()
    (root / "binary_corpus").mkdir()
    (root / "binary_corpus" / "a.train").write_bytes(b"good text\n\xff\xfe bad bytes\n")
    (root / "binary_corpus" / "a.dev").write_text("dev text\n")
    # Pair folders.
    for name, text in (("pairs_malformed", '{"sentence_good": "A cat runs.", "sentence_bad": "A cat run."}\n{oops\n'),
                       ("pairs_missing", '{"sentence_good": "A cat runs."}\n')):
        (root / name).mkdir()
        (root / name / "x.jsonl").write_text(text)
    # Search-space files.
    spaces = {
        "space_unknown_field.yaml": "search:\n  learning_rate_typo: {type: float, low: 0.1, high: 1.0}\n",
        "space_bad_yaml.yaml": "search: [unclosed\n",
        "space_empty_range.yaml": "search:\n  derivative_power: {type: float, low: 1.0, high: 0.5}\n",
        "space_out_of_config_range.yaml": "search:\n  derivative_power: {type: float, low: 0.0, high: 5.0}\n",
    }
    for name, text in spaces.items():
        (root / name).write_text(text)
        w[name] = root / name
    # Configs.
    (root / "bad.json").write_text("{not json")
    # An existing sweep folder that no failing command may touch.
    storage = root / "sweeps"
    (storage / "existing").mkdir(parents=True)
    (storage / "existing" / "sweep.json").write_text(json.dumps({"name": "existing"}))
    (storage / "existing" / "leaderboard.csv").write_text("rank,trial_id\n")
    w["storage"] = storage
    (root / "a_file").write_text("")
    (root / "not_a_sweep").mkdir()
    return w


def sweep(w, *extra, name="new"):
    return ("run", ["--storage", str(w["storage"]), "--name", name, "--cache-dir", str(w["cache"]), *FAST_SWEEP, *extra])


def train(w, *extra, cache=None):
    return ("train", ["--out", str(w["root"] / "train_out"), "--cache-dir", str(cache or w["cache"]),
                      "--corpus", str(w["corpus"]), "--set", "vocab_size=300", "--set", "seq_length=32",
                      "--max-steps", "2", "--no-progress", *extra])


# (case id, builder of (entry point, argv), what the one line must say)
CASES = [
    # CLI flags
    ("cli_zero_trials", lambda w: sweep(w, "--num-samples", "0"), "--num-samples must be at least 1"),
    ("cli_unknown_search", lambda w: sweep(w, "--search", "bayes"), "invalid choice: 'bayes'"),
    ("cli_unknown_metric", lambda w: sweep(w, "--metric", "accuracy"), "is not reported by trials"),
    ("cli_heldout_metric", lambda w: sweep(w, "--metric", "pairs_acc_heldout"), "never selected on"),
    ("cli_bad_objectives", lambda w: sweep(w, "--metric", "pairs_acc:up,val_nelbo:min"), "write name:max or name:min"),
    ("cli_resume_missing", lambda w: sweep(w, "--resume", name="nothing_here"), "--resume: no sweep at"),
    ("cli_name_exists", lambda w: sweep(w, name="existing"), "already exists: pass --resume"),
    ("cli_resume_older_sweep", lambda w: sweep(w, "--resume", name="existing"), "has spec version 1, this code reads 2"),
    ("export_older_sweep", lambda w: ("export", [str(w["storage"] / "existing")]), "has spec version 1"),
    ("cli_negative_workers", lambda w: train(w, "--workers", "0"), "--workers must be at least 1"),
    ("cli_confirm_one", lambda w: sweep(w, "--confirm", "1"), "--confirm needs at least 2"),
    # Search-space files
    ("space_unknown_builtin", lambda w: sweep(w, "--space", "no_such_space"), "unknown search space 'no_such_space'"),
    ("space_unknown_field", lambda w: sweep(w, "--space", str(w["space_unknown_field.yaml"])), "unknown config field 'learning_rate_typo'"),
    ("space_bad_yaml", lambda w: sweep(w, "--space", str(w["space_bad_yaml.yaml"])), "cannot be parsed"),
    ("space_empty_range", lambda w: sweep(w, "--space", str(w["space_empty_range.yaml"])), "has an empty range"),
    ("space_out_of_config_range", lambda w: sweep(w, "--space", str(w["space_out_of_config_range.yaml"])), "not a valid config value"),
    # Corpus folders
    ("corpus_missing", lambda w: sweep(w, "--corpus", str(w["root"] / "nope")), "does not exist"),
    ("corpus_empty", lambda w: train(w, "--corpus", str(w["root"] / "empty_corpus")), "empty_corpus"),
    ("corpus_undecodable", lambda w: sweep(w, "--corpus", str(w["root"] / "binary_corpus")), "UTF-8"),
    # Pair files
    ("pairs_malformed_line", lambda w: sweep(w, "--corpus", str(w["corpus"]), "--pairs", str(w["root"] / "pairs_malformed")), "x.jsonl:2 is not a JSON object"),
    ("pairs_missing_field", lambda w: train(w, "--pairs", str(w["root"] / "pairs_missing")), "needs non-empty string fields"),
    # Arrow caches
    ("cache_truncated_shard", lambda w: train(w, cache=w["cache_truncated"]), "truncated or corrupted"),
    ("cache_corrupted_shard", lambda w: train(w, cache=w["cache_corrupted"]), "does not match its recorded sha256"),
    # Checkpoints
    ("checkpoint_other_config", lambda w: train(w, "--resume", str(w["checkpoint"])), "was written by another config: model differs"),
    ("checkpoint_unreadable", lambda w: train(w, "--resume", str(w["root"] / "garbage_ckpt")), "is unreadable"),
    ("checkpoint_missing", lambda w: train(w, "--resume", str(w["root"] / "no_ckpt")), "no checkpoint at"),
    # Configs
    ("config_out_of_range", lambda w: train(w, "--set", "lr=5"), "'lr' = 5 is out of range: must be > 0.0 and <= 1.0"),
    ("config_unknown_field", lambda w: sweep(w, "--set", "learning_rate=0.1"), "unknown config field 'learning_rate'"),
    ("config_bad_json", lambda w: train(w, "--config", str(w["root"] / "bad.json")), "is not valid JSON"),
    ("config_bad_batch", lambda w: train(w, "--set", "batch_size=30", "--set", "micro_batch_size=8"), "must be a multiple of micro_batch_size"),
    ("budget_over_ten_epochs", lambda w: train(w, "--max-words", "10M"), "over max_epochs 10"),
    # Storage
    ("storage_not_writable", lambda w: ("run", ["--storage", str(w["root"] / "a_file" / "sub"), *FAST_SWEEP]), "--storage"),
    # /proc passes os.access(W_OK) for root: only a probe file tells.
    ("storage_probe_fails", lambda w: ("run", ["--storage", "/proc/mdlm-sweeps", *FAST_SWEEP]), "--storage /proc/mdlm-sweeps"),
    ("dryrun_storage_probe_fails", lambda w: ("run", ["--storage", "/proc/mdlm-sweeps", "--dry-run", *FAST_SWEEP]), "--storage"),
    ("cache_is_a_file", lambda w: sweep(w, "--cache-dir", str(w["root"] / "a_file")), "--cache-dir"),
    ("dryrun_cache_is_a_file", lambda w: sweep(w, "--dry-run", "--cache-dir", str(w["root"] / "a_file")), "--cache-dir"),
    ("dryrun_corpus_missing", lambda w: sweep(w, "--dry-run", "--corpus", str(w["root"] / "nope")), "--corpus: corpus folder"),
    ("dryrun_corpus_is_a_file", lambda w: sweep(w, "--dry-run", "--corpus", str(w["root"] / "a_file")), "is not a folder"),
    ("dryrun_corpus_empty", lambda w: sweep(w, "--dry-run", "--corpus", str(w["root"] / "empty_corpus")), "no corpus files"),
    ("grid_too_large", lambda w: sweep(w, "--search", "grid", "--space", "full"), "630,600 trials"),
    ("dryrun_grid_too_large", lambda w: sweep(w, "--dry-run", "--search", "grid", "--space", "full"), "--allow-large-grid"),
    ("export_not_a_sweep", lambda w: ("export", [str(w["root"] / "not_a_sweep")]), "is not a sweep folder"),
    ("final_without_best_config", lambda w: ("final", [str(w["storage"] / "existing")]), "has no best_config.json"),
    # Cluster
    ("cluster_unreachable", lambda w: sweep(w, "--address", "127.0.0.1:9"), "cannot reach the Ray cluster at 127.0.0.1:9"),
    ("cluster_has_no_gpus", lambda w: sweep(w, "--gpus-per-worker", "1"), "but the cluster has 0"),
    ("dryrun_has_no_gpus", lambda w: sweep(w, "--dry-run", "--gpus-per-worker", "1"), "but the cluster has 0"),
    ("dryrun_undecodable_corpus", lambda w: sweep(w, "--dry-run", "--corpus", str(w["root"] / "binary_corpus")), "UTF-8"),
]


def entry_point(name):
    if name == "run":
        from sweeps.run import main
    elif name == "train":
        from trainer.train import main
    elif name == "export":
        from sweeps.export import main
    else:
        from sweeps.final import main
    return main


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("case, build, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(case, build, expected, world, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    program, argv = build(world)
    before = snapshot(world["storage"])
    started = time.perf_counter()
    try:
        code = entry_point(program)(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    elapsed = time.perf_counter() - started
    os.environ.pop("RAY_ADDRESS", None)  # --address sets it for the process
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(error_lines) == 1 and expected in error_lines[0], err
    assert "Traceback" not in err
    # Refused at once, not after waiting for resources (bounds generous for a loaded 2-core
    # machine; the GPU case starts a local Ray to read its resources).
    assert elapsed < (180 if case == "cluster_has_no_gpus" else 120), elapsed
    assert snapshot(world["storage"]) == before, "a failing command wrote into the sweep storage"
    assert not (world["root"] / "train_out").exists(), "a failing training run created its output folder"


def test_table_is_big_enough():
    assert len(CASES) >= 20 and len({c[0].split("_")[0] for c in CASES}) >= 8


def test_a_run_refused_for_gpus_prepares_no_data_and_starts_no_ray(world, tmp_path, capsys, monkeypatch):
    """The refusal comes before the (possibly hour-long) data preparation and before Ray."""
    from sweeps.run import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cache = tmp_path / "fresh_cache"
    code = main(["--storage", str(tmp_path / "store"), "--cache-dir", str(cache), "--corpus", str(world["corpus"]),
                 "--gpus-per-worker", "1", *FAST_SWEEP])
    assert code == 2 and "but the cluster has 0" in capsys.readouterr().err
    assert not cache.exists(), "the data was prepared before the refusal"
    assert not (tmp_path / "store").exists()
    import ray

    assert not ray.is_initialized()


def test_resume_of_a_finished_sweep_says_so_and_writes_nothing(tmp_path, capsys):
    from sweeps.run import main

    folder = tmp_path / "store" / "done"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text("{}")  # never read: the sweep is finished
    (folder / "finished.json").write_text(json.dumps({"finished": "2026-12-01T10:00:00", "report": "r/index.html"}))
    before = snapshot(tmp_path)
    assert main(["--resume", "--storage", str(tmp_path / "store"), "--name", "done"]) == 0
    out = capsys.readouterr().out
    assert "finished at 2026-12-01T10:00:00: nothing to resume" in out and "r/index.html" in out
    assert snapshot(tmp_path) == before
