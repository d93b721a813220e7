"""Final training of a sweep's best config: `python sweeps/final.py <storage>/<name>`.

    python sweeps/final.py runs/sweeps/bimodal_p-20261125 --max-words 100M --checkpoint-words babylm
    python sweeps/final.py runs/sweeps/bimodal_p-20261125 --workers 4 --gpus-per-worker 1
    python sweeps/final.py runs/sweeps/bimodal_p-20261125 --hub-cache my-org/mdlm-strict-small

Reads `best_config.json` (written by the sweep's export, from the confirmed ranking when a
confirmation stage ran), trains it with `python -m trainer.train` (one process, or a
TorchTrainer across workers), saves word-count checkpoints as model folders
(`chck_<N>M`, the BabyLM schedule by default), and exports the final model as a Hugging
Face folder that the BabyLM evaluation pipeline loads. Provenance (sweep, trial, data
hash, code version, seed, pair split) goes into the model card.

`--hub-cache <org>/<name>` also lays the checkpoints and the final model out as revisions
(`chck_<N>M`, `main`) of that repository in the Hugging Face cache, so the pipeline's
`--revision_name chck_1M` resolves offline; `--push-to-hub <org>/<name>` uploads them as branches
(trainer/hub.py). Both are checked (names, login) before training starts.

The budget is the config's own unless `--max-steps` / `--max-words` say otherwise: a
sweep's trials usually train shorter than a final model should.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.cli import ArgumentParser
from trainer.errors import UserError
from trainer.metrics import summary_names
from sweeps import storage
from sweeps.spec import code_version


class FinalError(UserError):
    """Bad final-training input; one line."""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python sweeps/final.py", description=__doc__.split("\n")[0])
    p.add_argument("experiment", help="<storage>/<name> of a sweep (holding best_config.json)")
    p.add_argument("--out", help="output folder (default: runs/final/<sweep name>)")
    p.add_argument("--max-steps", type=int, help="budget in optimizer steps (default: the config's)")
    p.add_argument("--max-words", help="budget in words of training text seen, e.g. 100M")
    p.add_argument("--checkpoint-words", default="babylm",
                   help="'babylm' (default), a list like 1M,2M,5M, or 'none'")
    p.add_argument("--seed", type=int, help="training seed (default: the config's)")
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each worker reserves")
    p.add_argument("--cache-dir", help="data cache (default: $MDLM_CACHE_DIR or ~/.cache/mdlm-sweeps)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field (recorded)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from trainer.hub import add_publish_flags

    add_publish_flags(p)
    return p


def load_best(experiment: str) -> tuple[str, dict]:
    path = storage.join(experiment, "best_config.json")
    if not storage.exists(path):
        raise FinalError(f"{experiment} has no best_config.json: run `python sweeps/export.py {experiment}` first")
    try:
        document = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FinalError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise FinalError(f"{path} holds no 'config' object")
    return path, document


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    experiment = storage.normalise(args.experiment)
    try:
        from trainer.hub import check_publish_flags

        check_publish_flags(args.hub_cache, args.push_to_hub)  # before hours of training
        best_path, document = load_best(experiment)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    provenance = dict(document.get("provenance") or {})
    out = Path(args.out or Path("runs/final") / (provenance.get("sweep") or Path(experiment).name)).resolve()
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} already exists and is not empty; pass another --out", file=sys.stderr)
        return 2

    local_config = out.with_name(out.name + ".config.json") if storage.is_uri(best_path) else None
    config_path = best_path
    if local_config is not None:  # trainer.train reads a local file
        out.parent.mkdir(parents=True, exist_ok=True)
        local_config.write_text(json.dumps(document))
        config_path = str(local_config)
    train_argv = ["--config", config_path, "--out", str(out / "train"), "--workers", str(args.workers),
                  "--cpus-per-worker", str(args.cpus_per_worker), "--gpus-per-worker", str(args.gpus_per_worker)]
    for flag, value in (("--max-steps", args.max_steps), ("--max-words", args.max_words), ("--seed", args.seed),
                        ("--cache-dir", args.cache_dir)):
        if value is not None:
            train_argv += [flag, str(value)]
    if args.checkpoint_words.strip().lower() != "none":
        train_argv += ["--checkpoint-words", args.checkpoint_words]
    for item in args.set or []:
        train_argv += ["--set", item]
    if args.no_progress:
        train_argv.append("--no-progress")

    from trainer.train import main as train_main

    code = train_main(train_argv)
    if code != 0:
        return code
    return export_final(out, provenance, experiment, hub_cache=args.hub_cache, hub_cache_dir=args.hub_cache_dir,
                        push_to_hub=args.push_to_hub)


def export_final(out: Path, sweep_provenance: dict, experiment: str, *, hub_cache: str | None = None,
                 hub_cache_dir: str | None = None, push_to_hub: str | None = None) -> int:
    """Export the last checkpoint's EMA weights as the final model folder `<out>/model`; with
    hub_cache / push_to_hub, also the word checkpoints and it as revisions of that repository."""
    from trainer.checkpoint import load_checkpoint
    from trainer.config import TrainConfig
    from trainer.export import export_model

    run = out / "train"
    try:
        state = load_checkpoint(run)  # the loop's latest (Ray Train keeps its copies in its own storage)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = TrainConfig.parse(state["config"])
    data = json.loads((run / "data.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = metrics[-1] if metrics else {}
    from trainer.data.prepare import open_prepared

    prepared = open_prepared(data["data_root"])
    provenance = {
        "sweep": sweep_provenance.get("sweep"),
        "sweep_folder": experiment,
        "trial_id": sweep_provenance.get("trial_id"),
        "selected_by": sweep_provenance.get("selected_by"),
        "sweep_metric": {sweep_provenance.get("metric"): sweep_provenance.get("value")},
        "confirmation": (sweep_provenance.get("confirmation") or {}).get("difference"),
        "pairs_split": sweep_provenance.get("pairs_split"),
        "validation": data.get("validation"),
        "data_hash": prepared.content_hash,
        "sweep_data_hash": sweep_provenance.get("data_hash"),
        "code_version": code_version(),
        "sweep_code_version": sweep_provenance.get("code_version"),
        "seed": config.seed,
        "step": state["step"],
        "words_seen": last.get("words_seen"),
        "final_metrics": {k: last.get(k) for k in summary_names() if k != "train_loss"},
    }
    model_dir = export_model(state["ema"], config, prepared.tokenizer_path, out / "model", provenance)
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2))
    print(f"final model: {model_dir}  (word checkpoints: {', '.join(sorted(p.name for p in run.glob('chck_*'))) or 'none'})")
    print(f"evaluate with the BabyLM pipeline: --model_path_or_name {model_dir} --backend mlm")
    if hub_cache or push_to_hub:
        from trainer.hub import find_revisions, publish

        try:
            publish(hub_cache, push_to_hub, find_revisions(run, model_dir), hub_cache_dir)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
