"""A run described before it runs: `plan_run(config) -> RunPlan`.

Why it exists: every entry point used to assemble the same facts itself, each a little
differently (`python -m trainer.train`, a sweep's spec, its trials, its final training): prepare
the data, turn a word budget into steps, describe the pair split and the validation sample,
count the parameters, project the storage a checkpoint takes. A `RunPlan` is those facts, found
in one place, typed and frozen; the entry points print from it, record it (a sweep's
`DataRef` is the plan less its config) and start the training loop from it the same way
(`loop_arguments`, or `loop_config` where the arguments cross a process boundary).

Importing this module is light (no torch, no Ray): a sweep's `--help` imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.budget import resolve_max_steps
from trainer.config import TrainConfig

# One training state on disk: weights, EMA weights and the optimizer's two moments, float32.
CHECKPOINT_BYTES_PER_PARAMETER = 4 * 4


@dataclass(frozen=True)
class EvalSuite:
    """The BabyLM task files a run scores at every evaluation (trainer/zero_shot.py)."""

    folder: str
    items: dict[str, dict[str, int]]  # each task present -> {"tuning": n, "heldout": n} items scored
    skipped: tuple[str, ...]  # tasks with no folder there

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.items)


@dataclass(frozen=True)
class RunPlan:
    """One run's facts before it runs (see the module's docstring); `to_dict` is JSON and
    `from_dict` reads it back."""

    config: TrainConfig  # validated; with `evals_per_trial`, a word budget fixed to its steps
    data_root: str  # the prepared data
    data_hash: str  # its content hash
    vocab_size: int  # its tokenizer's
    pairs_dir: str | None
    pairs_split: dict[str, Any] | None  # the tuning / held-out split of the pairs (provenance)
    validation: dict[str, Any] | None  # which validation rows every evaluation scores
    eval_suite: EvalSuite | None
    total_steps: int
    parameters: int  # counted on the meta device

    @property
    def checkpoint_bytes(self) -> int:
        """One checkpoint on disk (weights, EMA, two optimizer moments; float32)."""
        return CHECKPOINT_BYTES_PER_PARAMETER * self.parameters

    def loop_arguments(self) -> dict:
        """`train_loop(**plan.loop_arguments(), out_dir=...)`: the config and the data it trains on."""
        return {"config": self.config, "data_root": self.data_root, "pairs_dir": self.pairs_dir}

    def loop_config(self) -> dict:
        """The same as plain data, for a worker in another process (`trainer.train.run_worker`)."""
        return {**self.loop_arguments(), "config": self.config.as_dict()}

    def with_config(self, config: TrainConfig) -> "RunPlan":
        """The plan of another config on the same data (a sweep's trial): its step budget and
        parameter count recomputed; the pair split, validation sample and evaluation items stay
        this plan's, which every trial of a sweep scores alike."""
        from trainer.data.prepare import open_prepared

        data = open_prepared(self.data_root)
        return dataclasses.replace(self, config=config, vocab_size=data.vocab_size,
                                   total_steps=resolve_max_steps(config, data.row_words()),
                                   parameters=parameter_count(config, data.vocab_size))

    def to_dict(self) -> dict:
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["config"] = self.config.as_dict()
        if self.eval_suite is not None:
            data["eval_suite"] = {**dataclasses.asdict(self.eval_suite), "skipped": list(self.eval_suite.skipped)}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunPlan":
        suite = data.get("eval_suite")
        return cls(**{**data, "config": TrainConfig.parse(data["config"]),
                      "eval_suite": EvalSuite(suite["folder"], dict(suite["items"]), tuple(suite["skipped"]))
                      if suite else None})


def plan_run(config: TrainConfig, cache_dir: str | Path | None = None, *, evals_per_trial: int | None = None,
             show_progress: bool = True) -> RunPlan:
    """Prepare (or reuse) the data of `config` and describe the run. Raises UserError (one line)
    for what the run would refuse: bad data, pairs or task files, a budget over max_epochs.

    `evals_per_trial` (a sweep): a word budget becomes the exact step count it means on this data,
    with that many evaluations, so the early-stopping scheduler and the ranking see real steps.
    Without it the config is kept as given (the loop turns `max_words` into the same steps)."""
    from trainer.data.pairs import load_pairs, split_description, split_pairs
    from trainer.data.sources import resolve_data
    from trainer.data.validation import validation_rows

    run_data = resolve_data(config, cache_dir, show_progress=show_progress)
    prepared = run_data.prepared
    row_words = prepared.row_words()
    if evals_per_trial is not None:
        config = resolve_step_budget(config, row_words, evals_per_trial)
    total_steps = resolve_max_steps(config, row_words)  # refuses over-long budgets
    pairs_split = None
    if run_data.pairs_dir:
        fraction = config.pairs_heldout_fraction
        pairs_split = split_description(*split_pairs(load_pairs(run_data.pairs_dir), fraction), fraction)
    return RunPlan(
        config=config,
        data_root=str(run_data.data_root),
        data_hash=prepared.content_hash,
        vocab_size=prepared.vocab_size,
        pairs_dir=str(run_data.pairs_dir) if run_data.pairs_dir else None,
        pairs_split=pairs_split,
        # One fixed sample over every *.dev file, the same for every run on this data.
        validation=validation_rows(prepared.source_rows("val"), config.val_rows, num_rates=config.val_mask_rates)[1],
        eval_suite=eval_suite(config),
        total_steps=total_steps,
        parameters=parameter_count(config, prepared.vocab_size),
    )


def resolve_step_budget(config: TrainConfig, row_words, evals_per_trial: int) -> TrainConfig:
    """With a word budget, fix max_steps (and the evaluation points) to the exact step count it
    means on this data, so the early-stopping scheduler and the ranking see real steps.
    Raises BudgetError for a budget over max_epochs."""
    steps = resolve_max_steps(config, row_words)
    if config.max_words is None:
        return config
    every = max(1, steps // max(1, evals_per_trial))
    data = config.as_dict()
    data.update(max_steps=steps, eval_every=every, checkpoint_every=every)
    return TrainConfig.parse(data)


def eval_suite(config: TrainConfig) -> EvalSuite | None:
    """The task files `config.eval_data` holds, as every evaluation will score them (None without)."""
    if config.eval_data is None:
        return None
    from trainer.zero_shot import load_suite

    suite = load_suite(config.eval_data, config.pairs_heldout_fraction, config.eval_items_per_uid)
    items = {task: {"tuning": len(suite.tuning[task]), "heldout": len(suite.heldout[task])} for task in suite.tuning}
    return EvalSuite(str(config.eval_data), items, tuple(suite.skipped))


def parameter_count(config: TrainConfig, vocab_size: int) -> int:
    """The model's parameters, counted on the meta device (shapes only, no memory)."""
    import torch

    from trainer.model import build_model, count_parameters

    with torch.device("meta"):
        return count_parameters(build_model(config.model, vocab_size))
