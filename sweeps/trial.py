"""What one Tune trial runs: the trial's TrainConfig, trained by the shared training loop.

Two runners, the same loop:
- `inline`: the loop runs inside the trial's own process (one worker). A Ray Train worker
  group per trial costs ~20 s of start-up on a small machine (ray-verified.md), which for
  minute-long CPU trials is most of the wall time.
- `train`: the trial builds a `TorchTrainer` (DDP across `workers_per_trial` workers, GPUs when
  asked) whose workers report to Tune through `TuneReportCallback`.
`auto` picks `inline` for one CPU worker and `train` otherwise.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from search_spaces import apply_values
from trainer.config import TrainConfig

GRID_KEY = "grid_point"  # the whole parameter dict of a grid-search trial


def trial_config(trial_values: dict, base_config: dict) -> TrainConfig:
    """The trial's config: the sweep's base config with the sampled values set."""
    values = dict(trial_values)
    values.update(values.pop(GRID_KEY, None) or {})
    return apply_values(TrainConfig.parse(base_config), values)


def objective_names(sweep: dict) -> tuple[str, ...]:
    return tuple(m for m, _ in sweep.get("objectives") or [[sweep["metric"], sweep["mode"]]])


def run_trial(trial_values: dict, *, sweep: dict) -> None:
    """Tune trainable (wrapped with `tune.with_parameters(run_trial, sweep=...)`)."""
    import ray
    import torch
    from ray import tune

    from trainer.loop import TrainingDiverged

    config = trial_config(trial_values, sweep["base_config"])
    context = tune.get_context()
    trial_dir = Path(context.get_trial_dir())
    loop_config = {
        "config": config.as_dict(),
        "data_root": sweep["data_root"],
        "pairs_dir": sweep["pairs_dir"],
        "out_dir": str(trial_dir / "train"),
        "resume_from": None,
        "cpus_per_worker": sweep["cpus_per_worker"],
        "objectives": objective_names(sweep),
    }
    if sweep["runner"] == "inline":
        from trainer.loop import train_loop

        torch.set_num_threads(max(1, int(sweep["cpus_per_worker"])))
        checkpoint = tune.get_checkpoint()
        resume_context = checkpoint.as_directory() if checkpoint else nullcontext(None)

        node_id = ray.get_runtime_context().get_node_id()  # where the trial ran (multi-node checks)

        def report(metrics: dict, checkpoint_dir) -> None:
            ray_checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
            tune.report({**metrics, "node_id": node_id}, checkpoint=ray_checkpoint)

        with resume_context as resume_from:
            try:
                train_loop(
                    config,
                    sweep["data_root"],
                    loop_config["out_dir"],
                    pairs_dir=sweep["pairs_dir"],
                    resume_from=resume_from,
                    report=report,
                    show_progress=False,
                )
            except TrainingDiverged as exc:
                # A finished trial with a reason and no score: not retried (it would diverge
                # again), and the searcher records it as pruned.
                report(exc.as_metrics(objective_names(sweep)), None)
        return

    from ray.tune.integration.ray_train import TuneReportCallback

    from trainer.train import build_torch_trainer

    # Same name and storage on a restored trial: Ray Train then resumes from the run's
    # latest checkpoint (Train V2 job-level recovery).
    trainer = build_torch_trainer(
        loop_config,
        workers=sweep["workers_per_trial"],
        cpus_per_worker=sweep["worker_cpus"],
        gpus_per_worker=sweep["gpus_per_worker"],
        storage_path=sweep["train_storage"],
        name=f"train-{context.get_trial_id()}",
        callbacks=[TuneReportCallback()],
        max_failures=sweep.get("max_worker_failures", 0),
    )
    trainer.fit()
