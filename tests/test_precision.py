"""precision = auto chooses bf16 only where the hardware multiplies bf16 natively."""

import pytest
import torch

from trainer.precision import autocast_for, cpu_flags, cpu_has_native_bf16, resolve_precision

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_bf16 fma
processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_bf16 fma
"""


def test_cpu_flags_are_read_from_cpuinfo():
    assert {"avx2", "avx512_bf16", "avx512f"} <= cpu_flags(CPUINFO)
    assert cpu_flags("processor: 0\n") == set()


def test_no_native_bf16_without_the_flags():
    assert not cpu_has_native_bf16({"avx2", "avx512f", "fma"})


def test_auto_is_bf16_only_on_a_native_bf16_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, native_cpu_bf16=True) == "bf16"
    assert resolve_precision("auto", cpu, native_cpu_bf16=False) == "fp32"
    assert resolve_precision("fp32", cpu, native_cpu_bf16=True) == "fp32"  # asked for: kept
    assert resolve_precision("bf16", cpu, native_cpu_bf16=False) == "bf16"
    with pytest.raises(ValueError):
        resolve_precision("fp16", cpu)


def test_autocast_matches_the_precision():
    cpu = torch.device("cpu")
    with autocast_for("bf16", cpu)():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with autocast_for("fp32", cpu)():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32
