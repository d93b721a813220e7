"""Data preparation at BabyLM scale: 10M and 100M words of varied text.

    python benchmarks/data_scale.py                 # 10M and 100M words (~5 min on 2 quiet cores,
                                                    # plus ~1 min to generate the corpora once)
    python benchmarks/data_scale.py --quick         # 10M words only
    python benchmarks/data_scale.py --words 100M --work-dir /data/scale   # corpora kept there

1. Generates (once, then reused from `--work-dir`) a BabyLM-style corpus per size: six
   `<domain>.train` files in BabyLM's proportions (CHILDES, BNC spoken, Gutenberg, OpenSubtitles,
   Simple Wikipedia, Switchboard) plus `<domain>.dev` files of 1/20 that size. N words means N
   training words (whitespace-separated, as `str.split()` counts them). The text is synthetic
   but varied: a Zipf-Mandelbrot vocabulary of `--types` word types (real function words at
   the head, then pseudo-words, capitalised names, numbers and possessives), each domain with
   its own exponent, its own reshuffled tail and its own sentence-length distribution,
   sentence-initial capitals, commas, semicolons, line wrapping, speaker tags and a few blank
   lines. Numpy builds the bytes in chunks; deterministic from `--seed`. Generation time is
   printed but excluded from every figure.
2. Prepares each corpus with `prepare_corpus` into an empty cache, in a fresh process whose
   peak RSS is reported (RUSAGE_CHILDREN of a small launcher: the largest of the process and
   any it starts): the time split into hashing + UTF-8 check of the corpus, tokenizer
   training (with its reading pass), encoding + shard writing (up to the output hashing), and
   the rest (lock, manifest, rename). The corpus files are in the page cache by then (just
   generated or hashed), as they are on a second run.
3. Cache size on disk, and the loader's delivery (tokens/s) on the prepared train shard, the way
   train_loop fetches a batch (see data_throughput.py).
4. A second preparation of the same corpus in another fresh subprocess: it must reuse the cache.

Prints a table and one JSON line per corpus size (`benchmark: data_scale`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import numpy as np  # noqa: E402

# Bump when the generator's output changes, so cached corpora are regenerated.
GENERATOR_VERSION = 1
DEFAULT_WORK_DIR = Path("/tmp/mdlm-data-scale")

# One entry per BabyLM source: share of the words (BabyLM 2024's 100M track, millions, roughly),
# Zipf exponent, how many of the most frequent types it uses (None: all), noise on log-rank that
# reshuffles its tail, sentence length (lognormal mean, sigma), end marks ./?/!, chance a sentence
# ends its line, chance of a comma after a word, of a line wrap inside a sentence, of a blank line
# (new document) after a sentence, and the speaker tags that open its utterances.
DOMAINS = {
    #                share  zipf_s  head_keep  tail_noise  mean_len  sigma  end ./?/!           newline_at_end  comma  wrap   blank  tags
    "childes":        (29, 1.20, 60_000, 1.5, 4.0, 0.65, (0.60, 0.30, 0.10), 1.00, 0.02, 0.000, 0.0005, ("*CHI:\t", "*MOT:\t", "*FAT:\t", "*INV:\t")),
    "bnc_spoken":     (8, 1.10, 150_000, 1.0, 9.0, 0.80, (0.75, 0.20, 0.05), 1.00, 0.06, 0.000, 0.001, ()),
    "gutenberg":      (26, 1.05, None, 0.8, 20.0, 0.60, (0.85, 0.08, 0.07), 0.30, 0.10, 0.080, 0.010, ()),
    "open_subtitles": (20, 1.12, 200_000, 1.2, 6.0, 0.60, (0.70, 0.22, 0.08), 1.00, 0.05, 0.000, 0.002, ()),
    "simple_wiki":    (15, 1.00, None, 0.6, 17.0, 0.50, (0.97, 0.02, 0.01), 0.25, 0.09, 0.000, 0.020, ()),
    "switchboard":    (1, 1.15, 80_000, 1.0, 8.0, 0.90, (0.80, 0.15, 0.05), 1.00, 0.04, 0.000, 0.0005, ("A:\t", "B:\t")),
}
FUNCTION_WORDS = (
    "the of and to a in that is was he for it with as his on be at by i this had not are but from or "
    "have an they which one you were her all she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time these two may "
    "then do first any my now such like our over man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people mr how too "
    "little state good very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since against go came right "
    "used take three don't it's i'm that's can't didn't mummy daddy yeah oh okay look want baby"
).split()
# Between words (not the last of a sentence) and at a sentence's end.
SEPARATORS = [" ", ", ", "; ", "\n", ". ", "? ", "! ", ".\n", "?\n", "!\n", ".\n\n", "?\n\n", "!\n\n", ""]
SEP_SPACE, SEP_COMMA, SEP_SEMI, SEP_WRAP, SEP_END_SPACE, SEP_END_NL, SEP_END_BLANK, SEP_NONE = 0, 1, 2, 3, 4, 7, 10, 13
CHUNK_WORDS = 1 << 20


def parse_words(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad word count {text!r}; e.g. 10M, 100M, 500k")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def label(words: int) -> str:
    if words % 1_000_000 == 0:
        return f"{words // 1_000_000}M"
    if words % 1_000 == 0:
        return f"{words // 1_000}k"
    return str(words)


# --------------------------------------------------------------------------
# Corpus generation


def make_vocabulary(types: int, seed: int) -> list[str]:
    """Word types by global frequency rank: function words, then a shuffled mix of pseudo-words
    (1-4 syllables), capitalised names, numbers and possessives; all distinct."""
    rng = np.random.default_rng((seed, 1))
    onsets = ["", "", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z",
              "bl", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gr", "pl", "pr", "sh", "sk", "sl", "sp", "st",
              "str", "th", "tr", "wh"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "y", "ie", "oa"]
    codas = ["", "", "", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "st", "ck", "rt", "x", "ll", "sh", "th", "ph"]
    syllables = np.array([o + v + c for o in onsets for v in vowels for c in codas], dtype=object)
    weights = rng.lognormal(0.0, 1.0, len(syllables))  # some syllables far more common than others
    weights /= weights.sum()
    words = dict.fromkeys(FUNCTION_WORDS)
    while len(words) < types:
        n = int((types - len(words)) * 1.3) + 1000
        counts = rng.choice([1, 2, 3, 4], size=n, p=[0.40, 0.45, 0.13, 0.02])
        parts = rng.choice(syllables, size=(n, 4), p=weights)
        kind = rng.random(n)
        numbers = rng.integers(0, 10 ** rng.integers(1, 7, size=n))
        for i in range(n):
            if kind[i] < 0.04:
                w = str(numbers[i])
            else:
                w = "".join(parts[i, : counts[i]])
                if kind[i] < 0.12:
                    w = w.capitalize()
                elif kind[i] < 0.14:
                    w += "'s"
            words.setdefault(w)
            if len(words) >= types:
                break
    head = list(words)[: len(FUNCTION_WORDS)]
    tail = list(words)[len(FUNCTION_WORDS) : types]
    order = rng.permutation(len(tail))
    return head + [tail[i] for i in order]


class DomainWriter:
    """Generates one domain's text, CHUNK_WORDS words at a time, as bytes."""

    def __init__(self, name: str, vocab_bytes, types: int, seed: int, split_index: int, first_tag: int):
        (_, zipf_s, head_keep, tail_noise, mean_len, sigma, ends, newline_at_end, comma, wrap, blank,
         tags) = DOMAINS[name]
        domain_index = list(DOMAINS).index(name)
        setup = np.random.default_rng((seed, 2, domain_index))  # the same domain model for train and dev
        self.rng = np.random.default_rng((seed, 3, domain_index, split_index))
        flat, offsets, lengths = vocab_bytes
        keep = min(types, head_keep or types)
        # The domain's own rank order: the function-word head stays, the tail is reshuffled by
        # noise on log-rank (a domain's frequent words are partly other domains' rare ones).
        ranks = np.arange(types)
        key = np.log1p(ranks) + setup.normal(0.0, tail_noise, types) * (ranks >= len(FUNCTION_WORDS))
        self.word_of_rank = np.argsort(key, kind="stable")[:keep].astype(np.int64)
        p = 1.0 / (np.arange(keep) + 2.7) ** zipf_s  # Zipf-Mandelbrot
        self.cdf = np.cumsum(p / p.sum())
        self.mean_len, self.sigma = mean_len, sigma
        self.ends = np.asarray(ends) / sum(ends)
        self.newline_at_end, self.comma, self.wrap, self.blank = newline_at_end, comma, wrap, blank
        self.tags = [first_tag + i for i in range(len(tags))]  # entries of the byte table
        self.flat, self.offsets, self.lengths = flat, offsets, lengths
        self.types = types

    def chunk(self, words: int) -> bytes:
        rng = self.rng
        lengths = []
        total = 0
        while total < words:
            lens = np.maximum(1, np.round(rng.lognormal(np.log(self.mean_len), self.sigma, 4096))).astype(np.int64)
            lens = np.minimum(lens, 150)
            lengths.append(lens)
            total += int(lens.sum())
        lens = np.concatenate(lengths)
        ends = np.cumsum(lens)
        cut = int(np.searchsorted(ends, words))  # the sentence that reaches `words`
        lens = lens[: cut + 1].copy()
        lens[-1] -= int(ends[cut] - words)
        lens = lens[lens > 0]
        n = int(lens.sum())
        sentence_start = np.cumsum(lens) - lens
        items = self.word_of_rank[np.searchsorted(self.cdf, rng.random(n), side="right").clip(0, len(self.cdf) - 1)]
        first_content = sentence_start.copy()
        if self.tags:  # a speaker tag opens each utterance and counts as a word (as in BabyLM)
            has_tag = lens > 1
            items[sentence_start[has_tag]] = rng.choice(self.tags, size=int(has_tag.sum()))
            first_content[has_tag] += 1
        # Separators: within a sentence a space, comma, semicolon or line wrap; at its end
        # . ? ! then a space (same paragraph), a newline, or a blank line (a new document).
        u = rng.random(n)
        seps = np.full(n, SEP_SPACE, dtype=np.int64)
        seps[u < self.comma] = SEP_COMMA
        seps[u < self.comma * 0.1] = SEP_SEMI
        seps[(u > 1 - self.wrap)] = SEP_WRAP
        last = sentence_start + lens - 1
        mark = rng.choice(3, size=len(lens), p=self.ends)
        v = rng.random(len(lens))
        kind = np.where(v < self.blank, SEP_END_BLANK, np.where(v < self.newline_at_end, SEP_END_NL, SEP_END_SPACE))
        seps[last] = kind + mark
        if self.tags:
            seps[sentence_start[lens > 1]] = SEP_NONE  # the tag ends with a tab
        seps += self.types
        # Interleave word, separator, word, ... and gather the bytes in one go.
        seq = np.empty(2 * n, dtype=np.int64)
        seq[0::2], seq[1::2] = items, seps
        piece_len = self.lengths[seq]
        out_start = np.cumsum(piece_len) - piece_len
        size = int(piece_len.sum())
        index = np.repeat(self.offsets[seq] - out_start, piece_len) + np.arange(size, dtype=np.int64)
        out = self.flat[index]
        # Sentence-initial capital (numbers and tags unchanged).
        first = out_start[2 * first_content]
        letter = (out[first] >= ord("a")) & (out[first] <= ord("z"))
        out[first[letter]] -= 32
        return out.tobytes()


def generate_corpus(folder: Path, words: int, types: int, seed: int) -> float:
    """Write the corpus into `folder` (skipped when complete); returns the generation seconds."""
    done = folder / ".complete"
    if done.exists():
        return 0.0
    start = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vocab = make_vocabulary(types, seed)
    tag_table = [t for d in DOMAINS.values() for t in d[-1]]
    pieces = [w.encode("utf-8") for w in vocab] + [s.encode("utf-8") for s in SEPARATORS]
    pieces += [t.encode("utf-8") for t in tag_table]
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    flat = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    shares = np.array([d[0] for d in DOMAINS.values()], dtype=np.float64)
    for split_index, (suffix, split_words) in enumerate(((".train", words), (".dev", max(words // 20, 1000)))):
        per_domain = np.floor(shares / shares.sum() * split_words).astype(np.int64)
        per_domain[0] += split_words - per_domain.sum()
        for name, domain_words in zip(DOMAINS, per_domain):
            tags = DOMAINS[name][-1]
            first_tag = len(vocab) + len(SEPARATORS) + (tag_table.index(tags[0]) if tags else 0)
            writer = DomainWriter(name, (flat, offsets, lengths), len(vocab), seed, split_index, first_tag)
            with open(tmp / f"{name}{suffix}", "wb") as f:
                left = int(domain_words)
                while left > 0:
                    take = min(CHUNK_WORDS, left)
                    f.write(writer.chunk(take))
                    left -= take
    (tmp / ".complete").write_text(json.dumps({"words": words, "types": types, "seed": seed,
                                               "generator_version": GENERATOR_VERSION}) + "\n")
    os.rename(tmp, folder)
    return time.perf_counter() - start


# --------------------------------------------------------------------------
# Measuring one preparation in a fresh process

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from trainer.data import prepare

times = {{}}
def timed(name, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start
    return wrapper

# Stage timings without touching prepare.py's code: the hash + UTF-8 scan, the tokenizer
# training (the iterator it consumes reads the corpus), and the whole build.
prepare._identify = timed("scan", prepare._identify)
prepare.train_tokenizer = timed("tokenizer", prepare.train_tokenizer)
prepare._build = timed("build", prepare._build)
start = time.perf_counter()
data = prepare.prepare_corpus({corpus!r}, {cache!r}, vocab_size={vocab}, seq_length={seq}, show_progress=False)
total = time.perf_counter() - start
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
print("RESULT " + json.dumps({{"total": total, **times, "root": str(data.root), "manifest": data.manifest,
                              "own_peak_kb": int(hwm[0]) if hwm else None}}))
"""
# Runs the preparation process and reports the peak RSS of it and all its descendants
# (RUSAGE_CHILDREN: the largest of them). A small launcher of its own, because ru_maxrss
# also counts what a process held when it was forked, and this script (numpy, torch) is big.
LAUNCHER = r"""
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print("PEAK_KB %d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(code)
"""


def run_preparation(corpus: Path, cache: Path, vocab: int, seq: int) -> dict:
    """prepare_corpus in a fresh interpreter; its result plus the peak RSS (MB) of that process
    and any process it started."""
    code = CHILD.format(root=str(common.ROOT), corpus=str(corpus), cache=str(cache), vocab=vocab, seq=seq)
    start = time.perf_counter()
    process = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True, cwd=common.ROOT)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"preparation of {corpus} failed (exit code {process.returncode})")
    lines = process.stdout.splitlines()
    result = json.loads(next(line for line in lines if line.startswith("RESULT "))[7:])
    result["peak_rss_mb"] = int(next(line for line in lines if line.startswith("PEAK_KB "))[8:]) / 1024  # Linux: KiB
    result["process_wall_s"] = wall
    return result


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def measure(words: int, args) -> dict:
    from data_throughput import delivery  # the loader measured as train_loop uses it
    from trainer.data.dataset import TokenShard

    work = Path(args.work_dir)
    corpus = work / f"corpus-{label(words)}-types{args.types}-seed{args.seed}-g{GENERATOR_VERSION}"
    gen_s = generate_corpus(corpus, words, args.types, args.seed)
    print(f"[{label(words)}] corpus {corpus} ({'generated in %.1f s' % gen_s if gen_s else 'reused'}), "
          f"{sum(p.stat().st_size for p in corpus.glob('*.*')) / 1e6:.0f} MB", flush=True)
    cache = work / f"cache-{label(words)}"
    shutil.rmtree(cache, ignore_errors=True)
    load = common.load_average()

    first = run_preparation(corpus, cache, args.vocab_size, args.seq_length)
    m = first["manifest"]
    print(f"[{label(words)}] first preparation {first['total']:.1f} s, peak RSS {first['peak_rss_mb']:.0f} MB", flush=True)
    second = run_preparation(corpus, cache, args.vocab_size, args.seq_length)
    print(f"[{label(words)}] second preparation {second['total']:.1f} s", flush=True)
    root = Path(first["root"])
    shard = TokenShard(root / "train.arrow")
    loader = delivery(shard, 32, args.loader_seconds)
    del shard
    record = {
        "benchmark": "data_scale",
        "words": words,
        "label": label(words),
        "load": load,
        "generate_s": gen_s,  # 0 when reused; not part of any figure below
        "corpus_mb": sum(f["bytes"] for f in m["source_files"]) / 1e6,
        "words_prepared": m["words"],
        "text_tokens": m["text_tokens"],
        "vocab_size": m["settings"]["vocab_size_actual"],
        "tokenizer_sample": m.get("tokenizer_sample"),
        "prepare_s": first["total"],
        "scan_s": first.get("scan", 0.0),
        "tokenizer_s": first.get("tokenizer", 0.0),
        "encode_s": first.get("build", 0.0) - first.get("tokenizer", 0.0),
        "rest_s": first["total"] - first.get("scan", 0.0) - first.get("build", 0.0),
        "peak_rss_mb": first["peak_rss_mb"],
        "cache_mb": folder_bytes(root) / 1e6,
        "loader_tokens_per_s": loader,
        "second_prepare_s": second["total"],
        "second_peak_rss_mb": second["peak_rss_mb"],
        "second_reused": second["root"] == first["root"] and second.get("build", 0.0) == 0.0,
        "load_end": common.load_average(),
    }
    if not args.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", default="10M,100M", help="comma list of training-word counts (default 10M,100M)")
    parser.add_argument("--quick", action="store_true", help="10M words only")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR),
                        help=f"generated corpora (kept, reused) and prepared caches (default {DEFAULT_WORK_DIR})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", type=int, default=400_000, help="distinct word types of the generator")
    parser.add_argument("--vocab-size", type=int, default=16384)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--loader-seconds", type=float, default=3.0)
    parser.add_argument("--keep-cache", action="store_true", help="keep the prepared caches in --work-dir")
    parser.add_argument("--generate-only", action="store_true", help="write the corpora and stop")
    args = parser.parse_args(argv)
    sizes = [parse_words("10M")] if args.quick else [parse_words(w) for w in args.words.split(",") if w.strip()]

    if args.generate_only:
        for words in sizes:
            folder = Path(args.work_dir) / f"corpus-{label(words)}-types{args.types}-seed{args.seed}-g{GENERATOR_VERSION}"
            seconds = generate_corpus(folder, words, args.types, args.seed)
            print(f"{folder}: {'generated in %.1f s' % seconds if seconds else 'already there'}")
        return 0

    records = [measure(words, args) for words in sizes]
    common.print_table(
        records,
        [("label", "words", ""), ("corpus_mb", "text MB", ",.0f"), ("prepare_s", "prepare s", ".1f"),
         ("scan_s", "hash+check", ".1f"), ("tokenizer_s", "tokenizer", ".1f"), ("encode_s", "encode+write", ".1f"),
         ("rest_s", "rest", ".1f"), ("peak_rss_mb", "peak RSS MB", ",.0f"), ("cache_mb", "cache MB", ",.0f"),
         ("loader_tokens_per_s", "loader tokens/s", ",.0f"), ("second_prepare_s", "2nd prepare s", ".1f"),
         ("second_reused", "reused", "")],
        title=f"data preparation at scale (vocab {args.vocab_size}, seq_length {args.seq_length}; "
              f"load {records[0]['load'][0]} -> {records[-1]['load_end'][0]})",
    )
    for record in records:
        common.emit(common.rounded(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
