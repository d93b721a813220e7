"""The sweep as one W&B run beside its trials' runs: `<name> (summary)` in the sweep's group.

It holds the whole SweepSpec as its config, the leaderboard as a W&B Table, the best trial's
metrics in its summary, and best_config.json, leaderboard.csv and the HTML report as one
artifact, so a W&B user finds the sweep's answer where the trials' curves already are.
Offline here (WANDB_MODE=offline: the run is written under the sweep folder's wandb/), the
same code online.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from sweeps import storage
from sweeps.spec import SweepSpec

RESULT_FILES = ("best_config.json", "leaderboard.csv", "study.json", "stops.json")


def log_sweep_summary(spec: SweepSpec, mode: str, report_index: Path | None = None) -> str | None:
    """Write the summary run; returns its local folder (None when W&B is disabled)."""
    if mode == "disabled":
        return None
    import wandb

    leaderboard = storage.join(spec.experiment, "leaderboard.csv")
    table_rows = list(csv.reader(io.StringIO(storage.read_text(leaderboard)))) if storage.exists(leaderboard) else []
    best_path = storage.join(spec.experiment, "best_config.json")
    best = json.loads(storage.read_text(best_path)) if storage.exists(best_path) else {}
    run = wandb.init(project=spec.wandb.project, entity=spec.wandb.entity, group=spec.name, mode=mode,
                     name=f"{spec.name} (summary)", job_type="sweep-summary", tags=[spec.space.name, "summary"],
                     config=json.loads(spec.to_json()), dir=spec.wandb.dir, reinit="finish_previous")
    try:
        if table_rows:
            run.log({"leaderboard": wandb.Table(columns=table_rows[0], data=[r for r in table_rows[1:] if r])})
        provenance = best.get("provenance") or {}
        run.summary.update({"best_trial": provenance.get("trial_id"), "selected_by": provenance.get("selected_by"),
                            **{f"best/{k}": v for k, v in (provenance.get("metrics") or {}).items()}})
        artifact = wandb.Artifact(f"{spec.name}-results", type="sweep-results",
                                  description=f"best config, leaderboard and report of sweep {spec.name}")
        with tempfile.TemporaryDirectory() as local:  # the sweep's storage may be a URI
            for name in RESULT_FILES:
                source = storage.join(spec.experiment, name)
                if storage.exists(source):
                    (Path(local) / name).write_text(storage.read_text(source))
                    artifact.add_file(str(Path(local) / name))
            if report_index is not None and Path(report_index).is_file():
                artifact.add_file(str(report_index), name="report/index.html")
            run.log_artifact(artifact)
        return str(Path(run.dir).parent)
    finally:
        run.finish()
