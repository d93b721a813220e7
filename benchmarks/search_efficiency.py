"""Search efficiency: training tokens each searcher spends before it has trained a configuration
within a small tolerance of the grid-search optimum.

    python benchmarks/search_efficiency.py            # 3 schedules x 5 p, 48-step trials: ~18 min here
    python benchmarks/search_efficiency.py --quick    # 2 x 3 points, 12-step trials: ~4 min

The space is `bimodal_p`'s question widened to a small grid: schedule x derivative power p,
both categorical (so every searcher samples grid points). Steps:
1. Plain grid: a real sweep (`sweeps/run.py --search grid --scheduler none`, built-in corpus,
   metric `val_nelbo`) trains every point to the full budget; the trials' reports (step,
   `tokens`, val_nelbo at every evaluation) form a table. Its optimum is the reference, and its
   budget (every point x full steps) is what the other searchers are measured against.
2. TPE+ASHA and random+ASHA, several sampler seeds each: Ray Tune with the sweep's own
   `build_search` (OptunaSearch) and `build_scheduler('asha')`, over a trainable that replays
   the grid's reports for the sampled point instead of training it again. That is exact, not
   an approximation: the loop draws every random number from (seed, step), so a trial stopped
   at step s by ASHA has seen exactly what the grid's run saw up to s (checked below by
   retraining one point to its first evaluation). Trials run one at a time, so ASHA's
   decisions do not depend on timing.
3. Tokens to find: the `tokens` reported by every trial up to and including the first one that
   finishes its full budget with a final val_nelbo within `--tolerance` (relative) of the
   grid's best. Ratios are over the full grid's budget; a run that never gets there within
   `--samples` trials is counted as not found (its tokens spent are reported).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
METRIC, MODE = "val_nelbo", "min"

# Schedules whose loss weight depends on p: for `linear` (and `log_linear`) dm/du is constant,
# so p only rescales the loss by (1 - eps)^p and every p trains the same model.
FULL = {"schedules": ["bimodal_gaussian", "cosine", "gaussian"], "powers": [0.0, 0.1, 0.25, 0.5, 1.0], "steps": 48, "evals": 4, "seeds": 10}
QUICK = {"schedules": ["bimodal_gaussian", "cosine"], "powers": [0.0, 0.25, 1.0], "steps": 12, "evals": 2, "seeds": 3}
# Evaluation only needs val_nelbo here; a few pairs per paradigm keep each evaluation cheap.
EVAL_SETTINGS = ["eval_pairs_per_paradigm=5"]


def space_text(schedules: list[str], powers: list[float]) -> str:
    return (
        "description: 'benchmark grid: schedule x derivative power p, categorical so every searcher samples grid points'\n"
        "search:\n"
        f"  schedule: {{type: categorical, choices: [{', '.join(schedules)}]}}\n"
        f"  derivative_power: {{type: categorical, choices: [{', '.join(str(p) for p in powers)}]}}\n"
    )


def point_key(values: dict) -> tuple[str, float]:
    values = values.get("grid_point", values)
    return values["schedule"], float(values["derivative_power"])


# --------------------------------------------------------------------------------------
# 1. The grid, trained for real
# --------------------------------------------------------------------------------------


def run_grid(space_file: Path, plan: dict, storage: Path) -> tuple[dict, dict, float]:
    command = [
        sys.executable, "sweeps/run.py", "--space", str(space_file), "--search", "grid", "--scheduler", "none",
        "--max-steps", str(plan["steps"]), "--evals-per-trial", str(plan["evals"]), "--metric", METRIC, "--mode", MODE,
        "--runner", "inline", "--storage", str(storage), "--name", "grid", "--wandb-mode", "disabled", "--seed", "0",
    ]
    for item in EVAL_SETTINGS:
        command += ["--set", item]
    start = time.time()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=common.own_ray_environment())
    wall = time.time() - start
    if result.returncode != 0:
        raise SystemExit(f"grid sweep failed:\n{result.stderr[-3000:]}")
    table = {}
    for path in sorted((storage / "grid").glob("run_trial_*/result.json")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        table[point_key(lines[0]["config"])] = [
            {"step": r["step"], "tokens": r["tokens"], METRIC: r[METRIC]} for r in lines
        ]
    from sweeps.spec import SweepSpec

    return table, SweepSpec.load(str(storage / "grid")), wall


def check_replay(table: dict, spec) -> dict:
    """Retrain one grid point to its first evaluation here: same val_nelbo as the grid's?"""
    import torch

    from sweeps.trial import trial_config
    from trainer.loop import train_loop

    torch.set_num_threads(1)  # as the inline trial ran
    key = sorted(table)[0]
    config = trial_config({"schedule": key[0], "derivative_power": key[1]}, spec)
    first = table[key][0]
    reports: list[dict] = []
    with tempfile.TemporaryDirectory() as out:
        train_loop(config, spec.data.data_root, out, pairs_dir=spec.data.pairs_dir, show_progress=False,
                   report=lambda metrics, _: reports.append(metrics), stop_at_step=first["step"])
    return {"point": list(key), "step": first["step"], "grid": first[METRIC], "rerun": reports[-1][METRIC],
            "abs_diff": abs(first[METRIC] - reports[-1][METRIC])}


# --------------------------------------------------------------------------------------
# 2. Searchers over the replayed grid
# --------------------------------------------------------------------------------------


def replay_trial(config: dict, table: dict) -> None:
    from ray import tune

    started_at = time.time()  # trials run one at a time: this orders them
    for report in table[point_key(config)]:
        tune.report({**report, "started_at": started_at})


def run_searcher(search: str, seed: int, samples: int, space_file: Path, spec, table: dict, storage: Path) -> list[dict]:
    """One Tune run of `search`+ASHA; returns the trials in the order they ran, with their reports."""
    from ray import tune

    from search_spaces import load_space
    from sweeps.spec import Objective, SearchSettings, SpaceSpec
    from sweeps.tuning import build_scheduler, build_search

    replay = spec.with_changes(
        space=SpaceSpec.of(load_space(str(space_file))),
        search=SearchSettings(algorithm=search, scheduler="asha", seed=seed, num_samples=samples, max_concurrent=1),
        objectives=(Objective(metric=METRIC, mode=MODE),),
    )
    searcher, _ = build_search(replay)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(replay_trial, table=table), {"CPU": 1}),
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE, search_alg=searcher, scheduler=build_scheduler(replay),
            num_samples=samples, max_concurrent_trials=1, reuse_actors=True,
        ),
        run_config=tune.RunConfig(name=f"{search}-{seed}", storage_path=str(storage), verbose=0),
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        grid = tuner.fit()  # Tune's progress tables would bury this script's output
    trials = [
        {"point": point_key(result.config), "start": result.metrics["started_at"],
         "last_step": int(result.metrics["step"]), "tokens": int(result.metrics["tokens"])}
        for result in grid
    ]
    return sorted(trials, key=lambda t: t["start"])


def tokens_to_find(trials: list[dict], good: set, full_steps: int) -> tuple[int | None, int]:
    spent = 0
    for trial in trials:
        spent += trial["tokens"]
        if trial["last_step"] >= full_steps and trial["point"] in good:
            return spent, spent
    return None, spent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, help="sampler seeds per searcher (default 10; quick 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first sampler seed (a second run with new seeds: --first-seed 100)")
    parser.add_argument("--samples", type=int, help="trials per searcher run (default: the grid's size)")
    parser.add_argument("--tolerance", type=float, default=0.001,
                        help="relative distance to the grid's best val_nelbo that counts as found (default 0.1%%)")
    parser.add_argument("--no-check", action="store_true", help="skip retraining one point to check the replay")
    parser.add_argument("--save-table", help="write the grid's reports (and its sweep.json) to this JSON file")
    parser.add_argument("--load-table", help="replay a grid saved with --save-table instead of training one")
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    seeds = args.seeds or plan["seeds"]
    common.quiet_local_environment()
    load = common.load_average()
    started = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space_file = tmp / "search_grid.yaml"
        space_file.write_text(space_text(plan["schedules"], plan["powers"]))
        if args.load_table:
            # Replay a grid trained earlier (same plan): the searchers' part alone, in seconds.
            saved = json.loads(Path(args.load_table).read_text())
            table = {(k.split("|")[0], float(k.split("|")[1])): v for k, v in saved["table"].items()}
            from sweeps.spec import SweepSpec

            sweep, grid_wall = SweepSpec.model_validate(saved["sweep"]), saved["grid_wall_s"]
            space_file.write_text(space_text(sorted({k[0] for k in table}), sorted({k[1] for k in table})))
            plan["steps"] = max(r["step"] for reports in table.values() for r in reports)
        else:
            table, sweep, grid_wall = run_grid(space_file, plan, tmp / "sweeps")
        if args.save_table:
            Path(args.save_table).write_text(json.dumps({
                "table": {f"{k[0]}|{k[1]}": v for k, v in table.items()}, "sweep": json.loads(sweep.to_json()),
                "grid_wall_s": grid_wall}))
        check = None if (args.no_check or args.load_table) else check_replay(table, sweep)

        final = {key: reports[-1][METRIC] for key, reports in table.items()}
        best_key = min(final, key=final.get)
        best = final[best_key]
        good = {key for key, value in final.items() if value <= best + args.tolerance * abs(best)}
        full_tokens = max(r["tokens"] for reports in table.values() for r in reports)
        grid_budget = full_tokens * len(table)
        samples = args.samples or len(table)

        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        runs = {"tpe": [], "random": []}
        try:
            for search in runs:
                for seed in range(args.first_seed, args.first_seed + seeds):
                    trials = run_searcher(search, seed, samples, space_file, sweep, table, tmp / "replays")
                    found, spent = tokens_to_find(trials, good, plan["steps"])
                    runs[search].append({"seed": seed, "tokens_to_find": found, "tokens_spent": spent,
                                         "trials": len(trials), "full_budget_trials": sum(t["last_step"] >= plan["steps"] for t in trials)})
        finally:
            ray.shutdown()

    # Grid in a random order: the first of k good points among G sits at (G + 1) / (k + 1) on average.
    grid_random_order = (len(table) + 1) / (len(good) + 1) * full_tokens
    record = {
        "benchmark": "search_efficiency",
        "grid_points": len(table),
        "steps_per_trial": plan["steps"],
        "evals_per_trial": plan["evals"],
        "metric": METRIC,
        "tolerance": args.tolerance,
        "grid_best": {"point": list(best_key), METRIC: best},
        "good_points": sorted([list(k) for k in good]),
        "grid_final": {f"{k[0]}/p={k[1]}": v for k, v in sorted(final.items())},
        "grid_budget_tokens": grid_budget,
        "grid_random_order_tokens": grid_random_order,
        "grid_random_order_ratio": grid_random_order / grid_budget,
        "grid_wall_s": grid_wall,
        "seeds": seeds,
        "first_seed": args.first_seed,
        "samples_per_run": samples,
        "replay_check": check,
        "load": load,
        "load_end": common.load_average(),
        "wall_s": time.time() - started,
    }
    for search, results in runs.items():
        found = [r["tokens_to_find"] for r in results if r["tokens_to_find"] is not None]
        # A run that never trained a good point counts as never finding it: the median over
        # all runs is then infinite (reported as null) when half or more of them failed.
        every = sorted(r["tokens_to_find"] if r["tokens_to_find"] is not None else float("inf") for r in results)
        median = statistics.median(every)
        record[search] = {
            "found": len(found),
            "runs": len(results),
            "median_tokens_to_find": median if median != float("inf") else None,
            "median_ratio": median / grid_budget if median != float("inf") else None,
            "mean_ratio_found": statistics.mean(found) / grid_budget if found else None,
            "max_ratio_found": max(found) / grid_budget if found else None,
            "per_seed": results,
        }
    record["tpe_asha_ratio"] = record["tpe"]["median_ratio"]
    record["random_asha_ratio"] = record["random"]["median_ratio"]
    record["target_met"] = bool(record["tpe_asha_ratio"] is not None and record["tpe_asha_ratio"] < 0.5)

    common.print_table(
        [{"point": f"{k[0]} p={k[1]}", "value": v, "good": "*" if k in good else ""} for k, v in sorted(final.items(), key=lambda kv: kv[1])],
        [("point", "grid point", ""), ("value", f"final {METRIC}", ".4f"), ("good", f"within {args.tolerance:.2%}", "")],
        title=f"grid: {len(table)} points x {plan['steps']} steps ({full_tokens:,} tokens each), {grid_wall:.0f} s, load {load[0]}",
    )
    rows = [{"searcher": "grid (all points)", "found": "-", "tokens": grid_budget, "ratio": 1.0},
            {"searcher": "grid (random order, expected)", "found": "-", "tokens": grid_random_order,
             "ratio": record["grid_random_order_ratio"]}]
    for search in runs:
        r = record[search]
        rows.append({"searcher": f"{search}+asha", "found": f"{r['found']}/{r['runs']}", "tokens": r["median_tokens_to_find"],
                     "ratio": r["median_ratio"], "max_ratio": r["max_ratio_found"]})
    common.print_table(
        rows,
        [("searcher", "searcher", ""), ("found", "found", ""), ("tokens", "median tokens to find", ",.0f"),
         ("ratio", "x grid budget", ".3f"), ("max_ratio", "worst seed that found", ".3f")],
        title=f"tokens until a point within {args.tolerance:.2%} of the grid's best is trained to the end "
              f"({seeds} seeds, {samples} trials per run)",
    )
    if check:
        print(f"replay check: {check['point']} at step {check['step']}: grid {check['grid']:.6f}, "
              f"retrained {check['rerun']:.6f} (|diff| {check['abs_diff']:.2e})")
    common.emit(common.rounded(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
