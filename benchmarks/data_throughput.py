"""Data pipeline throughput: preparation, tokenisation, Arrow shard writing, and the loader's
delivery rate against what the trainer consumes.

    python benchmarks/data_throughput.py [--quick] [--rows-large N]

1. `prepare_corpus` end to end on the built-in corpus into a fresh cache (scan + hash, BPE
   training, encoding, packing, shard and frequency-table writing): MB of text/s, tokens/s;
   and the BPE training alone (`train_tokenizer` on the training lines).
2. Tokenisation alone: the tokenizer it trained, `encode_batch_fast` over every training line
   in ~1 MB chunks (as prepare.py encodes): tokens/s and MB/s.
3. Arrow shard writing alone, in the format prepare.py writes (one fixed_size_list<int32>[T]
   column, uncompressed IPC file, record batches of prepare.ROWS_PER_BATCH rows): a synthetic
   token stream of `--rows-large` rows (BabyLM-100M scale by default), rows/s and MB/s.
4. The loader as train_loop uses it, per step: `next_global_batch` (an epoch permutation) ->
   `TokenShard.rows` (gather from the memory map) -> `torch.from_numpy`; on the built-in shard
   and on the large synthetic shard, at 32 and 256 rows a step; and the same with the epoch
   permutation recomputed every step (the loader before `epoch_permutation` was cached).
5. The trainer's consumption: tokens/s of a short tiny-preset train_loop run here (the fastest
   consumer on this machine), and the ratio delivery / consumption (must stay far above 1).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import torch  # noqa: E402

import trainer.loop as loop  # noqa: E402
from trainer.data import prepare  # noqa: E402
from trainer.data.dataset import TokenShard  # noqa: E402
from trainer.data.tokenizer import load_tokenizer, train_tokenizer  # noqa: E402

BABYLM_100M_ROWS = 1_000_000  # ~130M tokens / 128-token rows, the strict track's size


def prepare_end_to_end(corpus_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        data = prepare.prepare_corpus(corpus_dir, cache, show_progress=False)
        seconds = time.perf_counter() - start
        tokens = sum(data.manifest["text_tokens"].values())
        text_bytes = sum(f["bytes"] for f in data.manifest["source_files"])
        tokenizer = load_tokenizer(data.tokenizer_path)
        encode = tokenisation(corpus_dir, tokenizer)
    lines = training_lines(corpus_dir)
    start = time.perf_counter()
    train_tokenizer((lines[i : i + 4096] for i in range(0, len(lines), 4096)), vocab_size=16384, show_progress=False)
    train_s = time.perf_counter() - start
    return {
        "prepare_s": seconds,
        "prepare_mb_per_s": text_bytes / seconds / 1e6,
        "prepare_tokens_per_s": tokens / seconds,
        "corpus_mb": text_bytes / 1e6,
        "corpus_tokens": tokens,
        "train_tokenizer_s": train_s,
        **encode,
    }


def training_lines(corpus_dir: Path) -> list[str]:
    lines = [line.strip() for path in sorted(corpus_dir.rglob("*.train")) for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def tokenisation(corpus_dir: Path, tokenizer) -> dict:
    """encode_batch_fast over the training lines in ~1 MB chunks, as prepare.py does."""
    lines = training_lines(corpus_dir)
    chunks, chunk, size = [], [], 0
    for line in lines:
        chunk.append(line)
        size += len(line)
        if size >= prepare.ENCODE_CHUNK_CHARS:
            chunks.append(chunk)
            chunk, size = [], 0
    chunks.append(chunk)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    tokenizer.encode_special_tokens = True
    start = time.perf_counter()
    tokens = 0
    for chunk in chunks:
        tokens += sum(len(e.ids) for e in encode(chunk, add_special_tokens=False))
    seconds = time.perf_counter() - start
    text_bytes = sum(len(line.encode()) for line in lines)
    return {"tokenise_tokens_per_s": tokens / seconds, "tokenise_mb_per_s": text_bytes / seconds / 1e6}


def write_shard(path: Path, rows: int, seq_length: int, vocab: int) -> dict:
    """A synthetic shard in prepare.py's format, written record batch by record batch."""
    rng = np.random.default_rng(0)
    schema = pa.schema([pa.field("input_ids", pa.list_(prepare.ARROW_TOKEN_TYPE, seq_length), nullable=False)])
    block_rows = prepare.ROWS_PER_BATCH
    blocks = [rng.integers(16, vocab, size=(block_rows, seq_length), dtype=np.int32) for _ in range(4)]
    start = time.perf_counter()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        written = 0
        i = 0
        while written < rows:
            block = blocks[i % len(blocks)][: rows - written]
            column = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), seq_length)
            writer.write_batch(pa.record_batch([column], schema=schema))
            written += len(block)
            i += 1
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    return {"write_rows": rows, "write_s": seconds, "write_rows_per_s": rows / seconds, "write_mb_per_s": size / seconds / 1e6}


@contextlib.contextmanager
def uncached_permutation():
    """The 'before' figure: the epoch permutation shuffled again at every step."""
    original = loop.epoch_permutation
    loop.epoch_permutation = original.__wrapped__
    try:
        yield
    finally:
        loop.epoch_permutation = original


def delivery(shard: TokenShard, batch: int, seconds: float) -> float:
    """Tokens/s the loop's data lines deliver (index batch, gather, tensor), best of 3 windows."""
    position = loop.DataPosition()
    rates = []
    for _ in range(3):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            indices, position = loop.next_global_batch(shard.num_rows, batch, 0, position)
            ids = torch.from_numpy(shard.rows(indices))
            steps += 1
        rates.append(steps * ids.numel() / (time.perf_counter() - start))
    return max(rates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows-large", type=int, help=f"rows of the synthetic shard (default {BABYLM_100M_ROWS:,}; quick: 100,000)")
    parser.add_argument("--cache-dir")
    parser.add_argument("--consumption", type=float, help="trainer tokens/s to compare with (default: measure tiny here)")
    args = parser.parse_args(argv)
    rows_large = args.rows_large or (100_000 if args.quick else BABYLM_100M_ROWS)
    seconds = 1.0 if args.quick else 3.0
    load = common.load_average()

    run_data = common.builtin_data(args.cache_dir)
    record = {"benchmark": "data_throughput", "threads": torch.get_num_threads(), "load": load}
    record.update(prepare_end_to_end(run_data.corpus_dir))

    builtin_shard = TokenShard(run_data.prepared.train_path)
    tmp = Path(tempfile.mkdtemp(prefix="bench-shard-"))
    try:
        record.update(write_shard(tmp / "large.arrow", rows_large, builtin_shard.seq_length, run_data.prepared.vocab_size))
        large_shard = TokenShard(tmp / "large.arrow")
        loader = []
        for name, shard in (("builtin", builtin_shard), ("large", large_shard)):
            for batch in (32, 256):
                cached = delivery(shard, batch, seconds)
                with uncached_permutation():
                    uncached = delivery(shard, batch, seconds)
                loader.append({"shard": name, "rows": shard.num_rows, "batch": batch,
                               "tokens_per_s": cached, "tokens_per_s_uncached_permutation": uncached})
        del large_shard
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record["loader"] = loader

    if args.consumption:
        consumption = args.consumption
    else:
        import throughput

        torch.set_num_threads(1)  # as a sweep trial; the faster consumer of the two thread counts here
        config = throughput.bench_config("tiny", 3, 1, 32)
        consumption = throughput.loop_throughput(config, run_data.data_root, "cpu", 1)["tokens_per_s"]
    record["trainer_tokens_per_s"] = consumption
    worst = min(row["tokens_per_s"] for row in loader if row["batch"] == 32)
    record["delivery_over_consumption"] = worst / consumption
    record["loader_share_of_step"] = consumption / worst  # fraction of a step spent fetching the batch
    record["load_end"] = common.load_average()

    common.print_table(
        [{"what": "prepare_corpus (built-in, end to end)", "rate": record["prepare_tokens_per_s"], "mb": record["prepare_mb_per_s"],
          "note": f"{record['prepare_s']:.1f} s for {record['corpus_mb']:.1f} MB"},
         {"what": "train the BPE tokenizer (vocab 16384)", "note": f"{record['train_tokenizer_s']:.1f} s"},
         {"what": "tokenise (encode_batch_fast)", "rate": record["tokenise_tokens_per_s"], "mb": record["tokenise_mb_per_s"]},
         {"what": f"write Arrow shard ({rows_large:,} rows)", "rate": record["write_rows_per_s"] * builtin_shard.seq_length,
          "mb": record["write_mb_per_s"], "note": f"{record['write_rows_per_s']:,.0f} rows/s"}],
        [("what", "stage", ""), ("rate", "tokens/s", ",.0f"), ("mb", "MB/s", ".1f"), ("note", "", "")],
        title=f"data preparation (load {load[0]})",
    )
    common.print_table(
        [{**row, "ratio": row["tokens_per_s"] / consumption} for row in loader],
        [("shard", "shard", ""), ("rows", "rows", ",d"), ("batch", "rows/step", ""), ("tokens_per_s", "delivered tokens/s", ",.0f"),
         ("tokens_per_s_uncached_permutation", "shuffled every step (before)", ",.0f"), ("ratio", "x trainer", ",.0f")],
        title=f"loader delivery vs the trainer's consumption ({consumption:,.0f} tokens/s, tiny preset)",
    )
    common.emit(common.rounded(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
