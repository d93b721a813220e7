"""What a sweep is: one typed, frozen `SweepSpec`, and `sweep.json` is its JSON.

`run.py` builds it from the flags once; every later part (the trials, the results reader,
export, report, confirmation, final training) receives the spec and reads typed fields,
never a dict of settings or an argparse namespace. It holds:

- the search space as data (the same mapping as its YAML file; it round-trips through
  JSON and is re-validated when read back), the search and scheduler settings, and the
  objectives (one list: the first is what a single-objective sweep ranks by);
- the base `TrainConfig` every trial starts from;
- the data reference: the base config's run plan less the config (trainer/plan.py: prepared
  data folder, content hash and vocabulary, pairs folder, the tuning/held-out pair split, the
  validation sample and the task files every trial scores, the step budget, the parameters);
- the resources of a trial, W&B settings, and provenance (code version, package
  versions, the exact command).

This module imports no Ray: it is the bottom layer of `sweeps/`
(spec -> tuning -> results -> export / report / confirm -> run).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from search_spaces import SearchSpace, parse_space
from sweeps import storage
from trainer.config import TrainConfig
from trainer.errors import UserError
from trainer.plan import RunPlan

SWEEP_FILE = "sweep.json"
FINISHED_FILE = "finished.json"  # written once the sweep, its export (and confirmation) ended: --resume has nothing to do
STUDY_FILE = "optuna.db"  # the Optuna study of a local sweep: sqlite:///<experiment>/optuna.db
SPEC_VERSION = 2  # 1: the untyped sweep dict before SweepSpec
SEARCHES = ("tpe", "random", "grid", "cmaes")
SCHEDULERS = ("paired", "asha", "hyperband", "median", "none")
RUNNERS = ("inline", "train")


class SweepError(UserError):
    """Bad sweep input or a sweep folder that cannot be used; one line."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(_Frozen):
    metric: str
    mode: Literal["min", "max"]

    def better(self, a: float, b: float) -> bool:
        """a is strictly better than b."""
        return a > b if self.mode == "max" else a < b


class SpaceSpec(_Frozen):
    """A search space as data: exactly the mapping of its YAML file, plus where it came from."""

    name: str
    source: str = ""
    description: str = ""
    fixed: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, dict[str, Any]]
    study: dict[str, Any] | None = None

    @classmethod
    def of(cls, space: SearchSpace) -> "SpaceSpec":
        data = space.as_data()
        return cls(name=space.name, source=space.source, **data)

    def load(self) -> SearchSpace:
        """The validated SearchSpace (parsed again, so a hand-edited sweep.json is checked too)."""
        data = {"description": self.description, "fixed": dict(self.fixed), "search": dict(self.search)}
        if self.study is not None:
            data["study"] = self.study
        return parse_space(data, self.name, self.source or self.name)


class WarmStart(_Frozen):
    source: str  # <storage>/<name> of the earlier sweep
    trials: list[dict[str, Any]] = Field(default_factory=list)  # {"trial_id", "params", "values"}
    left_out: dict[str, int] = Field(default_factory=dict)  # reason -> trials

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.left_out.items())) or "none"
        return f"warm start from {self.source}: {len(self.trials)} trial(s) taken; left out: {reasons}"


class SearchSettings(_Frozen):
    algorithm: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    scheduler: Literal["paired", "asha", "hyperband", "median", "none"] = "paired"
    num_samples: int = Field(default=8, ge=1)
    max_concurrent: int = Field(default=0, ge=0)  # 0: as resources allow
    include_optional: bool = False
    evals_per_trial: int = Field(default=3, ge=1)
    seed: int = Field(default=0, ge=0)
    # Where the Optuna study lives (an RDB URL); None: in memory (grid search, or storage
    # that SQLite cannot use, such as s3://). run.py defaults it to sqlite in the sweep folder.
    optuna_storage: str | None = None
    # The base config's point of the space, run first (None: --no-baseline, grid search, or
    # a base config outside the space; `baseline_note` says which).
    baseline: dict[str, Any] | None = None
    baseline_note: str = ""
    # Completed trials of an earlier sweep that seed this study (--warm-start): where from,
    # the trials taken ({"params", "values", "trial_id"}) and how many were left out, by reason.
    warm_start: WarmStart | None = None
    # What early stopping decides on at the rungs before the full budget (None: the sweep's
    # first objective). The final ranking is always on the objectives; the decision metric is
    # chosen for how well its early ranking predicts that final one
    # (benchmarks/rung_predictiveness.py).
    decision: Objective | None = None


class DataRef(_Frozen):
    """The sweep's run plan (trainer/plan.py) less its config, which is `base_config`: the data
    every trial trains and scores on. The fields after `validation` are None in a sweep.json
    written before run plans (still read: `SweepSpec.plan` then lacks them)."""

    data_root: str
    data_hash: str
    pairs_dir: str | None = None
    pairs_split: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    vocab_size: int | None = None
    eval_suite: dict[str, Any] | None = None
    total_steps: int | None = None
    parameters: int | None = None

    @classmethod
    def of(cls, plan: RunPlan) -> "DataRef":
        return cls(**{k: v for k, v in plan.to_dict().items() if k != "config"})


class Resources(_Frozen):
    runner: Literal["inline", "train"] = "inline"
    workers_per_trial: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    max_trial_failures: int = 1  # a trial whose worker/node died is retried once, from its checkpoint
    max_worker_failures: int = 2  # Ray Train restarts a dead worker group this often within a trial

    @property
    def worker_cpus(self) -> float:
        """CPUs each Train worker reserves: a whole CPU leaves 0.01 for the trial that drives them."""
        return self.cpus_per_worker - 0.01 if self.cpus_per_worker >= 1 else self.cpus_per_worker

    @property
    def cpus_per_trial(self) -> float:
        if self.runner == "inline":
            return self.cpus_per_worker * self.workers_per_trial
        return self.worker_cpus * self.workers_per_trial + 0.01

    @property
    def gpus_per_trial(self) -> float:
        return self.gpus_per_worker * self.workers_per_trial


class WandbSettings(_Frozen):
    mode: Literal["online", "offline", "disabled"] = "offline"
    project: str = "mdlm-sweeps"
    entity: str | None = None
    dir: str | None = None  # local sweeps keep their W&B files in the sweep folder


class Provenance(_Frozen):
    code_version: str
    versions: dict[str, str] = Field(default_factory=dict)
    command: str = ""
    created: str = ""


class SweepSpec(_Frozen):
    spec_version: int = SPEC_VERSION
    name: str
    storage: str
    space: SpaceSpec
    search: SearchSettings
    objectives: tuple[Objective, ...] = Field(min_length=1)
    base_config: TrainConfig
    data: DataRef
    resources: Resources = Resources()
    wandb: WandbSettings = WandbSettings()
    provenance: Provenance

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, objectives):
        names = [o.metric for o in objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives name a metric twice: {', '.join(names)}")
        return objectives

    # --- derived -------------------------------------------------------------
    @property
    def experiment(self) -> str:
        """<storage>/<name>: where Tune and everything else of this sweep lives."""
        return storage.join(self.storage, self.name)

    @property
    def metric(self) -> str:
        return self.objectives[0].metric

    @property
    def mode(self) -> str:
        return self.objectives[0].mode

    @property
    def decision(self) -> Objective:
        """What early stopping decides on at interim rungs (see SearchSettings.decision)."""
        return self.search.decision or self.objectives[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self.objectives)

    @property
    def full_budget(self) -> int:
        """Steps of a trial that was not stopped early."""
        return self.base_config.max_steps

    @property
    def study_name(self) -> str:
        """The Optuna study's name in `search.optuna_storage` (a database may hold many sweeps)."""
        return self.name

    @property
    def study_seeds(self) -> list[int]:
        """A study's seeds (every grid point trains with each); [] for a sweep."""
        if not self.space.study:
            return []
        return [self.search.seed + i for i in range(self.space.study["seeds"])]

    @property
    def plan(self) -> RunPlan:
        """The base config's run plan; a trial's is `spec.plan.with_config(its config)`."""
        return RunPlan.from_dict({**self.data.model_dump(), "config": self.base_config.as_dict()})

    @property
    def train_storage(self) -> str:
        return storage.join(self.storage, self.name, "train_runs")

    def with_changes(self, **changes) -> "SweepSpec":
        """A validated copy with some fields replaced (e.g. the confirmation stage's name)."""
        return SweepSpec.model_validate({**self.model_dump(), **changes})

    # --- sweep.json ---------------------------------------------------------------
    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def save(self) -> None:
        storage.write_text(storage.join(self.experiment, SWEEP_FILE), self.to_json())

    @classmethod
    def load(cls, experiment: str) -> "SweepSpec":
        path = storage.join(experiment, SWEEP_FILE)
        if not storage.exists(path):
            raise SweepError(f"{experiment} is not a sweep folder (no {SWEEP_FILE})")
        try:
            data = json.loads(storage.read_text(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SweepError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("spec_version") != SPEC_VERSION:
            version = data.get("spec_version", 1) if isinstance(data, dict) else None
            raise SweepError(f"{path} has spec version {version}, this code reads {SPEC_VERSION}: "
                             f"run that sweep's results with the code version it was made with")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise SweepError(f"{path}: field '{where}': {err.get('msg', 'invalid')}") from None


def default_optuna_storage(storage_root: str, name: str) -> str | None:
    """sqlite:///<storage>/<name>/optuna.db for a local sweep; None (in memory) on a URI."""
    if storage.is_uri(storage_root):
        return None
    return f"sqlite:///{Path(storage_root, name, STUDY_FILE)}"


def code_version() -> str:
    """git commit of the project (with -dirty), else the package version."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"mdlm-sweeps {version('mdlm-sweeps')}"
    except Exception:
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages a sweep's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("ray", "torch", "optuna", "tokenizers", "pyarrow", "wandb"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found
