"""Corpus -> tokenizer + packed Arrow token shards + frequency table + manifest.

Output (one folder per distinct corpus content + settings)::

    <cache_dir>/<content_hash[:16]>/
        tokenizer.json        byte-level BPE trained on the TRAIN split only
        train.arrow           Arrow IPC file, column input_ids: fixed_size_list<int32>[seq_length]
        val.arrow             same, validation split
        train_row_words.npy   words (whitespace-separated, in the raw text) per train row
        val_row_words.npy     same, validation split
        frequencies.parquet   token_id, count, rank over the train split
        manifest.json         written last; its presence marks a complete build
    <cache_dir>/<content_hash[:16]>.lock   file lock serialising builders (filelock)

Token ids are stored as int32: uint16 would halve the files but caps the
vocabulary at 65536 and needs care when converting to torch (no uint16 tensor
ops); at BabyLM scale (~130M tokens -> ~0.5 GB) int32 is affordable.

The build is streamed: files are read in blocks of lines, encoded in chunks and packed
into numpy rows that are written out 8192 rows at a time, so memory stays bounded
by the chunk size, not by the corpus size. Two things keep a BabyLM-100M corpus
(~100M words) within minutes on a small machine:

- the tokenizer is trained on an evenly spread sample of the training text when
  that text is larger than TOKENIZER_SAMPLE_BYTES (see `_sample_windows`);
- encoding goes through a cache of each distinct word's token ids
  (`_TokenCache`), so the tokenizer runs once per distinct word, not once per
  occurrence; the ids are exactly those of encoding each line whole.
"""

from __future__ import annotations

import codecs
import ctypes
import datetime as _dt
import hashlib
import itertools
import json
import math
import operator
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
from filelock import FileLock, Timeout
import pyarrow.parquet as pq
import tokenizers
from tqdm import tqdm

from trainer.cli import ArgumentParser
from trainer.errors import UserError
from .tokenizer import (
    BOS_ID,
    EOS_ID,
    MIN_VOCAB_SIZE,
    NUM_SPECIAL_TOKENS,
    PAD_ID,
    SPECIAL_TOKENS,
    train_tokenizer,
)

# Bump whenever the on-disk layout or the tokenization/packing rules change:
# it is part of the content hash, so old cache folders are simply not reused.
FORMAT_VERSION = 4  # 2: per-row word counts; 3: each source file's rows per split; 4: tokenizer sample

MIN_SEQ_LENGTH = 8
ROWS_PER_BATCH = 8192  # Arrow record batch size (rows) in the shards
TOKEN_DTYPE = np.int32
ARROW_TOKEN_TYPE = pa.int32()
# Encode the lines in chunks of this many characters (the unit of the numpy work).
ENCODE_CHUNK_CHARS = 1 << 20
# Words new to the cache go to encode_batch this many at a time: enough for the Rust
# side to parallelise, few enough that the Encoding objects (each holds several
# vectors) stay in the tens of MB.
ENCODE_BATCH_KEYS = 1 << 13
READ_CHUNK_BYTES = 1 << 22  # hashing / UTF-8 check
BLOCK_BYTES = 1 << 20  # reading lines for encoding (`_read_blocks`)
# The tokenizer is trained on at most this much training text (~10-12M words of
# English; BabyLM's 10M track is used whole). A deliberate cap, the same for every
# corpus: BPE training time (and memory) grows with the text it reads, while the
# merges of a 16K vocabulary are settled by the frequent pairs, which ten million
# words already rank the way a hundred million do. Measured with
# benchmarks/data_scale.py on 100M words: training on all of them took 486 s of a
# 1019 s build; on this cap's 8.8M-word sample 16-44 s, and the resulting tokenizer
# encodes the full 100M words into 0.03% more tokens (180.08M vs 180.03M).
# A larger corpus contributes an evenly spread sample of every training file, in
# proportion to its size (`_sample_windows`); the manifest records the cap and the
# sample, and the cap is part of the content hash. Below it the tokenizer sees all
# of the training text, as before.
TOKENIZER_SAMPLE_BYTES = 64 << 20
SAMPLE_WINDOW_BYTES = 1 << 18  # the sample is made of windows of about this size, evenly spaced
# Bounds of the word -> token ids cache used for encoding; past them it starts afresh
# (the ids never depend on the cache, only the speed does). ~200 MB when full.
CACHE_MAX_ENTRIES = 1 << 20
CACHE_MAX_TOKENS = 1 << 23

TOKENIZER_FILE = "tokenizer.json"
ROW_WORDS_FILES = {"train": "train_row_words.npy", "val": "val_row_words.npy"}
TRAIN_FILE = "train.arrow"
VAL_FILE = "val.arrow"
FREQUENCIES_FILE = "frequencies.parquet"
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "val")


class DataError(UserError):
    """Bad corpus, bad settings, or a damaged cache. The message is one line."""


# --------------------------------------------------------------------------
# Result object


@dataclass(frozen=True)
class PreparedData:
    root: Path
    manifest: dict

    @property
    def tokenizer_path(self) -> Path:
        return self.root / TOKENIZER_FILE

    @property
    def train_path(self) -> Path:
        return self.root / TRAIN_FILE

    @property
    def val_path(self) -> Path:
        return self.root / VAL_FILE

    @property
    def frequencies_path(self) -> Path:
        return self.root / FREQUENCIES_FILE

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def vocab_size(self) -> int:
        """The tokenizer's actual vocabulary size (may be below the requested one)."""
        return int(self.manifest["settings"]["vocab_size_actual"])

    @property
    def seq_length(self) -> int:
        return int(self.manifest["settings"]["seq_length"])

    @property
    def words(self) -> Dict[str, int]:
        return dict(self.manifest["words"])

    def source_rows(self, split: str) -> List[Tuple[str, int, int]]:
        """(file, first row, end row) of each source file with rows in `split`, in shard order."""
        spans = [(f["path"], *f["rows"][split]) for f in self.manifest["source_files"]]
        return [(path, start, end) for path, start, end in spans if end > start]

    def row_words(self, split: str = "train") -> np.ndarray:
        """Words per row of a split (int64), aligned with the rows of its shard."""
        return np.load(self.root / ROW_WORDS_FILES[split])


# --------------------------------------------------------------------------
# Small helpers


def _bar(show: bool, total: Optional[int], desc: str, unit: str = "B") -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        file=sys.stderr,
        disable=not show,
        leave=False,
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_CHUNK_BYTES), b""):
            h.update(chunk)
    return h.hexdigest()


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc only; elsewhere a no-op).

    The BPE trainer's worker threads allocate in their own malloc arenas; what they free
    stays mapped there, and the encoding pass, which allocates from the main thread, cannot
    reuse it. Trimming after training keeps the build's peak RSS at the trainer's own peak
    instead of that plus the encoding's (measured: ~480 MB resident after training on a
    64 MiB sample, ~180 MB after the trim).
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:  # some filesystems refuse fsync on directories; not fatal
        pass


# --------------------------------------------------------------------------
# Corpus discovery and scanning


@dataclass
class _Source:
    path: Path
    rel: str  # POSIX path relative to the corpus folder (what the hash uses)
    split: Optional[str]  # "train"/"val" for the BabyLM layout, None = split by document hash
    size: int = 0
    sha256: str = ""
    has_text: bool = False


def _discover(corpus_dir: Path) -> Tuple[str, List[_Source]]:
    if not corpus_dir.exists():
        raise DataError(f"corpus folder {corpus_dir} does not exist; pass a folder of *.train/*.dev or *.txt files")
    if not corpus_dir.is_dir():
        raise DataError(f"corpus path {corpus_dir} is not a folder; pass a folder of *.train/*.dev or *.txt files")

    def rel(p: Path) -> str:
        return p.relative_to(corpus_dir).as_posix()

    def find(pattern: str) -> List[Path]:
        # Sorted by relative path string: the token stream order (and so the
        # shards) must not depend on directory listing order.
        return sorted((p for p in corpus_dir.rglob(pattern) if p.is_file()), key=rel)

    train = find("*.train")
    if train:
        # BabyLM layout wins even if stray *.txt files are present (READMEs etc.).
        dev = find("*.dev")
        return "babylm", [_Source(p, rel(p), "train") for p in train] + [_Source(p, rel(p), "val") for p in dev]
    txt = find("*.txt")
    if txt:
        return "txt", [_Source(p, rel(p), None) for p in txt]
    raise DataError(
        f"no corpus files in {corpus_dir}: expected *.train (+ *.dev for validation) files "
        f"or plain *.txt files (searched recursively)"
    )


def corpus_layout(corpus_dir: Path) -> Tuple[str, List[Path]]:
    """The corpus's layout ('babylm' or 'txt') and its files, as preparation will read them;
    raises DataError for a missing folder, a file, or a folder with no corpus files. Reads no
    file (a dry run's check)."""
    layout, sources = _discover(Path(corpus_dir).expanduser())
    return layout, [src.path for src in sources]


def _scan(src: _Source, bar: tqdm) -> None:
    """Hash a file, check it is valid UTF-8 and note whether it has any text.

    Done up front (one read per file) so bad input fails before the slow
    tokenizer training, with the exact byte offset of the first bad byte.
    """
    h = hashlib.sha256()
    size = 0
    decoded = 0  # file offset up to which bytes decoded cleanly
    pending = b""  # an incomplete multi-byte sequence carried into the next chunk
    has_text = False
    with open(src.path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_CHUNK_BYTES), b""):
            h.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
            data = pending + chunk
            try:
                # final=False: a sequence cut by the chunk boundary is left unconsumed.
                text, consumed = codecs.utf_8_decode(data, "strict", False)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{src.path} is not valid UTF-8 (byte 0x{data[e.start]:02x} at byte offset "
                    f"{decoded + e.start}: {e.reason}); corpus files must be UTF-8 text"
                ) from None
            has_text = has_text or (bool(text) and not text.isspace())
            decoded += consumed
            pending = data[consumed:]
    if pending:
        raise DataError(
            f"{src.path} is not valid UTF-8 (truncated multi-byte sequence at byte offset {decoded}); "
            f"corpus files must be UTF-8 text"
        )
    src.size, src.sha256, src.has_text = size, h.hexdigest(), has_text


def _content_hash(settings: dict, sources: Sequence[_Source]) -> str:
    payload = {
        "format_version": FORMAT_VERSION,
        "settings": settings,
        "tokenizer_sample": [TOKENIZER_SAMPLE_BYTES, SAMPLE_WINDOW_BYTES],
        "files": sorted([s.rel, s.sha256] for s in sources),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# Documents


def _read_lines(path: Path, on_bytes: Callable[[int], None]) -> Iterator[Tuple[bool, str, int]]:
    """Yield (starts_document, line, offset) for every non-blank line of a file.

    A document is a run of non-blank lines; blank (whitespace-only) lines
    separate documents. Lines end at ``\n`` only and are stripped: edge
    whitespace carries no meaning and the pre-tokenizer adds the word-initial
    space itself. `offset` is the line's byte offset in the file. Streaming
    matters: BabyLM files have no blank lines, so one "document" can be a whole
    multi-megabyte file. (`_read_blocks` yields the same lines, faster.)
    """
    new_doc = True
    unreported = 0
    offset = 0
    with open(path, "rb") as f:
        for raw in f:
            unreported += len(raw)
            if unreported >= 1 << 20:
                on_bytes(unreported)
                unreported = 0
            line = raw.decode("utf-8")  # validity was checked by _scan
            if offset == 0:
                line = line.lstrip("\ufeff")  # a UTF-8 byte-order mark is not text
            stripped = line.strip()
            if stripped:
                yield new_doc, stripped, offset
                new_doc = False
            else:
                new_doc = True
            offset += len(raw)
    on_bytes(unreported)


def _read_blocks(path: Path, on_bytes: Callable[[int], None]) -> Iterator[Tuple[List[str], List[bool]]]:
    """The lines of `_read_lines` (without offsets), about BLOCK_BYTES at a time: (lines,
    starts_document flags). Decoding, splitting and stripping run over a whole block at once
    (C loops, no Python code per line), which is what lets 100M words stream in seconds."""
    new_doc = True
    first = True
    pending: List[bytes] = []  # a line longer than a chunk, in pieces
    with open(path, "rb") as f:
        while True:
            chunk = f.read(BLOCK_BYTES)
            if chunk:
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    pending.append(chunk)
                    continue
                data = b"".join(pending + [chunk[:cut]])
                pending = [chunk[cut:]]
            else:
                data = b"".join(pending)
                if not data:
                    break
                pending = []
            on_bytes(len(data))
            text = data.decode("utf-8")  # blocks end at a newline, never inside a character
            if first:
                text = text.lstrip("\ufeff")  # a UTF-8 byte-order mark is not text
                first = False
            raw = text.split("\n")
            if text.endswith("\n"):
                raw.pop()  # what follows the last newline belongs to the next block
            stripped = list(map(str.strip, raw))
            nonblank = np.fromiter(map(bool, stripped), dtype=bool, count=len(stripped))
            if not len(nonblank):
                continue
            # A line starts a document when the line before it (maybe in the last block) is blank.
            after_blank = np.concatenate([[new_doc], ~nonblank[:-1]])
            starts = (after_blank & nonblank)[nonblank]
            new_doc = not nonblank[-1]
            lines = list(itertools.compress(stripped, nonblank.tolist()))
            if lines:
                yield lines, starts.tolist()


def _window_lines(path: Path, windows: Sequence[Tuple[int, int]], on_bytes: Callable[[int], None]) -> Iterator[str]:
    """The stripped non-blank lines of a file that start inside one of `windows` ([start, end)
    byte ranges, ascending and disjoint), read by seeking: the rest of the file is not read."""
    with open(path, "rb") as f:
        for start, end in windows:
            if start > 0:
                f.seek(start - 1)
                pos = start - 1 + len(f.readline())  # past the line that holds byte start - 1
            else:
                f.seek(0)
                pos = 0
            while pos < end:
                raw = f.readline()
                if not raw:
                    break
                line = raw.decode("utf-8")
                if pos == 0:
                    line = line.lstrip("\ufeff")
                pos += len(raw)
                on_bytes(len(raw))
                stripped = line.strip()
                if stripped:
                    yield stripped


def _sample_windows(size: int, fraction: float) -> List[Tuple[int, int]]:
    """Evenly spaced byte windows covering `fraction` of a file of `size` bytes.

    The file is cut into n equal strides of about SAMPLE_WINDOW_BYTES / fraction bytes and
    the middle `fraction` of each stride is taken, so the sample follows the file from start
    to end (BabyLM files are often sorted by source or age) and depends only on the file's
    size and the fraction: deterministic. A line belongs to the window its first byte is in.
    """
    if fraction >= 1.0:
        return [(0, size)]
    budget = size * fraction
    n = max(1, math.ceil(budget / SAMPLE_WINDOW_BYTES))
    stride, length = size / n, budget / n
    return [(int((i + 0.5) * stride - length / 2), int((i + 0.5) * stride + length / 2)) for i in range(n)]


def _doc_split(lines: List[str], val_fraction: float) -> str:
    """Deterministic held-out split for the txt layout, by a hash of the text.

    Depends only on the document's own text (not its position or file), so
    adding files does not reshuffle existing documents, and duplicated
    documents land in the same split (no train/val leakage through copies).
    """
    digest = hashlib.blake2b("\n".join(lines).encode("utf-8"), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") / 2.0**64 < val_fraction else "train"


def _iter_split_lines(
    sources: Sequence[_Source], val_fraction: float, on_bytes: Callable[[int], None]
) -> Iterator[Tuple[str, bool, str, int]]:
    """Yield (split, starts_document, line, offset) for the whole corpus, in file order."""
    for src in sources:
        if src.split is not None:
            # BabyLM layout: the file decides the split, so lines stream straight through.
            for new_doc, line, offset in _read_lines(src.path, on_bytes):
                yield src.split, new_doc, line, offset
            continue
        # txt layout: the split depends on the whole document's text, so one
        # document (not one file) is buffered at a time.
        doc: List[Tuple[str, int]] = []
        for new_doc, line, offset in itertools.chain(_read_lines(src.path, on_bytes), [(True, "", -1)]):
            if new_doc and doc:
                split = _doc_split([text for text, _ in doc], val_fraction)
                for i, (text, o) in enumerate(doc):
                    yield split, i == 0, text, o
                doc = []
            if line:
                doc.append((line, offset))


# --------------------------------------------------------------------------
# Packing rows and writing shards


class _ShardWriter:
    """Packs a token stream into rows of ``<s>`` + (seq_length - 1) tokens.

    Packing (rather than one padded row per document piece, as the reference
    implementation does with 126-token pieces) spends no compute on padding:
    only the very last row of a split is right-padded with ``<pad>``. A row can
    therefore span a document boundary, marked by ``</s>`` in the stream.

    Beside each row it keeps the row's word count (see `_SplitEncoder.flush` for how
    words are attributed to rows), written to a .npy file on close.
    """

    def __init__(self, path: Path, seq_length: int, words_path: Path):
        self.seq_length = seq_length
        self.words_path = words_path
        self.schema = pa.schema(
            [pa.field("input_ids", pa.list_(ARROW_TOKEN_TYPE, seq_length), nullable=False)]
        )
        # pa.ipc.new_file writes uncompressed buffers by default, which is what
        # lets the reader memory-map them as-is.
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, self.schema)
        self._carry = np.empty(0, dtype=TOKEN_DTYPE)  # stream tokens not yet in a row
        self._carry_words = np.empty(0, dtype=np.int64)  # their word counts (parallel to _carry)
        self._row_words: List[np.ndarray] = []
        self._pending: List[np.ndarray] = []  # full rows waiting to fill a record batch
        self._pending_rows = 0
        self.rows = 0
        self.pad_tokens = 0

    def add(self, stream: np.ndarray, words: np.ndarray) -> None:
        """Append tokens; `words[i]` is the number of words that start at token i."""
        body = self.seq_length - 1
        data = np.concatenate([self._carry, stream]) if len(self._carry) else stream
        data_words = np.concatenate([self._carry_words, words]) if len(self._carry_words) else words
        n = len(data) // body
        if n:
            rows = np.empty((n, self.seq_length), dtype=TOKEN_DTYPE)
            rows[:, 0] = BOS_ID
            rows[:, 1:] = data[: n * body].reshape(n, body)
            self._row_words.append(data_words[: n * body].reshape(n, body).sum(axis=1))
            self._queue(rows)
        self._carry = data[n * body :].copy()
        self._carry_words = data_words[n * body :].copy()

    @property
    def stream_tokens(self) -> int:
        """Stream tokens taken so far (before close: full rows plus the partial row)."""
        return self.rows * (self.seq_length - 1) + len(self._carry)

    def close(self) -> None:
        if len(self._carry):
            row = np.full((1, self.seq_length), PAD_ID, dtype=TOKEN_DTYPE)
            row[0, 0] = BOS_ID
            row[0, 1 : 1 + len(self._carry)] = self._carry
            self.pad_tokens += self.seq_length - 1 - len(self._carry)
            self._row_words.append(np.array([self._carry_words.sum()], dtype=np.int64))
            self._carry = self._carry[:0]
            self._carry_words = self._carry_words[:0]
            self._queue(row)
        self._flush(final=True)
        self._writer.close()
        self._sink.close()
        row_words = np.concatenate(self._row_words) if self._row_words else np.empty(0, dtype=np.int64)
        np.save(self.words_path, row_words.astype(np.int64))
        self.words = int(row_words.sum())

    def abort(self) -> None:
        for closer in (self._writer.close, self._sink.close):
            try:
                closer()
            except Exception:
                pass

    def _queue(self, rows: np.ndarray) -> None:
        self._pending.append(rows)
        self._pending_rows += len(rows)
        self.rows += len(rows)
        if self._pending_rows >= ROWS_PER_BATCH:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        rows = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        cut = len(rows) if final else len(rows) - len(rows) % ROWS_PER_BATCH
        for start in range(0, cut, ROWS_PER_BATCH):
            block = np.ascontiguousarray(rows[start : min(start + ROWS_PER_BATCH, cut)])
            # pa.array on a contiguous int32 ndarray wraps it without copying.
            column = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), self.seq_length)
            self._writer.write_batch(pa.record_batch([column], schema=self.schema))
        rest = rows[cut:]
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)


class _TokenCache:
    """Token ids of each distinct word: the tokenizer runs once per distinct word, not once
    per occurrence (most of a large corpus' words are repeats: 10M words of the benchmark's
    corpus hold ~750K distinct ones).

    Exactness. The tokenizer's pipeline is NFKC, then the byte-level pre-tokenizer (a space
    is prepended unless the text starts with one, then GPT-2's split regex), then BPE on each
    piece. Take a line that is ASCII, holds no ``<`` (every special token starts with it, and
    the tokenizer cuts text around their literal strings even when it encodes them as text),
    and has no space followed by whitespace (`_WHOLE_LINE` finds none), so that
    ``line.split(" ")`` gives parts p1, p2, ... that are non-empty and start with no
    whitespace. NFKC leaves ASCII unchanged, and the regex starts a new piece at every space
    followed by a non-space, whatever came before (no alternative matches across such a
    space or ends just after it), and nothing inside a part depends on what follows it; so
    the line's pieces are those of " p1", " p2", ... taken one by one, and encoding part p
    alone gives " p" through the prepended space. Hence the line's ids are the
    concatenation of its parts' ids. Any other line is a key of its own: its ids are those
    of encoding it whole. tests/test_data.py checks this against `Tokenizer.encode`.

    Entries live in flat numpy arrays; entry 0 is ``</s>``. Bounded by CACHE_MAX_ENTRIES and
    CACHE_MAX_TOKENS: when full it starts again from empty.
    """

    def __init__(self, tok: tokenizers.Tokenizer):
        self._encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # _fast skips offsets
        self._clear()

    def _clear(self) -> None:
        self.index: Dict[str, int] = {}
        self.tokens = np.empty(1 << 16, dtype=TOKEN_DTYPE)
        self.starts = np.empty(1 << 12, dtype=np.int64)
        self.lengths = np.empty(1 << 12, dtype=np.int64)
        self.tokens[0], self.starts[0], self.lengths[0] = EOS_ID, 0, 1
        self.entries, self.used = 1, 1

    def lookup(self, keys: List[str]) -> np.ndarray:
        """Entry of each key (int64), encoding the keys not seen before."""
        ids = np.fromiter(map(self.index.get, keys, itertools.repeat(-1)), dtype=np.int64, count=len(keys))
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            new = list(dict.fromkeys([keys[i] for i in missing]))
            if self.entries + len(new) > CACHE_MAX_ENTRIES or self.used > CACHE_MAX_TOKENS:
                self._clear()
                missing = np.arange(len(keys))
                new = list(dict.fromkeys(keys))
            self._add(new)
            get = self.index.__getitem__
            ids[missing] = [get(keys[i]) for i in missing]
        return ids

    def _add(self, new: List[str]) -> None:
        for i in range(0, len(new), ENCODE_BATCH_KEYS):
            self._add_batch(new[i : i + ENCODE_BATCH_KEYS])

    def _add_batch(self, new: List[str]) -> None:
        encodings = self._encode(new, add_special_tokens=False)
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        total = int(lengths.sum())
        tokens = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=TOKEN_DTYPE, count=total)
        del encodings
        first, end = self.entries, self.entries + len(new)
        if end > len(self.starts):
            size = max(end, 2 * len(self.starts))
            self.starts = np.resize(self.starts, size)
            self.lengths = np.resize(self.lengths, size)
        if self.used + total > len(self.tokens):
            self.tokens = np.resize(self.tokens, max(self.used + total, 2 * len(self.tokens)))
        self.starts[first:end] = self.used + np.cumsum(lengths) - lengths
        self.lengths[first:end] = lengths
        self.tokens[self.used : self.used + total] = tokens
        self.index.update(zip(new, range(first, end)))
        self.entries, self.used = end, self.used + total

    def gather(self, entries: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(the entries' tokens concatenated, the stream position of each entry's first token)."""
        lengths = self.lengths[entries]
        first = np.cumsum(lengths) - lengths
        n = int(lengths.sum())
        index = np.repeat(self.starts[entries] - first, lengths) + np.arange(n, dtype=np.int64)
        return self.tokens[index], first


# A line the cache may take part by part (see _TokenCache) is ASCII and has none of these:
# "<", or a space followed by whitespace (so also no two spaces in a row).
_WHOLE_LINE = re.compile(r"<| \s")


class _SplitEncoder:
    """Collects lines of one split, encodes them in chunks and feeds a shard.

    The stream is d1 </s> d2 </s> ... dn: ``</s>`` goes *between* documents,
    across file boundaries too. Lines of a document are encoded one by one and
    their tokens concatenated.
    """

    def __init__(self, cache: _TokenCache, writer: _ShardWriter, vocab_size: Optional[int]):
        self.cache = cache
        self.writer = writer
        # Only the train split gets a frequency table.
        self.counts = np.zeros(vocab_size, dtype=np.int64) if vocab_size else None
        self._lines: List[str] = []  # pending lines, encoded together on flush
        self._starts: List[bool] = []  # does the pending line start a document?
        self._chars = 0
        self._started = False  # has the split's first document been emitted?
        self.documents = 0
        self.words = 0
        self.text_tokens = 0  # tokens that came from text (no <s>, </s>, <pad>)
        self.eos_tokens = 0

    def add(self, lines: List[str], starts_document: List[bool]) -> None:
        """Queue stripped non-blank lines and whether each starts a document."""
        self._lines += lines
        self._starts += starts_document
        self._chars += sum(map(len, lines))
        if self._chars >= ENCODE_CHUNK_CHARS:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines = self._lines
        n = len(lines)
        # Words are str.split() words (the corpus' word count). Cache keys are a line's
        # space-separated parts when it splits exactly (see _TokenCache), else the whole line.
        # All of it in a few C calls over the chunk: no Python code, and no small container
        # objects (a list per line) for the garbage collector to walk, per line.
        line_words = np.fromiter(map(len, map(str.split, lines)), dtype=np.int64, count=n)
        joined = " ".join(lines)  # lines are stripped: a match never spans two of them
        whole = ~np.fromiter(map(str.isascii, lines), dtype=bool, count=n)
        hits = [m.start() for m in _WHOLE_LINE.finditer(joined)]
        if hits:
            line_start = np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=n) + 1)
            whole[np.searchsorted(line_start, hits, side="right")] = True
        pieces = np.fromiter(map(operator.methodcaller("count", " "), lines), dtype=np.int64, count=n) + 1
        pieces[whole] = 1
        whole_lines = np.flatnonzero(whole).tolist()
        if whole_lines:  # an empty placeholder, which no part can be, then the line itself
            units = list(lines)
            for i in whole_lines:
                units[i] = ""
            joined = " ".join(units)
            del units
        keys = joined.split(" ")
        del joined
        if whole_lines:
            key_of_line = np.cumsum(pieces) - pieces
            for i in whole_lines:
                keys[key_of_line[i]] = lines[i]
        # </s> before every line that starts a document, except the split's very first.
        eos = np.fromiter(self._starts, dtype=bool, count=n)
        self.documents += int(eos.sum())
        if not self._started:
            eos[0] = False
            self._started = True
        per_line = pieces + eos
        line_first = np.cumsum(per_line) - per_line  # entry index where each line begins
        entries = np.zeros(int(per_line.sum()), dtype=np.int64)  # 0 = the </s> entry
        is_text = np.ones(len(entries), dtype=bool)
        is_text[line_first[eos]] = False
        entries[is_text] = self.cache.lookup(keys)
        del keys
        stream, entry_first = self.cache.gather(entries)
        # A line's words are counted at its first token, so they belong to the row that
        # holds the line's start: per-row counts are integers that sum exactly to the
        # split's word count, and are exact at line granularity within an epoch.
        # (A non-blank line always yields at least one token.)
        words_stream = np.zeros(len(stream), dtype=np.int64)
        words_stream[entry_first[line_first + eos]] = line_words
        separators = int(eos.sum())
        self.words += int(line_words.sum())
        self.eos_tokens += separators
        self.text_tokens += len(stream) - separators
        if self.counts is not None:
            # </s> separators are counted here too; special ids are zeroed at the end.
            self.counts += np.bincount(stream, minlength=len(self.counts))[: len(self.counts)]
        self.writer.add(stream, words_stream)
        self._lines, self._starts, self._chars = [], [], 0


def _row_spans(token_spans: List[Tuple[int, int]], body: int) -> List[List[int]]:
    """Per-file [first row, end row) from per-file [first, end) stream tokens (`body` tokens a
    row). A row holding the end of one file and the start of the next counts for the later
    file, so the spans are disjoint and cover the shard; a file without tokens gets [r, r)."""
    rows = [[start // body, -(-end // body)] for start, end in token_spans]
    filled = [i for i, (start, end) in enumerate(token_spans) if end > start]
    for here, after in zip(filled, filled[1:]):
        rows[here][1] = rows[after][0]
    for i, (start, end) in enumerate(token_spans):
        if end == start:
            rows[i] = [rows[i][0], rows[i][0]]
    return rows


def _frequency_table(counts: np.ndarray) -> pa.Table:
    """Counts and ranks per token id; rank 0 = most frequent, ties by token id.

    Special tokens are excluded: their count is 0 and they rank after every
    real token (even never-seen ones), so "top-k frequent" never picks a
    special and frequency-based schedules are not skewed by <s>/</s>/<pad>.
    """
    counts = counts.astype(np.int64).copy()
    counts[:NUM_SPECIAL_TOKENS] = 0
    ids = np.arange(len(counts), dtype=np.int64)
    is_special = ids < NUM_SPECIAL_TOKENS
    order = np.lexsort((ids, -counts, is_special))  # last key is the primary one
    ranks = np.empty_like(ids)
    ranks[order] = ids
    return pa.table({"token_id": ids, "count": counts, "rank": ranks})


# --------------------------------------------------------------------------
# Build


def _build(
    out: Path,
    corpus_dir: Path,
    layout: str,
    sources: List[_Source],
    content_hash: str,
    vocab_size: int,
    seq_length: int,
    val_fraction: float,
    show_progress: bool,
    started: float,
) -> dict:
    train_bytes = sum(s.size for s in sources if s.split != "val")
    all_bytes = sum(s.size for s in sources)
    train_sources = [s for s in sources if s.split != "val"]

    # Pass 1: train the tokenizer on training documents only: all of them, or beyond
    # TOKENIZER_SAMPLE_BYTES the lines that start in evenly spaced windows of every file.
    fraction = min(1.0, TOKENIZER_SAMPLE_BYTES / train_bytes) if train_bytes else 1.0
    windows = {s.rel: _sample_windows(s.size, fraction) for s in train_sources}
    window_bytes = {rel: sum(end - start for start, end in w) for rel, w in windows.items()}
    doc_counts = {"train": 0, "val": 0}
    sample = {"lines": 0, "words": 0}

    def txt_training_lines(src: _Source, on_bytes: Callable[[int], None]) -> Iterator[str]:
        # The split of a txt document depends on all of its text, so these files are read
        # whole (which also counts the documents of each split).
        spans, k = windows[src.rel], 0
        for split, starts_document, line, offset in _iter_split_lines([src], val_fraction, on_bytes):
            doc_counts[split] += starts_document
            while k < len(spans) and offset >= spans[k][1]:
                k += 1
            if split == "train" and k < len(spans) and offset >= spans[k][0]:
                yield line

    def training_text() -> Iterator[List[str]]:
        batch: List[str] = []
        to_read = sum(window_bytes[s.rel] if s.split else s.size for s in train_sources)
        with _bar(show_progress, to_read, "read (tokenizer training)") as bar:
            for src in train_sources:
                if src.split is None:
                    lines = txt_training_lines(src, bar.update)
                else:  # BabyLM layout: every line is training text; only the windows are read
                    lines = _window_lines(src.path, windows[src.rel], bar.update)
                for line in lines:
                    batch.append(line)
                    sample["words"] += len(line.split())
                    if len(batch) >= 4096:
                        sample["lines"] += len(batch)
                        yield batch
                        batch = []
        if batch:
            sample["lines"] += len(batch)
            yield batch

    tok = train_tokenizer(training_text(), vocab_size=vocab_size, show_progress=show_progress)
    if layout == "txt" and doc_counts["train"] == 0:
        raise DataError(f"no training documents in {corpus_dir} after splitting; add more text or *.train files")
    if layout == "txt" and doc_counts["val"] == 0:
        raise DataError(
            f"no validation documents after splitting {doc_counts['train']} documents with "
            f"val_fraction={val_fraction}; add more blank-line-separated documents, raise val_fraction, "
            f"or use *.train/*.dev files"
        )
    tok.save(str(out / TOKENIZER_FILE))
    actual_vocab = tok.get_vocab_size(with_added_tokens=True)
    _release_free_memory()

    # Pass 2: encode both splits. Literal "<s>", "<mask>" ... in the corpus text
    # must stay plain text, or they would fake document boundaries / masks.
    # (This flag is not saved in tokenizer.json; it is set after saving anyway.)
    tok.encode_special_tokens = True
    writers = {
        split: _ShardWriter(out / name, seq_length, out / ROW_WORDS_FILES[split])
        for split, name in (("train", TRAIN_FILE), ("val", VAL_FILE))
    }
    try:
        cache = _TokenCache(tok)
        encoders = {
            "train": _SplitEncoder(cache, writers["train"], actual_vocab),
            "val": _SplitEncoder(cache, writers["val"], None),
        }
        # Each source file's stream tokens per split, so a sample can be spread over files
        # (trainer/data/validation.py); turned into row spans by _row_spans.
        spans: Dict[str, List[Tuple[int, int]]] = {split: [] for split in SPLITS}
        with _bar(show_progress, all_bytes, "tokenize + write shards") as bar:
            for src in sources:
                starts = {split: writers[split].stream_tokens for split in SPLITS}  # encoders are flushed here
                if src.split is not None:  # BabyLM layout: whole blocks of one split
                    for lines, doc_starts in _read_blocks(src.path, bar.update):
                        encoders[src.split].add(lines, doc_starts)
                else:
                    batch: Dict[str, Tuple[List[str], List[bool]]] = {split: ([], []) for split in SPLITS}
                    for split, starts_document, line, _ in _iter_split_lines([src], val_fraction, bar.update):
                        batch[split][0].append(line)
                        batch[split][1].append(starts_document)
                        if len(batch[split][0]) >= 4096:
                            encoders[split].add(*batch[split])
                            batch[split] = ([], [])
                    for split in SPLITS:
                        encoders[split].add(*batch[split])
                for split in SPLITS:
                    encoders[split].flush()
                    spans[split].append((starts[split], writers[split].stream_tokens))
        del cache
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    if encoders["val"].documents == 0:
        raise DataError("no validation data: every *.dev file is empty; add non-empty *.dev files")

    pq.write_table(_frequency_table(encoders["train"].counts), out / FREQUENCIES_FILE, compression="zstd")

    files = {}
    for split in SPLITS:
        if writers[split].words != encoders[split].words:  # an invariant of the packing, checked once
            raise RuntimeError(f"row word counts of {split} sum to {writers[split].words}, not {encoders[split].words}")
    for name in (TOKENIZER_FILE, TRAIN_FILE, VAL_FILE, FREQUENCIES_FILE, *ROW_WORDS_FILES.values()):
        _fsync_file(out / name)
        files[name] = {"bytes": (out / name).stat().st_size, "sha256": _sha256_file(out / name)}

    def per_split(fn):
        return {s: fn(s) for s in SPLITS}

    return {
        "format_version": FORMAT_VERSION,
        "content_hash": content_hash,
        "corpus_path": str(corpus_dir),
        "layout": layout,
        "source_files": [
            {"path": s.rel, "split": s.split or "by_document_hash", "bytes": s.size, "sha256": s.sha256,
             "rows": {split: _row_spans(spans[split], seq_length - 1)[i] for split in SPLITS},
             "tokenizer_sample_bytes": window_bytes.get(s.rel, 0)}
            for i, s in enumerate(sources)
        ],
        "settings": {
            "vocab_size": vocab_size,
            "vocab_size_actual": actual_vocab,
            "seq_length": seq_length,
            "val_fraction": val_fraction,
        },
        "token_dtype": np.dtype(TOKEN_DTYPE).name,
        "rows_per_record_batch": ROWS_PER_BATCH,
        "rows": per_split(lambda s: writers[s].rows),
        # tokens = everything stored (rows * seq_length, including <s>, </s>, <pad>);
        # text_tokens = tokens produced by the tokenizer from corpus text.
        "tokens": per_split(lambda s: writers[s].rows * seq_length),
        "text_tokens": per_split(lambda s: encoders[s].text_tokens),
        "pad_tokens": per_split(lambda s: writers[s].pad_tokens),
        "padding_fraction": per_split(
            lambda s: writers[s].pad_tokens / max(1, writers[s].rows * seq_length)
        ),
        "documents": per_split(lambda s: encoders[s].documents),
        "words": per_split(lambda s: encoders[s].words),
        "tokenizer_trained_on": "train",
        # fraction < 1: the tokenizer saw the lines starting in `fraction` of each training
        # file's bytes (its `tokenizer_sample_bytes`), in windows spread evenly over it.
        "tokenizer_sample": {
            "cap_bytes": TOKENIZER_SAMPLE_BYTES,
            "window_bytes": SAMPLE_WINDOW_BYTES,
            "train_bytes": train_bytes,
            "fraction": fraction,
            "lines": sample["lines"],
            "words": sample["words"],
        },
        "special_token_ids": {t: i for i, t in enumerate(SPECIAL_TOKENS)},
        "files": files,
        "versions": {"tokenizers": tokenizers.__version__, "pyarrow": pa.__version__, "numpy": np.__version__},
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_seconds": round(time.time() - started, 3),
    }


def _check_settings(vocab_size: int, seq_length: int, val_fraction: float) -> None:
    def is_int(x) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(vocab_size) or vocab_size < MIN_VOCAB_SIZE:
        raise DataError(f"vocab_size={vocab_size!r} is too small; it must be an integer >= {MIN_VOCAB_SIZE} (256 bytes + 16 special tokens)")
    if not is_int(seq_length) or seq_length < MIN_SEQ_LENGTH:
        raise DataError(f"seq_length={seq_length!r} is too small; it must be an integer >= {MIN_SEQ_LENGTH}")
    if not (0.0 < float(val_fraction) < 1.0):
        raise DataError(f"val_fraction={val_fraction!r} must be strictly between 0 and 1")


def _identify(corpus_dir: Path, vocab_size: int, seq_length: int, val_fraction: float,
              show_progress: bool) -> Tuple[str, List[_Source], str]:
    """(layout, sources, content hash) of a corpus folder: reads and checks every file, writes nothing."""
    layout, sources = _discover(corpus_dir)
    with _bar(show_progress, sum(s.path.stat().st_size for s in sources), "hash + check UTF-8") as bar:
        for src in sources:
            _scan(src, bar)
    train_src = [s for s in sources if s.split != "val"]
    if not any(s.has_text for s in train_src):
        kind = "*.train" if layout == "babylm" else "*.txt"
        raise DataError(f"all {len(train_src)} {kind} files in {corpus_dir} are empty; corpus files need UTF-8 text")
    if layout == "babylm" and not any(s.has_text for s in sources if s.split == "val"):
        raise DataError(f"no validation data in {corpus_dir}: no non-empty *.dev file next to the *.train files")
    settings = {"vocab_size": vocab_size, "seq_length": seq_length, "val_fraction": float(val_fraction)}
    return layout, sources, _content_hash(settings, sources)


def cached_preparation(corpus_dir, cache_dir, *, vocab_size: int = 16384, seq_length: int = 128,
                       val_fraction: float = 0.05) -> Optional[PreparedData]:
    """The finished cache folder `prepare_corpus` would reuse for these inputs, or None; writes
    nothing (for plans: `sweeps/run.py --dry-run`). Raises DataError for a bad corpus."""
    _check_settings(vocab_size, seq_length, val_fraction)
    corpus_dir = Path(corpus_dir).expanduser().resolve()
    _, _, content_hash = _identify(corpus_dir, int(vocab_size), int(seq_length), float(val_fraction), False)
    final = Path(cache_dir).expanduser().resolve() / content_hash[:16]
    return _reuse(final, content_hash) if final.exists() else None


def prepare_corpus(
    corpus_dir,
    cache_dir,
    *,
    vocab_size: int = 16384,
    seq_length: int = 128,
    val_fraction: float = 0.05,
    show_progress: bool = True,
    lock_timeout_s: float | None = None,
) -> PreparedData:
    """Tokenize a corpus into a content-addressed cache folder (or reuse it).

    Safe to call from several processes at once: builders of the same content
    serialise on a lock file and the loser reuses the winner's folder. A lock held
    longer than `lock_timeout_s` ($MDLM_LOCK_TIMEOUT_S, default 1800 s: several builds
    of a 100M-word corpus) is reported as a DataError instead of waiting forever (a
    builder on a dead node of a shared filesystem never releases it).
    """
    started = time.time()
    _check_settings(vocab_size, seq_length, val_fraction)
    vocab_size, seq_length, val_fraction = int(vocab_size), int(seq_length), float(val_fraction)
    corpus_dir = Path(corpus_dir).expanduser().resolve()
    cache_dir = Path(cache_dir).expanduser().resolve()
    layout, sources, content_hash = _identify(corpus_dir, vocab_size, seq_length, val_fraction, show_progress)
    final = cache_dir / content_hash[:16]

    # Fast path: a finished folder is only ever created by an atomic rename
    # after its manifest was written, so "exists" means "complete" unless it
    # was damaged later, which open_prepared reports.
    if final.exists():
        return _reuse(final, content_hash)

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"cache path {cache_dir} exists and is not a folder; pass a folder for --cache-dir") from None
    # The lock file is never deleted (preserve_lock_file): unlinking it would let a late
    # process lock a fresh inode while another still holds the old one.
    lock_path = cache_dir / f"{content_hash[:16]}.lock"
    timeout = float(os.environ.get("MDLM_LOCK_TIMEOUT_S", 1800)) if lock_timeout_s is None else lock_timeout_s
    with _held(lock_path, timeout):
        if final.exists():  # someone else built it while we waited
            return _reuse(final, content_hash)
        # Only the lock holder builds this hash, so leftovers are from killed builds.
        for stale in cache_dir.glob(f".{content_hash[:16]}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{content_hash[:16]}.tmp-", dir=cache_dir))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
            manifest = _build(
                tmp, corpus_dir, layout, sources, content_hash,
                vocab_size, seq_length, float(val_fraction), show_progress, started,
            )
            manifest_tmp = tmp / (MANIFEST_FILE + ".part")
            manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            _fsync_file(manifest_tmp)
            os.rename(manifest_tmp, tmp / MANIFEST_FILE)
            os.rename(tmp, final)
            _fsync_dir(cache_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return PreparedData(root=final, manifest=manifest)


@contextmanager
def _held(lock_path: Path, timeout: float):
    """Hold the builders' lock, or fail with one line after `timeout` seconds of waiting."""
    lock = FileLock(lock_path, timeout=timeout, preserve_lock_file=True, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(f"another process has held {lock_path} for over {timeout:g} s while preparing this corpus; "
                        f"if no preparation is running (e.g. its node died), delete that file and retry") from None
    try:
        yield
    finally:
        lock.release()


def _reuse(final: Path, content_hash: str) -> PreparedData:
    data = open_prepared(final)
    if data.content_hash != content_hash:  # a 64-bit prefix clash; never expected
        raise DataError(f"{final} holds data for content hash {data.content_hash}, not {content_hash}; delete {final} to rebuild it")
    return data


def open_prepared(root, *, verify_hashes: bool = False) -> PreparedData:
    """Open and validate an existing prepared-data folder.

    Checks the manifest and that every file it lists exists with the recorded
    size (catches truncation); ``verify_hashes=True`` also checks sha256
    (catches same-size corruption, costs a full read).
    """
    root = Path(root)
    rebuild = f"delete {root} to rebuild it"
    if not root.is_dir():
        raise DataError(f"prepared data folder {root} does not exist; run prepare_corpus first")
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{root} has no {MANIFEST_FILE} (incomplete or foreign folder); {rebuild}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{root / MANIFEST_FILE} is unreadable ({type(e).__name__}); {rebuild}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise DataError(f"{root / MANIFEST_FILE} has format version {version!r}, expected {FORMAT_VERSION}; {rebuild}")
    files = manifest.get("files")
    required = (TOKENIZER_FILE, TRAIN_FILE, VAL_FILE, FREQUENCIES_FILE, *ROW_WORDS_FILES.values())
    if not isinstance(files, dict) or any(name not in files for name in required):
        raise DataError(f"{root / MANIFEST_FILE} does not list all of {', '.join(required)}; {rebuild}")
    for name, info in files.items():
        path = root / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{path} is missing; {rebuild}") from None
        if size != info["bytes"]:
            raise DataError(f"{path} has {size} bytes, expected {info['bytes']} (truncated or corrupted); {rebuild}")
        if verify_hashes and _sha256_file(path) != info["sha256"]:
            raise DataError(f"{path} does not match its recorded sha256 (corrupted); {rebuild}")
    return PreparedData(root=root, manifest=manifest)


# --------------------------------------------------------------------------
# CLI


def _summary(data: PreparedData, seconds: float) -> str:
    m = data.manifest
    lines = [f"prepared data: {data.root}  (layout={m['layout']}, hash={data.content_hash[:16]})"]
    for s in SPLITS:
        lines.append(
            f"  {s:5s}: {m['rows'][s]:>10,} rows  {m['tokens'][s]:>12,} tokens  "
            f"{m['words'][s]:>11,} words  {m['documents'][s]:>9,} docs  padding {m['padding_fraction'][s]:.4%}"
        )
    lines.append(
        f"  vocab {data.vocab_size} (requested {m['settings']['vocab_size']}), seq_length {data.seq_length}, "
        f"built in {m['elapsed_seconds']:.1f}s, this call {seconds:.1f}s"
    )
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m trainer.data.prepare",
        description="Train a BPE tokenizer and write packed Arrow token shards for a corpus.",
    )
    parser.add_argument("corpus_dir", help="folder with *.train/*.dev (BabyLM) or *.txt files, searched recursively")
    parser.add_argument("--cache-dir", required=True, help="where prepared data folders are kept")
    parser.add_argument("--vocab-size", type=int, default=16384, help="BPE vocabulary size")
    parser.add_argument("--seq-length", type=int, default=128, help="tokens per packed row")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="held-out share of documents (txt layout)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    try:
        data = prepare_corpus(
            args.corpus_dir,
            args.cache_dir,
            vocab_size=args.vocab_size,
            seq_length=args.seq_length,
            val_fraction=args.val_fraction,
            show_progress=not args.no_progress,
        )
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_summary(data, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
