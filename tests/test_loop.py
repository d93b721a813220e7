"""The training loop end to end on a small corpus: metrics, learning, exact resume."""

import json
import math

import pytest
import torch

from trainer.config import TrainConfig
from trainer.data.pairs import load_pairs, split_pairs
from trainer.data.prepare import prepare_corpus
from trainer.checkpoint import load_checkpoint
from trainer.loop import train_loop

from conftest import SMALL_MODEL, write_toy_corpus


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("loopdata")
    corpus = write_toy_corpus(root / "corpus")
    pairs = root / "pairs"
    pairs.mkdir()
    nouns = ("cat", "dog", "bird", "fish", "horse", "cow", "goat", "mouse")
    (pairs / "toy.jsonl").write_text(
        "\n".join(json.dumps({"sentence_good": f"the {n} runs .", "sentence_bad": f"{n} the runs .", "UID": "toy"}) for n in nouns)
    )
    data = prepare_corpus(corpus, root / "cache", vocab_size=300, seq_length=32, show_progress=False)
    return data, pairs


def small_config(**overrides):
    base = dict(
        model=SMALL_MODEL,
        vocab_size=300,
        seq_length=32,
        batch_size=16,
        micro_batch_size=8,
        max_steps=8,
        eval_every=4,
        checkpoint_every=4,
        val_rows=32,
        lr=3e-3,
        frequency_power=0.5,
        frequency_curriculum=True,
    )
    base.update(overrides)
    return TrainConfig.parse(base)


def test_metrics_written_and_model_learns(prepared, tmp_path):
    data, pairs = prepared
    config = small_config(max_steps=60, eval_every=20, checkpoint_every=60, interim_val_subsample=2)
    final = train_loop(config, data.root, tmp_path, pairs_dir=pairs, show_progress=False)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [20, 40, 60]
    for key in ("step", "tokens", "train_loss", "val_nelbo", "val_acc", "pairs_acc", "tokens_per_s", "lr", "mask_rate"):
        assert key in lines[-1]
    assert lines[-1]["tokens"] == 60 * 16 * 32
    # Held-out pairs are scored at the last evaluation only (both parts hold pairs here).
    tuning, heldout = split_pairs(load_pairs(pairs), config.pairs_heldout_fraction)
    assert tuning and heldout
    assert all("pairs_acc" in l for l in lines)
    assert ["pairs_acc_heldout" in l for l in lines] == [False, False, True]
    assert 0.0 <= lines[-1]["pairs_acc_heldout"] <= 1.0
    assert lines[-1]["val_nelbo"] < lines[0]["val_nelbo"]
    # Interim evaluations score the first half of the blocks of val_mask_rates rows; the last all.
    rows = lines[-1]["val_rows_scored"]
    assert rows > 2 * config.val_mask_rates
    blocks = -(-rows // config.val_mask_rates)
    assert [l["val_rows_scored"] for l in lines[:-1]] == [sum(i // config.val_mask_rates < -(-blocks // 2)
                                                               for i in range(rows))] * 2
    assert final["checkpoint"].endswith("step_00000060")
    assert (tmp_path / "config.json").exists()


def test_resume_continues_identically(prepared, tmp_path):
    data, _ = prepared
    config = small_config()
    straight = tmp_path / "straight"
    train_loop(config, data.root, straight, show_progress=False)
    # Stop after 4 steps, then resume from that checkpoint for the remaining 4.
    split = tmp_path / "split"
    train_loop(small_config(max_steps=8), data.root, split, show_progress=False, stop_at_step=4)
    resumed_from = split / "checkpoints" / "step_00000004"
    train_loop(config, data.root, split, resume_from=resumed_from, show_progress=False)
    a = load_checkpoint(straight / "checkpoints" / "step_00000008")
    b = load_checkpoint(split / "checkpoints" / "step_00000008")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    assert a["position"] == b["position"]
    steps = [json.loads(l)["step"] for l in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8]  # continuous history, nothing duplicated


def test_benchmark_times_the_loops_own_step(prepared, tmp_path, monkeypatch):
    """benchmarks/throughput.py's StepReplica takes `train_step` with its timing hook: from the
    same start, its steps give the loop's weights, EMA and data position to the bit."""
    from pathlib import Path

    from trainer.loop import train_step

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import throughput

    data, _ = prepared
    config = small_config()  # 8 steps of two micro-batches, frequency curriculum, clipping
    train_loop(config, data.root, tmp_path, show_progress=False)
    saved = load_checkpoint(tmp_path / "checkpoints" / "step_00000008")

    replica = throughput.StepReplica(config, data.root, "cpu")
    times: dict[str, float] = {}
    for _ in range(config.max_steps):
        replica.step(times)
    for key, value in replica.model.state_dict().items():
        assert torch.equal(value, saved["model"][key]), key
    for key, value in replica.ema.state_dict().items():
        assert torch.equal(value, saved["ema"][key]), key
    position = replica.state.position
    assert (replica.state.step, {"epoch": position.epoch, "offset": position.offset}) == (saved["step"], saved["position"])
    assert set(times) == set(throughput.PARTS) and all(t > 0 for t in times.values())
    assert replica.tokens == 8 * 16 * 32 and 0 < replica.masked_tokens < replica.tokens

    # The hook sees every part, in the step's order.
    parts: list[str] = []
    train_step(replica.setup, replica.state, replica.window, parts.append)
    micro_batch = ["data", "masking", "forward", "backward", "other"]
    assert parts == ["other"] + micro_batch * 2 + ["optimizer", "ema"]


def test_compile_on_keeps_checkpoints_eager(prepared, tmp_path, monkeypatch):
    """compile=on compiles the encoder (on CPU too) and says so in the metrics; the checkpoint is
    the uncompiled module's state_dict (no `_orig_mod.` keys), and it loads into an eager run.

    Dynamo traces with its `eager` backend here: inductor's CPU code generation took ~70 s for
    this 2-layer model on a 2-core machine, and which backend runs the graph does not change what
    is compiled or what the checkpoint holds."""
    from trainer.model import build_model

    compiled_functions = []
    real_compile = torch.compile

    def eager_backend_compile(fn, **kwargs):
        compiled_functions.append(getattr(fn, "__name__", fn))
        return real_compile(fn, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", eager_backend_compile)
    torch._dynamo.reset()
    data, _ = prepared
    config = small_config(max_steps=2, eval_every=2, checkpoint_every=2, compile="on")
    train_loop(config, data.root, tmp_path / "run", show_progress=False)
    assert compiled_functions == ["encode"]  # the encoder only, once
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["compiled"] is True
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002")
    eager = build_model(config.model, saved["model"]["embedding.word_embedding.weight"].shape[0])
    assert set(saved["model"]) == set(eager.state_dict()) == set(saved["ema"])
    assert not any("_orig_mod" in key for key in saved["model"])
    # An eager run (auto, on CPU) resumes from it and records that it is not compiled.
    resumed = small_config(max_steps=4, eval_every=2, checkpoint_every=2)
    train_loop(resumed, data.root, tmp_path / "run", show_progress=False,
               resume_from=tmp_path / "run" / "checkpoints" / "step_00000002")
    assert len(compiled_functions) == 1
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and last["compiled"] is False
    torch._dynamo.reset()


def test_a_failing_compilation_falls_back_to_eager_with_one_line(prepared, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A compiler that fails (here a backend that raises, as a missing C compiler or Triton would)
    costs one line, not the run: the step trains eager and the metrics say so."""
    real_compile = torch.compile

    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no C compiler on this machine")

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: real_compile(fn, **{**kwargs, "backend": broken_backend}))
    torch._dynamo.reset()
    data, _ = prepared
    config = small_config(max_steps=2, eval_every=2, checkpoint_every=2, compile="on")
    last = train_loop(config, data.root, tmp_path / "run", show_progress=False)
    torch._dynamo.reset()
    errors = [line for line in capsys.readouterr().err.splitlines() if "torch.compile failed" in line]
    assert len(errors) == 1 and "no C compiler" in errors[0] and "training eager" in errors[0]
    assert last["compiled"] is False and last["device"] == "cpu" and math.isfinite(last["train_loss"])


def test_an_error_of_the_model_itself_is_not_taken_for_a_compile_failure():
    from trainer.loop import CompiledOrEager

    def broken(*args):
        raise ValueError("a bug in the model")

    guard = CompiledOrEager(lambda: "eager", broken)
    with pytest.raises(ValueError, match="a bug in the model"):
        guard()
    assert guard.active


def test_compile_choice_and_bad_value():
    from trainer.config import ConfigError
    from trainer.loop import resolve_compile

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [resolve_compile(s, cpu) for s in ("auto", "on", "off")] == [False, True, False]
    assert [resolve_compile(s, cuda) for s in ("auto", "on", "off")] == [True, True, False]
    with pytest.raises(ConfigError) as err:
        small_config(compile="yes")
    assert str(err.value) == "config field 'compile' = 'yes' is not allowed: expected 'auto', 'on' or 'off'"


def test_progress_between_evaluations(prepared, tmp_path):
    """With an interval of 0 the progress callback hears every step that is not an evaluation
    step, with the budget, a finite loss and a positive speed; evaluation steps are not repeated."""
    data, _ = prepared
    heard = []
    train_loop(small_config(max_steps=8, eval_every=4, checkpoint_every=4), data.root, tmp_path, show_progress=False,
               progress=heard.append, progress_every_s=0.0)
    assert [r["step"] for r in heard] == [1, 2, 3, 5, 6, 7]
    assert all(r["last_step"] == 8 and r["train_loss"] > 0 and r["tokens_per_s"] > 0 for r in heard)
