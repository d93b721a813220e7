"""What one Tune trial runs: the trial's TrainConfig, trained by the trainer's worker body.

Two runners, the same body (`trainer.train.run_worker`):
- `inline`: the body runs inside the trial's own process (one worker). A Ray Train worker
  group per trial costs ~20 s of start-up on a small machine (ray-verified.md), which for
  minute-long CPU trials is most of the wall time.
- `train`: the trial builds a `TorchTrainer` (DDP across `workers_per_trial` workers, GPUs when
  asked) whose workers report to Tune through `TuneReportCallback`.
`auto` (in run.py) picks `inline` for one CPU worker and `train` otherwise.
"""

from __future__ import annotations

from pathlib import Path

from search_spaces import apply_values
from sweeps.spec import SweepSpec
from trainer.config import TrainConfig

GRID_KEY = "grid_point"  # the whole parameter dict of a grid-search trial
# Seconds between a running trial's progress lines (step, loss, tokens/s) between evaluations.
PROGRESS_EVERY_S = 20.0


def progress_board_name(spec: SweepSpec) -> str:
    return f"mdlm-progress-{spec.name}"


class ProgressBoard:
    """A small actor between the trials and the driver (`ray.remote(num_cpus=0)` of it, named
    `progress_board_name(spec)`): trials post their progress between evaluations, which the
    driver drains and prints; the driver posts the CPU threads each trial may use, which a
    trial reads back with its next post (sweeps/tuning.py hands freed CPUs to the last trials)."""

    def __init__(self):
        self.posted: list[tuple[str, dict]] = []
        self.threads: dict[str, int] = {}

    def post(self, trial_id: str, record: dict) -> int | None:
        self.posted.append((trial_id, record))
        return self.threads.get(trial_id)

    def drain(self) -> list[tuple[str, dict]]:
        posted, self.posted = self.posted, []
        return posted

    def set_threads(self, threads: dict[str, int]) -> None:
        self.threads = dict(threads)


def trial_values(tune_config: dict) -> dict:
    """The searched values of a trial, whether sampled by Optuna or a grid point."""
    values = dict(tune_config)
    values.update(values.pop(GRID_KEY, None) or {})
    return values


def is_baseline(values: dict, spec: SweepSpec) -> bool:
    """Whether a trial's values are the base config's point of the space (fixed values, which a
    trial's values also carry, aside)."""
    baseline = spec.search.baseline
    return baseline is not None and all(values.get(k) == v for k, v in baseline.items())


def trial_config(tune_config: dict, spec: SweepSpec) -> TrainConfig:
    """The trial's config: the sweep's base config with the trial's values set."""
    return apply_values(spec.base_config, trial_values(tune_config))


def run_trial(tune_config: dict, *, spec: SweepSpec) -> None:
    """Tune trainable (wrapped with `tune.with_parameters(run_trial, spec=...)`)."""
    import ray
    from ray import tune

    plan = spec.plan.with_config(trial_config(tune_config, spec))
    context = tune.get_context()
    loop_config = {
        **plan.loop_config(),
        "out_dir": str(Path(context.get_trial_dir()) / "train"),
        "resume_from": None,
        "cpus_per_worker": spec.resources.cpus_per_worker,
        "gpus_per_worker": spec.resources.gpus_per_worker,
        # Reported as NaN when the run diverges: the objectives and what early stopping decides on
        # (Tune refuses a result without the metric its scheduler expects).
        "objectives": tuple(dict.fromkeys((*spec.objective_names, spec.decision.metric))),
        # Ray copies every reported checkpoint into the sweep's storage: the trial's own copy goes.
        "keep_reported_checkpoints": False,
        "progress": {"actor": progress_board_name(spec), "trial_id": context.get_trial_id(),
                     "every_s": PROGRESS_EVERY_S},
    }
    if spec.resources.runner == "inline":
        from trainer.train import run_worker

        node_id = ray.get_runtime_context().get_node_id()  # where the trial ran (multi-node checks)

        def report(metrics: dict, checkpoint_dir) -> None:
            ray_checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
            tune.report({**metrics, "node_id": node_id}, checkpoint=ray_checkpoint)

        run_worker(loop_config, report, tune.get_checkpoint())
        return

    from ray.tune.integration.ray_train import TuneReportCallback

    from trainer.train import build_torch_trainer

    # Same name and storage on a restored trial: Ray Train then resumes from the run's
    # latest checkpoint (Train V2 job-level recovery).
    trainer = build_torch_trainer(
        loop_config,
        workers=spec.resources.workers_per_trial,
        cpus_per_worker=spec.resources.worker_cpus,
        gpus_per_worker=spec.resources.gpus_per_worker,
        storage_path=spec.train_storage,
        name=f"train-{context.get_trial_id()}",
        callbacks=[TuneReportCallback()],
        max_failures=spec.resources.max_worker_failures,
    )
    trainer.fit()
