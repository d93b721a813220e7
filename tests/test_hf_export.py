"""Export to a Hugging Face folder: it loads with transformers alone and scores like the trainer.

A tiny model is trained for a few steps on the built-in corpus and exported once per evaluation
time-conditioning policy. One subprocess, in which our package cannot be imported, loads every
folder the way the BabyLM pipeline does and writes logits, hidden states and pipeline-style
pseudo-log-likelihoods; this process compares them with the trainer's own model and `score_pairs`.
The network in the folder is `trainer/model.py` itself (`mdlm_model.py`, byte for byte).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_without_project
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

from trainer.config import TrainConfig
from trainer.data.pairs import limit_per_paradigm, load_pairs
from trainer.data.sources import resolve_data
from trainer.data.tokenizer import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, load_tokenizer
from trainer.evaluate import eval_time, pseudo_log_likelihoods, score_pairs
from trainer.export import ExportError, export_model, main as export_main
import trainer.model as trainer_model
from trainer.checkpoint import load_checkpoint
from trainer.loop import train_loop
from trainer.model import build_model

pytestmark = pytest.mark.slow

POLICIES = ("mask_fraction", "fixed", "off")
FIXED_RATE = 0.3
PAIRS_PER_PARADIGM = 4
TOLERANCE = 1e-4  # fp32: the same operations in the same order; observed differences are ~1e-6

# Run in a fresh interpreter from a temporary folder: blocks our packages, then loads every
# exported folder exactly as the pipeline does and saves what it computed.
LOADER = r'''
import json, os, sys

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoProcessor, AutoTokenizer
from transformers.dynamic_module_utils import HF_MODULES_CACHE, TRANSFORMERS_DYNAMIC_MODULE_NAME, check_imports

torch.set_num_threads(1)
spec = json.load(open(sys.argv[1]))


def pipeline_pll(model, tokenizer, sentences, chunk=64):
    """The pipeline's mlm backend: one copy per token overlapping the sentence's characters with
    that token masked, log-softmax(logits / 1.0) there, summed; copies padded and run in chunks."""
    copies = []
    for s, text in enumerate(sentences):
        enc = tokenizer(text, return_offsets_mapping=True)
        for j, (start, end) in enumerate(enc["offset_mapping"]):
            if end > start and enc["input_ids"][j] not in tokenizer.all_special_ids:
                copies.append((s, enc["input_ids"], j))
    totals = [0.0] * len(sentences)
    for k in range(0, len(copies), chunk):
        part = copies[k : k + chunk]
        width = max(len(ids) for _, ids, _ in part)
        ids = torch.full((len(part), width), tokenizer.pad_token_id, dtype=torch.long)
        keep = torch.zeros((len(part), width), dtype=torch.long)
        positions, targets = [], []
        for row, (_, seq, j) in enumerate(part):
            ids[row, : len(seq)] = torch.tensor(seq)
            keep[row, : len(seq)] = 1
            positions.append(j)
            targets.append(seq[j])
            ids[row, j] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=keep)["logits"]
        log_probs = torch.log_softmax(logits / 1.0, dim=-1)
        picked = log_probs[torch.arange(len(part)), torch.tensor(positions), torch.tensor(targets)]
        for (s, _, _), value in zip(part, picked.double().tolist()):
            totals[s] += value
    return totals


results = {}
for name, folder in spec["folders"].items():
    # What transformers checks in every code file it loads from the Hub (the local loader checks only
    # the auto_map files): each import must be installed. The project is blocked here, so an import
    # of it fails too (also one inside `if TYPE_CHECKING:`, which transformers' scan does not skip).
    relative_imports = {f: sorted(check_imports(os.path.join(folder, f))) for f in sorted(os.listdir(folder)) if f.endswith(".py")}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    mlm, mlm_info = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
    base, base_info = AutoModel.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
    assert not mlm.training and not base.training
    ids = torch.tensor(spec["input_ids"])
    keep = torch.tensor(spec["attention_mask"])
    with torch.no_grad():
        out = mlm(input_ids=ids, attention_mask=keep)  # zero-shot / AoA call
        by_tokenizer = tokenizer(spec["texts"], return_tensors="pt", padding=True)
        out_tok = mlm(**by_tokenizer)  # reading-task call: the tokenizer's whole output
        hidden = base(input_ids=ids, attention_mask=keep).last_hidden_state  # GLUE's base model
        with_types = mlm(input_ids=ids, attention_mask=keep, token_type_ids=torch.zeros_like(ids))["logits"]
        # Reading task: mask strings appended to the text, logits read at the first of them.
        reading = tokenizer(spec["texts"][1] + tokenizer.mask_token * 3, return_tensors="pt")
        reading_logits = mlm(**reading, return_dict=True).logits
    results[name] = {
        "relative_imports": relative_imports,
        # The files transformers copied into its module cache and imported the classes from.
        "dynamic_files": sorted(os.listdir(os.path.join(HF_MODULES_CACHE, TRANSFORMERS_DYNAMIC_MODULE_NAME, os.path.basename(folder)))),
        "network_modules": [type(mlm.model.network).__module__, type(base.network).__module__],
        "config_class": type(config).__name__,
        "policy": config.eval_time_conditioning,
        "hidden_size": config.hidden_size,
        "processor_class": type(processor).__name__,
        "mlm_loading": {k: list(v) for k, v in mlm_info.items()},
        "base_loading": {k: list(v) for k, v in base_info.items()},
        "logits": out["logits"],
        "logits_by_index": out[0],
        "logits_with_token_types": with_types,
        "hidden": hidden,
        "tokenizer_keys": sorted(by_tokenizer.keys()),
        "tokenizer_ids": by_tokenizer["input_ids"],
        "tokenizer_mask": by_tokenizer["attention_mask"],
        "tokenizer_logits": out_tok["logits"],
        "reading_ids": reading["input_ids"][0].tolist(),
        "reading_logits": reading_logits,
        "plls": pipeline_pll(mlm, tokenizer, spec["sentences"]) if spec.get("score_pairs", {}).get(name) else None,
        "sentence_ids": [tokenizer(s)["input_ids"] for s in spec["sentences"]],
        "mask_alone": tokenizer("<mask>", add_special_tokens=False)["input_ids"],
        "mask_after_word": tokenizer("the cat <mask>")["input_ids"],
        "special_ids": {k: getattr(tokenizer, k) for k in ("mask_token_id", "cls_token_id", "pad_token_id", "bos_token_id")},
        "model_max_length": tokenizer.model_max_length,
    }
torch.save(results, spec["out"])
'''


def small_config(**overrides) -> TrainConfig:
    base = dict(
        preset="tiny",
        vocab_size=1024,
        seq_length=32,
        batch_size=8,
        micro_batch_size=8,
        max_steps=8,
        eval_every=8,
        checkpoint_every=8,
        val_rows=16,
        lr=5e-3,
        warmup_proportion=0.0,
        eval_fixed_rate=FIXED_RATE,
    )
    base.update(overrides)
    return TrainConfig.parse(base)


def with_policy(config: TrainConfig, policy: str) -> TrainConfig:
    return TrainConfig.parse({**config.as_dict(), "eval_time_conditioning": policy})


@pytest.fixture(scope="module")
def run(cache_dir, tmp_path_factory):
    """A tiny model trained briefly on the built-in corpus; its run folder, data and EMA model."""
    root = tmp_path_factory.mktemp("hf_export")
    config = small_config()
    data = resolve_data(config, cache_dir, show_progress=False)
    start = time.perf_counter()
    train_loop(config, data.data_root, root / "run", show_progress=False)
    print(f"\ntraining {config.max_steps} steps: {time.perf_counter() - start:.1f} s")
    checkpoint = load_checkpoint(max((root / "run" / "checkpoints").glob("step_*")))
    model = build_model(config.model, data.prepared.vocab_size)
    model.load_state_dict(checkpoint["ema"])
    return {"root": root, "config": config, "data": data, "ema": checkpoint["ema"], "model": model.eval()}


def test_export_contents_and_safetensors(run, tmp_path):
    from safetensors.torch import load_file

    out = export_model(run["ema"], run["config"], run["data"].prepared.tokenizer_path, tmp_path / "model", {"trial": "t1"})
    names = {p.name for p in out.iterdir()}
    assert names == {
        "config.json", "configuration_mdlm.py", "modeling_mdlm.py", "mdlm_model.py", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md",
    }
    # The network is the trainer's own file, byte for byte.
    assert (out / "mdlm_model.py").read_bytes() == Path(trainer_model.__file__).read_bytes()
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_mdlm.MdlmForMaskedLM"
    assert config["eval_time_conditioning"] == "mask_fraction" and config["eval_fixed_rate"] == FIXED_RATE
    # Self-contained: the shipped code imports nothing from the project.
    for name in ("configuration_mdlm.py", "modeling_mdlm.py", "mdlm_model.py"):
        assert "trainer" not in "".join(l for l in (out / name).read_text().splitlines() if l.lstrip().startswith(("import", "from")))
    weights = load_file(out / "model.safetensors")
    assert "model.network.classifier.decoder.weight" not in weights  # tied: stored once
    assert len(weights) == len(run["ema"]) - 1
    for key, value in run["ema"].items():
        if key != "classifier.decoder.weight":
            assert torch.equal(weights[f"model.network.{key}"], value), key
    card = (out / "README.md").read_text()
    assert '"trial": "t1"' in card and '"eval_time_conditioning": "mask_fraction"' in card
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer_config["model_max_length"] == run["config"].seq_length


@pytest.fixture(scope="module")
def loaded(run):
    """Every exported variant, loaded by transformers in a process that cannot import our package."""
    root, config, data = run["root"], run["config"], run["data"]
    folders = {}
    for policy in POLICIES:
        folders[policy] = export_model(run["ema"], with_policy(config, policy), data.prepared.tokenizer_path, root / f"model_{policy}")
    # An unconditioned architecture has no time embedding or AdaLN weights at all.
    plain = small_config(model={**config.model.model_dump(), "time_conditioning": False})
    torch.manual_seed(1)
    plain_model = build_model(plain.model, data.prepared.vocab_size).eval()
    folders["unconditioned"] = export_model(plain_model.state_dict(), plain, data.prepared.tokenizer_path, root / "model_unconditioned")

    tokenizer = load_tokenizer(data.prepared.tokenizer_path)
    pairs = limit_per_paradigm(load_pairs(data.pairs_dir), PAIRS_PER_PARADIGM)
    sentences = [s for pair in pairs for s in (pair.good, pair.bad)]
    # A batch as the trainer sees one: [BOS] + ids, some tokens masked, padded with <pad>.
    encoded = [[BOS_ID] + tokenizer.encode(s).ids for s in sentences[:6]]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), PAD_ID)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)] = torch.tensor(seq)
    generator = torch.Generator().manual_seed(0)
    masked = (torch.rand(ids.shape, generator=generator) < torch.linspace(0.1, 0.9, len(encoded))[:, None]) & (ids >= NUM_SPECIAL_TOKENS)
    masked[0] = False  # one row without any mask (time 0 under mask_fraction)
    noisy = ids.masked_fill(masked, MASK_ID)
    spec = {
        "folders": {k: str(v) for k, v in folders.items()},
        "input_ids": noisy.tolist(),
        "attention_mask": (noisy != PAD_ID).long().tolist(),
        "texts": ["The cat <mask> the dog.", sentences[0], "<mask> <mask> <mask>"],
        "sentences": sentences,
        "score_pairs": {policy: True for policy in POLICIES},
        "out": str(root / "loaded.pt"),
    }
    seconds, stderr = run_without_project(LOADER, spec, root)
    print(f"\nloader subprocess: {seconds:.1f} s")
    return {
        "results": torch.load(root / "loaded.pt", weights_only=False),
        "noisy": noisy, "ids": ids, "masked": masked, "pairs": pairs, "sentences": sentences,
        "tokenizer": tokenizer, "plain_model": plain_model, "stderr": stderr,
    }


def trainer_logits(model, noisy, ids, masked, policy, fixed_rate=FIXED_RATE):
    """The trainer's evaluation forward: time from `eval_time`, SUBS logits (evaluate.py)."""
    maskable = (ids >= NUM_SPECIAL_TOKENS) | masked  # masked positions were real tokens
    fraction = masked.sum(1).float() / maskable.sum(1).clamp_min(1).float()
    time_input, condition = eval_time(fraction, policy, fixed_rate)
    with torch.no_grad():
        logits = model(noisy, noisy != PAD_ID, time_input, condition=condition)
        hidden = model.encode(noisy, noisy != PAD_ID, time_input, condition=condition)
    return logits, hidden


def test_loads_without_project_and_pipeline_calls(loaded, run):
    for name, result in loaded["results"].items():
        # transformers found the network through the relative import, copied it and ran it.
        assert result["relative_imports"] == {
            "configuration_mdlm.py": [], "mdlm_model.py": [], "modeling_mdlm.py": ["configuration_mdlm", "mdlm_model"],
        }
        assert {"configuration_mdlm.py", "modeling_mdlm.py", "mdlm_model.py"} <= set(result["dynamic_files"])
        assert all(module.endswith(".mdlm_model") for module in result["network_modules"]), result["network_modules"]
        assert result["config_class"] == "MdlmConfig"
        for info in (result["mlm_loading"], result["base_loading"]):
            assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}, (name, info)
        assert torch.equal(result["logits"], result["logits_by_index"])
        batch, length = loaded["noisy"].shape
        assert result["logits"].shape == (batch, length, run["data"].prepared.vocab_size)
        assert result["hidden"].shape == (batch, length, result["hidden_size"])
        assert torch.equal(result["logits_with_token_types"], result["logits"])  # token_type_ids ignored
        assert result["tokenizer_keys"] == ["attention_mask", "input_ids"]
        assert result["mask_alone"] == [MASK_ID]
        assert result["mask_after_word"][-1] == MASK_ID and len(result["mask_after_word"]) == 4  # <s> the cat <mask>
        assert result["special_ids"] == {"mask_token_id": MASK_ID, "cls_token_id": BOS_ID, "pad_token_id": PAD_ID, "bos_token_id": BOS_ID}
        assert (result["tokenizer_ids"][:, 0] == BOS_ID).all()
        assert result["model_max_length"] == run["config"].seq_length
        assert result["processor_class"] == "PreTrainedTokenizerFast"
    # No load-time warnings about uninitialised or unused weights.
    assert "initialized" not in loaded["stderr"] and "were not used" not in loaded["stderr"], loaded["stderr"]


def test_reading_task_input(loaded):
    """sentence + "<mask><mask><mask>": three mask ids at the end (no </s> after them)."""
    for result in loaded["results"].values():
        assert result["reading_ids"][0] == BOS_ID and result["reading_ids"][-3:] == [MASK_ID] * 3
        assert MASK_ID not in result["reading_ids"][:-3]
        assert torch.isfinite(result["reading_logits"].softmax(-1)).all()


def test_tokenizer_encodes_like_the_trainer(loaded, run):
    """[BOS] + ids, no EOS, first word with its prefix space, as the loop's encode()."""
    tokenizer, limit = loaded["tokenizer"], run["config"].seq_length - 1
    expected = [[BOS_ID] + tokenizer.encode(s).ids[:limit] for s in loaded["sentences"]]
    for result in loaded["results"].values():
        assert result["sentence_ids"] == expected


@pytest.mark.parametrize("policy", POLICIES + ("unconditioned",))
def test_logits_match_trainer(loaded, run, policy):
    result = loaded["results"][policy]
    model = loaded["plain_model"] if policy == "unconditioned" else run["model"]
    trainer_policy = "off" if policy == "unconditioned" else policy
    assert result["policy"] == trainer_policy
    logits, hidden = trainer_logits(model, loaded["noisy"], loaded["ids"], loaded["masked"], trainer_policy)
    real = slice(NUM_SPECIAL_TOKENS, None)
    diff_logits = (logits[..., real] - result["logits"][..., real]).abs().max().item()
    diff_hidden = (hidden - result["hidden"]).abs().max().item()
    # The tokenizer-driven batch: the trainer's padded [BOS] + ids with no masks.
    tok_ids = result["tokenizer_ids"]
    assert torch.equal(result["tokenizer_mask"].bool(), tok_ids != PAD_ID)
    tok_logits, _ = trainer_logits(model, tok_ids, tok_ids, tok_ids == MASK_ID, trainer_policy)
    diff_tok = (tok_logits[..., real] - result["tokenizer_logits"][..., real]).abs().max().item()
    print(f"\n{policy}: max |logits diff| {diff_logits:.2e} (tokenizer batch {diff_tok:.2e}), max |hidden diff| {diff_hidden:.2e}")
    assert max(diff_logits, diff_tok, diff_hidden) < TOLERANCE
    # SUBS: special tokens can never be predicted.
    assert (result["logits"][..., :NUM_SPECIAL_TOKENS] <= torch.finfo(torch.float32).min).all()


def test_policies_are_distinguishable(loaded, run):
    """The check above would be vacuous if the three policies gave the same logits."""
    gaps = {}
    for a, b in (("mask_fraction", "fixed"), ("mask_fraction", "off"), ("fixed", "off")):
        la, lb = (loaded["results"][p]["logits"][..., NUM_SPECIAL_TOKENS:] for p in (a, b))
        gaps[f"{a}/{b}"] = (la - lb).abs().max().item()
    print(f"\npolicy gaps (max |logits diff| between policies): {gaps}")
    assert min(gaps.values()) > 100 * TOLERANCE


@pytest.mark.parametrize("policy", POLICIES)
def test_pipeline_pll_agrees_with_score_pairs(loaded, run, policy):
    pairs, sentences = loaded["pairs"], loaded["sentences"]
    tokenizer, limit = loaded["tokenizer"], run["config"].seq_length - 1

    def encode(sentence):  # the loop's encode
        return [BOS_ID] + tokenizer.encode(sentence).ids[:limit]

    kwargs = dict(num_special=NUM_SPECIAL_TOKENS, mask_id=MASK_ID, pad_id=PAD_ID, policy=policy, fixed_rate=FIXED_RATE)
    trainer_scores = score_pairs(run["model"], pairs, encode, **kwargs)
    trainer_plls = pseudo_log_likelihoods(run["model"], [encode(s) for s in sentences], **kwargs)
    pipeline_plls = loaded["results"][policy]["plls"]
    trainer_wins = [trainer_plls[2 * i] > trainer_plls[2 * i + 1] for i in range(len(pairs))]
    pipeline_wins = [pipeline_plls[2 * i] > pipeline_plls[2 * i + 1] for i in range(len(pairs))]
    pipeline_acc = sum(pipeline_wins) / len(pairs)
    max_diff = max(abs(a - b) for a, b in zip(trainer_plls, pipeline_plls))
    margin = min(abs(trainer_plls[2 * i] - trainer_plls[2 * i + 1]) for i in range(len(pairs)))
    print(
        f"\n{policy}: {len(pairs)} pairs, trainer pairs_acc {trainer_scores['pairs_acc']:.4f}, pipeline {pipeline_acc:.4f}, "
        f"decisions agree {sum(a == b for a, b in zip(trainer_wins, pipeline_wins))}/{len(pairs)}, "
        f"max |PLL diff| {max_diff:.2e}, smallest |good - bad| {margin:.2e}"
    )
    assert max_diff < 1e-3
    assert trainer_wins == pipeline_wins
    assert pipeline_acc == trainer_scores["pairs_acc"]


# --------------------------------------------------------------------------------------
# Writing safely, and the CLI
# --------------------------------------------------------------------------------------


def test_export_refuses_and_writes_nothing(run, tmp_path, monkeypatch):
    state, config, tok = run["ema"], run["config"], run["data"].prepared.tokenizer_path
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        export_model(state, config, tok, busy)
    with pytest.raises(ExportError, match="not a model export"):
        export_model(state, config, tok, busy, overwrite=True)  # overwrite replaces exports only
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    with pytest.raises(ExportError, match="dot"):
        export_model(state, config, tok, tmp_path / "model.v2")
    with pytest.raises(ExportError, match="shape"):
        export_model(state, small_config(model={**config.model.model_dump(), "hidden_size": 64}), tok, tmp_path / "m")
    # A failure mid-write leaves neither the target nor the temporary folder behind.
    import trainer.export

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(trainer.export, "write_safetensors", broken)
    with pytest.raises(OSError):
        export_model(state, config, tok, tmp_path / "half")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    monkeypatch.undo()
    # Overwriting a previous export swaps it whole.
    first = export_model(state, config, tok, tmp_path / "again", {"n": 1})
    export_model(state, config, tok, first, {"n": 2}, overwrite=True)
    assert '"n": 2' in (first / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "busy"]


def test_cli_exports_run_folder(run, tmp_path):
    """`python -m trainer.export <run dir> <out>`: latest checkpoint, tokenizer from the run's data.json."""
    out = tmp_path / "final_hf"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "trainer.export", str(run["root"] / "run"), str(out), "--cache-dir", str(tmp_path / "no_cache")]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    card = (out / "README.md").read_text()
    assert f'"step": {run["config"].max_steps}' in card and run["data"].prepared.content_hash in card
    assert '"weights": "ema"' in card and '"val_nelbo"' in card  # the checkpoint's metrics line


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_cli_bad_inputs(run, tmp_path, capsys):
    run_dir = str(run["root"] / "run")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    assert export_main([str(tmp_path / "missing"), str(outputs / "out")]) == 2
    assert "does not exist" in one_error_line(capsys)
    busy = outputs / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert export_main([run_dir, str(busy)]) == 2
    assert "not empty" in one_error_line(capsys)
    assert export_main([str(outputs), str(outputs / "out")]) == 2  # a folder without checkpoints
    assert "not a run folder" in one_error_line(capsys)
    assert export_main([run_dir, str(outputs / "model.v1")]) == 2
    assert "dot" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:
        export_main([run_dir, str(outputs / "out"), "--weights", "best"])
    assert exit_info.value.code == 2
    one_error_line(capsys)
    # A checkpoint copied away from its run whose recorded data folder is gone (here: an old
    # checkpoint without the record), and an empty cache.
    lonely = tmp_path / "lonely" / "step_8"
    lonely.mkdir(parents=True)
    checkpoint = max((run["root"] / "run" / "checkpoints").glob("step_*"))
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    state.pop("data_root", None), state.pop("data_hash", None)
    torch.save(state, lonely / "state.pt")
    assert export_main([str(lonely), str(outputs / "out"), "--cache-dir", str(tmp_path / "empty_cache")]) == 2
    assert "--tokenizer" in one_error_line(capsys)
    assert sorted(p.name for p in outputs.iterdir()) == ["busy"]  # nothing half-written


def test_cli_finds_tokenizer_in_cache_or_flag(run, cache_dir, tmp_path, capsys):
    checkpoint = max((run["root"] / "run" / "checkpoints").glob("step_*"))
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "state.pt").write_bytes((checkpoint / "state.pt").read_bytes())
    # Nothing recorded next to the copy: the only cached data built from the run's corpus and settings.
    assert export_main([str(lonely / "state.pt"), str(tmp_path / "from_cache"), "--cache-dir", str(cache_dir)]) == 0
    assert run["data"].prepared.content_hash in (tmp_path / "from_cache" / "README.md").read_text()
    # --tokenizer, raw weights, from a checkpoint folder.
    assert export_main([str(checkpoint), str(tmp_path / "raw"), "--weights", "raw",
                        "--tokenizer", str(run["data"].prepared.root)]) == 0
    assert '"weights": "raw"' in (tmp_path / "raw" / "README.md").read_text()
    capsys.readouterr()
