"""A training step waits on the host nowhere (issue: ready for the GPU).

On a GPU, an operator whose output size or value the host must read (a boolean-mask gather,
`nonzero`, `.item()`, `bool(tensor)`) stalls the host until the device catches up. The step's
host-side work (reading rows, sampling rates, masking, on CPU tensors before the copy to the
device) may use them; from the copy on, nothing may. benchmarks/op_count.py counts the operators
a CPU run dispatches (the same ones a GPU run would); the step's own `lap` marks tell where its
device part starts ("masking" done) and ends (the next micro-batch's "data")."""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import loop
from trainer.data.dataset import TokenShard, load_frequencies
from trainer.data.prepare import open_prepared
from trainer.data.tokenizer import NUM_SPECIAL_TOKENS, PAD_ID
from trainer.masking import token_weights
from trainer.optim import build_optimizer
from trainer.schedules import ScheduleParams

from test_loop import prepared, small_config  # noqa: F401  (the fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from op_count import OpCounter  # noqa: E402


def step_setup(data, config):
    counts, ranks = load_frequencies(data.frequencies_path)
    torch.manual_seed(config.seed)
    model = loop.build_model(config.model, data.vocab_size)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return loop.StepSetup(config, model, ema, build_optimizer(model, config), ScheduleParams.from_config(config),
                          token_weights(counts, ranks, config.frequency_weighting, NUM_SPECIAL_TOKENS),
                          TokenShard(data.train_path), loop.autocast_factory("fp32", torch.device("cpu")),
                          torch.device("cpu"), total_steps=config.max_steps,
                          accumulation=config.batch_size // config.micro_batch_size)


def device_part_ops(setup, steps: int) -> OpCounter:
    """The operators of `steps` steps' device parts (from each micro-batch's copy to the device
    to the end of the step)."""
    counter = OpCounter()

    def lap(part: str) -> None:
        if part == "masking":
            counter.active = True
        elif part == "data":
            counter.active = False

    state, window = loop.LoopState(), loop.Window(torch.zeros(()))
    with counter:
        counter.active = False
        for _ in range(steps):
            state = loop.train_step(setup, state, window, lap).state
            counter.active = False
    return counter


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_no_operator_of_a_step_waits_on_the_host(prepared, optimizer):  # noqa: F811
    data, _ = prepared
    config = small_config(optimizer=optimizer, max_steps=6)
    counter = device_part_ops(step_setup(data, config), steps=3)
    assert sum(counter.ops.values()) > 100  # the counter saw the step (forward, backward, optimizer)
    assert not counter.syncs, dict(counter.syncs)


def test_padding_is_decided_on_the_host(prepared):  # noqa: F811
    """Rows with padding still mask their padded keys (the model gets the mask); rows without
    get none (no [B, H, T, T] mask pass), and either way nothing syncs."""
    data, _ = prepared
    config = small_config(max_steps=4)
    setup = step_setup(data, config)
    rows = TokenShard(data.train_path)
    seen = []
    forward = setup.model.forward

    def spy(input_ids, attention_mask=None, *args, **kwargs):
        seen.append(attention_mask)
        return forward(input_ids, attention_mask, *args, **kwargs)

    setup.model.forward = spy
    padded = rows.rows(np.arange(rows.num_rows))
    padded[:, -3:] = PAD_ID  # every row ends in padding
    setup.train_rows = type("Rows", (), {"num_rows": rows.num_rows, "rows": lambda self, i: padded[i]})()
    counter = device_part_ops(setup, steps=1)
    assert seen and all(m is not None and not bool(m.all()) for m in seen) and not counter.syncs
    seen.clear()
    setup.train_rows = type("Rows", (), {"num_rows": rows.num_rows,
                                         "rows": lambda self, i: np.maximum(padded[i], NUM_SPECIAL_TOKENS)})()
    device_part_ops(setup, steps=1)
    assert seen and all(m is None for m in seen)
