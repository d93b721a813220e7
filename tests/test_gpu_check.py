"""benchmarks/gpu_check.py and benchmarks/gpu_check.sh: what can be checked without a GPU.

The check must not pass having measured nothing: without a GPU it exits 3 (0 only when asked,
`--allow-no-gpu`), and where nvidia-smi lists GPUs torch cannot use it exits 2, each with one
line. Its pure pieces are checked here on hand-made inputs: the part order and the budget (the
headline first, never skipped), the Ray part's skip, the synthetic 16,384-word rows, the MFU
arithmetic, the attention-kernel classifier, the concurrent and DDP verdicts, the logits
comparison. The GPU parts themselves run only on a GPU machine."""

import json
import os
import stat
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402

from trainer.config import ModelConfig, TrainConfig  # noqa: E402
from trainer.data.tokenizer import NUM_SPECIAL_TOKENS  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.objective import subs_logits  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
SHELL_SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its checks")


def fake_nvidia_smi(folder: Path, output: str, status: int = 0) -> dict:
    """An environment whose PATH starts with a `nvidia-smi` printing `output`."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {status}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def run_script(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


# --- whether there is anything to measure --------------------------------------------------


@no_cuda
def test_no_gpu_is_one_line_and_exit_3(tmp_path):
    env = fake_nvidia_smi(tmp_path / "bin", "NVIDIA-SMI has failed: no devices were found", status=9)
    start = time.perf_counter()
    done = run_script("--out", str(tmp_path / "out"), env=env)
    seconds = time.perf_counter() - start
    assert done.returncode == 3, done.stderr
    (line,) = done.stdout.splitlines()
    assert "no GPU here: nothing measured" in line
    assert done.stderr == ""
    assert seconds < 60  # torch's import, nothing else: no Ray, no data
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ok"] is False and summary["exit"] == 3 and summary["measured"] is False and summary["parts"] == {}


@no_cuda
def test_allow_no_gpu_exits_0_still_measuring_nothing(tmp_path):
    env = fake_nvidia_smi(tmp_path / "bin", "", status=9)
    done = run_script("--allow-no-gpu", env=env)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert "no GPU here: nothing measured" in line


@no_cuda
def test_gpus_torch_cannot_use_are_one_line_and_exit_2(tmp_path):
    env = fake_nvidia_smi(tmp_path / "bin", "GPU 0: NVIDIA H200 (UUID: GPU-0b5d7c2e-1111-2222-3333-444455556666)")
    done = run_script("--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 2, done.stderr
    (line,) = done.stdout.splitlines()
    assert "NVIDIA H200" in line and "nothing measured" in line
    assert ("CPU-only build" in line) if torch.version.cuda is None else ("is_available() is False" in line)
    assert done.stderr == ""
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["exit"] == 2


def test_gpu_verdict():
    h200 = ["NVIDIA H200"]
    assert gpu_check.gpu_verdict(h200, "2.11.0+cu130", "13.0", True) is None
    assert gpu_check.gpu_verdict([], "2.11.0+cu130", "13.0", True) is None  # no nvidia-smi, but torch sees one
    code, line = gpu_check.gpu_verdict(h200, "2.13.0+cpu", None, False)
    assert code == 2 and "CPU-only build" in line and "H200" in line
    code, line = gpu_check.gpu_verdict(h200 * 2, "2.11.0+cu130", "13.0", False)
    assert code == 2 and "2 GPUs" in line and "is_available() is False" in line
    code, line = gpu_check.gpu_verdict([], "2.13.0+cpu", None, False)
    assert code == 3 and "no GPU here: nothing measured" in line
    assert gpu_check.gpu_verdict([], "2.13.0+cpu", None, False, allow_no_gpu=True)[0] == 0
    # --allow-no-gpu does not excuse GPUs that torch cannot use
    assert gpu_check.gpu_verdict(h200, "2.13.0+cpu", None, False, allow_no_gpu=True)[0] == 2
    for verdict in (gpu_check.gpu_verdict(h200, "2.13.0+cpu", None, False), gpu_check.gpu_verdict([], "x", None, False)):
        assert "\n" not in verdict[1]


def test_nvidia_smi_list_is_parsed():
    text = ("GPU 0: NVIDIA H200 (UUID: GPU-0b5d7c2e-1111-2222-3333-444455556666)\n"
            "  MIG 3g.71gb     Device  0: (UUID: MIG-aaaa)\n"
            "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)\n")
    assert gpu_check.parse_smi_list(text) == ["NVIDIA H200", "NVIDIA H100 80GB HBM3"]
    assert gpu_check.parse_smi_list("NVIDIA-SMI has failed because it couldn't communicate with the driver") == []
    apps = "12345, 20480\n12346, 512\nNo running processes found\n"
    assert gpu_check.parse_compute_apps(apps) == {12345: 20480.0, 12346: 512.0}


# --- order and budget ----------------------------------------------------------------------


def test_parts_run_in_their_order_headline_first():
    assert gpu_check.PARTS[0] == gpu_check.FIRST_PART == "headline"
    assert gpu_check.PARTS[-1] == "sweep"
    assert gpu_check.order_parts("sweep,export,headline") == ["headline", "export", "sweep"]
    assert gpu_check.order_parts("ddp, concurrent") == ["concurrent", "ddp"]
    with pytest.raises(ValueError, match="warp"):
        gpu_check.order_parts("headline,warp")
    with pytest.raises(ValueError):
        gpu_check.order_parts(" , ")


def test_unknown_part_is_one_line_error():
    done = run_script("--parts", "headline,warp", timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "warp" in done.stderr


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def simulate(durations: dict, start_elapsed: float = 0.0, skip=lambda part: None, total=gpu_check.TOTAL_BUDGET_S):
    """Run the real schedule on fake timings: each part takes min(its duration, its timeout)."""
    clock = FakeClock()
    start = clock.now - start_elapsed
    calls = []

    def run_one(part, timeout):
        calls.append((part, timeout))
        clock.now += min(durations[part], timeout)
        return {"status": "pass" if durations[part] <= timeout else "error"}

    results = gpu_check.run_schedule(list(gpu_check.PARTS), run_one, skip, clock=clock, start=start, total=total)
    return results, calls


def test_the_budget_cannot_skip_the_headline():
    budget = gpu_check.PART_BUDGET_S
    # Start-up alone took longer than the whole budget: the headline still runs, with all of its own.
    results, calls = simulate({p: 10.0 for p in gpu_check.PARTS}, start_elapsed=gpu_check.TOTAL_BUDGET_S + 60)
    assert calls == [("headline", float(budget["headline"]))]
    assert results["headline"]["status"] == "pass"
    assert all(results[p]["status"] == "not_run" and "not run" in results[p]["error"] for p in gpu_check.PARTS[1:])
    assert list(results) == list(gpu_check.PARTS)
    assert gpu_check.overall_status(results) == (False, 1)  # a part not run is not a pass


def test_the_budget_shares_what_is_left_after_the_headline():
    budget, total = gpu_check.PART_BUDGET_S, gpu_check.TOTAL_BUDGET_S
    # Everything quick: every part runs with its own budget (the sweep with what is left).
    results, calls = simulate({p: 5.0 for p in gpu_check.PARTS})
    assert [p for p, _ in calls] == list(gpu_check.PARTS)
    assert dict(calls)["concurrent"] == budget["concurrent"]
    assert all(timeout <= budget[p] for p, timeout in calls)
    assert gpu_check.overall_status(results) == (True, 0)
    # The headline uses its whole budget: the later parts get the rest, the last one what is left.
    results, calls = simulate({"headline": 1e9, "concurrent": 1e9, "ddp": 1e9, "export": 1e9, "sweep": 1e9})
    timeouts = dict(calls)
    assert timeouts["headline"] == budget["headline"] and results["headline"]["status"] == "error"
    spent = budget["headline"] + budget["concurrent"] + budget["ddp"]
    assert timeouts["export"] == min(budget["export"], total - spent)
    assert sum(timeouts.values()) <= total  # nothing after the headline runs past the total
    assert results["sweep"]["status"] == "not_run"  # less than its minimum left


def test_a_skipped_part_takes_no_time_and_is_no_failure():
    results, calls = simulate({p: 5.0 for p in gpu_check.PARTS},
                              skip=lambda part: "ray is not installed" if part == "sweep" else None)
    assert "sweep" not in dict(calls)
    assert results["sweep"] == {"status": "skipped", "reason": "ray is not installed"}
    assert gpu_check.overall_status(results) == (True, 0)
    assert gpu_check.overall_status({}) == (False, 1)


def test_part_timeout():
    assert gpu_check.part_timeout("headline", 1e6) == (gpu_check.PART_BUDGET_S["headline"], None)
    assert gpu_check.part_timeout("export", 0.0) == (gpu_check.PART_BUDGET_S["export"], None)
    assert gpu_check.part_timeout("export", 400.0, total=430.0) == (30.0, None)
    timeout, reason = gpu_check.part_timeout("sweep", 400.0, total=430.0)  # 30 s left, it needs 60
    assert timeout is None and "30 s" in reason


# --- the Ray part --------------------------------------------------------------------------


def test_the_sweep_is_skipped_with_a_reason_without_ray():
    def no_ray(name):
        raise ModuleNotFoundError(f"No module named '{name}'")

    assert gpu_check.sweep_skip_reason(no_ray) == "ray is not installed"
    assert gpu_check.sweep_skip_reason(lambda name: object()) is None


def test_a_failing_part_is_reported_and_the_exit_status_says_so(tmp_path):
    """--allow-cpu runs the export part on the CPU; a data cache that cannot be created makes it
    fail at once. The failure is in the JSON with its error, the next part (sweep: skipped) is
    still reported, summary.json is written, and the exit status is 1."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file, not a folder")
    out = tmp_path / "out"
    done = run_script("--allow-cpu", "--parts", "sweep,export", "--cache-dir", str(not_a_folder), "--out", str(out),
                      timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    summary = json.loads(line)
    assert summary["ok"] is False and summary["exit"] == 1 and summary["complete"] is True
    assert summary["order"] == ["export", "sweep"]
    assert summary["parts"]["export"]["status"] == "error" and summary["parts"]["export"]["error"]
    assert summary["parts"]["sweep"]["status"] == "skipped" and summary["parts"]["sweep"]["reason"]
    assert json.loads((out / "summary.json").read_text()) == summary


# --- the headline's synthetic step ---------------------------------------------------------


def test_synthetic_rows_at_16384_words():
    assert gpu_check.HEADLINE_VOCAB == 16384 == TrainConfig().vocab_size
    rows = gpu_check.SyntheticRows(64, 128, 16384, seed=3)
    assert rows.num_rows == len(rows) == 64
    batch = rows.rows(np.array([0, 5, 63, 5]))
    assert batch.shape == (4, 128) and batch.dtype == np.int64
    assert batch.min() >= NUM_SPECIAL_TOKENS and batch.max() < 16384  # no padding, no special tokens
    assert np.array_equal(batch[1], batch[3])  # a row is the same row every time
    assert np.array_equal(gpu_check.SyntheticRows(64, 128, 16384, seed=3).rows([7]), rows.rows([7]))
    everything = rows.rows(np.arange(64))
    assert len(np.unique(everything)) > 4000  # spread over the vocabulary, not the first few ids
    with pytest.raises(IndexError):
        rows.rows([64])
    weights = gpu_check.uniform_token_weights(16384)
    assert weights.shape == (16384,) and torch.all(weights[:NUM_SPECIAL_TOKENS] == 0)
    assert torch.all(weights[NUM_SPECIAL_TOKENS:] == 1)


def test_the_synthetic_step_trains_at_16384_words_without_a_sync():
    """The headline's setup on a CPU, `tiny` for speed: the model's vocabulary is 16,384 (not the
    built-in corpus's), the loop's step runs, its device part has no syncing operator, and the
    FLOPs torch counts in a step are the formula's to within a few percent."""
    torch.manual_seed(0)
    config = gpu_check.step_config("tiny", 4, "fp32", compiled=False)
    runner = gpu_check.SyntheticStep(config, "cpu", num_rows=64)
    assert runner.model.embedding.word_embedding.weight.shape[0] == 16384
    assert runner.guard is None and runner.compiled is False and runner.precision == "fp32"
    figures = gpu_check.timed_steps(runner, warmup=1, steps=1)
    assert figures["tokens_per_s"] > 0 and np.isfinite(figures["train_loss"]) and 0 < figures["masked_share"] < 1
    before = runner.state.step
    result = gpu_check.count_step(runner, flops=True)
    assert runner.state.step == before + 1  # a counted step is a real step of the run
    assert result["syncs_per_step"] == 0 and result["device_ops_per_step"] > 100
    formula = gpu_check.throughput_figures(config.model, 16384, config.seq_length, 4, figures["masked_share"],
                                           1.0, 1.0)["flops_per_token"]
    assert result["flops_per_token_counted"] == pytest.approx(formula, rel=0.15)


def test_cuda_syncs_are_counted_in_the_device_part_only(monkeypatch):
    """count_cuda_syncs turns CUDA's sync-debug mode on for each micro-batch's device part (from
    "masking" done to the next "data") and counts the warnings; faked here: no CUDA."""
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)

    def maybe_sync():  # what CUDA does with a synchronizing operation in "warn" mode
        if modes and modes[-1] == "warn":
            warnings.warn("called a synchronizing CUDA operation")

    class Runner:
        def step(self, lap):
            for _ in range(2):  # two micro-batches
                lap("data")
                maybe_sync()  # host part: not counted
                lap("masking")
                maybe_sync()  # device part: counted
                lap("forward")
            maybe_sync()  # optimizer: counted
            lap("optimizer")

        def synchronize(self):
            pass

    result = gpu_check.count_cuda_syncs(Runner())
    assert result["cuda_syncs_per_step"] == 3 and result["cuda_sync_lines"]
    assert modes[-1] == "default"  # left off afterwards


# --- the peak table, MFU and the attention kernel ------------------------------------------


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H100 80GB HBM3", 989.0),
    ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0),
    ("NVIDIA H200 NVL", 835.0),
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


def test_mfu_of_base_at_16384_words_on_an_h200():
    """The headline's arithmetic at its own sizes: `base`, V = 16,384, T = 128, B = 32, 15% of
    the tokens masked, 400,000 tokens/s on the H200's 989 TFLOP/s."""
    base = TrainConfig.parse({"preset": "base"}).model
    figures = gpu_check.throughput_figures(base, 16384, 128, 32, 0.15, 400_000.0,
                                           gpu_check.known_peak("NVIDIA H200")["flops"])
    d, L, f, c, e = 768, 12, 2560, base.cond_dim, base.time_embedding_dim
    dense = 6 * L * (5 * d * d + 3 * d * f)
    head = 6 * 0.15 * (d * d + d * 16384)
    attention = 12 * L * d * 128 + 12 * L * d * (2 * base.position_bucket_size - 1)
    table = 6 * L * (2 * base.position_bucket_size - 1) * 2 * d * d / (32 * 128)
    time_terms = 6 * (e * c + c * c + L * c * 6 * d) / 128
    per_token = dense + head + attention + table + time_terms
    assert figures["flops_per_token"] == pytest.approx(per_token)
    assert figures["mfu"] == pytest.approx(per_token * 400_000 / 989e12)


@pytest.mark.parametrize("names, kernel", [
    (["aten::scaled_dot_product_attention", "aten::_scaled_dot_product_efficient_attention",
      "aten::_efficient_attention_forward",
      "fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<...>::Params)",
      "fmha_cutlassB_bf16_aligned_64x64_k64_sm80(...)"], "efficient"),
    (["aten::_scaled_dot_product_flash_attention",
      "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, "
      "cutlass::bfloat16_t>, false, false, false, false, true, true, false, false>(pytorch_flash::Flash_fwd_params)"],
     "flash"),
    (["aten::_scaled_dot_product_cudnn_attention",
      "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0"], "cudnn"),
    (["cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_2_64x64x64_4x1x1_cga1x1x1_kernel0_0"], "cudnn"),
    (["aten::_scaled_dot_product_attention_math", "aten::_softmax",
      "void (anonymous namespace)::softmax_warp_forward<c10::BFloat16, c10::BFloat16, float, 7, false, false>(...)"],
     "math"),
    (["aten::baddbmm", "aten::_softmax", "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, "
      "float, float, at::native::(anonymous namespace)::SoftMaxForwardEpilogue>(float*, float const*, int)"], "math"),
    (["triton_per_fused__softmax_add_3"], "math"),
])
def test_the_attention_kernel_is_named(names, kernel):
    found = gpu_check.classify_attention(["aten::mm", "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_nn", *names])
    assert found["kernel"] == kernel, found
    assert found["evidence"]


def test_no_attention_kernel_is_said_so():
    # The loss's log-softmax is not attention.
    names = ["aten::mm", "aten::log_softmax", "aten::_log_softmax",
             "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, "
             "at::native::(anonymous namespace)::LogSoftMaxForwardEpilogue>(float*, float const*, int)"]
    found = gpu_check.classify_attention(names)
    assert found["kernel"] is None and found["kinds"] == [] and found["note"]
    assert gpu_check.classify_attention([])["kernel"] is None


def test_a_fused_kernel_wins_over_softmax_and_all_kinds_are_listed():
    found = gpu_check.classify_attention(["aten::_softmax", "fmha_cutlassB_bf16_aligned_64x64_k64_sm80",
                                          "aten::_scaled_dot_product_attention_math"])
    assert found["kernel"] == "efficient" and found["kinds"] == ["efficient", "math"]


# --- the concurrent and DDP verdicts -------------------------------------------------------


GB = 2**30


def worker(index, start, end, tokens=1_000_000, reserved=20 * GB, total=140 * GB):
    return {"index": index, "start_unix": start, "end_unix": end, "tokens": tokens,
            "tokens_per_s": tokens / (end - start), "max_memory_reserved": reserved, "total_memory": total}


def test_four_processes_at_once_under_their_share():
    workers = [worker(i, 100.0 + i * 0.1, 110.0 + i * 0.1) for i in range(4)]
    figures = gpu_check.concurrent_figures(workers, 4, 0.25, single_tokens_per_s=200_000.0)
    assert figures["status"] == "pass" and figures["error"] is None
    assert figures["all_overlap"] is True and figures["max_concurrent"] == 4
    assert figures["aggregate_tokens_per_s"] == pytest.approx(4_000_000 / 10.3)
    assert figures["aggregate_over_single"] == pytest.approx(4_000_000 / 10.3 / 200_000.0)
    assert figures["max_memory_reserved_share"] == [pytest.approx(20 / 140, abs=1e-4)] * 4


def test_concurrent_failures_are_named():
    over = [worker(i, 100.0, 110.0, reserved=36 * GB if i == 2 else 20 * GB) for i in range(4)]
    figures = gpu_check.concurrent_figures(over, 4, 0.25, None)
    assert figures["status"] == "fail" and "[2]" in figures["error"] and "aggregate_over_single" not in figures
    one_after_another = [worker(i, 100.0 + 20 * i, 110.0 + 20 * i) for i in range(4)]
    figures = gpu_check.concurrent_figures(one_after_another, 4, 0.25, None)
    assert figures["status"] == "fail" and "at most 1 at once" in figures["error"]
    missing = [worker(i, 100.0, 110.0) for i in range(3)] + [{"index": 3, "error": "exit 1, no result"}]
    figures = gpu_check.concurrent_figures(missing, 4, 0.25, None)
    assert figures["status"] == "fail" and figures["finished"] == 3 and "process 3" in figures["error"]


def test_ddp_verdict():
    rank = {"step": 30, "train_loss": 6.2, "weights_digest": "aa", "ema_digest": "bb"}
    assert gpu_check.ddp_verdict([{"rank": 0, **rank}, {"rank": 1, **rank}], 2, 30)["status"] == "pass"
    apart = gpu_check.ddp_verdict([{"rank": 0, **rank}, {"rank": 1, **rank, "weights_digest": "ab"}], 2, 30)
    assert apart["status"] == "fail" and apart["same_weights"] is False and "weights differ" in apart["error"]
    short = gpu_check.ddp_verdict([{"rank": 0, **rank}, {"rank": 1, "error": "exit 1: gloo timeout"}], 2, 30)
    assert short["status"] == "fail" and "gloo timeout" in short["error"]
    nan = gpu_check.ddp_verdict([{"rank": r, **rank, "train_loss": float("nan")} for r in range(2)], 2, 30)
    assert nan["status"] == "fail"


def test_parameter_digest_tells_weights_apart():
    a, b = two_models()
    assert gpu_check.parameter_digest(a) == gpu_check.parameter_digest(b)
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-6
    assert gpu_check.parameter_digest(a) != gpu_check.parameter_digest(b)


@pytest.mark.slow
def test_ddp_part_runs_two_gloo_ranks_on_the_cpu(tmp_path):
    """The DDP part's machinery (two processes, gloo over a file store on loopback, the loop's
    train_loop, the weight digests) on the CPU; on a GPU both ranks run on cuda:0."""
    done = run_script("--allow-cpu", "--parts", "ddp", "--ddp-steps", "2", "--out", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads(done.stdout)["parts"]["ddp"]
    assert ddp["status"] == "pass" and ddp["same_weights"] and ddp["same_ema_weights"]
    assert [r["step"] for r in ddp["ranks"]] == [2, 2] and {r["backend"] for r in ddp["ranks"]} == {"gloo"}


# --- the prepared script -------------------------------------------------------------------


def test_the_shell_scripts_are_valid_bash():
    for script in (SHELL_SCRIPT, ROOT / "benchmarks" / "gpu_wheels.sh"):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel of one module, as pip builds them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gcprobe-0.1-py3-none-any.whl"
    files = {"gcprobe.py": "VALUE = 7\n",
             "gcprobe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: gcprobe\nVersion: 0.1\n",
             "gcprobe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + "gcprobe-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("gcprobe-0.1.dist-info/RECORD", record)
    return path


@no_cuda
def test_the_prepared_script_installs_the_wheels_and_writes_its_results(tmp_path):
    """gpu_check.sh OUT_DIR: the wheels into a folder of their own, then the check with its log
    and summary in OUT_DIR; here, without a GPU, exit 3 and nothing measured."""
    tiny_wheel(tmp_path / "wheels")
    site, out = tmp_path / "site", tmp_path / "out"
    env = {**fake_nvidia_smi(tmp_path / "bin", "", status=9), "PYTHON": sys.executable,
           "GPU_CHECK_WHEELS": str(tmp_path / "wheels"), "GPU_CHECK_SITE": str(site)}
    done = subprocess.run(["bash", str(SHELL_SCRIPT), str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert (site / "gcprobe.py").exists()
    assert "1 wheels" in done.stderr
    assert "no GPU here: nothing measured" in (out / "gpu_check.log").read_text()
    assert json.loads((out / "summary.json").read_text())["exit"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "summary.json"]


def test_a_run_cut_short_keeps_what_it_measured(tmp_path):
    """The prepared script's hard limit ends the check mid-part: the part's process group is ended
    with it, and summary.json says which part was cut short ("complete": false, not ok)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_WHEELS": str(tmp_path / "none"),
           "GPU_CHECK_LIMIT_S": "12"}
    work = tmp_path / "work"
    done = subprocess.run(["bash", str(SHELL_SCRIPT), str(out), "--allow-cpu", "--parts", "headline",
                           "--micro-batches", "2,4,8,16", "--steps", "50", "--workdir", str(work)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 124, done.stdout[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["ok"] is False
    assert summary["parts"]["headline"]["status"] == "error"
    assert "ended from outside" in summary["parts"]["headline"]["error"]
    time.sleep(1)
    leftover = subprocess.run(["pgrep", "-f", f"--workdir {work}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""  # the part's process (which has --workdir) ended with the check


def test_the_prepared_script_wants_an_out_dir():
    done = subprocess.run(["bash", str(SHELL_SCRIPT)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr


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
