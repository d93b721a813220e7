"""Which evidence should early stopping decide on? `python benchmarks/rung_predictiveness.py`.

Trains pilot runs that span a space's main axis (default: derivative power p from 0 to 1 on the
bimodal Gaussian schedule, the default sweep's budget of 600 steps, evaluated every 100 steps on
every validation row and every tuning pair), then prints, for every candidate decision metric
at every evaluation step before the end, the rank agreement (Kendall's tau-b and Spearman's rho)
between the runs' values there and the final selection metric (`pairs_acc` at the full budget).
A decision metric is worth deciding on at a rung when that agreement is high: a scheduler that
stops the worst half there then rarely stops the eventual winner.

The paired forms of the metrics (a run's value minus a common reference on the same pairs,
rows and masks) rank the runs exactly as the metrics themselves do (subtracting one number from
every run changes no order), so their rank agreement is the same column; what pairing changes is
the noise of a *difference*, which matters for a stop that waits for significance, not for
a ranking.

Nothing here special-cases the built-in data: `--corpus`/`--pairs` run the pilot on yours.
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

sys.path.insert(0, str(common.ROOT))
from sweeps.stats import kendall_tau  # noqa: E402

# (metric, higher is better)
CANDIDATES = (("val_nelbo", False), ("val_acc", True), ("pairs_acc", True), ("train_loss", False))


def spearman(x, y) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(list(x)), ranks(list(y))
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx and vy else float("nan")


def pilot_run(value: float, work: Path, args) -> tuple[Path, subprocess.Popen] | None:
    """Start one pilot run (None when a completed one is already in `work`)."""
    out = work / f"{args.param}={value:g}"
    if (out / "metrics.jsonl").exists() and (out / "done").exists():
        return None
    command = [sys.executable, "-m", "trainer.train", "--out", str(out), "--no-progress", "--threads", "1",
               "--max-steps", str(args.max_steps), "--seed", str(args.seed),
               "--set", f"{args.param}={value}", "--set", f"eval_every={args.eval_every}",
               "--set", f"checkpoint_every={args.max_steps}", "--set", "interim_val_subsample=1",
               "--set", "eval_pairs_per_paradigm=null", *[f"--set={s}" for s in args.set]]
    if args.corpus:
        command += ["--corpus", args.corpus]
    if args.pairs:
        command += ["--pairs", args.pairs]
    return out, subprocess.Popen(command, cwd=common.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, env=common.own_ray_environment())


def run_pilots(values, work: Path, args) -> dict[float, list[dict]]:
    pending = list(values)
    running: list[tuple[float, Path, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            value = pending.pop(0)
            started = pilot_run(value, work, args)
            if started is None:
                continue
            running.append((value, *started))
        time.sleep(2)
        for item in list(running):
            value, out, process = item
            if process.poll() is None:
                continue
            running.remove(item)
            if process.returncode != 0:
                raise SystemExit(f"pilot {args.param}={value} failed:\n{process.stderr.read()[-2000:]}")
            (out / "done").write_text("")
            print(f"pilot {args.param}={value:g} done", flush=True)
    curves = {}
    for value in values:
        lines = (work / f"{args.param}={value:g}" / "metrics.jsonl").read_text().splitlines()
        curves[value] = [json.loads(line) for line in lines if line.strip()]
    return curves


def agreement_table(curves: dict[float, list[dict]], final_metric: str = "pairs_acc") -> list[dict]:
    finals = {v: c[-1][final_metric] for v, c in curves.items()}
    steps = sorted({r["step"] for c in curves.values() for r in c[:-1]})
    table = []
    for step in steps:
        for metric, higher in CANDIDATES:
            values = [v for v in curves if any(r["step"] == step and metric in r for r in curves[v])]
            if len(values) < 3:
                continue
            at = [next(r[metric] for r in curves[v] if r["step"] == step) * (1 if higher else -1) for v in values]
            final = [finals[v] for v in values]
            table.append({"step": step, "metric": metric, "runs": len(values),
                          "kendall_tau": kendall_tau(at, final), "spearman": spearman(at, final)})
    return table


def simulated_paired_stops(curves: dict[float, list[dict]], metric: str, alpha: float) -> list[dict]:
    """What `--scheduler paired` would decide at each rung, had the runs reached it in the order
    given (each compared with the best of those before it, as the scheduler does when trials
    arrive one after another; the last to arrive is compared with all the others): the rung, the
    run, the leader, z and whether it stops."""
    from statistics import NormalDist

    from sweeps.stats import paired_on_items

    decisions = []
    steps = sorted({r["step"] for c in curves.values() for r in c[:-1]})
    for step in steps:
        at = {v: next((r for r in c if r["step"] == step and "items" in r), None) for v, c in curves.items()}
        at = {v: r for v, r in at.items() if r is not None}
        higher = metric != "val_nelbo"
        for value, record in at.items():
            others = {v: r for v, r in at.items() if v != value}
            if not others:
                continue
            leader = (max if higher else min)(others, key=lambda v: others[v][metric])
            comparison = paired_on_items(metric, record["items"], others[leader]["items"])
            if comparison is None:
                continue
            z = comparison.z if higher else -comparison.z
            critical = NormalDist().inv_cdf(1 - alpha / len(others))
            decisions.append({"step": step, "run": value, "leader": leader, "z": float(z), "critical": critical,
                              "stops": bool(z < -critical)})
    return decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--param", default="derivative_power")
    parser.add_argument("--values", default="0,0.1,0.25,0.5,0.75,1.0")
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=["schedule=bimodal_gaussian"],
                        help="extra config field=value for every pilot run")
    parser.add_argument("--corpus")
    parser.add_argument("--pairs")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--work", default="runs/bench/rung_predictiveness", help="pilot runs (reused when complete)")
    args = parser.parse_args()
    values = [float(v) for v in args.values.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    curves = run_pilots(values, work, args)
    print(f"\npilots: {len(values)} runs, {(time.time() - start) / 60:.1f} min; machine {common.machine_info()}")
    print(f"\nfinal {'':>4} " + "  ".join(f"{args.param}={v:g}" for v in values))
    for metric in ("pairs_acc", "pairs_acc_heldout", "val_nelbo"):
        print(f"{metric:>18} " + "  ".join(f"{curves[v][-1].get(metric, float('nan')):.3f}" for v in values))
    print("\ncurves (pairs_acc / val_nelbo by step):")
    for value in values:
        print(f"  {args.param}={value:<5g} " + "  ".join(
            f"{r['step']}:{r.get('pairs_acc', float('nan')):.3f}/{r.get('val_nelbo', float('nan')):.2f}" for r in curves[value]))
    table = agreement_table(curves)
    common.print_table(table, [("step", "step", ""), ("metric", "decision metric", ""), ("runs", "runs", ""),
                               ("kendall_tau", "Kendall tau vs final pairs_acc", ".2f"),
                               ("spearman", "Spearman rho", ".2f")],
                       title="rank agreement with the final selection metric")
    for row in table:
        common.emit({"benchmark": "rung_predictiveness", **common.rounded(row)})
    print("\nwhat --scheduler paired would decide (each run against the best of all the others at that rung):")
    for metric in ("pairs_acc", "val_nelbo"):
        for alpha in (0.05, 0.01):
            decisions = simulated_paired_stops(curves, metric, alpha)
            stops = [f"{args.param}={d['run']:g}@{d['step']} (z {d['z']:.1f})" for d in decisions if d["stops"]]
            print(f"  on {metric}, alpha {alpha}: {len(stops)} stop(s): {', '.join(stops) or 'none'}")
            for d in decisions:
                common.emit({"benchmark": "rung_predictiveness_paired", "metric": metric, "alpha": alpha,
                             **common.rounded(d)})
    (work / "table.json").write_text(json.dumps({"values": values, "table": table,
                                                 "finals": {str(v): curves[v][-1] for v in values}}, indent=1))


if __name__ == "__main__":
    main()
