"""Before/after figures for two of the recipe's axes: frequency-informed masking and the
validation sample.

    python benchmarks/recipe_axes.py --reference REV [--steps 150] [--val-rows 512]

1. Masking. On the training rows of the built-in corpus and of a two-domain corpus written
   here, with `trainer/masking.py` as committed at REV ("before") and as in the working copy
   ("after"), at the schedule's rate m = 0.3 and q = 0.02 (the recipe's): the most frequent
   token's realised mask rate (masks drawn for real, 16 draws), the share of real tokens
   given p = 0, and the realised mean over real tokens.
2. Validation. A `tiny` model trained for `--steps` steps on the two-domain corpus, scored
   with `val_nelbo` on the first `--val-rows` validation rows in file order (before), on the
   stratified sample every trial now scores (after), and on every validation row (the value
   both estimate), with the per-file values beside them.

The two-domain corpus: `a_grammar.*` is text of the built-in grammar, `b_uniform.*` as many
lines of words drawn uniformly from its word list, each about half of the validation text.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import trainer.masking as masking  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data.dataset import TokenShard, load_frequencies  # noqa: E402
from trainer.data.prepare import prepare_corpus  # noqa: E402
from trainer.data.tokenizer import MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID  # noqa: E402
from trainer.data.validation import validation_rows  # noqa: E402
from trainer.evaluate import validation_metrics  # noqa: E402

RATE, POWER = 0.3, 0.02


def two_domain_corpus(folder: Path) -> Path:
    """a_grammar.{train,dev}: text of the built-in grammar (a fresh draw, seed 1, with a dev
    split large enough to hold several times --val-rows); b_uniform.{train,dev}: as many lines
    of words drawn uniformly from the grammar's word list (a domain no model predicts well)."""
    from trainer.data.grammar import generate_builtin_data

    generate_builtin_data(folder / "generated", seed=1, train_sentences=40000, dev_sentences=12000,
                          pairs_per_paradigm=1)
    rng = random.Random(0)
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        lines = (folder / "generated" / "corpus" / f"builtin.{split}").read_text(encoding="utf-8").splitlines()
        (corpus / f"a_grammar.{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        words = sorted({w for line in lines for w in line.split()})
        uniform = [" ".join(rng.choice(words) for _ in line.split()) if line.strip() else "" for line in lines]
        (corpus / f"b_uniform.{split}").write_text("\n".join(uniform) + "\n", encoding="utf-8")
    return corpus


def masking_figures(module, data, rows: int = 2048, draws: int = 16) -> dict:
    """Figures on `rows` training rows spread evenly over the shard (every file's text)."""
    counts, ranks = load_frequencies(data.frequencies_path)
    weights = module.token_weights(counts, ranks, "rank", NUM_SPECIAL_TOKENS)
    shard = TokenShard(data.train_path)
    ids = torch.from_numpy(shard.rows(np.unique(np.linspace(0, shard.num_rows - 1, rows).astype(np.int64))))
    maskable = ids >= NUM_SPECIAL_TOKENS
    probs = module.masking_probabilities(ids, torch.full((len(ids),), RATE), maskable, weights, POWER)
    top = int(np.argmax(counts))
    at_top = ids == top
    generator = torch.Generator().manual_seed(0)
    masked_top = masked_real = 0
    for _ in range(draws):
        _, masked = masking.apply_mask(ids, probs, MASK_ID, generator)
        masked_top += int((masked & at_top).sum())
        masked_real += int((masked & maskable).sum())
    return {
        "most_frequent_token_rate": masked_top / (draws * int(at_top.sum())),
        "most_frequent_token_share": float(at_top.sum() / maskable.sum()),
        "zero_probability_share": float((probs[maskable] == 0).float().mean()),
        "realised_mean": masked_real / (draws * int(maskable.sum())),
    }


def train_tiny(data, corpus: Path, steps: int, out: Path):
    from trainer.checkpoint import load_checkpoint
    from trainer.loop import train_loop
    from trainer.model import build_model

    config = TrainConfig(corpus=str(corpus), max_steps=steps, eval_every=steps, checkpoint_every=steps, val_rows=32)
    train_loop(config, data.root, out, show_progress=False)
    state = load_checkpoint(sorted((out / "checkpoints").glob("step_*"))[-1])
    model = build_model(config.model, data.vocab_size)
    model.load_state_dict(state["ema"])
    return model.eval(), config


def val_nelbo(model, config, ids) -> float:
    return validation_metrics(model, ids, num_rates=config.val_mask_rates, num_special=NUM_SPECIAL_TOKENS,
                              mask_id=MASK_ID, pad_id=PAD_ID, batch_size=64)["val_nelbo"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True, help="git revision of the 'before' trainer/masking.py")
    parser.add_argument("--steps", type=int, default=150, help="training steps of the model scored in part 2")
    parser.add_argument("--val-rows", type=int, default=512)
    parser.add_argument("--cache-dir", help="data cache (default: a temporary folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    source = subprocess.run(["git", "show", f"{args.reference}:trainer/masking.py"], cwd=common.ROOT,
                            capture_output=True, text=True, check=True).stdout
    before = common.import_source(source, "masking_before")

    work = Path(tempfile.mkdtemp(prefix="recipe-axes-"))
    cache = Path(args.cache_dir) if args.cache_dir else work / "cache"
    builtin = common.builtin_data(str(cache))
    corpus = two_domain_corpus(work / "two_domains")
    two = prepare_corpus(corpus, cache / "prepared", vocab_size=16384, seq_length=128, show_progress=False)

    record = {"benchmark": "recipe_axes", "reference": args.reference, "rate": RATE, "power": POWER,
              "machine": common.machine_info(), "masking": {}}
    for name, data in (("builtin", builtin.prepared), ("two_domains", two)):
        record["masking"][name] = {"before": masking_figures(before, data), "after": masking_figures(masking, data)}
    common.print_table(
        [{"corpus": c, "version": v, **record["masking"][c][v]} for c in record["masking"] for v in ("before", "after")],
        [("corpus", "corpus", ""), ("version", "version", ""), ("most_frequent_token_rate", "top token rate", ".4f"),
         ("most_frequent_token_share", "top token share", ".4f"), ("zero_probability_share", "p = 0 share", ".4f"),
         ("realised_mean", "realised mean", ".4f")],
        title=f"masking at m = {RATE}, q = {POWER}",
    )

    model, config = train_tiny(two, corpus, args.steps, work / "run")
    shard = TokenShard(two.val_path)
    spans = two.source_rows("val")
    first = np.arange(min(args.val_rows, shard.num_rows))
    spread, description = validation_rows(spans, args.val_rows)
    everything = np.arange(shard.num_rows)
    files_of_first = [path for path, start, end in spans if ((first >= start) & (first < end)).any()]
    validation = {
        "first_rows": {"val_nelbo": val_nelbo(model, config, shard.rows(first)), "files": files_of_first},
        "spread_rows": {"val_nelbo": val_nelbo(model, config, shard.rows(spread)),
                        "files": {f["path"]: f["rows"] for f in description["files"]}},
        "all_rows": {"val_nelbo": val_nelbo(model, config, shard.rows(everything)), "rows": int(shard.num_rows)},
        "per_file": {path: val_nelbo(model, config, shard.rows(np.arange(start, end))) for path, start, end in spans},
        "steps": args.steps,
    }
    record["validation"] = validation
    common.print_table(
        [{"rows": k, "val_nelbo": validation[k]["val_nelbo"], "files": str(validation[k].get("files", ""))}
         for k in ("first_rows", "spread_rows", "all_rows")]
        + [{"rows": f"only {p}", "val_nelbo": v, "files": ""} for p, v in validation["per_file"].items()],
        [("rows", "rows scored", ""), ("val_nelbo", "val_nelbo", ".4f"), ("files", "files", "")],
        title=f"two-domain corpus, tiny model after {args.steps} steps, {args.val_rows} validation rows",
    )
    common.emit(common.rounded(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
