"""Checkpoints as revisions, offline: a run's chck_<N>M exports and its final model laid out as a
Hugging Face cache entry, loaded by transformers with `from_pretrained(name, revision=...)`.

A tiny model is trained on the built-in corpus to 2M words (four epochs of its ~0.5M words) with
checkpoints at 1M and 2M, so the revisions carry the challenge's own names. `python -m
trainer.export ... --hub-cache` writes the final model and the cache entry; one subprocess that
cannot import our package loads every revision by name with HF_HUB_OFFLINE=1, as the BabyLM pipeline
does, and this process compares its logits with the trainer's network loaded from the same folder.
Nothing here contacts the Hub: the push is tested only for its refusal and against a fake HfApi.
"""

import contextlib
import io
import json
import os
import time
from pathlib import Path

import pytest
from conftest import run_without_project
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")
import huggingface_hub  # noqa: E402
from huggingface_hub import scan_cache_dir  # noqa: E402

from trainer import hub  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data.sources import resolve_data  # noqa: E402
from trainer.data.tokenizer import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, load_tokenizer  # noqa: E402
from trainer.evaluate import eval_time  # noqa: E402
from trainer.export import MODEL_TYPE, load_network, main as export_main  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.loop import train_loop  # noqa: E402

pytestmark = pytest.mark.slow

REPO = "babylm-test/mdlm-tiny"
REVISIONS = ["chck_1M", "chck_2M", "main"]
TOLERANCE = 1e-4
# About the smallest network the trainer builds: 2M words (~3.4M tokens) train in ~15-30 s on one thread.
TINY_MODEL = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "cond_dim": 8, "time_embedding_dim": 8}
SENTENCES = ["The cat sat on the mat.", "Children like to play outside in the park.", "She gave him the book yesterday."]

LOADER = r'''
import json, sys
import torch
from huggingface_hub import constants
from transformers import AutoModelForMaskedLM, AutoProcessor, AutoTokenizer

torch.set_num_threads(1)
spec = json.load(open(sys.argv[1]))
assert constants.HF_HUB_OFFLINE, "HF_HUB_OFFLINE is not on in the loader"
results = {"revisions": {}}
for rev in spec["revisions"]:
    # The pipeline's calls: the model and its processor (tokenizer), by name and revision.
    kwargs = dict(revision=rev, cache_dir=spec["cache"])
    model = AutoModelForMaskedLM.from_pretrained(spec["repo"], trust_remote_code=True, **kwargs)
    processor = AutoProcessor.from_pretrained(spec["repo"], trust_remote_code=True, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(spec["repo"], **kwargs)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(spec["input_ids"]), attention_mask=torch.tensor(spec["attention_mask"]))["logits"]
        encoded = processor(spec["texts"], return_tensors="pt", padding=True)
        tokenizer_logits = model(**encoded)["logits"]
    results["revisions"][rev] = {
        "commit": model.config._commit_hash,
        "module": type(model).__module__,
        "logits": logits,
        "tokenizer_ids": encoded["input_ids"],
        "tokenizer_logits": tokenizer_logits,
        "same_tokenizer_ids": tokenizer(spec["texts"], padding=True)["input_ids"] == encoded["input_ids"].tolist(),
    }
try:
    AutoModelForMaskedLM.from_pretrained(spec["repo"], revision=spec["bad_revision"], trust_remote_code=True, cache_dir=spec["cache"])
except Exception as exc:
    results["bad_revision"] = f"{type(exc).__name__}: {exc}"
else:
    results["bad_revision"] = None
torch.save(results, spec["out"])
'''


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here may reach the Hub: offline mode on, and no token to find."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def tiny_config() -> TrainConfig:
    return TrainConfig.parse(dict(
        model=TINY_MODEL, vocab_size=1024, seq_length=32, batch_size=1024, micro_batch_size=1024,
        max_words=2_000_000, checkpoint_words=[1_000_000, 2_000_000], eval_every=100_000, checkpoint_every=100_000,
        val_rows=16, eval_pairs_per_paradigm=None, precision="fp32", lr=3e-3, warmup_proportion=0.0,
    ))


@pytest.fixture(scope="module")
def run(cache_dir, tmp_path_factory):
    """The tiny run, its final model exported by the CLI with --hub-cache, and the cache entry."""
    root = tmp_path_factory.mktemp("hub_revisions")
    config = tiny_config()
    data = resolve_data(config, cache_dir, show_progress=False)
    start = time.perf_counter()
    train_loop(config, data.data_root, root / "train", show_progress=False)
    print(f"\ntraining to 2M words: {time.perf_counter() - start:.1f} s")
    hub_cache = root / "hf_cache"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = export_main([str(root / "train"), str(root / "model"), "--hub-cache", REPO, "--hub-cache-dir", str(hub_cache)])
    assert code == 0, out.getvalue()
    return {"root": root, "config": config, "data": data, "hub_cache": hub_cache, "stdout": out.getvalue(),
            "entry": hub_cache / "models--babylm-test--mdlm-tiny"}


def folder_of(run, rev: str) -> Path:
    return run["root"] / ("model" if rev == "main" else f"train/{rev}")


def our_model(folder: Path, config: TrainConfig):
    """The trainer's network with the weights of an exported folder."""
    return load_network(folder, config.model)


def trainer_logits(model, noisy, ids, masked, config):
    """The trainer's evaluation forward (time from `eval_time`, SUBS logits), as in test_hf_export."""
    maskable = (ids >= NUM_SPECIAL_TOKENS) | masked
    fraction = masked.sum(1).float() / maskable.sum(1).clamp_min(1).float()
    time_input, condition = eval_time(fraction, config.eval_time_conditioning, config.eval_fixed_rate)
    with torch.no_grad():
        return model(noisy, noisy != PAD_ID, time_input, condition=condition)


@pytest.fixture(scope="module")
def loaded(run):
    """Every revision loaded by name, offline, in a process that cannot import our package."""
    root = run["root"]
    tokenizer = load_tokenizer(run["data"].prepared.tokenizer_path)
    encoded = [[BOS_ID] + tokenizer.encode(s).ids for s in SENTENCES]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), PAD_ID)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)] = torch.tensor(seq)
    generator = torch.Generator().manual_seed(0)
    masked = (torch.rand(ids.shape, generator=generator) < torch.tensor([0.0, 0.3, 0.6])[:, None]) & (ids >= NUM_SPECIAL_TOKENS)
    noisy = ids.masked_fill(masked, MASK_ID)
    spec = {
        "repo": REPO, "cache": str(run["hub_cache"]), "revisions": REVISIONS, "bad_revision": "chck_99M",
        "input_ids": noisy.tolist(), "attention_mask": (noisy != PAD_ID).long().tolist(),
        "texts": SENTENCES, "out": str(root / "loaded.pt"),
    }
    seconds, stderr = run_without_project(LOADER, spec, root, HF_HUB_CACHE=str(run["hub_cache"]))
    print(f"\nloader subprocess: {seconds:.1f} s")
    return {"results": torch.load(root / "loaded.pt", weights_only=False), "noisy": noisy, "ids": ids, "masked": masked}


# --------------------------------------------------------------------------------------
# The run and its cache entry
# --------------------------------------------------------------------------------------


def test_run_has_the_challenges_names_and_the_cli_says_how_to_evaluate(run):
    assert sorted(p.name for p in (run["root"] / "train").glob("chck_*")) == ["chck_1M", "chck_2M"]
    saved = [json.loads(line) for line in (run["root"] / "train" / "word_checkpoints.jsonl").read_text().splitlines()]
    assert [s["name"] for s in saved] == ["chck_1M", "chck_2M"]
    assert [s["words_seen"] >= s["checkpoint_words"] for s in saved] == [True, True]
    stdout = run["stdout"]
    assert f"hub cache entry: {run['entry']}" in stdout
    for rev in REVISIONS:
        assert (f"HF_HUB_CACHE={run['hub_cache']} HF_HUB_OFFLINE=1 python -m evaluation_pipeline.sentence_zero_shot.run "
                f"--model_path_or_name {REPO} --revision_name {rev} --backend mlm") in stdout


def test_cache_entry_layout(run):
    entry = run["entry"]
    assert sorted(p.name for p in entry.iterdir()) == ["blobs", "refs", "snapshots"]
    refs = {p.name: p.read_text() for p in (entry / "refs").iterdir()}
    assert sorted(refs) == sorted(REVISIONS)
    # One snapshot per revision, named by a 40-hex commit, each holding its folder byte for byte.
    assert all(len(c) == 40 and all(ch in "0123456789abcdef" for ch in c) for c in refs.values())
    assert len(set(refs.values())) == len(REVISIONS)
    assert sorted(p.name for p in (entry / "snapshots").iterdir()) == sorted(refs.values())
    for rev, commit in refs.items():
        snapshot = entry / "snapshots" / commit
        source = folder_of(run, rev)
        assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in source.iterdir())
        for file in snapshot.iterdir():
            assert file.is_symlink() and not os.path.isabs(os.readlink(file))
            target = file.resolve()
            assert target.parent == (entry / "blobs").resolve()
            assert target.name == hub.blob_id(source / file.name)
            assert file.read_bytes() == (source / file.name).read_bytes()
    # Blobs are named as the Hub's etags: sha256 for the weights (LFS), the git blob sha1 otherwise.
    snapshot = entry / "snapshots" / refs["main"]
    assert len(os.readlink(snapshot / "model.safetensors").rsplit("/", 1)[1]) == 64
    assert len(os.readlink(snapshot / "config.json").rsplit("/", 1)[1]) == 40
    # Files the revisions share (code, tokenizer) are stored once.
    assert len(list((entry / "blobs").iterdir())) < sum(len(list(folder_of(run, r).iterdir())) for r in REVISIONS)
    # huggingface_hub's own reader agrees: no warnings, the refs on the right commits.
    info = scan_cache_dir(run["hub_cache"])
    assert not info.warnings, info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.repo_type == "model"
    assert {ref: rev.commit_hash for rev in repo.revisions for ref in rev.refs} == refs


def test_huggingface_hub_resolves_each_revision_offline(run):
    """hf_hub_download by name and revision returns the revision's file, with no network."""
    for rev in REVISIONS:
        path = huggingface_hub.hf_hub_download(REPO, "config.json", revision=rev, cache_dir=run["hub_cache"])
        assert Path(path).read_bytes() == (folder_of(run, rev) / "config.json").read_bytes()
    with pytest.raises(huggingface_hub.errors.LocalEntryNotFoundError):
        huggingface_hub.hf_hub_download(REPO, "config.json", revision="chck_99M", cache_dir=run["hub_cache"])


# --------------------------------------------------------------------------------------
# transformers loads every revision, and it computes what the trainer computes
# --------------------------------------------------------------------------------------


def test_every_revision_loads_by_name_and_matches_the_trainer(run, loaded):
    refs = {p.name: p.read_text() for p in (run["entry"] / "refs").iterdir()}
    real = slice(NUM_SPECIAL_TOKENS, None)
    logits_by_rev = {}
    for rev in REVISIONS:
        result = loaded["results"]["revisions"][rev]
        # Each revision resolved to its own snapshot, and its code was imported from that commit.
        assert result["commit"] == refs[rev]
        assert f".{refs[rev]}." in result["module"], result["module"]
        model = our_model(folder_of(run, rev), run["config"])
        ours = trainer_logits(model, loaded["noisy"], loaded["ids"], loaded["masked"], run["config"])
        diff = (ours[..., real] - result["logits"][..., real]).abs().max().item()
        tok_ids = result["tokenizer_ids"]
        assert result["same_tokenizer_ids"]
        assert (tok_ids[:, 0] == BOS_ID).all()
        ours_tok = trainer_logits(model, tok_ids, tok_ids, tok_ids == MASK_ID, run["config"])
        diff_tok = (ours_tok[..., real] - result["tokenizer_logits"][..., real]).abs().max().item()
        print(f"\n{rev}: commit {refs[rev][:12]}, max |logits diff| {diff:.2e} (tokenizer batch {diff_tok:.2e})")
        assert max(diff, diff_tok) < TOLERANCE
        logits_by_rev[rev] = result["logits"][..., real]
    # The checkpoints are different models (the check would be vacuous if every revision were main).
    assert (logits_by_rev["chck_1M"] - logits_by_rev["chck_2M"]).abs().max().item() > 100 * TOLERANCE
    # main is the final model: the run's last EMA weights, which chck_2M also saved (at the same step).
    final = load_checkpoint(run["root"] / "train")
    assert torch.equal(logits_by_rev["main"], logits_by_rev["chck_2M"])
    state = our_model(run["root"] / "model", run["config"]).state_dict()
    assert all(torch.equal(state[k], v) for k, v in final["ema"].items())


def test_a_missing_revision_fails(loaded):
    """A revision the entry lacks is not found (offline: no silent fallback to main)."""
    error = loaded["results"]["bad_revision"]
    assert error is not None and error.startswith("OSError") and "cached files" in error, error


# --------------------------------------------------------------------------------------
# write_hub_cache on its own (no training)
# --------------------------------------------------------------------------------------


def fake_export(folder: Path, weights: bytes = b"w", model_type: str = MODEL_TYPE) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "modeling_mdlm.py").write_text("# shared code\n")
    return folder


def test_commits_are_deterministic_and_follow_content(tmp_path):
    a = fake_export(tmp_path / "a", b"one")
    b = fake_export(tmp_path / "b", b"two")
    cache = tmp_path / "cache"
    entry = hub.write_hub_cache(REPO, {"chck_1M": a, "main": b}, cache)
    first = {p.name: p.read_text() for p in (entry / "refs").iterdir()}
    assert first["chck_1M"] != first["main"]
    # Rewritten from the same folders: the same commits; the entry is replaced whole (a stale ref goes).
    entry = hub.write_hub_cache(REPO, {"chck_1M": a, "main": b}, cache)
    assert {p.name: p.read_text() for p in (entry / "refs").iterdir()} == first
    (b / "modeling_mdlm.py").write_text("# changed code\n")
    entry = hub.write_hub_cache(REPO, {"main": b}, cache)
    refs = {p.name: p.read_text() for p in (entry / "refs").iterdir()}
    assert list(refs) == ["main"] and refs["main"] != first["main"]
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temporary folders left behind


@pytest.mark.parametrize("repo_id", ["noorg", "a/b/c", "org/-name", "org/na--me", "org/name.v2", "org/", "or g/name", "org/name.git"])
def test_bad_repository_names_are_refused(tmp_path, repo_id):
    with pytest.raises(hub.HubError) as caught:
        hub.write_hub_cache(repo_id, {"main": fake_export(tmp_path / "m")}, tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "cache").exists()


def test_refusals_write_nothing(tmp_path):
    cache = tmp_path / "cache"
    model = fake_export(tmp_path / "m")
    with pytest.raises(hub.HubError, match="not a model folder"):
        hub.write_hub_cache(REPO, {"main": model, "chck_1M": tmp_path / "missing"}, cache)
    with pytest.raises(hub.HubError, match="revision name"):
        hub.write_hub_cache(REPO, {"a/b": model}, cache)
    with pytest.raises(hub.HubError, match="revision name"):
        hub.write_hub_cache(REPO, {"0" * 40: model}, cache)
    assert not cache.exists()
    # Another model's cache entry under the same name (a download of some BERT) is not replaced.
    (cache / "models--babylm-test--mdlm-tiny" / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (cache / "models--babylm-test--mdlm-tiny" / "snapshots" / ("a" * 40) / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(hub.HubError, match="another model"):
        hub.write_hub_cache(REPO, {"main": model}, cache)
    assert (cache / "models--babylm-test--mdlm-tiny" / "snapshots" / ("a" * 40) / "config.json").is_file()


def test_default_cache_follows_huggingface_rules(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert hub.default_hub_cache() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.default_hub_cache() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.default_hub_cache() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hubcache"))
    assert hub.default_hub_cache() == tmp_path / "hubcache"


def test_checkpoint_revisions_sort_by_words(tmp_path):
    for name in ("chck_10M", "chck_2M", "chck_500K", "chck_1M"):
        fake_export(tmp_path / name)
    (tmp_path / "chck_3M").mkdir()  # not an export (no config.json)
    revisions = hub.find_revisions(tmp_path, fake_export(tmp_path / "model"))
    assert list(revisions) == ["chck_500K", "chck_1M", "chck_2M", "chck_10M", "main"]


# --------------------------------------------------------------------------------------
# --push-to-hub: refused without a login, never contacting the Hub
# --------------------------------------------------------------------------------------


class NoNetwork:
    def __init__(self, *args, **kwargs):
        raise AssertionError("HfApi was constructed: the test would contact the Hub")


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_push_without_login_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.setattr(huggingface_hub, "HfApi", NoNetwork)
    model = fake_export(tmp_path / "m")
    with pytest.raises(hub.HubError, match="login"):
        hub.push_to_hub(REPO, {"main": model})
    # The export CLI checks before reading the checkpoint: no output folder appears.
    out = tmp_path / "out"
    assert export_main([str(tmp_path / "no_run"), str(out), "--push-to-hub", REPO]) == 2
    assert "huggingface-cli login" in one_error_line(capsys)
    assert not out.exists()
    # final.py refuses before reading the sweep or training.
    from sweeps.final import main as final_main

    assert final_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "final"), "--push-to-hub", REPO]) == 2
    assert "login" in one_error_line(capsys)
    assert not (tmp_path / "final").exists()
    assert hub.main([str(tmp_path), "--push-to-hub", REPO]) == 2
    assert "login" in one_error_line(capsys)
    # A bad name is refused the same way, for either flag.
    assert export_main([str(tmp_path / "no_run"), str(out), "--hub-cache", "not a repo"]) == 2
    assert "not a Hub repository name" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_push_uploads_main_then_one_branch_per_checkpoint(tmp_path, monkeypatch):
    """Against a recording stand-in for HfApi (no network): the calls and their order."""
    calls = []

    class Recorder:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))
            return f"https://huggingface.co/{repo_id}"

        def create_branch(self, repo_id, branch, **kwargs):
            calls.append(("create_branch", branch))

        def upload_folder(self, repo_id, folder_path, revision, **kwargs):
            calls.append(("upload_folder", revision, Path(folder_path).name, kwargs.get("delete_patterns")))

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_fake")
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    revisions = {"chck_2M": fake_export(tmp_path / "chck_2M"), "chck_1M": fake_export(tmp_path / "chck_1M"),
                 "main": fake_export(tmp_path / "model")}
    assert hub.push_to_hub(REPO, revisions) == f"https://huggingface.co/{REPO}"
    assert calls == [
        ("init", "hf_fake"), ("create_repo", REPO),
        ("upload_folder", "main", "model", "*"),
        ("create_branch", "chck_1M"), ("upload_folder", "chck_1M", "chck_1M", "*"),
        ("create_branch", "chck_2M"), ("upload_folder", "chck_2M", "chck_2M", "*"),
    ]
    # Offline mode refuses the push before constructing the client.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    calls.clear()
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE"):
        hub.push_to_hub(REPO, revisions)
    assert calls == []
