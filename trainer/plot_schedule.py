"""`python -m trainer.plot_schedule`: print and plot a noise schedule, to see what a sweep searches.

    python -m trainer.plot_schedule --schedule bimodal_gaussian --derivative-power 0.1 --out schedule.png
    python -m trainer.plot_schedule --config best_config.json

Prints the mask-rate distribution (mean, quantiles) and the loss weight at those rates;
the PNG shows the mask-rate density, the weight against the mask rate, and — for the
bimodal schedule — how the density moves over training as the right mode drifts.
"""

from __future__ import annotations

import argparse
import sys

import torch

from trainer.cli import ArgumentParser
from trainer.config import SCHEDULES, ConfigError, TrainConfig
from trainer.schedules import ScheduleParams, loss_weight, mask_rate_and_derivative

PROGRESS_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def schedule_table(params: ScheduleParams, nodes: int = 200_000) -> list[dict]:
    """Mean and quantiles of m and the weight at each quantile, at several training progresses."""
    u = (torch.arange(nodes, dtype=torch.float64) + 0.5) / nodes
    rows = []
    points = PROGRESS_POINTS if params.schedule == "bimodal_gaussian" else (0.0,)
    for progress in points:
        m, dm = mask_rate_and_derivative(u, params, progress)
        w = loss_weight(m, dm, params.derivative_power)
        q = torch.quantile(m[::10], torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
        order = torch.argsort(m)
        w_sorted = w[order]
        rows.append(
            {
                "progress": progress,
                "mean_rate": float(m.mean()),
                "q05": float(q[0]),
                "median": float(q[1]),
                "q95": float(q[2]),
                "weight_at_q05": float(w_sorted[int(0.05 * nodes)]),
                "weight_at_median": float(w_sorted[nodes // 2]),
                "weight_at_q95": float(w_sorted[int(0.95 * nodes)]),
            }
        )
    return rows


def plot(params: ScheduleParams, out: str, nodes: int = 200_000) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    u = (torch.arange(nodes, dtype=torch.float64) + 0.5) / nodes
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    m, dm = mask_rate_and_derivative(u, params, 0.0)
    axes[0].hist(m.numpy(), bins=100, range=(0, 1), density=True, color="tab:blue")
    axes[0].set(title=f"{params.schedule}: mask-rate density", xlabel="mask rate m", ylabel="density")
    # Points, not a line: with two components the weight is not a function of m alone.
    for p in sorted({0.0, params.derivative_power, 1.0}):
        axes[1].scatter(m[::50].numpy(), loss_weight(m, dm, p)[::50].numpy(), s=2, label=f"p = {p:g}")
    axes[1].set(title="loss weight |alpha'|^p / m", xlabel="mask rate m", ylabel="weight", yscale="log")
    axes[1].legend()
    if params.schedule == "bimodal_gaussian":
        for progress in PROGRESS_POINTS:
            mp, _ = mask_rate_and_derivative(u, params, progress)
            axes[2].hist(mp.numpy(), bins=100, range=(0, 1), density=True, histtype="step", label=f"progress {progress:.2f}")
        axes[2].set(title="bimodal density over training", xlabel="mask rate m")
        axes[2].legend()
    else:
        axes[2].plot(u.numpy()[::100], m.numpy()[::100])
        axes[2].set(title="mask rate against u", xlabel="u", ylabel="m")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m trainer.plot_schedule", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="take the schedule fields from a config JSON")
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--derivative-power", type=float)
    parser.add_argument("--out", default="schedule.png", help="PNG to write ('' for none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = TrainConfig.from_json_file(args.config) if args.config else TrainConfig()
        overrides = {}
        if args.schedule:
            overrides["schedule"] = args.schedule
        if args.derivative_power is not None:
            overrides["derivative_power"] = args.derivative_power
        config = TrainConfig.parse({**config.as_dict(), **overrides})
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = ScheduleParams.from_config(config)
    print(f"schedule {params.schedule}, derivative power p = {params.derivative_power:g}")
    print(f"{'progress':>8} {'mean m':>7} {'m q05':>7} {'median':>7} {'m q95':>7} {'w@q05':>9} {'w@median':>9} {'w@q95':>9}")
    for row in schedule_table(params):
        print(
            f"{row['progress']:>8.2f} {row['mean_rate']:>7.3f} {row['q05']:>7.3f} {row['median']:>7.3f} {row['q95']:>7.3f}"
            f" {row['weight_at_q05']:>9.3g} {row['weight_at_median']:>9.3g} {row['weight_at_q95']:>9.3g}"
        )
    if args.out:
        plot(params, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
