"""Zero-copy reading of the Arrow token shards written by ``prepare.py``.

The shard is memory-mapped and never converted to Python objects: the token
values of every record batch already sit in the mapped file, uncompressed and
contiguous, so one flat numpy view over the whole file plus the element offset
of each row is enough to gather any set of rows with a single numpy indexing
operation. Pages are read lazily by the OS and shared between processes
(e.g. DataLoader workers or several trials on one machine).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq


class TokenShard:
    """Rows of token ids from an Arrow IPC file with one ``fixed_size_list`` column."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        mm = pa.memory_map(str(self.path), "r")
        reader = pa.ipc.open_file(mm)
        schema = reader.schema
        if len(schema) != 1 or not pa.types.is_fixed_size_list(schema.field(0).type):
            raise ValueError(f"{self.path}: expected one fixed_size_list column, got schema {schema}")
        list_type = schema.field(0).type
        if not pa.types.is_integer(list_type.value_type):
            raise ValueError(f"{self.path}: token values must be integers, got {list_type.value_type}")
        self.seq_length: int = list_type.list_size
        dtype = np.dtype(list_type.value_type.to_pandas_dtype())

        # The whole mapped file as one buffer; read_buffer on a memory map
        # returns a slice of the mapping, not a copy.
        mm.seek(0)
        whole = mm.read_buffer(mm.size())
        base = whole.address

        offsets = []  # per batch: element offset of its first row inside `whole`
        batch_rows = []
        in_place = True
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        batches = [b for b in batches if len(b)]  # empty batches carry no buffer to locate
        for batch in batches:
            column = batch.column(0)
            if column.null_count:
                raise ValueError(f"{self.path}: null rows are not supported")
            values = column.flatten()  # respects slicing offsets; no copy
            start_byte = values.buffers()[1].address + values.offset * dtype.itemsize - base
            end_byte = start_byte + len(values) * dtype.itemsize
            # A compressed or misaligned file would have its buffers decoded /
            # copied into fresh memory outside the mapping.
            if not (0 <= start_byte <= end_byte <= whole.size) or start_byte % dtype.itemsize:
                in_place = False
            offsets.append(start_byte // dtype.itemsize)
            batch_rows.append(len(batch))

        if in_place:
            self._flat = np.frombuffer(whole, dtype=dtype, count=whole.size // dtype.itemsize)
            starts = np.asarray(offsets, dtype=np.int64)
        else:
            # Fallback for files we did not write (e.g. compressed): one copy in RAM.
            self._flat = np.concatenate(
                [np.asarray(b.column(0).flatten().to_numpy(zero_copy_only=False), dtype=dtype) for b in batches]
                or [np.empty(0, dtype=dtype)]
            )
            starts = np.concatenate([[0], np.cumsum(batch_rows)[:-1]]).astype(np.int64) * self.seq_length
        self.zero_copy: bool = in_place
        self.num_rows: int = int(sum(batch_rows))

        # Element offset of every row; 8 bytes per row (~1.5% of a 128-token int32 row).
        self._row_start = np.concatenate(
            [s + np.arange(n, dtype=np.int64) * self.seq_length for s, n in zip(starts, batch_rows)]
            or [np.empty(0, dtype=np.int64)]
        )
        # Read-only (seq_length)-wide sliding windows over the flat view, so a
        # row gather is a plain first-axis take (one memcpy per row).
        if len(self._flat) >= self.seq_length:
            self._windows = np.lib.stride_tricks.sliding_window_view(self._flat, self.seq_length)
        else:
            self._windows = np.empty((0, self.seq_length), dtype=dtype)

    def __len__(self) -> int:
        return self.num_rows

    def __reduce__(self):
        # Pickle by path (e.g. to DataLoader workers): each process maps the
        # file itself instead of receiving a copy of the tokens.
        return (TokenShard, (str(self.path),))

    @property
    def values(self) -> np.ndarray:
        """Flat read-only view of the token buffer (the mapped file when ``zero_copy``)."""
        return self._flat

    def rows(self, indices) -> np.ndarray:
        """Gather rows as an int64 array of shape ``(len(indices), seq_length)``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            raise IndexError(f"row index out of range [0, {self.num_rows}) in {self.path}")
        return self._windows[self._row_start[idx]].astype(np.int64)


def load_frequencies(path: Union[str, Path]) -> Tuple[np.ndarray, np.ndarray]:
    """Read ``frequencies.parquet`` -> (counts, ranks), both int64 and indexed by token id."""
    table = pq.read_table(str(path), columns=["token_id", "count", "rank"])
    token_id = table.column("token_id").to_numpy().astype(np.int64)
    n = len(token_id)
    if n == 0 or not np.array_equal(np.sort(token_id), np.arange(n)):
        raise ValueError(f"{path}: token_id must cover 0..{n - 1} exactly once")
    counts = np.empty(n, dtype=np.int64)
    ranks = np.empty(n, dtype=np.int64)
    counts[token_id] = table.column("count").to_numpy()
    ranks[token_id] = table.column("rank").to_numpy()
    return counts, ranks


@functools.lru_cache(maxsize=2)
def epoch_permutation(num_rows: int, seed: int, epoch: int) -> np.ndarray:
    """Deterministic shuffle of ``range(num_rows)`` for one epoch (a read-only array).

    Seeded by (seed, epoch) rather than by a running generator, so a resumed
    run can regenerate epoch k's order without replaying earlier epochs.
    Cached: the loop asks for the current epoch's order at every step, and shuffling
    a million rows (a 100M-word corpus) takes ~20 ms, which capped the loader at
    ~190K tokens/s at 32 rows a step (benchmarks/data_throughput.py). Two entries:
    a batch that wraps into the next epoch needs both orders.
    """
    order = np.random.default_rng((seed, epoch)).permutation(num_rows)
    order.flags.writeable = False  # shared by every caller: nobody may shuffle it in place
    return order


def epoch_batches(
    num_rows: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0, drop_last: bool = True
) -> Iterator[np.ndarray]:
    """Index batches of one epoch, resumable at ``start_batch`` (its position in batches)."""
    perm = epoch_permutation(num_rows, seed, epoch)
    end = (num_rows // batch_size) * batch_size if drop_last else num_rows
    for start in range(start_batch * batch_size, end, batch_size):
        yield perm[start : start + batch_size]
