"""What frequency-informed masking costs: step time against uniform masking, all else equal.

    python benchmarks/masking_cost.py [--quick] [--preset tiny] [--power 0.5]

Two runs of train_loop's own step (`throughput.StepReplica`, which calls
`trainer.loop.train_step`), identical but for `frequency_power` (0 = uniform; q > 0 with
the curriculum off, so every step takes the frequency path), take turns step by step so
both see the same machine load. Reported:
- overhead_ratio: median frequency-informed step time / median uniform step time (target < 1.05);
- the masking part alone (the loop's masking lines on one micro-batch, many repetitions),
  which gives the same overhead with far less noise: (freq - uniform masking) / uniform step;
- with `--reference REV` (default HEAD, when trainer/masking.py differs from it): the
  committed `masking_probabilities` against the working copy, timed on the same batches and
  checked for bit-for-bit equal output.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import throughput  # noqa: E402  (sets the quiet environment, imports the trainer)

import torch  # noqa: E402

import trainer.masking as masking  # noqa: E402
from trainer.data.dataset import TokenShard  # noqa: E402
from trainer.data.tokenizer import MASK_ID, NUM_SPECIAL_TOKENS  # noqa: E402
from trainer.schedules import ScheduleParams, sample_schedule  # noqa: E402


def interleaved_steps(config_uniform, config_frequency, data_root, warmup: int, pairs: int) -> dict:
    replicas = {
        "uniform": throughput.StepReplica(config_uniform, data_root, "cpu"),
        "frequency": throughput.StepReplica(config_frequency, data_root, "cpu"),
    }
    times = {name: [] for name in replicas}
    for i in range(warmup + pairs):
        # Alternate which goes first, so neither always follows the other's cache state.
        order = ("uniform", "frequency") if i % 2 == 0 else ("frequency", "uniform")
        for name in order:
            parts: dict[str, float] = {}
            replicas[name].step(parts)
            if i >= warmup:
                times[name].append(parts)
    return times


def masking_part(ids, weights, schedule, power: float, reps: int, fn=None) -> float:
    """Median seconds of the loop's masking lines on one micro-batch (blocks of 10 calls)."""
    probabilities = fn or masking.masking_probabilities
    blocks = []
    for block in range(max(reps // 10, 3)):
        start = time.perf_counter()
        for i in range(10):
            generator = torch.Generator().manual_seed(block * 10 + i)
            rates, _ = sample_schedule(len(ids), schedule, 0.3, generator)
            maskable = masking.maskable_positions(ids, NUM_SPECIAL_TOKENS)
            probs = probabilities(ids, rates, maskable, weights, power)
            _, masked = masking.apply_mask(ids, probs, MASK_ID, generator)
            masking.masked_fraction(masked, maskable)
        blocks.append((time.perf_counter() - start) / 10)
    return statistics.median(blocks)


def probabilities_only(fn, ids, weights, power: float, reps: int) -> float:
    maskable = masking.maskable_positions(ids, NUM_SPECIAL_TOKENS)
    rates = torch.linspace(0.01, 0.99, len(ids))
    blocks = []
    for _ in range(max(reps // 10, 3)):
        start = time.perf_counter()
        for _ in range(10):
            fn(ids, rates, maskable, weights, power)
        blocks.append((time.perf_counter() - start) / 10)
    return statistics.median(blocks)


def load_reference(revision: str):
    """trainer/masking.py as committed at `revision`, as a module (None if identical or absent)."""
    try:
        text = subprocess.run(
            ["git", "show", f"{revision}:trainer/masking.py"], cwd=common.ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    if text == Path(masking.__file__).read_text():
        return None
    return common.import_source(text, "masking_reference")


def equal_outputs(reference, ids_list, weights) -> bool:
    """Bit-for-bit equal probabilities on every batch, rate spread and power tried."""
    for ids in ids_list:
        maskable = masking.maskable_positions(ids, NUM_SPECIAL_TOKENS)
        for rates in (torch.linspace(0.001, 0.999, len(ids)), torch.rand(len(ids)), torch.full((len(ids),), 0.3)):
            for power in (0.0, 0.02, 0.5, 1.0, 3.0):
                for w in (weights, None):
                    a = reference.masking_probabilities(ids, rates, maskable, w, power)
                    b = masking.masking_probabilities(ids, rates, maskable, w, power)
                    if not torch.equal(a, b):
                        return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--power", type=float, default=0.5, help="frequency_power q of the frequency-informed run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a sweep trial)")
    parser.add_argument("--reference", default="HEAD", help="git revision of trainer/masking.py to compare with")
    parser.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, pairs, reps = (1, 3, 100) if args.quick else (2, 10, 500)

    data_root = common.builtin_data(args.cache_dir).data_root
    load = common.load_average()
    base = throughput.bench_config(args.preset, pairs, warmup, 32, frequency_curriculum=False)
    uniform = base.model_copy(update={"frequency_power": 0.0})
    frequency = base.model_copy(update={"frequency_power": args.power})
    steps = interleaved_steps(uniform, frequency, data_root, warmup, pairs)
    step_s = {name: statistics.median(sum(t.values()) for t in runs) for name, runs in steps.items()}
    part_s = {name: statistics.median(t["masking"] for t in runs) for name, runs in steps.items()}

    # The masking lines alone, on real rows of the built-in corpus.
    from trainer.data.dataset import load_frequencies
    from trainer.data.prepare import open_prepared

    data = open_prepared(data_root)
    rows = TokenShard(data.train_path)
    ids = torch.from_numpy(rows.rows(range(base.micro_batch_size)))
    weights = masking.token_weights(*load_frequencies(data.frequencies_path), "rank", NUM_SPECIAL_TOKENS)
    schedule = ScheduleParams.from_config(base)
    micro = {}
    for name, power in (("uniform", 0.0), ("frequency", args.power), ("uniform2", 0.0), ("frequency2", args.power)):
        micro[name] = masking_part(ids, weights, schedule, power, reps)
    micro_uniform = min(micro["uniform"], micro["uniform2"])
    micro_frequency = min(micro["frequency"], micro["frequency2"])

    record = {
        "benchmark": "masking_cost",
        "preset": args.preset,
        "frequency_power": args.power,
        "threads": torch.get_num_threads(),
        "steps": pairs,
        "step_s_uniform": step_s["uniform"],
        "step_s_frequency": step_s["frequency"],
        "overhead_ratio": step_s["frequency"] / step_s["uniform"],
        "masking_s_uniform": micro_uniform,
        "masking_s_frequency": micro_frequency,
        "masking_part_in_step_s": part_s,
        # The same overhead from the masking lines timed alone: far less noisy than whole steps.
        "overhead_pct_from_parts": 100.0 * (micro_frequency - micro_uniform) / step_s["uniform"],
        "masking_share_of_step": micro_frequency / step_s["frequency"],
        "target_met": step_s["frequency"] / step_s["uniform"] < 1.05,
        "load": load,
        "load_end": common.load_average(),
    }

    reference = load_reference(args.reference)
    if reference is not None:
        batches = [torch.from_numpy(rows.rows(range(s, s + base.micro_batch_size))) for s in (0, 64, 640)]
        times = {"reference": [], "current": []}
        for _ in range(2):  # interleaved, twice
            times["reference"].append(probabilities_only(reference.masking_probabilities, ids, weights, args.power, reps))
            times["current"].append(probabilities_only(masking.masking_probabilities, ids, weights, args.power, reps))
        record["masking_probabilities_vs_reference"] = {
            "reference": args.reference,
            "reference_s": min(times["reference"]),
            "current_s": min(times["current"]),
            "speedup": min(times["reference"]) / min(times["current"]),
            "bit_identical": equal_outputs(reference, batches, weights),
        }

    common.print_table(
        [{"mode": "uniform", "step": 1000 * step_s["uniform"], "mask_in_step": 1000 * part_s["uniform"],
          "mask_alone": 1000 * micro_uniform, "ratio": 1.0},
         {"mode": f"frequency q={args.power}", "step": 1000 * step_s["frequency"],
          "mask_in_step": 1000 * part_s["frequency"], "mask_alone": 1000 * micro_frequency,
          "ratio": record["overhead_ratio"], "pct_parts": record["overhead_pct_from_parts"]}],
        [("mode", "masking", ""), ("step", "step ms", ".1f"), ("mask_in_step", "masking in step ms", ".3f"),
         ("mask_alone", "masking alone ms", ".3f"), ("ratio", "step ratio", ".4f"),
         ("pct_parts", "extra % from masking alone", ".4f")],
        title=f"frequency-informed vs uniform masking ({args.preset}, {pairs} interleaved step pairs, "
              f"load {load[0]}; target ratio < 1.05)",
    )
    if "masking_probabilities_vs_reference" in record:
        ref = record["masking_probabilities_vs_reference"]
        print(f"masking_probabilities: {args.reference} {1000 * ref['reference_s']:.3f} ms -> working copy "
              f"{1000 * ref['current_s']:.3f} ms ({ref['speedup']:.2f}x), bit-identical: {ref['bit_identical']}")
    common.emit(common.rounded(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
