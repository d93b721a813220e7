"""Training state on disk: the one writer and the one reader of checkpoints.

A checkpoint is a folder `checkpoints/step_<N>/` holding `state.pt` (raw and EMA weights,
optimizer state, step, data position, RNG states, the config, and where the data came from)
and a readable `config.json`. It is written to a temporary folder and renamed into place,
so a reader never sees half of one. The loop writes them; resuming, the exporters and final
training read them through `load_checkpoint`, which takes a `state.pt`, a checkpoint folder
or a run folder (its latest checkpoint).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from trainer.config import TrainConfig
from trainer.errors import UserError

CHECKPOINT_FILE = "state.pt"
REQUIRED_KEYS = {"model", "ema", "optimizer", "step", "config"}
# What a resumed run must share with the run that wrote the checkpoint: the weights'
# shapes, the optimizer state's meaning, and the data position's meaning. (Budget,
# learning rate and evaluation settings may change: extending a run is legitimate.)
RESUME_MUST_MATCH = ("model", "optimizer", "vocab_size", "seq_length", "batch_size", "corpus", "seed")


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or cannot continue this run; one line."""


def save_checkpoint(path: Path, *, model: dict, ema: dict, optimizer: dict, step: int, position: dict,
                    config: TrainConfig, data: dict | None = None) -> Path:
    """Write a checkpoint folder atomically (temporary folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "model": model,
            "ema": ema,
            "optimizer": optimizer,
            "step": step,
            "position": position,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
            "config": config.as_dict(),
            # Where the tokens came from, so a checkpoint copied away from its run can still
            # be exported with its own tokenizer (and its data checked by hash).
            **(data or {}),
        },
        tmp / CHECKPOINT_FILE,
    )
    (tmp / "config.json").write_text(config.to_json())
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def checkpoint_folders(run: Path) -> list[Path]:
    """A run folder's finished checkpoints, oldest first (temporary leftovers skipped)."""
    return _step_folders(Path(run) / "checkpoints")


def _step_folders(checkpoints: Path) -> list[Path]:
    found = []
    for folder in Path(checkpoints).glob("step_*"):
        number = folder.name.removeprefix("step_")
        if number.isdigit() and (folder / CHECKPOINT_FILE).is_file():
            found.append((int(number), folder))
    return [folder for _, folder in sorted(found)]


def checkpoint_file(source: Path) -> Path:
    """The state.pt of a state.pt, a checkpoint folder, or a run folder (its latest checkpoint)."""
    source = Path(source)
    if source.is_file():
        return source
    if (source / CHECKPOINT_FILE).is_file():
        return source / CHECKPOINT_FILE
    if not source.exists():
        raise CheckpointError(f"no checkpoint at {source} (it does not exist)")
    folders = checkpoint_folders(source)
    if not folders:
        raise CheckpointError(f"no checkpoint at {source}: not a run folder (no checkpoints/step_*/{CHECKPOINT_FILE}) "
                              f"nor a checkpoint folder (no {CHECKPOINT_FILE})")
    return folders[-1] / CHECKPOINT_FILE


def load_checkpoint(source: Path) -> dict:
    """Read a checkpoint (see `checkpoint_file` for what `source` may be) onto the CPU."""
    file = checkpoint_file(source)
    try:
        # weights_only=False: the checkpoint holds numpy RNG state; it is the user's own file.
        state = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(f"checkpoint {file} is unreadable ({type(exc).__name__}); it may be truncated") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state):
        raise CheckpointError(f"{file} is not a checkpoint of this trainer")
    return state


def check_resume_compatible(path, config: TrainConfig) -> dict:
    """Load a checkpoint and refuse it when it was written by an incompatible config."""
    state = load_checkpoint(Path(path))
    saved = state["config"]
    current = config.as_dict()
    for name in RESUME_MUST_MATCH:
        if saved.get(name) != current.get(name):
            if name == "model":
                diff = [f"{k} {saved['model'].get(k)} vs {v}" for k, v in current["model"].items()
                        if saved["model"].get(k) != v]
                detail = ", ".join(diff[:3])
            else:
                detail = f"{saved.get(name)!r} vs {current.get(name)!r}"
            raise CheckpointError(f"checkpoint {path} was written by another config: {name} differs "
                                  f"(checkpoint vs this run: {detail})")
    return state


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    """Delete all but the newest `keep` step_* folders in `checkpoints`."""
    folders = _step_folders(checkpoints)
    for old in folders[: max(len(folders) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
