"""The metrics a run reports, in one registry: what each is, which way is better, whether it
carries a standard error (`<name>_se` beside it) and per-item evidence (a record of the
evaluation's `items`, trainer/eval_items.py), and whether a sweep may select or decide on it.

The sweep's CLI (which metrics exist, their default direction, what may be selected on), the
leaderboard's columns, the final run's summary, the paired comparisons and the report's chance
lines read this table instead of lists of their own, so a new evaluation is one registry entry
beside the module that computes it.

A family (`pairs_acc/<UID>`) is one entry for every group it reports: `pairs_acc/anaphor_agreement`
is the tuning-pair accuracy on that paradigm alone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from trainer.errors import UserError


class MetricError(UserError):
    """A metric name no run reports, or one that may not be used as asked; one line."""


@dataclass(frozen=True)
class Metric:
    name: str  # as reported; a family ends in "/" (its members are name + group)
    mode: Literal["max", "min"]  # which way is better
    description: str
    has_se: bool = True  # `<name>_se` is reported beside it
    selectable: bool = True  # a sweep may select or decide early stops on it
    why_not: str = ""  # said when it is asked for but not selectable
    chance: float | None = None  # the score of guessing (a two-way choice: 0.5), drawn in the report
    items: str | None = None  # the evaluation's `items` record holding its per-item evidence
    needs_pairs: bool = False  # reported only when the run has minimal pairs
    needs_eval_data: bool = False  # reported only when the run has BabyLM task files (`eval_data`)
    validation: bool = False  # computed on the validation rows (interim evaluations may subsample them)
    columns: bool = True  # a leaderboard column (and in a final run's summary)

    @property
    def family(self) -> bool:
        return self.name.endswith("/")


METRICS: tuple[Metric, ...] = (
    Metric("val_nelbo", "min", "the NELBO bound per token on the fixed validation sample (nats; fixed mask rates "
           "and masks, comparable across schedules and p)", items="val", validation=True),
    Metric("val_acc", "max", "masked-token accuracy on the validation sample", items="val", validation=True),
    Metric("pairs_acc", "max", "minimal-pair accuracy on the tuning pairs (the whole sentence scored)",
           chance=0.5, items="pairs", needs_pairs=True),
    Metric("pairs_acc_heldout", "max", "minimal-pair accuracy on the held-out pairs (the run's last evaluation)",
           selectable=False, chance=0.5, items="pairs_heldout", needs_pairs=True,
           why_not="the held-out pairs are reported, never selected on (that would tune on the evaluation set); "
                   "use pairs_acc, measured on the tuning pairs"),
    Metric("pairs_acc/", "max", "minimal-pair accuracy on one paradigm's tuning pairs (pairs_acc/<UID>)",
           chance=0.5, needs_pairs=True, columns=False),
    Metric("pairs_acc_heldout/", "max", "minimal-pair accuracy on one paradigm's held-out pairs",
           selectable=False, chance=0.5, needs_pairs=True, columns=False,
           why_not="the held-out pairs are reported, never selected on; use pairs_acc/<UID>"),
    Metric("train_loss", "min", "the training loss, averaged since the previous evaluation (the weighted "
           "objective: not comparable across schedules or p)", has_se=False),
)

# BabyLM's zero-shot tasks (trainer/zero_shot.py): each task's measure (an accuracy, or for wug a
# Spearman correlation with human ratings) and its chance level. A task is reported on its tuning
# items (`<task>_<measure>`), on its held-out items at the run's last evaluation (`..._heldout`),
# and in the equal-weight mean of the tasks present (`babylm_score`). Chance: two candidates,
# except entity tracking (as many options as the file gives, five in the official data); for a
# correlation, no relation (0). Adding a task: its loader in trainer/zero_shot.py and a line here.
TASKS: dict[str, tuple[str, float | None]] = {
    "blimp": ("acc", 0.5),
    "blimp_supplement": ("acc", 0.5),
    "ewok": ("acc", 0.5),
    "entity_tracking": ("acc", None),
    "comps": ("acc", 0.5),
    "wug_adj": ("rho", 0.0),
    "wug_past": ("rho", 0.0),
}
_MEASURE_WORDS = {"acc": "the mean of its per-UID accuracies",
                  "rho": "the Spearman correlation of the first candidate's softmaxed score with the human ratio"}


def task_metric(task: str) -> str:
    """The metric a task reports on its tuning items (`blimp_acc`, `wug_adj_rho`)."""
    return f"{task}_{TASKS[task][0]}"


_HELD_OUT = "the held-out items are reported, never selected on (that would tune on the evaluation set)"
METRICS += tuple(
    Metric(f"{task_metric(task)}{suffix}", "max", f"BabyLM's {task} as the official mlm backend scores it "
           f"({_MEASURE_WORDS[measure]}) on its {part} items", selectable=not suffix,
           why_not=_HELD_OUT if suffix else "", chance=chance, items=task + suffix, needs_eval_data=True,
           columns=False)
    for task, (measure, chance) in TASKS.items() for suffix, part in (("", "tuning"), ("_heldout", "held-out"))
) + (
    Metric("babylm_score", "max", "the equal-weight mean of the BabyLM tasks present (tuning items; a "
           "correlation counts as it is, beside accuracies as proportions)", items="tasks",
           needs_eval_data=True, columns=False),
    Metric("babylm_score_heldout", "max", "the equal-weight mean of the BabyLM tasks present (held-out items)",
           selectable=False, why_not=_HELD_OUT, items="tasks_heldout", needs_eval_data=True, columns=False),
)

BY_NAME = {m.name: m for m in METRICS}


def lookup(name: str) -> Metric | None:
    """The registry entry of a reported metric name (a family's member finds its family), or None."""
    if name in BY_NAME and not name.endswith("/"):  # a family's bare name is no metric
        return BY_NAME[name]
    family, slash, member = name.partition("/")
    return BY_NAME.get(family + "/") if slash and member else None


def metric(name: str) -> Metric:
    """The entry of `name`; MetricError naming the closest known names when no run reports it."""
    found = lookup(name)
    if found is None:
        names = [m.name + ("<UID>" if m.family else "") for m in METRICS]
        close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise MetricError(f"{name!r} is not reported by trials{hint} (known: {', '.join(names)})")
    return found


def selectable(name: str) -> Metric:
    """The entry of `name` when a sweep may select or decide on it; MetricError otherwise."""
    found = metric(name)
    if not found.selectable:
        raise MetricError(f"{name}: {found.why_not}")
    return found


def column_names() -> list[str]:
    """The registry's scalar metrics in order, each followed by its standard error where it has one."""
    names = []
    for m in METRICS:
        if m.columns:
            names += [m.name, f"{m.name}_se"] if m.has_se else [m.name]
    return names


def summary_names() -> list[str]:
    """The metrics a run's one-line summary and a final model's provenance carry."""
    return [m.name for m in METRICS if m.columns]


def chance(name: str) -> float | None:
    """The score of guessing for `name` (None: no such level, or not a metric of the registry)."""
    found = lookup(name)
    return found.chance if found else None
