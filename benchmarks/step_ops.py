"""Operators per training step, and those that would make a GPU wait on the host.

    python benchmarks/step_ops.py                          # tiny, small, base; AdamW and LAMB
    python benchmarks/step_ops.py --presets base --optimizers lamb --steps 2

Takes the loop's own step (`trainer.loop.train_step`, set up as `train_loop` sets it up, by
benchmarks/throughput.py's StepReplica) on the built-in corpus on this CPU under
benchmarks/op_count.py's dispatch-mode counter, after one warm-up step, and prints one JSON line
per preset and optimizer: aten operators per step (each one a kernel launch on a GPU, where an
eager step's host time grows with them), split into the device part (from a micro-batch's copy to
the device to the end of the step: forward, loss, backward, clipping, optimizer, EMA) and the
host part (rows, rates, masks), and the syncing operators of the device part (a GPU stalls on
each). Counts, not times: the same on any machine for a given code and config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import throughput  # noqa: E402
from op_count import OpCounter  # noqa: E402

import torch  # noqa: E402

from trainer.config import TrainConfig  # noqa: E402


# Operators that only make a view of a tensor (no kernel runs): counted apart.
VIEWS = {"view", "t", "transpose", "detach", "_unsafe_view", "expand", "reshape", "as_strided", "permute",
         "unsqueeze", "squeeze", "slice", "select", "alias", "split", "unbind", "split_with_sizes"}


def count_step_ops(config: TrainConfig, data_root, steps: int) -> dict:
    replica = throughput.StepReplica(config, data_root, "cpu")
    replica.step({})  # warm-up: optimizer state created, caches filled
    counter, host = OpCounter(), OpCounter()

    def lap(part: str) -> None:  # the device part runs from "masking" done to the next "data"
        if part == "masking":
            counter.active, host.active = True, False
        elif part == "data":
            counter.active, host.active = False, True

    with host, counter:
        for _ in range(steps):
            counter.active, host.active = False, True
            replica.state = throughput.loop.train_step(replica.setup, replica.state, replica.window, lap).state
    # The outer mode (host) sees each operator too: only count it where the device part is off.
    return {"device_ops_per_step": sum(counter.ops.values()) / steps,
            "device_compute_ops_per_step": sum(v for k, v in counter.ops.items() if k not in VIEWS) / steps,
            "host_ops_per_step": sum(host.ops.values()) / steps,
            "syncs_per_step": sum(counter.syncs.values()) / steps,
            "syncs": {k: v / steps for k, v in counter.syncs.items()},
            "top_device_compute_ops": {k: v / steps for k, v in counter.ops.most_common() if k not in VIEWS}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,small,base")
    parser.add_argument("--optimizers", default="adamw,lamb")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--micro-batch-size", type=int, default=8, help="rows per micro-batch (small: fast on a CPU)")
    parser.add_argument("--cache-dir", help="data cache (default: the trainer's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = common.builtin_data(args.cache_dir)
    for preset in args.presets.split(","):
        for optimizer in args.optimizers.split(","):
            config = TrainConfig.parse({"preset": preset, "optimizer": optimizer, "precision": "fp32",
                                        "batch_size": 2 * args.micro_batch_size,
                                        "micro_batch_size": args.micro_batch_size, "max_steps": 100})
            result = count_step_ops(config, data.data_root, args.steps)
            print(json.dumps({"preset": preset, "optimizer": optimizer, "micro_batches": 2, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
