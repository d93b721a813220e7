"""The official BabyLM evaluation code on every revision of a run, beside this project's own scores.

    python benchmarks/official_eval.py --pipeline-path ~/babylm-eval/strict \\
        --pipeline-python ~/babylm-eval-venv/bin/python --run runs/final/<name>/train \\
        --main runs/final/<name>/model --out /tmp/official_eval [--aoa-words cdi_childes.json]

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
3. Age of acquisition (`evaluation_pipeline.AoA_word.run --backend mlm --track_name
   strict-small`), which walks all the challenge's checkpoint names of the repository and skips
   the ones the run has not reached. `--aoa-words` is the challenge's word file (cdi_childes.json,
   from https://osf.io/ryjfm/); without it, a stand-in in the same format is written from the run's
   held-out text (its *.dev files: the most frequent words, each with the text before it on its
   line as contexts): it checks that AoA runs on these revisions, not child-language facts. Reported:
   the checkpoints present in its `surprisal.json`, the rows, the share of finite surprisals and
   the mean surprisal per checkpoint.

Everything is written under `--out`: `hub/` (the cache entry), `data/`, `results/` (the pipeline's
own output folders) and `summary.json`. One JSON line per revision and one for AoA are printed.

The other fast-evaluation tasks (BLiMP supplement, EWoK, entity tracking, wug, reading) take data
the challenge distributes separately; `--extra-task TASK=FOLDER` runs one more zero-shot task of the
pipeline on every revision when you have that data.
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


def our_scores(folder: Path, config: TrainConfig, pairs) -> list[tuple[float, float]]:
    """(PLL good, PLL bad) per pair: the trainer's `pseudo_log_likelihoods` on the export's weights,
    its tokenizer, the sentence encoded as the loop encodes it ([BOS] + ids), float32."""
    from trainer.data.tokenizer import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, load_tokenizer
    from trainer.evaluate import pseudo_log_likelihoods
    from trainer.export import load_network

    tokenizer = load_tokenizer(folder / "tokenizer.json")
    model = load_network(folder, config.model)

    def encode(text: str) -> list[int]:
        return [BOS_ID] + tokenizer.encode(text, add_special_tokens=False).ids[: config.seq_length - 1]

    sequences = [encode(s) for p in pairs for s in (p.good, p.bad)]
    plls = pseudo_log_likelihoods(
        model, sequences, num_special=NUM_SPECIAL_TOKENS, mask_id=MASK_ID, pad_id=PAD_ID,
        policy=config.eval_time_conditioning, fixed_rate=config.eval_fixed_rate,
    )
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
    raw = json.loads((results / "predictions.json").read_text())
    return {uid: [row["pred"] for row in entry["predictions"]] for uid, entry in raw.items()}


def reported_average(results: Path) -> float:
    """The pipeline's headline: the number under '### AVERAGE ACCURACY' (a mean over UIDs, in %)."""
    lines = (results / "best_temperature_report.txt").read_text().splitlines()
    return float(lines[lines.index("### AVERAGE ACCURACY") + 1])


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
    parser.add_argument("--revisions", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--aoa-words", type=Path, default=None, help="the challenge's cdi_childes.json (default: a stand-in)")
    parser.add_argument("--aoa-standin-words", type=int, default=40)
    parser.add_argument("--aoa-contexts", type=int, default=10, help="contexts per stand-in word")
    parser.add_argument("--track", choices=TRACKS, default="strict-small")
    parser.add_argument("--no-aoa", action="store_true")
    parser.add_argument("--extra-task", action="append", default=[], metavar="TASK=FOLDER",
                        help="another zero-shot task of the pipeline on every revision (e.g. ewok=.../ewok_fast)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per pipeline command")
    return parser.parse_args(argv)


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

    from trainer.data.sources import resolve_data

    data = resolve_data(config, show_progress=False)  # the run's corpus and pairs (prepared: cached)
    pairs_dir = args.pairs or data.pairs_dir  # default: the pairs the run itself scored
    per_paradigm = args.pairs_per_paradigm if args.pairs_per_paradigm is not None else config.eval_pairs_per_paradigm
    tuning, held_out = run_pairs(config, pairs_dir, per_paradigm)
    pairs = tuning + held_out
    by_file = write_pairs(pairs, args.out / "data" / DATASET)
    print(f"pairs: {len(tuning)} tuning + {len(held_out)} held-out from {pairs_dir}, {len(by_file)} paradigms", flush=True)

    in_file_order = [p for group in by_file.values() for p in group]
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    records = []
    for rev, folder in revisions.items():
        flags = ["--model_path_or_name", repo, "--revision_name", rev, "--backend", "mlm", "--task", "blimp",
                 "--data_path", str(args.out / "data" / DATASET), "--save_predictions", "--output_dir", str(args.out / "results")]
        seconds = run_pipeline(args, "evaluation_pipeline.sentence_zero_shot.run", flags, logs / f"blimp_{rev}.log")
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
        for extra in args.extra_task:
            task, _, data = extra.partition("=")
            extra_flags = ["--model_path_or_name", repo, "--revision_name", rev, "--backend", "mlm", "--task", task,
                           "--data_path", str(Path(data).absolute()), "--save_predictions", "--output_dir", str(args.out / "results")]
            run_pipeline(args, "evaluation_pipeline.sentence_zero_shot.run", extra_flags, logs / f"{task}_{rev}.log")
            record[f"{task}_reported"] = reported_average(args.out / "results" / name / rev / "zero_shot" / "mlm" / task / Path(data).stem)
        records.append(record)
        common.emit(common.rounded(record))

    common.print_table(records, [
        ("revision", "revision", ""), ("pipeline_acc", "pipeline", ".4f"), ("ours_acc", "ours", ".4f"),
        ("difference_points", "diff (pts)", "+.2f"), ("same_decision", "same decision", ".4f"), ("ties", "ties", ""),
        ("pipeline_reported_mean_over_paradigms", "pipeline reported (%)", ".2f"), ("pipeline_s", "pipeline s", ".0f"),
    ], title=f"BLiMP-style pairs, {len(pairs)} per revision: the pipeline's mlm PLL vs trainer.evaluate")

    summary = {"repo": repo, "revisions": list(revisions), "pairs": str(pairs_dir), "blimp": records}
    if not args.no_aoa:
        if args.aoa_words:
            words_file, source = args.aoa_words.absolute(), "challenge"
        else:
            words_file, source = args.out / "data" / "aoa_words_standin.json", "stand-in"
            words = standin_aoa_words(corpus_lines(data.corpus_dir), args.aoa_standin_words, args.aoa_contexts)
            words_file.write_text(json.dumps(words, indent=1))
        flags = ["--model_name", repo, "--backend", "mlm", "--track_name", args.track, "--word_path", str(words_file),
                 "--output_dir", str(args.out / "results")]
        seconds = run_pipeline(args, "evaluation_pipeline.AoA_word.run", flags, logs / "aoa.log")
        surprisal_file = args.out / "results" / name / "main" / "zero_shot" / "mlm" / "AoA_word" / "surprisal.json"
        aoa = {"benchmark": "official_eval_aoa", "words": source, "surprisal_file": str(surprisal_file),
               "pipeline_s": seconds, **aoa_summary(surprisal_file)}
        summary["aoa"] = aoa
        common.emit(common.rounded(aoa))
        print(f"AoA ({source} words): {len(aoa['checkpoints'])} checkpoints in {surprisal_file}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in aoa["mean_surprisal"].items()) + " (mean surprisal)")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
