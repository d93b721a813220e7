"""benchmarks/gpu_check.py: what can be checked without a GPU.

Without CUDA the script prints one line and exits 0; its pure pieces (the overlap of trial
intervals, the peak table, the MFU arithmetic, the logits comparison) are checked here on
hand-made inputs. The GPU parts themselves run only on a GPU machine."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402

from trainer.config import ModelConfig  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.objective import subs_logits  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its checks")
def test_without_cuda_one_line_and_exit_0():
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "no CUDA device" in done.stdout, done.stdout
    assert done.stderr == ""
    assert seconds < 60  # torch's import, nothing else: no Ray, no data


def test_a_failing_part_is_reported_and_the_exit_status_says_so(tmp_path):
    """--allow-cpu runs the export part on the CPU; a data cache that cannot be created makes it
    fail at once. The failure is in the JSON with its error, the next part (nccl: skipped, no
    GPUs) is still reported, and the exit status is 1."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file, not a folder")
    done = subprocess.run([sys.executable, str(SCRIPT), "--allow-cpu", "--parts", "export,nccl",
                           "--cache-dir", str(not_a_folder)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    summary = json.loads(line)
    assert summary["ok"] is False
    assert summary["parts"]["export"]["status"] == "error" and summary["parts"]["export"]["error"]
    assert summary["parts"]["nccl"]["status"] == "skipped" and "two GPUs" in summary["parts"]["nccl"]["reason"]


def test_unknown_part_is_one_line_error():
    done = subprocess.run([sys.executable, str(SCRIPT), "--parts", "throughput,warp"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "warp" in done.stderr


# --- the sweep's overlap check ---------------------------------------------------------------


def test_four_intervals_sharing_an_instant():
    result = gpu_check.max_overlap([(0.0, 10.0), (1.0, 9.0), (2.5, 12.0), (3.0, 8.0)])
    assert result["max_concurrent"] == 4 and result["all_overlap"] is True
    assert result["common_s"] == pytest.approx(5.0)  # from 3.0 (last start) to 8.0 (first end)


def test_staggered_intervals_do_not_all_overlap():
    # Pairwise chains: each overlaps its neighbours, never more than two at once.
    result = gpu_check.max_overlap([(0.0, 2.0), (1.0, 3.0), (2.5, 4.0), (3.5, 5.0)])
    assert result["max_concurrent"] == 2 and result["all_overlap"] is False and result["common_s"] == 0.0
    # Sequential trials (one GPU slot): never two at once.
    sequential = gpu_check.max_overlap([(0.0, 1.0), (1.5, 2.0), (3.0, 4.0), (5.0, 6.0)])
    assert sequential["max_concurrent"] == 1 and sequential["all_overlap"] is False
    # Three together, the fourth after them all.
    three = gpu_check.max_overlap([(0.0, 5.0), (1.0, 5.0), (2.0, 5.0), (6.0, 7.0)])
    assert three["max_concurrent"] == 3 and three["all_overlap"] is False


def test_touching_intervals_share_their_end_point():
    result = gpu_check.max_overlap([(0.0, 1.0), (1.0, 2.0)])
    assert result["max_concurrent"] == 2 and result["all_overlap"] is True and result["common_s"] == 0.0


def test_bad_intervals_are_refused():
    assert gpu_check.max_overlap([])["all_overlap"] is False
    with pytest.raises(ValueError):
        gpu_check.max_overlap([(2.0, 1.0)])
    with pytest.raises(ValueError):
        gpu_check.max_overlap([(0.0, float("nan"))])


def test_training_interval_from_a_trials_reports():
    # Two evaluations: 30 s of steps and 4 s of evaluation, then 60 s of steps in all and 5 s more.
    history = [
        {"step": 30, "first_step_unix": 1000.0, "train_s": 30.0, "eval_s": 4.0, "timestamp": 1034},
        {"step": 60, "first_step_unix": 1000.0, "train_s": 60.0, "eval_s": 5.0, "timestamp": 1070},
    ]
    assert gpu_check.training_interval(history) == (1000.0, 1069.0)
    with pytest.raises(ValueError):
        gpu_check.training_interval([])


# --- the peak table and MFU ------------------------------------------------------------------


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H100 80GB HBM3", 989.0),
    ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0),
    ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A100-PCIE-40GB", 312.0),
    ("NVIDIA L4", 121.0),
    ("NVIDIA A10", 125.0),
    ("NVIDIA GeForce RTX 4090", 165.2),
])
def test_known_peaks(name, tflops):
    peak = gpu_check.known_peak(name)
    assert peak is not None and peak["flops"] == pytest.approx(tflops * 1e12)
    assert peak["source"].startswith("table:")


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA L40S", "Tesla T4", "NVIDIA GeForce RTX 3090"])
def test_unknown_gpus_have_no_table_peak(name):
    # Not A10 / L4 by a substring: these get a measured peak instead.
    assert gpu_check.known_peak(name) is None


def test_mfu_against_a_hand_calculation():
    # d = 64, L = 2, f = 128, R = 2 * 4 - 1 = 7 buckets, V = 100, T = 16, B = 4, head share 1/4,
    # no time conditioning:
    #   dense    6 * L (2dd + 2dd + dd + 2df + fd) = 6 * 2 * 45,056        = 540,672
    #   head     6 * 0.25 * (dd + dV) = 1.5 * (4,096 + 6,400)             =  15,744
    #   content  12 * L * d * T = 12 * 2 * 64 * 16                         =  24,576
    #   relative 12 * L * d * R = 12 * 2 * 64 * 7                          =  10,752
    #   table    6 * L * R * 2dd / (B T) = 6 * 2 * 7 * 8,192 / 64          =  10,752
    #   total                                                              = 602,496 FLOPs per token
    config = ModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, position_bucket_size=4,
                         time_conditioning=False)
    figures = gpu_check.throughput_figures(config, vocab_size=100, seq_length=16, micro_batch=4, masked_share=0.25,
                                           tokens_per_s=1000.0, peak_flops=1e9)
    assert figures["flops_per_token"] == pytest.approx(602_496)
    assert figures["mfu"] == pytest.approx(602_496 * 1000.0 / 1e9)  # 0.602
    assert gpu_check.mfu(1e9, 400.0, 989e12) == pytest.approx(4e11 / 989e12)


# --- the logits comparison -------------------------------------------------------------------


TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, cond_dim=16, time_embedding_dim=16)


def logits_of(model, ids):
    model.eval()
    with torch.no_grad():
        raw = model(ids, ids != 0, torch.full((ids.shape[0],), 0.3))
    return subs_logits(raw, 5)  # the first 5 ids at -inf, as the trainer's SUBS logits


def two_models(seed=0):
    torch.manual_seed(seed)
    a = build_model(TINY, 50)
    b = build_model(TINY, 50)
    b.load_state_dict(a.state_dict())
    return a, b


def test_same_weights_give_the_same_logits():
    a, b = two_models()
    ids = torch.randint(5, 50, (3, 12))
    result = gpu_check.compare_logits(logits_of(a, ids), logits_of(b, ids))
    assert result["pass"] is True and result["max_abs_diff"] == 0.0 and result["shape"] == [3, 12, 50]
    assert 0.0 < result["max_abs_logit"] < 1e6  # the suppressed entries are not counted


def test_different_weights_fail_the_comparison():
    a, b = two_models()
    with torch.no_grad():
        b.embedding.word_embedding.weight[7] += 0.05 * torch.randn(32)  # one token's embedding moved
    ids = torch.randint(5, 50, (3, 12))
    ids[0, 3] = 7
    result = gpu_check.compare_logits(logits_of(a, ids), logits_of(b, ids))
    assert result["pass"] is False and result["max_abs_diff"] > gpu_check.LOGITS_TOLERANCE


def test_suppressed_entries_must_match_and_shapes_must_agree():
    a, _ = two_models()
    ids = torch.randint(5, 50, (2, 8))
    reference = logits_of(a, ids)
    unsuppressed = reference.clone()
    unsuppressed[..., :5] = 0.0  # the special tokens no longer at -inf
    assert gpu_check.compare_logits(reference, unsuppressed)["pass"] is False
    saturated = reference.clone()
    saturated[..., :5] = torch.finfo(torch.float32).min  # how the HF export suppresses them
    assert gpu_check.compare_logits(reference, saturated)["pass"] is True
    assert gpu_check.compare_logits(reference, reference[:1])["pass"] is False
    nan = reference.clone()
    nan[0, 0, 10] = float("nan")
    assert gpu_check.compare_logits(nan, nan)["pass"] is False
