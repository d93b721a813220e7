"""Tests for tokenizer training, corpus preparation (cache, shards, frequencies) and the reader.

Expected values come from the corpora written here (known documents, hand
counted words) or from pyarrow/tokenizers used directly, not from the code
under test.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from trainer.data import prepare as prep_mod
from trainer.data.dataset import TokenShard, epoch_batches, epoch_permutation, load_frequencies
from trainer.data.prepare import DataError, PreparedData, main, open_prepared, prepare_corpus
from trainer.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    MASK_ID,
    NUM_SPECIAL_TOKENS,
    PAD_ID,
    UNK_ID,
    load_tokenizer,
    train_tokenizer,
)

REPO = Path(__file__).resolve().parents[1]
VOCAB = 400
SEQ = 32

WORDS = (
    "the a cat dog sat on mat with and bird over under house tree river walked quickly slowly "
    "big small red green blue she he they ran jumped because when then café naïve fish"
).split()


def make_docs(rng: random.Random, n_docs: int, tag: str):
    """Documents as lists of lines; each doc starts with a unique marker word."""
    docs = []
    for d in range(n_docs):
        lines = []
        for li in range(rng.randint(1, 4)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 12))]
            if li == 0:
                words.insert(0, f"{tag}{d}x")
            lines.append(" ".join(words))
        docs.append(lines)
    return docs


def write_docs(path: Path, docs, sep: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sep.join("\n".join(lines) + "\n" for lines in docs), encoding="utf-8")


def word_count(docs) -> int:
    return sum(len(line.split()) for lines in docs for line in lines)


def run_prepare(corpus, cache, **kw) -> PreparedData:
    kw.setdefault("vocab_size", VOCAB)
    kw.setdefault("seq_length", SEQ)
    kw.setdefault("show_progress", False)
    return prepare_corpus(corpus, cache, **kw)


def read_shard_independently(path: Path) -> np.ndarray:
    """All rows via pyarrow's own reader (not TokenShard)."""
    with pa.OSFile(str(path), "rb") as f:
        table = pa.ipc.open_file(f).read_all()
    col = table.column("input_ids").combine_chunks()
    return np.asarray(col.flatten().to_numpy(), dtype=np.int64).reshape(len(col), col.type.list_size)


def expected_stream(tok, docs) -> list:
    """d1 </s> d2 </s> ... with each line encoded separately."""
    out = []
    for i, lines in enumerate(docs):
        if i:
            out.append(EOS_ID)
        for line in lines:
            out.extend(tok.encode(line, add_special_tokens=False).ids)
    return out


@pytest.fixture(scope="module")
def babylm(tmp_path_factory):
    """A BabyLM-layout corpus prepared once for several tests."""
    root = tmp_path_factory.mktemp("babylm")
    rng = random.Random(1)
    train_a = make_docs(rng, 60, "ta")
    train_b = make_docs(rng, 60, "tb")
    dev = make_docs(rng, 40, "dv")
    stray = [["zebrastray " * 5]]
    corpus = root / "corpus"
    write_docs(corpus / "a.train", train_a)
    write_docs(corpus / "sub" / "b.train", train_b, sep="  \t\n")  # whitespace-only separator lines
    write_docs(corpus / "c.dev", dev)
    write_docs(corpus / "notes.txt", stray)  # must be ignored in BabyLM layout
    data = run_prepare(corpus, root / "cache")
    return {"data": data, "train_docs": train_a + train_b, "dev_docs": dev, "corpus": corpus, "root": root}


# --------------------------------------------------------------------------
# Tokenizer


def test_special_token_ids_and_mask():
    assert (UNK_ID, BOS_ID, EOS_ID, PAD_ID, MASK_ID, NUM_SPECIAL_TOKENS) == (0, 1, 2, 3, 4, 16)
    tok = train_tokenizer(["the cat sat on the mat"] * 50, vocab_size=300, show_progress=False)
    expected = ["<unk>", "<s>", "</s>", "<pad>", "<mask>"] + [f"<special_{i}>" for i in range(11)]
    assert [tok.token_to_id(t) for t in expected] == list(range(16))
    assert tok.encode("<mask>", add_special_tokens=False).ids == [4]
    ids = tok.encode("the <mask> sat", add_special_tokens=False).ids
    assert ids.count(4) == 1
    # No post-processor: nothing is added around the text.
    assert 1 not in tok.encode("the cat").ids and 2 not in tok.encode("the cat").ids


def test_roundtrip(babylm):
    tok = load_tokenizer(babylm["data"].tokenizer_path)
    for text in ["the cat sat on the mat", "café naïve fish", "unseen wörds ✓ 42!", "a\ttab"]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert UNK_ID not in ids  # byte-level: every byte is representable
        # add_prefix_space=True adds one leading space that decoding keeps.
        assert tok.decode(ids) == " " + text


# --------------------------------------------------------------------------
# Shards


def test_rows_and_packing_are_lossless(babylm):
    data = babylm["data"]
    tok = load_tokenizer(data.tokenizer_path)
    rows = read_shard_independently(data.train_path)
    assert rows.shape[1] == SEQ
    assert (rows[:, 0] == BOS_ID).all()
    body = rows[:, 1:].reshape(-1)
    # Padding only at the end of the last row.
    non_pad = np.flatnonzero(body != PAD_ID)
    body = body[: non_pad[-1] + 1]
    assert (body != PAD_ID).all()
    assert rows.shape[0] == -(-len(body) // (SEQ - 1))  # no wasted row
    assert body.tolist() == expected_stream(tok, babylm["train_docs"])
    # The weaker statement from the spec, stated directly.
    content = [t for t in body.tolist() if t not in (BOS_ID, EOS_ID)]
    assert content == [t for line_doc in babylm["train_docs"] for line in line_doc
                       for t in tok.encode(line, add_special_tokens=False).ids]

    val_rows = read_shard_independently(data.val_path)
    val_body = val_rows[:, 1:].reshape(-1)
    val_body = val_body[val_body != PAD_ID]
    assert val_body.tolist() == expected_stream(tok, babylm["dev_docs"])
    m = data.manifest
    assert m["rows"] == {"train": len(rows), "val": len(val_rows)}
    pads = int((rows == PAD_ID).sum())
    assert m["padding_fraction"]["train"] == pytest.approx(pads / rows.size)


def test_manifest_contents(babylm):
    data = babylm["data"]
    m = data.manifest
    assert m["layout"] == "babylm" and m["tokenizer_trained_on"] == "train"
    assert m["special_token_ids"]["<mask>"] == 4 and len(m["special_token_ids"]) == 16
    assert {f["path"] for f in m["source_files"]} == {"a.train", "sub/b.train", "c.dev"}
    assert set(m["files"]) == {"tokenizer.json", "train.arrow", "val.arrow", "frequencies.parquet",
                               "train_row_words.npy", "val_row_words.npy"}
    for name, info in m["files"].items():
        assert (data.root / name).stat().st_size == info["bytes"]
    assert data.root.name == data.content_hash[:16]
    assert data.seq_length == SEQ and data.vocab_size == load_tokenizer(data.tokenizer_path).get_vocab_size()
    assert data.vocab_size <= VOCAB
    assert m["settings"]["vocab_size"] == VOCAB
    # The tokenizer saw only training text: "dv" occurs only in dev documents'
    # marker words, so no learned token may contain it.
    vocab = load_tokenizer(data.tokenizer_path).get_vocab()
    assert not any("dv" in t for t in vocab)


def test_babylm_layout_uses_dev_and_ignores_txt(babylm):
    data = babylm["data"]
    assert data.words == {"train": word_count(babylm["train_docs"]), "val": word_count(babylm["dev_docs"])}
    tok = load_tokenizer(data.tokenizer_path)
    text = tok.decode(read_shard_independently(data.train_path).reshape(-1).tolist())
    text += tok.decode(read_shard_independently(data.val_path).reshape(-1).tolist())
    assert "zebrastray" not in text


def test_word_counts_hand_known(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    # 40 lines of 6 words + 10 lines of 3 words (odd spacing) = 270 train words.
    train = ("the cat sat on the mat\n" * 20 + "\n" + "the cat sat on the mat\n" * 20 + "\n\n"
             + "  big   red\tdog  \n" * 10)
    (corpus / "x.train").write_text(train, encoding="utf-8")
    (corpus / "x.dev").write_text("one two three\n\nfour five\n", encoding="utf-8")  # 5 words
    data = run_prepare(corpus, tmp_path / "cache")
    assert data.words == {"train": 270, "val": 5}
    assert data.manifest["documents"] == {"train": 3, "val": 2}


def test_frequencies(babylm):
    data = babylm["data"]
    rows = read_shard_independently(data.train_path).reshape(-1)
    real = rows[rows >= NUM_SPECIAL_TOKENS]
    table = pq.read_table(data.frequencies_path)
    assert table.column_names == ["token_id", "count", "rank"]
    counts, ranks = load_frequencies(data.frequencies_path)
    assert len(counts) == data.vocab_size
    assert counts.sum() == len(real)
    assert (counts[:NUM_SPECIAL_TOKENS] == 0).all()
    assert (counts == np.bincount(real, minlength=data.vocab_size)).all()
    assert sorted(ranks.tolist()) == list(range(data.vocab_size))
    by_rank = np.argsort(ranks)  # token ids from most to least frequent
    assert set(by_rank[-NUM_SPECIAL_TOKENS:].tolist()) == set(range(NUM_SPECIAL_TOKENS))
    real_order = by_rank[:-NUM_SPECIAL_TOKENS]
    c = counts[real_order]
    assert (np.diff(c) <= 0).all()
    ties = np.diff(c) == 0
    assert (np.diff(real_order)[ties] > 0).all()  # ties broken by token id


def test_literal_special_strings_stay_text(tmp_path):
    corpus = tmp_path / "c"
    write_docs(corpus / "t.train", [["the <s> cat </s> sat <mask> on <pad> mat"]] * 30)
    write_docs(corpus / "t.dev", [["the <mask> cat"]])
    data = run_prepare(corpus, tmp_path / "cache")
    rows = read_shard_independently(data.train_path)
    assert int((rows == MASK_ID).sum()) == 0
    assert int((rows == BOS_ID).sum()) == len(rows)  # only the row starts
    assert int((rows == EOS_ID).sum()) == 29  # only the document separators


def test_txt_layout_split_deterministic_and_disjoint(tmp_path):
    rng = random.Random(7)
    docs = make_docs(rng, 200, "doc")
    corpus = tmp_path / "c"
    write_docs(corpus / "part1.txt", docs[:120])
    write_docs(corpus / "deep" / "part2.txt", docs[120:])
    d1 = run_prepare(corpus, tmp_path / "cache1", val_fraction=0.2)
    d2 = run_prepare(corpus, tmp_path / "cache2", val_fraction=0.2)
    assert d1.manifest["layout"] == "txt"
    assert d1.manifest["files"]["train.arrow"]["sha256"] == d2.manifest["files"]["train.arrow"]["sha256"]
    assert d1.manifest["files"]["val.arrow"]["sha256"] == d2.manifest["files"]["val.arrow"]["sha256"]

    tok = load_tokenizer(d1.tokenizer_path)

    def markers(path):
        return re.findall(r"doc(\d+)x", tok.decode(read_shard_independently(path).reshape(-1).tolist()))

    train, val = markers(d1.train_path), markers(d1.val_path)
    assert len(train) == len(set(train)) and len(val) == len(set(val))  # no duplicates
    assert not set(train) & set(val)
    assert set(train) | set(val) == {str(i) for i in range(200)}
    assert 10 <= len(val) <= 70  # ~20% of 200
    assert d1.words["train"] + d1.words["val"] == word_count(docs)


# --------------------------------------------------------------------------
# Encoding through the word cache, and the tokenizer's training sample

ODD_WORDS = (
    "the cat don't it's I'm they'll we've 'twas o'clock rock'n'roll 42 3.14 1,000 x1y2 ... !? -- "
    "(hello) [x] \"quoted\" 'single' a-b a_b @home #tag $5 100% <s> </s> <mask> a<pad>b café naïve "
    "中文 😀 ﬁne ｆｕｌｌ ½ x² über ¨ ¨dog"
).split()
ODD_SEPARATORS = [" "] * 10 + ["  ", "\t", " \t ", "\u00a0", "\u3000", "\x0b", "\x1c", " \u0308", "\u00a8"]


def odd_docs(rng: random.Random, n_docs: int, tag: str):
    """Documents of lines mixing ASCII words, contractions, digits, punctuation, literal special
    tokens, non-ASCII text and odd whitespace (tabs, double, no-break and ideographic spaces,
    \\x0b, \\x1c, a combining mark after a space, a character NFKC turns into a space + mark)."""
    docs = []
    for d in range(n_docs):
        lines = []
        for li in range(rng.randint(1, 4)):
            words = [rng.choice(ODD_WORDS) for _ in range(rng.randint(1, 10))]
            if li == 0:
                words.insert(0, f"{tag}{d}x")
            if rng.random() < 0.5:  # half the lines: single spaces only (the cached path)
                lines.append(" ".join(words))
            else:
                lines.append("".join(w + rng.choice(ODD_SEPARATORS) for w in words).rstrip(" \t\x0b\x1c\u3000\u00a0"))
        docs.append([line.strip() for line in lines if line.strip()])
    return [doc for doc in docs if doc]


@pytest.mark.parametrize("max_entries", [1 << 20, 40])  # 40: the cache empties itself again and again
def test_encoding_equals_the_tokenizer_line_by_line(tmp_path, monkeypatch, max_entries):
    """The shards hold exactly what `Tokenizer.encode` gives for each line (literal special
    strings encoded as text), chunk boundaries and cache resets included."""
    monkeypatch.setattr(prep_mod, "ENCODE_CHUNK_CHARS", 300)  # many chunks
    monkeypatch.setattr(prep_mod, "CACHE_MAX_ENTRIES", max_entries)
    rng = random.Random(21)
    train, dev = odd_docs(rng, 150, "t"), odd_docs(rng, 40, "d")
    corpus = tmp_path / "c"
    write_docs(corpus / "a.train", train[:100])
    write_docs(corpus / "b.train", train[100:])
    write_docs(corpus / "a.dev", dev)
    data = run_prepare(corpus, tmp_path / "cache")
    tok = load_tokenizer(data.tokenizer_path)
    tok.encode_special_tokens = True  # as prepare encodes: "<mask>" in the text is text
    for path, docs in ((data.train_path, train), (data.val_path, dev)):
        body = read_shard_independently(path)[:, 1:].reshape(-1)
        body = body[: np.flatnonzero(body != PAD_ID)[-1] + 1]
        assert body.tolist() == expected_stream(tok, docs)
    assert data.words == {"train": word_count(train), "val": word_count(dev)}
    row_words = data.row_words("train")
    assert row_words.sum() == word_count(train) and len(row_words) == data.manifest["rows"]["train"]


@pytest.mark.parametrize("block", [1, 5, 64, 1 << 20])
def test_block_reader_gives_the_lines_and_documents_of_the_file(tmp_path, monkeypatch, block):
    """Blocks cut anywhere (even inside a line longer than a block): the stripped non-blank
    lines, each flagged when it starts a document (after a blank line or at the start)."""
    monkeypatch.setattr(prep_mod, "BLOCK_BYTES", block)
    raw = ("\ufeffcafé one\r\n  two  \n\n \t \nthree " + "x" * 150 + "\n\n\n"
           + "four\x0bfive\x1c\nsix\u2028seven\n  \nlast line without newline")
    path = tmp_path / "f.train"
    path.write_bytes(raw.encode("utf-8"))
    expected = [("café one", True), ("two", False), ("three " + "x" * 150, True), ("four\x0bfive", True),
                ("six\u2028seven", False), ("last line without newline", True)]
    got = [(line, start) for lines, starts in prep_mod._read_blocks(path, lambda n: None)
           for line, start in zip(lines, starts)]
    assert got == expected
    assert [(line, start) for start, line, _ in prep_mod._read_lines(path, lambda n: None)] == expected


def _marked_lines(n: int, tag: str, rng: random.Random) -> str:
    return "".join(f"{tag}L{i:05d} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "\n"
                   for i in range(n))


def _capture_training_lines(monkeypatch) -> list:
    """Record the lines prepare feeds to train_tokenizer (then train as usual)."""
    seen = []
    real = prep_mod.train_tokenizer

    def capture(batches, **kw):
        batches = [list(b) for b in batches]
        seen.append([line for batch in batches for line in batch])
        return real(batches, **kw)

    monkeypatch.setattr(prep_mod, "train_tokenizer", capture)
    return seen


def test_tokenizer_sample_spread_over_every_file_and_deterministic(tmp_path, monkeypatch):
    rng = random.Random(4)
    corpus = tmp_path / "c"
    corpus.mkdir()
    sizes = {"big.train": 3000, "mid.train": 1000, "sub/small.train": 200}
    for name, n in sizes.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(_marked_lines(n, Path(name).stem, rng), encoding="utf-8")
    (corpus / "x.dev").write_text(_marked_lines(100, "dev", rng), encoding="utf-8")
    train_bytes = sum((corpus / name).stat().st_size for name in sizes)
    full = run_prepare(corpus, tmp_path / "full")  # below the cap: every training line
    assert full.manifest["tokenizer_sample"]["fraction"] == 1.0
    assert full.manifest["tokenizer_sample"]["lines"] == sum(sizes.values())

    monkeypatch.setattr(prep_mod, "TOKENIZER_SAMPLE_BYTES", train_bytes // 4)
    monkeypatch.setattr(prep_mod, "SAMPLE_WINDOW_BYTES", 2048)
    seen = _capture_training_lines(monkeypatch)
    data = run_prepare(corpus, tmp_path / "cache")
    again = run_prepare(corpus, tmp_path / "cache2")
    assert data.root.name != full.root.name  # the cap is part of the content hash
    assert seen[0] == seen[1]  # deterministic
    assert data.manifest["files"]["tokenizer.json"] == again.manifest["files"]["tokenizer.json"]

    lines = seen[0]
    sample = data.manifest["tokenizer_sample"]
    assert sample["fraction"] == pytest.approx(0.25, rel=0.01)
    assert sample["lines"] == len(lines) and sample["words"] == sum(len(line.split()) for line in lines)
    real_lines = {line for name in sizes for line in (corpus / name).read_text(encoding="utf-8").splitlines()}
    assert set(lines) <= real_lines and len(set(lines)) == len(lines)  # whole lines, each once
    assert not any(line.startswith("devL") for line in lines)  # training text only
    for name, n in sizes.items():
        numbers = sorted(int(line.split()[0][-5:]) for line in lines if line.startswith(Path(name).stem + "L"))
        assert abs(len(numbers) / n - 0.25) < 0.06, (name, len(numbers))  # every file, in proportion
        assert numbers[0] < 0.2 * n and numbers[-1] > 0.8 * n, (name, numbers[0], numbers[-1])  # start to end
        windows = -(-(corpus / name).stat().st_size // 4 // 2048)  # evenly spaced, one per stride
        assert np.diff(numbers).max() < 1.1 * n / windows  # no region longer than a stride left out
    by_file = {f["path"]: f["tokenizer_sample_bytes"] for f in data.manifest["source_files"]}
    assert by_file["x.dev"] == 0
    for name in sizes:
        assert by_file[name] == pytest.approx((corpus / name).stat().st_size / 4, rel=0.01)
    # Only the tokenizer changes: the shards still hold the whole corpus.
    assert data.words == full.words and data.manifest["documents"] == full.manifest["documents"]


def test_tokenizer_sample_of_a_txt_corpus_holds_training_documents_only(tmp_path, monkeypatch):
    rng = random.Random(8)
    docs = make_docs(rng, 600, "doc")
    corpus = tmp_path / "c"
    write_docs(corpus / "part1.txt", docs[:400])
    write_docs(corpus / "part2.txt", docs[400:])
    size = sum(p.stat().st_size for p in corpus.iterdir())
    monkeypatch.setattr(prep_mod, "TOKENIZER_SAMPLE_BYTES", size // 3)
    monkeypatch.setattr(prep_mod, "SAMPLE_WINDOW_BYTES", 1024)
    seen = _capture_training_lines(monkeypatch)
    data = run_prepare(corpus, tmp_path / "cache", val_fraction=0.2)
    tok = load_tokenizer(data.tokenizer_path)
    val_markers = set(re.findall(r"doc(\d+)x", tok.decode(read_shard_independently(data.val_path).reshape(-1).tolist())))
    sampled_markers = {m for line in seen[0] for m in re.findall(r"doc(\d+)x", line)}
    assert val_markers and sampled_markers and not (val_markers & sampled_markers)
    assert 0.2 < len(sampled_markers) / 600 < 0.4  # about a third of the documents' first lines
    assert data.words["train"] + data.words["val"] == word_count(docs)


# --------------------------------------------------------------------------
# Cache


def test_cache_reuse_and_invalidation(tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    rng = random.Random(3)
    write_docs(corpus / "a.train", make_docs(rng, 30, "t"))
    write_docs(corpus / "a.dev", make_docs(rng, 10, "d"))
    first = run_prepare(corpus, tmp_path / "cache")
    mtime = first.train_path.stat().st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError("rebuilt although the cache was valid")

    with monkeypatch.context() as mp_:
        mp_.setattr(prep_mod, "_build", no_build)
        second = run_prepare(corpus, tmp_path / "cache")
    assert second.root == first.root and second.manifest == first.manifest
    assert first.train_path.stat().st_mtime_ns == mtime

    # Moving the corpus keeps the hash (relative paths only).
    moved = tmp_path / "moved"
    corpus.rename(moved)
    with monkeypatch.context() as mp_:
        mp_.setattr(prep_mod, "_build", no_build)
        assert run_prepare(moved, tmp_path / "cache").root == first.root

    # Different settings or content -> different folder.
    assert run_prepare(moved, tmp_path / "cache", seq_length=16).root != first.root
    with open(moved / "a.train", "a", encoding="utf-8") as f:
        f.write("\nnew text here\n")
    changed = run_prepare(moved, tmp_path / "cache")
    assert changed.content_hash != first.content_hash and changed.root != first.root
    assert first.root.exists()  # old entry untouched
    assert not [p for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name]

    # A build killed half-way leaves a hidden temp folder; the next builder of
    # the same hash removes it, and a folder without manifest is never reused.
    shutil.rmtree(changed.root)
    stale = tmp_path / "cache" / f".{changed.content_hash[:16]}.tmp-killed"
    (stale / "junk").mkdir(parents=True)
    rebuilt = run_prepare(moved, tmp_path / "cache")
    assert rebuilt.root == changed.root and not stale.exists()


def _prepare_in_child(corpus, cache, barrier, queue):
    barrier.wait()  # start both builds at the same moment
    try:
        data = run_prepare(corpus, cache)
        queue.put((str(data.root), data.manifest["created_at"], data.manifest["elapsed_seconds"]))
    except Exception as e:  # pragma: no cover - reported to the parent
        queue.put(("error", repr(e), None))


def test_two_processes_prepare_concurrently(tmp_path):
    corpus = tmp_path / "c"
    rng = random.Random(5)
    write_docs(corpus / "a.train", make_docs(rng, 400, "t"))
    write_docs(corpus / "a.dev", make_docs(rng, 20, "d"))
    cache = tmp_path / "cache"
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_prepare_in_child, args=(corpus, cache, barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0][0] != "error", results
    assert results[0] == results[1]  # same root, same manifest: built exactly once
    entries = sorted(p.name for p in cache.iterdir())
    root = Path(results[0][0])
    assert entries == [root.name, root.name + ".lock"]
    open_prepared(root, verify_hashes=True)


def _hold_lock(path, ready, release):
    from filelock import FileLock

    with FileLock(path, preserve_lock_file=True):
        ready.set()
        release.wait(60)


def test_a_lock_held_too_long_is_one_clear_error(tmp_path):
    # A builder that never releases (its node died on a shared filesystem) must not hang us.
    corpus = tmp_path / "c"
    rng = random.Random(6)
    write_docs(corpus / "a.train", make_docs(rng, 40, "t"))
    write_docs(corpus / "a.dev", make_docs(rng, 10, "d"))
    cache = tmp_path / "cache"
    cache.mkdir()
    # The lock's name is the content hash's prefix: find it from a build elsewhere.
    name = run_prepare(corpus, tmp_path / "probe").root.name
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(cache / f"{name}.lock"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        started = time.monotonic()
        with pytest.raises(DataError, match=r"has held .*\.lock for over 0\.5 s .* delete that file and retry"):
            run_prepare(corpus, cache, lock_timeout_s=0.5)
        assert time.monotonic() - started < 30
        assert not (cache / name).exists()
    finally:
        release.set()
        holder.join(60)
    assert run_prepare(corpus, cache, lock_timeout_s=5).root.name == name  # released: it builds


def test_truncated_or_corrupted_shard(tmp_path):
    corpus = tmp_path / "c"
    rng = random.Random(9)
    write_docs(corpus / "a.train", make_docs(rng, 30, "t"))
    write_docs(corpus / "a.dev", make_docs(rng, 10, "d"))
    data = run_prepare(corpus, tmp_path / "cache")
    open_prepared(data.root, verify_hashes=True)

    raw = data.val_path.read_bytes()
    data.val_path.write_bytes(raw[:-100])
    for call in (lambda: open_prepared(data.root), lambda: run_prepare(corpus, tmp_path / "cache")):
        with pytest.raises(DataError) as exc:
            call()
        msg = str(exc.value)
        assert "\n" not in msg and "val.arrow" in msg and "delete" in msg

    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    data.val_path.write_bytes(bytes(flipped))
    open_prepared(data.root)  # same size: only the hash check notices
    with pytest.raises(DataError, match="sha256"):
        open_prepared(data.root, verify_hashes=True)

    (data.root / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="manifest.json"):
        open_prepared(data.root)


# --------------------------------------------------------------------------
# Bad input


def _good_docs():
    return make_docs(random.Random(11), 20, "g")


def _case_missing(c):
    return c / "does-not-exist", {}


def _case_not_folder(c):
    (c / "file.txt").write_text("hello\n")
    return c / "file.txt", {}


def _case_no_files(c):
    (c / "README.md").write_text("hello\n")
    return c, {}


def _case_all_empty(c):
    (c / "a.txt").write_text("")
    (c / "b.txt").write_text("  \n\n\t\n")
    return c, {}


def _case_bad_utf8(c):
    write_docs(c / "ok.train", _good_docs())
    write_docs(c / "ok.dev", _good_docs())
    (c / "sub").mkdir()
    (c / "sub" / "bad.train").write_bytes(b"hello\nw\xc3\xa9ll \xff oops\n")
    return c, {}


def _case_truncated_utf8(c):
    write_docs(c / "ok.dev", _good_docs())
    (c / "cut.train").write_bytes("café\n".encode() + "é".encode()[:1])
    return c, {}


def _case_no_val_txt(c):
    (c / "one.txt").write_text("a single document\nwith two lines\n")
    return c, {"val_fraction": 0.01}


def _case_no_dev(c):
    write_docs(c / "a.train", _good_docs())
    return c, {}


def _case_empty_dev(c):
    write_docs(c / "a.train", _good_docs())
    (c / "a.dev").write_text("\n\n")
    return c, {}


def _case_small_vocab(c):
    write_docs(c / "a.txt", _good_docs())
    return c, {"vocab_size": 271}


def _case_small_seq(c):
    write_docs(c / "a.txt", _good_docs())
    return c, {"seq_length": 7}


@pytest.mark.parametrize(
    "case, needle",
    [
        (_case_missing, "does not exist"),
        (_case_not_folder, "not a folder"),
        (_case_no_files, "*.train"),
        (_case_all_empty, "empty"),
        (_case_bad_utf8, "bad.train is not valid UTF-8 (byte 0xff at byte offset 12"),
        (_case_truncated_utf8, "cut.train is not valid UTF-8 (truncated multi-byte sequence at byte offset 6"),
        (_case_no_val_txt, "no validation"),
        (_case_no_dev, "no validation"),
        (_case_empty_dev, "no validation"),
        (_case_small_vocab, "vocab_size"),
        (_case_small_seq, "seq_length"),
    ],
)
def test_bad_input(tmp_path, case, needle):
    corpus_root = tmp_path / "corpus"
    corpus_root.mkdir()
    corpus, kw = case(corpus_root)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        run_prepare(corpus, cache, **kw)
    msg = str(exc.value)
    assert "\n" not in msg and needle in msg, msg
    assert isinstance(exc.value, ValueError)
    # Nothing half-written: at most lock files remain.
    left = [p.name for p in cache.iterdir()] if cache.exists() else []
    assert all(name.endswith(".lock") for name in left), left


def test_cli(tmp_path, capsys):
    rc = main([str(tmp_path / "missing"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1

    corpus = tmp_path / "c"
    write_docs(corpus / "a.train", _good_docs())
    write_docs(corpus / "a.dev", _good_docs())
    args = [str(corpus), "--cache-dir", str(tmp_path / "cache"), "--vocab-size", "300", "--seq-length", "16"]
    assert main(args + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "rows" in out and "words" in out and "padding" in out

    # As a real process: exit status 2 and no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.data.prepare", str(tmp_path / "missing"), "--cache-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------
# Reader


def test_reader_matches_written_rows_many_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(prep_mod, "ROWS_PER_BATCH", 7)  # force many (odd-sized) record batches
    corpus = tmp_path / "c"
    rng = random.Random(13)
    write_docs(corpus / "a.train", make_docs(rng, 80, "t"))
    write_docs(corpus / "a.dev", make_docs(rng, 10, "d"))
    data = run_prepare(corpus, tmp_path / "cache", seq_length=8)
    with pa.OSFile(str(data.train_path), "rb") as f:
        assert pa.ipc.open_file(f).num_record_batches > 10

    expected = read_shard_independently(data.train_path)
    shard = TokenShard(data.train_path)
    assert shard.zero_copy and len(shard) == shard.num_rows == len(expected) and shard.seq_length == 8
    assert (shard.rows(np.arange(len(expected))) == expected).all()
    idx = np.random.default_rng(0).integers(0, len(expected), 300)
    got = shard.rows(idx)
    assert got.dtype == np.int64 and got.shape == (300, 8)
    assert (got == expected[idx]).all()
    assert shard.rows(np.array([], dtype=np.int64)).shape == (0, 8)
    with pytest.raises(IndexError):
        shard.rows([len(expected)])


def test_reader_is_zero_copy(tmp_path):
    # A ~16 MB shard written directly with pyarrow (2 record batches).
    seq, n = 128, 32768
    tokens = np.arange(n * seq, dtype=np.int32) % 50000
    path = tmp_path / "big.arrow"
    schema = pa.schema([pa.field("input_ids", pa.list_(pa.int32(), seq))])
    with pa.ipc.new_file(str(path), schema) as w:
        for half in np.split(tokens, 2):
            w.write_batch(pa.record_batch([pa.FixedSizeListArray.from_arrays(pa.array(half), seq)], schema=schema))
    del tokens

    before = pa.total_allocated_bytes()
    shard = TokenShard(path)
    # Nothing near the file's size was allocated: the data stays in the mapping.
    assert pa.total_allocated_bytes() - before < 1 << 20
    assert shard.zero_copy
    view = shard.values
    assert not view.flags.writeable and not view.flags.owndata  # a view of the read-only map
    assert view.nbytes >= n * seq * 4
    rows = shard.rows(np.array([0, n - 1, n // 2]))
    assert rows[0, :3].tolist() == [0, 1, 2]
    assert rows[1, -1] == (n * seq - 1) % 50000
    assert rows[2, 0] == (n // 2 * seq) % 50000


def test_reader_compressed_fallback_and_pickle(tmp_path):
    # A foreign, zstd-compressed file cannot be mapped in place: the reader
    # must say so (zero_copy False) and still return the right rows.
    seq = 8
    tokens = np.arange(100 * seq, dtype=np.int32)
    path = tmp_path / "z.arrow"
    schema = pa.schema([pa.field("input_ids", pa.list_(pa.int32(), seq))])
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_file(str(path), schema, options=options) as w:
        for part in np.split(tokens, [240, 560]):
            w.write_batch(pa.record_batch([pa.FixedSizeListArray.from_arrays(pa.array(part), seq)], schema=schema))
    shard = TokenShard(path)
    assert not shard.zero_copy and shard.num_rows == 100
    assert (shard.rows([0, 31, 99]) == tokens.reshape(100, seq)[[0, 31, 99]]).all()

    blob = pickle.dumps(shard)
    assert len(blob) < 1000  # pickled by path, not by content
    assert (pickle.loads(blob).rows([5]) == shard.rows([5])).all()


def test_load_frequencies_and_permutations(babylm):
    counts, ranks = load_frequencies(babylm["data"].frequencies_path)
    table = pq.read_table(babylm["data"].frequencies_path).to_pydict()
    for tid, c, r in zip(table["token_id"], table["count"], table["rank"]):
        assert counts[tid] == c and ranks[tid] == r

    p0 = epoch_permutation(1000, seed=42, epoch=0)
    assert sorted(p0.tolist()) == list(range(1000))
    assert (p0 == epoch_permutation(1000, seed=42, epoch=0)).all()
    assert not (p0 == epoch_permutation(1000, seed=42, epoch=1)).all()
    assert not (p0 == epoch_permutation(1000, seed=43, epoch=0)).all()
    # Cached and shared between callers, so read-only; the order does not depend on the cache.
    with pytest.raises(ValueError):
        p0[0] = p0[1]
    epoch_permutation.cache_clear()
    assert (p0 == epoch_permutation(1000, seed=42, epoch=0)).all()
    assert (np.random.default_rng((42, 0)).permutation(1000) == p0).all()
    full = list(epoch_batches(1000, 64, seed=1, epoch=2))
    assert len(full) == 1000 // 64 and all(len(b) == 64 for b in full)
    resumed = list(epoch_batches(1000, 64, seed=1, epoch=2, start_batch=5))
    assert all((a == b).all() for a, b in zip(full[5:], resumed)) and len(resumed) == len(full) - 5
    assert sum(len(b) for b in epoch_batches(1000, 64, 1, 2, drop_last=False)) == 1000
