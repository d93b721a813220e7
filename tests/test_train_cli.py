"""`python -m trainer.train`: one process and a 2-worker Ray Train run, and input errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from conftest import SMALL_MODEL, write_toy_corpus


def run_cli(*args, env_extra=None, timeout=600):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "trainer.train", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_toy_corpus(root / "corpus", seed=1, train_lines=1200, dev_lines=150)
    config = {
        "model": SMALL_MODEL, "vocab_size": 300, "seq_length": 32, "batch_size": 16, "micro_batch_size": 8,
        "max_steps": 6, "eval_every": 3, "checkpoint_every": 3, "val_rows": 32,
    }
    (root / "config.json").write_text(json.dumps(config))
    return root


def test_single_process_run_writes_metrics(toy, tmp_path):
    out = tmp_path / "run"
    result = run_cli("--config", str(toy / "config.json"), "--corpus", str(toy / "corpus"), "--out", str(out),
                     "--cache-dir", str(toy / "cache"), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [3, 6]
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 6


@pytest.mark.slow
def test_two_ray_train_workers_on_cpu(toy, tmp_path):
    out = tmp_path / "ddp"
    result = run_cli("--config", str(toy / "config.json"), "--corpus", str(toy / "corpus"), "--out", str(out),
                     "--cache-dir", str(toy / "cache"), "--no-progress", "--workers", "2", "--cpus-per-worker", "0.9")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [3, 6]
    for key in ("train_loss", "val_nelbo", "val_acc", "tokens_per_s"):
        assert key in lines[-1]
    # Ray Train kept the reported checkpoint in its own storage.
    assert list((out / "ray").rglob("state.pt"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--set", "derivative_power=7"], "derivative_power"),
        (["--set", "no_such_field=1"], "unknown config field 'no_such_field'"),
        (["--set", "model.no_such_field=1"], "model.no_such_field"),
        (["--set", "model.dropout=2"], "model.dropout"),
        (["--set", "optimizer.lr=1"], "only architecture fields take a dotted name"),
        (["--corpus", "/nonexistent/folder"], "does not exist"),
        (["--config", "/nonexistent.json"], "does not exist"),
        (["--workers", "0"], "--workers"),
        (["--pairs", "/nonexistent/pairs"], "pairs folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = run_cli(*args, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-progress")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_set_reaches_architecture_fields_and_preset_resets_them():
    """`--set model.<field>` changes one field of the preset's architecture; `--set preset=<name>`
    is --preset (the architecture becomes that preset's, not the old one under a new label)."""
    from trainer.config import PRESETS, TrainConfig
    from trainer.config import apply_overrides

    def config(**overrides):
        return TrainConfig.parse(apply_overrides(TrainConfig().as_dict(), overrides))

    assert config(**{"model.dropout": 0.2}).model == PRESETS["tiny"].model_copy(update={"dropout": 0.2})
    assert config(preset="small").model == PRESETS["small"]
    # The preset is applied first, whatever the order of the flags.
    both = config(**{"model.dropout": 0.0}, preset="small")
    assert both.preset == "small" and both.model == PRESETS["small"].model_copy(update={"dropout": 0.0})
    assert config(preset="tiny").model == PRESETS["tiny"]  # same preset: nothing reset


def test_a_fraction_of_a_gpu_caps_the_workers_memory(monkeypatch):
    """--gpus-per-worker 0.25: the worker keeps to a quarter of the GPU's memory, with expandable
    segments; a whole GPU (or none) sets no cap. (On a CPU machine CUDA is faked here: what is
    checked is the call, the GPU check measures the effect.)"""
    import torch

    from trainer.train import limit_gpu_memory

    fractions = []
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, *a: fractions.append(f))
    assert not limit_gpu_memory(1.0) and not limit_gpu_memory(0.0) and not fractions
    assert "PYTORCH_CUDA_ALLOC_CONF" not in __import__("os").environ
    assert limit_gpu_memory(0.25) and fractions == [0.25]
    assert __import__("os").environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
