"""Run every benchmark: `python benchmarks/run.py [--quick] [--repeat 2] [--only NAME,...]`.

Each benchmark runs as its own process (a fresh interpreter, its own Ray), prints its table
and JSON lines as it goes; this script collects the JSON lines (every one has a `benchmark`
field), optionally appends them to `--out`, and with `--repeat N` runs each benchmark N times
back to back and prints the spread of the headline figures ((max - min) / mean), beside the
machine load, because the machines these run on are often shared.

Benchmarks, in order (cheapest first):
  throughput   trainer tokens/s and MFU per preset, the step taken apart      (tokens_per_s, mfu)
  masking      frequency-informed vs uniform masking step time                 (overhead_ratio)
  data         preparation, tokenisation, shard writing, loader vs trainer     (delivery_over_consumption)
  scale        BabyLM-sized preparation, 10M and 100M words (--quick: 10M)     (prepare_s, peak_rss_mb)
  sweep        share of a sweep's wall time in training, trial start-up        (train_share, trial_startup_s)
  first_run    the README's `python -m trainer.train`: pairs_acc and minutes   (pairs_acc, minutes_to_target)
  search       tokens to a near-optimal point: TPE+ASHA, random+ASHA vs grid   (tpe_asha_ratio)
Times on a 2-core CPU: --quick about 16 minutes in all; the full set about 88 minutes (scale
generates its corpora once, ~1 minute, kept in /tmp/mdlm-data-scale).

Not in this list, because it compares two versions of the code: `model_revision.py --reference
REV` times evaluation and a training step with trainer/model.py at REV against the working copy.
Nor those that need a checkout of another project: `reference_speed.py --reference-path` (the
reference implementation's training step beside ours) and `official_eval.py --pipeline-path` (the
official BabyLM 2026 pipeline on every revision of a run, beside our own pairs_acc, and AoA).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "throughput": "throughput.py",
    "masking": "masking_cost.py",
    "data": "data_throughput.py",
    "scale": "data_scale.py",
    "sweep": "sweep_overhead.py",
    "first_run": "first_run.py",
    "search": "search_efficiency.py",
}
# Headline figures per JSON line kind, and the fields that name one measurement.
HEADLINES = {
    "trainer_throughput": (("measure", "preset", "variant", "precision", "threads"), ("tokens_per_s", "mfu", "speedup")),
    "masking_cost": (("preset",), ("overhead_ratio", "masking_s_frequency", "step_s_uniform")),
    "data_throughput": ((), ("prepare_s", "tokenise_tokens_per_s", "write_mb_per_s", "delivery_over_consumption")),
    "data_scale": (("label",), ("prepare_s", "tokenizer_s", "encode_s", "peak_rss_mb", "second_prepare_s")),
    "sweep_overhead": (("runner",), ("train_share", "overhead_share", "trial_startup_s", "wall_s")),
    "search_efficiency": ((), ("tpe_asha_ratio", "random_asha_ratio")),
    "first_run": (("run", "trial"), ("pairs_acc", "minutes_to_target", "wall_minutes")),
}


def run_one(name: str, quick: bool, extra: list[str]) -> tuple[list[dict], float]:
    command = [sys.executable, str(HERE / BENCHMARKS[name])] + (["--quick"] if quick else []) + extra
    print(f"\n=== {name}: {' '.join(command[1:])}  (load {common.load_average()})", flush=True)
    start = time.time()
    process = subprocess.Popen(command, cwd=common.ROOT, stdout=subprocess.PIPE, text=True)
    records = []
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "benchmark" in record:
                records.append(record)
    if process.wait() != 0:
        print(f"=== {name} failed with exit code {process.returncode}", flush=True)
    return records, time.time() - start


def spread_rows(runs: list[list[dict]]) -> list[dict]:
    """One row per (measurement, headline figure) across the repeats."""
    grouped: dict[tuple, list[dict]] = {}
    for records in runs:
        for record in records:
            keys, _ = HEADLINES.get(record["benchmark"], ((), ()))
            ident = (record["benchmark"],) + tuple(str(record.get(k)) for k in keys)
            grouped.setdefault(ident, []).append(record)
    rows = []
    for ident, records in grouped.items():
        _, figures = HEADLINES.get(ident[0], ((), ()))
        for figure in figures:
            values = [r.get(figure) for r in records]
            stats = common.spread([v for v in values if isinstance(v, (int, float))])
            if not stats:
                continue
            rows.append({
                "what": "/".join(ident), "figure": figure, "runs": ", ".join(common.fmt(v, ".4g") for v in values),
                "spread_pct": 100 * stats["spread"], "loads": ", ".join(str(r.get("load", ["?"])[0]) for r in records),
            })
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short version of every benchmark")
    parser.add_argument("--only", help=f"comma list of {', '.join(BENCHMARKS)}")
    parser.add_argument("--repeat", type=int, default=1, help="run each benchmark this many times and report the spread")
    parser.add_argument("--out", help="append every JSON line to this file")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")

    all_runs: dict[str, list[list[dict]]] = {}
    durations: dict[str, list[float]] = {}
    for name in names:
        for _ in range(args.repeat):
            records, seconds = run_one(name, args.quick, [])
            all_runs.setdefault(name, []).append(records)
            durations.setdefault(name, []).append(seconds)
            if args.out:
                with open(args.out, "a") as handle:
                    for record in records:
                        handle.write(json.dumps(record) + "\n")

    print()
    common.print_table(
        [{"name": n, "runs": len(d), "seconds": ", ".join(f"{s:.0f}" for s in d)} for n, d in durations.items()],
        [("name", "benchmark", ""), ("runs", "runs", ""), ("seconds", "wall s", "")],
        title="benchmarks run" + (" (quick)" if args.quick else ""),
    )
    if args.repeat > 1:
        rows = [row for runs in all_runs.values() for row in spread_rows(runs)]
        common.print_table(
            rows,
            [("what", "measurement", ""), ("figure", "figure", ""), ("runs", "values", ""),
             ("spread_pct", "spread %", ".1f"), ("loads", "load (1 min)", "")],
            title="spread across repeats: (max - min) / mean",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
