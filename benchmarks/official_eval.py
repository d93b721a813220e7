"""The official BabyLM evaluation code on every revision of a run, beside this project's own scores.

    python benchmarks/official_eval.py --pipeline-path ~/babylm-eval/strict \\
        --pipeline-python ~/babylm-eval-venv/bin/python --run runs/final/<name>/train \\
        --main runs/final/<name>/model --out /tmp/official_eval [--aoa-words cdi_childes.json] \\
        [--eval-data evaluation_data/fast_eval] [--eval-data-revisions main|all|chck_1M,...] [--no-pairs]

`--pipeline-path` is the `strict/` folder of a babylm-org/babylm-eval checkout (the 2026 code; the
2025 evaluation-pipeline's root has the same entry points); `--pipeline-python` the interpreter of a
virtual environment holding its requirements (transformers 4.51.3). Nothing of the pipeline is in
this project: it runs as the user runs it, in its own folder and interpreter, offline.

1. The run's `chck_<N>M` exports and its final model become revisions of one repository in a
   Hugging Face cache under `--out` (`trainer.hub.write_hub_cache`), so the pipeline resolves
   `--model_path_or_name <org>/<name> --revision_name chck_1M` with HF_HUB_OFFLINE=1.
2. The pairs the run itself scored (its tuning and held-out splits, `eval_pairs_per_paradigm`
   each, from `--pairs`, default the run's own pairs) are written as BLiMP-style JSONL, one file
   per paradigm, and every revision is scored on them by the pipeline's zero-shot task
   (`evaluation_pipeline.sentence_zero_shot.run --task blimp --backend mlm`, its predictions
   saved) and by this project's `trainer.evaluate.pseudo_log_likelihoods` on the trainer's own
   network loaded with the same weights (float32, as the pipeline runs on a CPU). Reported per
   revision: each side's accuracy over all pairs (micro: the share of pairs right, our
   `pairs_acc`), the pipeline's own reported figure (the mean over paradigms), the share of pairs
   where both decide alike, and the ties (equal scores: the pipeline's argmax counts a tie as
   right, our `pairs_acc` as wrong). For the final model, also the run's own logged `pairs_acc`
   and `pairs_acc_heldout` (under the run's precision) beside the pipeline's on those very pairs.
3. With `--eval-data DIR` (a folder laid out like the pipeline's `evaluation_data/full_eval` or
   `fast_eval`; benchmarks/suite_data.py writes a small synthetic one), every task that
   `trainer.zero_shot` finds there (BLiMP, BLiMP supplement, EWoK, entity tracking, COMPS, wug
   adjective nominalization, wug past tense) is run by the pipeline (`--task blimp|ewok|
   entity_tracking|comps|wug_adj|wug_past --backend mlm --save_predictions`, the supplement through
   its blimp task) and scored by `trainer.zero_shot.score_items` (ties="official", float32, the
   trainer's network with the same weights), on the final model (`--eval-data-revisions` for
   others). The pipeline's `pred` strings are mapped back to candidates (the completion: BLiMP's
   whole sentence, EWoK's " " + target, entity tracking's option, wug's sentence; COMPS's whole
   sentence), the k-th prediction of a UID (id f"{UID}_{k}") to the k-th item of that UID in the
   pipeline's reading order (files as `Path.iterdir` lists them). Reported per task: each side's
   score (`trainer.zero_shot.task_scores`, the pipeline's from its choices, and its own printed
   figure as `pipeline_reported`), the items, the share where both chose the same candidate, our
   ties (a tie goes to the correct candidate on both sides), predictions that matched no
   candidate and items we truncated (a candidate over the model's max_position tokens, BOS
   included: we keep its end, the pipeline the whole text, so such items may differ); for wug each
   side's Spearman rho of the first candidate's probability (the pipeline's `prob`) against the
   ratio, and the largest per-item gap between the two probabilities. Per-item
   rows (both choices, our scores, wug probabilities) go to `tasks_<revision>.json`. This replaces
   the former `--extra-task TASK=FOLDER`, which only ran one more task and read its printed
   average: put that task's folder under a parent folder and pass the parent as `--eval-data`.
   AoA's walk over the challenge's checkpoint names finds nothing in a run shorter than 1M words
   (then no surprisal file, and the AoA line says so).
4. Age of acquisition (`evaluation_pipeline.AoA_word.run --backend mlm --track_name
   strict-small`), which walks all the challenge's checkpoint names of the repository and skips
   the ones the run has not reached. `--aoa-words` is the challenge's word file (cdi_childes.json,
   from https://osf.io/ryjfm/); without it, a stand-in in the same format is written from the run's
   held-out text (its *.dev files: the most frequent words, each with the text before it on its
   line as contexts): it checks that AoA runs on these revisions, not child-language facts. Reported:
   the checkpoints present in its `surprisal.json`, the rows, the share of finite surprisals and
   the mean surprisal per checkpoint.

Everything is written under `--out`: `hub/` (the cache entry), `data/`, `results/` (the pipeline's
own output folders), `tasks_<revision>.json` and `summary.json`. One JSON line per revision (pairs),
one per task and revision (`--eval-data`) and one for AoA are printed. `--no-pairs` and `--no-aoa`
skip those parts. The challenge's own task data (and its reading task, not compared here) is
distributed separately from the pipeline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from trainer import hub  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.metrics import TASKS  # noqa: E402

TRACKS = ("strict-small", "non-strict-small")
DATASET = "pairs"  # the folder name the pipeline files its results under
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


# --------------------------------------------------------------------------------------
# Inputs: the revisions, the pairs, the AoA words
# --------------------------------------------------------------------------------------


def run_pairs(config: TrainConfig, pairs_dir: Path, per_paradigm: int | None):
    """(tuning, held_out) exactly as the training loop chose them."""
    from trainer.data.pairs import limit_per_paradigm, load_pairs, split_pairs

    tuning, held_out = split_pairs(load_pairs(pairs_dir), config.pairs_heldout_fraction)
    return limit_per_paradigm(tuning, per_paradigm), limit_per_paradigm(held_out, per_paradigm)


def file_stem(paradigm: str) -> str:
    """A paradigm's file name (the pipeline's UID for files without a `field`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", paradigm) or "pairs"


def write_pairs(pairs, folder: Path) -> dict[str, list]:
    """One JSONL file per paradigm, only the two sentences: the pipeline then takes the file's stem as
    the UID and keeps file order, so its k-th prediction of a UID is our k-th pair of that paradigm."""
    by_file: dict[str, list] = defaultdict(list)
    for pair in pairs:
        by_file[file_stem(pair.paradigm)].append(pair)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, group in by_file.items():
        lines = [json.dumps({"sentence_good": p.good, "sentence_bad": p.bad}) for p in group]
        (folder / f"{stem}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dict(by_file)


def corpus_lines(corpus_dir: Path, limit: int = 50_000) -> list[str]:
    """Held-out text of the run's corpus for stand-in AoA contexts: its *.dev files, else its other
    text files; at most `limit` non-empty lines, in file order."""
    files = sorted(corpus_dir.rglob("*.dev")) or sorted(p for p in corpus_dir.rglob("*") if p.suffix in (".train", ".txt"))
    lines: list[str] = []
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line.strip())
                    if len(lines) >= limit:
                        return lines
    return lines


def standin_aoa_words(sentences, words: int, contexts: int) -> dict[str, list[dict]]:
    """The AoA word file's format ({word: [{"context": text before it}, ...]}) from sentences: the
    `words` most frequent lower-case words (two letters or more) that follow at least `contexts`
    words of text, each with up to `contexts` prefixes. A plumbing check, not child-language data."""
    found: dict[str, list[str]] = defaultdict(list)
    counts: Counter = Counter()
    for sentence in sentences:
        tokens = sentence.split()
        for i, token in enumerate(tokens[1:], start=1):
            if _WORD.fullmatch(token) and len(token) > 1:
                counts[token] += 1
                if len(found[token]) < contexts:
                    found[token].append(" ".join(tokens[:i]))
    chosen = [w for w, _ in counts.most_common() if len(found[w]) >= contexts][:words]
    return {w: [{"context": c} for c in found[w]] for w in chosen}


# --------------------------------------------------------------------------------------
# Our side: the trainer's network on the same pairs
# --------------------------------------------------------------------------------------


def our_network(folder: Path, config: TrainConfig):
    """(the trainer's own network with the export's weights, float32 in eval mode; its tokenizer as
    the training loop has it). The export's tokenizer.json carries a post-processor that puts <s>
    first for transformers; the loop's has none (trainer.zero_shot and the pairs encoder add BOS
    themselves), so it is dropped here too."""
    from trainer.data.tokenizer import load_tokenizer
    from trainer.export import load_network

    tokenizer = load_tokenizer(folder / "tokenizer.json")
    tokenizer.post_processor = None
    return load_network(folder, config.model), tokenizer


def scoring_settings(config: TrainConfig) -> dict:
    """The PLL settings the training loop scores with (trainer/loop.py's evaluate_run), on the CPU."""
    from trainer.data.tokenizer import MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID

    return dict(num_special=NUM_SPECIAL_TOKENS, mask_id=MASK_ID, pad_id=PAD_ID,
                policy=config.eval_time_conditioning, fixed_rate=config.eval_fixed_rate)


def our_scores(folder: Path, config: TrainConfig, pairs) -> list[tuple[float, float]]:
    """(PLL good, PLL bad) per pair: the trainer's `pseudo_log_likelihoods` on the export's weights,
    its tokenizer, the sentence encoded as the loop encodes it ([BOS] + ids), float32."""
    from trainer.data.tokenizer import BOS_ID
    from trainer.evaluate import pseudo_log_likelihoods

    model, tokenizer = our_network(folder, config)

    def encode(text: str) -> list[int]:
        return [BOS_ID] + tokenizer.encode(text, add_special_tokens=False).ids[: config.seq_length - 1]

    sequences = [encode(s) for p in pairs for s in (p.good, p.bad)]
    plls = pseudo_log_likelihoods(model, sequences, **scoring_settings(config))
    return list(zip(plls[0::2], plls[1::2]))


# --------------------------------------------------------------------------------------
# The pipeline's side
# --------------------------------------------------------------------------------------


def pipeline_env(out: Path) -> dict:
    """Offline, this cache, no project code on the path, a transformers module cache of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN")}
    env.update(HF_HUB_CACHE=str(out / "hub"), HF_HOME=str(out / "hf_home"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               WANDB_MODE="offline")
    return env


def run_pipeline(args, module: str, flags: list[str], log: Path) -> float:
    """One pipeline command from its own folder; its output goes to `log`. Returns seconds."""
    command = [args.pipeline_python, "-m", module, *flags]
    start = time.perf_counter()
    with log.open("w") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        proc = subprocess.run(command, cwd=args.pipeline_path, env=pipeline_env(args.out), stdout=handle,
                              stderr=subprocess.STDOUT, timeout=args.timeout)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"error: {module} exited {proc.returncode} ({log}):\n  " + "\n  ".join(tail))
    return seconds


def pipeline_predictions(results: Path) -> dict[str, list[str]]:
    """{UID: [chosen sentence, ...]} in data order, from the pipeline's predictions.json
    ({UID: {"predictions": [{"id": "<UID>_<k>", "pred": sentence}, ...]}})."""
    return {uid: [row["pred"] for row in rows] for uid, rows in pipeline_prediction_rows(results).items()}


def pipeline_prediction_rows(results: Path) -> dict[str, list[dict]]:
    """{UID: [{"id", "pred", and for wug "prob"}, ...]} in the pipeline's reading order."""
    raw = json.loads((results / "predictions.json").read_text())
    return {uid: entry["predictions"] for uid, entry in raw.items()}


def reported_average(results: Path) -> float:
    """The pipeline's headline: the number under '### AVERAGE ACCURACY' (a mean over UIDs, in %), or
    for the wug tasks under "### AVERAGE SPEARMAN'S RHO" (rho itself); printed to 2 decimals."""
    lines = (results / "best_temperature_report.txt").read_text().splitlines()
    heading = next(line for line in lines if line.startswith("### AVERAGE "))
    return float(lines[lines.index(heading) + 1])


def aoa_summary(surprisal_file: Path) -> dict:
    data = json.loads(surprisal_file.read_text())
    rows = data["results"]
    by_step: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_step[row["step"]].append(row["surprisal"])
    finite = [v for v in (r["surprisal"] for r in rows) if isinstance(v, (int, float)) and math.isfinite(v)]
    return {
        "checkpoints": list(by_step),
        "rows": len(rows),
        "finite_share": len(finite) / max(len(rows), 1),
        "mean_surprisal": {step: sum(v) / len(v) for step, v in by_step.items()},
        "metadata": data.get("metadata", {}),
    }


# --------------------------------------------------------------------------------------
# The BabyLM tasks of an evaluation-data folder (--eval-data), item by item
# --------------------------------------------------------------------------------------

# trainer.zero_shot's task -> the pipeline's `--task` (the supplement is read by its blimp task).
PIPELINE_TASKS = {"blimp": "blimp", "blimp_supplement": "blimp", "ewok": "ewok", "entity_tracking": "entity_tracking",
                  "comps": "comps", "wug_adj": "wug_adj", "wug_past": "wug_past"}
# Scored by a correlation with human ratios, not by accuracy (the metric registry's measure "rho").
WUG_TASKS = tuple(task for task, (measure, _) in TASKS.items() if measure == "rho")


def found_tasks(eval_data: Path) -> dict[str, Path]:
    """{task: its folder} for every task trainer.zero_shot reads that has a folder in `eval_data`."""
    from trainer import zero_shot

    folders = {task: zero_shot.task_folder(eval_data, task) for task in zero_shot.LOADERS if task in PIPELINE_TASKS}
    return {task: folder for task, folder in folders.items() if folder is not None}


def items_in_pipeline_order(task: str, folder: Path) -> list:
    """The task's items (trainer.zero_shot's reader, line by line) in the order the pipeline reads
    them: its *.jsonl files as `Path.iterdir` lists them (read_files.py does not sort), lines in
    order. predictions.json numbers a UID's items in this order, so the k-th prediction of a UID is
    the k-th item of that UID here even when a UID spans files. Our scores do not depend on order."""
    from trainer import zero_shot

    _, read_row = zero_shot.LOADERS[task]
    items = []
    for path in Path(folder).iterdir():
        if path.suffix != ".jsonl":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                items.append(read_row(path, number, json.loads(line), task))
    return items


def pipeline_strings(task: str, item) -> list[str]:
    """What predictions.json's `pred` holds for each candidate (compute_results.py): its completion
    as read_files.py builds it, that is the scored characters, with EWoK's leading space (" " +
    Target); for COMPS the whole sentence."""
    if task == "comps":
        return [c.text for c in item.candidates]
    if task == "ewok":
        return [" " + c.text[c.start:c.end] for c in item.candidates]
    return [c.text[c.start:c.end] for c in item.candidates]


def matched_predictions(items, predictions: dict[str, list[dict]]) -> list[dict | None]:
    """The pipeline's prediction row for each item: the k-th row of a UID for the k-th item of that
    UID (`items` in the pipeline's order; its ids are f"{UID}_{k}"); None where there is none."""
    seen: dict[str, int] = defaultdict(int)
    matched = []
    for item in items:
        rows, k = predictions.get(item.uid, []), seen[item.uid]
        seen[item.uid] += 1
        matched.append(rows[k] if k < len(rows) else None)
    return matched


def prediction_indices(task: str, items, predictions: dict[str, list[dict]]) -> list[int | None]:
    """The candidate the pipeline chose for each item: its `pred` string matched to the first
    candidate with that string (candidates with equal strings tie, and a tie goes to the first, as
    torch.max's does); None where the prediction or the string is missing."""
    chosen = []
    for item, row in zip(items, matched_predictions(items, predictions)):
        strings = pipeline_strings(task, item)
        chosen.append(strings.index(row["pred"]) if row is not None and row["pred"] in strings else None)
    return chosen


def is_tie(scores) -> bool:
    """More than one candidate at the top score (exactly equal), or a NaN score."""
    return any(math.isnan(s) for s in scores) or sum(s == max(scores) for s in scores) > 1


def compare_task(task: str, items, pipeline_choice: list[int | None], ours: list[list[float]],
                 pipeline_p_first: list[float | None] | None = None) -> tuple[dict, list[dict]]:
    """One task's comparison, from the items (in the pipeline's order), the pipeline's chosen
    candidate per item, our candidate scores and, for wug, the pipeline's first-candidate
    probabilities. Returns (the summary, one row per item).

    Accuracy tasks: each side's task score (trainer.zero_shot.task_scores: the mean over UIDs of
    per-UID accuracy, entity tracking's mean of split means, as run.py computes it; the pipeline's
    from its choices, so it reproduces its report), the share of items where both chose the same
    candidate, our ties (a tie is a win under both sides' rule). Wug: each side's Spearman rho of
    the first candidate's probability against the ratio, and the largest gap between the two
    probabilities over the items."""
    from trainer import zero_shot

    ours_choice = [zero_shot.chosen_index(s) for s in ours]
    rows = [{"uid": item.uid, "index": k, "pipeline": theirs, "ours": mine, "same": theirs == mine, "scores": scores}
            for k, (item, theirs, mine, scores) in enumerate(zip(items, pipeline_choice, ours_choice, ours))]
    record = {
        "task": task, "pipeline_task": PIPELINE_TASKS[task], "items": len(items),
        "unmatched_predictions": pipeline_choice.count(None),
        "same_decision": sum(r["same"] for r in rows) / max(len(rows), 1),
        "ties": sum(is_tie(s) for s in ours),
    }
    if task in WUG_TASKS:
        ratios = [item.ratio for item in items]
        ours_p = zero_shot.first_probabilities(ours)
        theirs_p = [math.nan if p is None else float(p) for p in (pipeline_p_first or [None] * len(items))]
        for row, mine_p, their_p, ratio in zip(rows, ours_p, theirs_p, ratios):
            row.update(p_first_pipeline=their_p, p_first_ours=mine_p, ratio=ratio)
        gaps = [abs(a - b) for a, b in zip(ours_p, theirs_p)]
        record.update(pipeline_score=zero_shot.spearman(theirs_p, ratios),
                      ours_score=zero_shot.ratings_scores(items, ours)["score"],
                      max_p_first_difference=max(gaps) if gaps else math.nan)
    else:
        record.update(pipeline_score=zero_shot.task_scores(task, items, [c == 0 for c in pipeline_choice])["score"],
                      ours_score=zero_shot.task_scores(task, items, [c == 0 for c in ours_choice])["score"])
    return record, rows


def run_tasks(args, repo: str, rev: str, folder: Path, config: TrainConfig, tasks: dict[str, Path]) -> tuple[list, dict]:
    """Every task of `tasks` on one revision: the pipeline's zero-shot run (predictions saved) and
    trainer.zero_shot on our network with the same weights; ([summary per task], {task: rows})."""
    from trainer.data.tokenizer import BOS_ID
    from trainer.zero_shot import score_items

    name = hub.parse_repo_id(repo)[1]
    model, tokenizer = our_network(folder, config)
    records, per_item = [], {}
    for task, data in tasks.items():
        pipeline_task = PIPELINE_TASKS[task]
        flags = ["--model_path_or_name", repo, "--revision_name", rev, "--backend", "mlm", "--task", pipeline_task,
                 "--data_path", str(data), "--save_predictions", "--output_dir", str(args.out / "results")]
        seconds = run_pipeline(args, "evaluation_pipeline.sentence_zero_shot.run", flags,
                               args.out / "logs" / f"{task}_{rev}.log")
        # run.py's own output folder: <output_dir>/<model>/<revision>/zero_shot/<backend>/<task>/<data folder>
        results = args.out / "results" / name / rev / "zero_shot" / "mlm" / pipeline_task / data.stem
        predictions = pipeline_prediction_rows(results)
        items = items_in_pipeline_order(task, data)
        _, ours = score_items(model, items, tokenizer, bos_id=BOS_ID, max_length=config.model.max_position, ties="official",
                              **scoring_settings(config))
        p_first = None
        if task in WUG_TASKS:  # the wug predictions carry the first candidate's probability
            p_first = [None if row is None else row.get("prob") for row in matched_predictions(items, predictions)]
        record, rows = compare_task(task, items, prediction_indices(task, items, predictions), ours, p_first)
        reported = reported_average(results)
        # Where we keep only a text's last max_position tokens, the pipeline (no truncation) sees it all.
        truncated = sum(any(len(tokenizer.encode(c.text, add_special_tokens=False).ids) + 1 > config.model.max_position
                            for c in item.candidates)
                        for item in items)
        record = {"benchmark": "official_eval_task", "revision": rev, **record,
                  "pipeline_reported": reported if task in WUG_TASKS else reported / 100,
                  "ours_truncated_items": truncated, "pipeline_s": seconds, "data": str(data)}
        records.append(record)
        per_item[task] = rows
        common.emit(common.rounded(record))
    return records, per_item


# --------------------------------------------------------------------------------------


def last_logged(run_dir: Path) -> dict:
    """The run's last evaluation with pairs scored (its own pairs_acc under its own precision)."""
    last = {}
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "pairs_acc" in row:
                last = row
    return last


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline-path", type=Path, required=True, help="babylm-eval's strict/ folder")
    parser.add_argument("--pipeline-python", default=sys.executable, help="the pipeline's interpreter (its venv)")
    parser.add_argument("--run", type=Path, required=True, help="the run folder (config.json, metrics.jsonl, chck_*)")
    parser.add_argument("--main", type=Path, required=True, help="the final model's export folder")
    parser.add_argument("--out", type=Path, required=True, help="where the cache, data and results go")
    parser.add_argument("--repo", default=None, help="repository name of the revisions (default babylm-check/<run>)")
    parser.add_argument("--pairs", type=Path, default=None, help="BLiMP-style folder (default: the run's pairs)")
    parser.add_argument("--pairs-per-paradigm", type=int, default=None,
                        help="pairs per paradigm and split (default: the run's eval_pairs_per_paradigm)")
    parser.add_argument("--no-pairs", action="store_true", help="skip the comparison on the run's own pairs")
    parser.add_argument("--revisions", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--eval-data", type=Path, default=None,
                        help="a folder laid out like the pipeline's evaluation_data/full_eval (or fast_eval): every "
                             "task trainer.zero_shot finds there is run by the pipeline and by trainer.zero_shot")
    parser.add_argument("--eval-data-revisions", default=hub.MAIN,
                        help="revisions the --eval-data tasks run on: comma-separated, or 'all' (default: main)")
    parser.add_argument("--aoa-words", type=Path, default=None, help="the challenge's cdi_childes.json (default: a stand-in)")
    parser.add_argument("--aoa-standin-words", type=int, default=40)
    parser.add_argument("--aoa-contexts", type=int, default=10, help="contexts per stand-in word")
    parser.add_argument("--track", choices=TRACKS, default="strict-small")
    parser.add_argument("--no-aoa", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per pipeline command")
    return parser.parse_args(argv)


def compare_pairs(args, repo: str, revisions: dict[str, Path], config: TrainConfig, pairs_dir: Path) -> list[dict]:
    """The run's own pairs on every revision: the pipeline's blimp task beside trainer.evaluate."""
    name = hub.parse_repo_id(repo)[1]
    per_paradigm = args.pairs_per_paradigm if args.pairs_per_paradigm is not None else config.eval_pairs_per_paradigm
    tuning, held_out = run_pairs(config, pairs_dir, per_paradigm)
    pairs = tuning + held_out
    by_file = write_pairs(pairs, args.out / "data" / DATASET)
    print(f"pairs: {len(tuning)} tuning + {len(held_out)} held-out from {pairs_dir}, {len(by_file)} paradigms", flush=True)

    in_file_order = [p for group in by_file.values() for p in group]
    records = []
    for rev, folder in revisions.items():
        flags = ["--model_path_or_name", repo, "--revision_name", rev, "--backend", "mlm", "--task", "blimp",
                 "--data_path", str(args.out / "data" / DATASET), "--save_predictions", "--output_dir", str(args.out / "results")]
        seconds = run_pipeline(args, "evaluation_pipeline.sentence_zero_shot.run", flags, args.out / "logs" / f"blimp_{rev}.log")
        results = args.out / "results" / name / rev / "zero_shot" / "mlm" / "blimp" / DATASET
        predictions = pipeline_predictions(results)
        ours = dict(zip(map(id, in_file_order), our_scores(folder, config, in_file_order)))
        theirs_right, ours_right, ties, agree = {}, {}, 0, 0
        for stem, group in by_file.items():
            chosen = predictions[stem]
            assert len(chosen) == len(group), f"{stem}: {len(chosen)} predictions for {len(group)} pairs"
            for pair, pred in zip(group, chosen):
                good, bad = ours[id(pair)]
                theirs_right[id(pair)] = pred == pair.good
                ours_right[id(pair)] = good > bad
                ties += good == bad
                agree += (pred == pair.good) == (good >= bad)  # the same decision, a tie read as the pipeline reads it

        def acc(right, subset):
            return sum(right[id(p)] for p in subset) / max(len(subset), 1)

        record = {
            "benchmark": "official_eval", "revision": rev, "pairs": len(pairs),
            "pipeline_acc": acc(theirs_right, pairs), "ours_acc": acc(ours_right, pairs),
            "pipeline_acc_tuning": acc(theirs_right, tuning), "ours_acc_tuning": acc(ours_right, tuning),
            "pipeline_acc_heldout": acc(theirs_right, held_out), "ours_acc_heldout": acc(ours_right, held_out),
            "pipeline_reported_mean_over_paradigms": reported_average(results),
            "same_decision": agree / len(pairs), "ties": ties, "pipeline_s": seconds,
        }
        record["difference_points"] = 100 * (record["pipeline_acc"] - record["ours_acc"])
        if rev == hub.MAIN:
            logged = last_logged(args.run)
            record.update(run_logged_step=logged.get("step"), run_logged_pairs_acc=logged.get("pairs_acc"),
                          run_logged_pairs_acc_heldout=logged.get("pairs_acc_heldout"))
        records.append(record)
        common.emit(common.rounded(record))

    common.print_table(records, [
        ("revision", "revision", ""), ("pipeline_acc", "pipeline", ".4f"), ("ours_acc", "ours", ".4f"),
        ("difference_points", "diff (pts)", "+.2f"), ("same_decision", "same decision", ".4f"), ("ties", "ties", ""),
        ("pipeline_reported_mean_over_paradigms", "pipeline reported (%)", ".2f"), ("pipeline_s", "pipeline s", ".0f"),
    ], title=f"BLiMP-style pairs, {len(pairs)} per revision: the pipeline's mlm PLL vs trainer.evaluate")
    return records


def compare_eval_data(args, repo: str, revisions: dict[str, Path], config: TrainConfig) -> list[dict]:
    """Every task found in --eval-data on the chosen revisions; per-item rows to tasks_<rev>.json."""
    tasks = found_tasks(args.eval_data)
    if not tasks:
        raise SystemExit(f"error: no task folder of trainer.zero_shot in {args.eval_data}")
    wanted = list(revisions) if args.eval_data_revisions == "all" else args.eval_data_revisions.split(",")
    unknown = [rev for rev in wanted if rev not in revisions]
    if unknown:
        raise SystemExit(f"error: --eval-data-revisions: no revision {unknown[0]} (there are {', '.join(revisions)})")
    print(f"eval data: {', '.join(f'{t} ({p.name})' for t, p in tasks.items())} on {', '.join(wanted)}", flush=True)
    records = []
    for rev in wanted:
        found, per_item = run_tasks(args, repo, rev, revisions[rev], config, tasks)
        records += found
        (args.out / f"tasks_{rev}.json").write_text(json.dumps(per_item, indent=1))
    common.print_table(records, [
        ("revision", "revision", ""), ("task", "task", ""), ("items", "items", ""),
        ("pipeline_score", "pipeline", ".4f"), ("ours_score", "ours", ".4f"), ("pipeline_reported", "reported", ".4f"),
        ("same_decision", "same decision", ".4f"), ("ties", "ties", ""), ("unmatched_predictions", "unmatched", ""),
        ("max_p_first_difference", "max |p0 diff|", ".2e"),
        ("pipeline_s", "pipeline s", ".0f"),
    ], title="BabyLM tasks of --eval-data: the pipeline's mlm backend vs trainer.zero_shot (accuracy; wug: Spearman rho)")
    return records


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out = args.out.absolute()
    args.pipeline_path = args.pipeline_path.absolute()
    if not (args.pipeline_path / "evaluation_pipeline" / "sentence_zero_shot" / "run.py").is_file():
        raise SystemExit(f"error: {args.pipeline_path} is not the pipeline's root (no evaluation_pipeline/sentence_zero_shot/run.py)")
    if not (args.run / "config.json").is_file():
        raise SystemExit(f"error: {args.run} is not a run folder (no config.json)")
    if not (args.main / "config.json").is_file():
        raise SystemExit(f"error: {args.main} is not a model folder (no config.json)")
    if args.eval_data is not None:
        args.eval_data = args.eval_data.absolute()
        if not args.eval_data.is_dir():
            raise SystemExit(f"error: --eval-data {args.eval_data} is not a folder")
    config = TrainConfig.parse(json.loads((args.run / "config.json").read_text()))
    repo = args.repo or f"babylm-check/{file_stem(args.run.resolve().name).replace('_', '-')}"
    name = hub.parse_repo_id(repo)[1]

    revisions = hub.find_revisions(args.run, args.main)
    if args.revisions:
        wanted = args.revisions.split(",")
        unknown = [name for name in wanted if name not in revisions]
        if unknown:
            raise SystemExit(f"error: no revision {unknown[0]} in this run (it has {', '.join(revisions)})")
        revisions = {k: v for k, v in revisions.items() if k in wanted}
    hub.write_hub_cache(repo, hub.find_revisions(args.run, args.main), args.out / "hub")
    print(f"{repo}: revisions {', '.join(revisions)} in {args.out / 'hub'}  (load {common.load_average()})", flush=True)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)

    summary: dict = {"repo": repo, "revisions": list(revisions)}
    data = None
    if not args.no_pairs or (not args.no_aoa and not args.aoa_words):
        from trainer.data.sources import resolve_data

        data = resolve_data(config, show_progress=False)  # the run's corpus and pairs (prepared: cached)
    if not args.no_pairs:
        pairs_dir = args.pairs or data.pairs_dir  # default: the pairs the run itself scored
        summary.update(pairs=str(pairs_dir), blimp=compare_pairs(args, repo, revisions, config, pairs_dir))
    if args.eval_data is not None:
        summary.update(eval_data=str(args.eval_data), tasks=compare_eval_data(args, repo, revisions, config))
    if not args.no_aoa:
        if args.aoa_words:
            words_file, source = args.aoa_words.absolute(), "challenge"
        else:
            words_file, source = args.out / "data" / "aoa_words_standin.json", "stand-in"
            words = standin_aoa_words(corpus_lines(data.corpus_dir), args.aoa_standin_words, args.aoa_contexts)
            words_file.parent.mkdir(parents=True, exist_ok=True)
            words_file.write_text(json.dumps(words, indent=1))
        flags = ["--model_name", repo, "--backend", "mlm", "--track_name", args.track, "--word_path", str(words_file),
                 "--output_dir", str(args.out / "results")]
        seconds = run_pipeline(args, "evaluation_pipeline.AoA_word.run", flags, args.out / "logs" / "aoa.log")
        surprisal_file = args.out / "results" / name / "main" / "zero_shot" / "mlm" / "AoA_word" / "surprisal.json"
        aoa = {"benchmark": "official_eval_aoa", "words": source, "surprisal_file": str(surprisal_file), "pipeline_s": seconds}
        if surprisal_file.is_file():
            aoa.update(aoa_summary(surprisal_file))
            print(f"AoA ({source} words): {len(aoa['checkpoints'])} checkpoints in {surprisal_file}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in aoa["mean_surprisal"].items()) + " (mean surprisal)")
        else:  # AoA reads only the challenge's names (chck_1M, ...); a run shorter than 1M words has none
            aoa.update(checkpoints=[], rows=0)
            print(f"AoA ({source} words): no surprisal file: the repository has none of the challenge's checkpoint "
                  f"names (chck_1M, chck_2M, ...; this run has {', '.join(revisions)}); see {args.out / 'logs' / 'aoa.log'}")
        summary["aoa"] = aoa
        common.emit(common.rounded(aoa))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
