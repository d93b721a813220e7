"""Count the aten operators a piece of code dispatches, and those that would wait on a GPU.

A CUDA kernel launch returns at once; the host runs ahead and queues the next. An operator whose
output size or value the host must know before it can go on (a boolean-mask gather's row count,
`nonzero`, `.item()`, `bool(tensor)`, `tolist()`) makes the host wait until the GPU has caught up:
a sync, after which the GPU idles while the host queues the next kernels. On a CPU nothing waits,
but the same operators are dispatched, so counting them on the CPU (a TorchDispatchMode sees every
operator below autograd, backward included) tells which ones a GPU step would sync on.

    with OpCounter() as counter:
        ...                       # counter.ops: Counter of operator names; counter.syncs likewise
    counter.paused()              # a context in which nothing is counted (host-side work)

Used by tests/test_host_syncs.py (no sync in a training step) and the benchmarks that report
operators per step (benchmarks/throughput.py --ops, benchmarks/gpu_check.py).
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Operators whose result the host needs (a size or a value) before it can queue more work.
SYNCING = {aten.nonzero, aten._local_scalar_dense, aten.masked_select, aten.is_nonzero, aten.equal,
           aten._unique2, aten.unique_consecutive, aten.unique_dim, aten.nonzero_static}
# Indexing syncs when an index is a boolean mask (its True count sizes the result).
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}


def is_sync(func, args) -> bool:
    packet = func.overloadpacket
    if packet in SYNCING:
        return True
    if packet is aten.repeat_interleave:  # without output_size its length is read on the host
        return len(args) < 4 or args[3] is None
    if packet in INDEXING and len(args) > 1:
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ()))
    return False


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()
        self.syncs: Counter = Counter()
        self.active = True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.active:
            name = str(func.overloadpacket).removeprefix("aten.")
            self.ops[name] += 1
            if is_sync(func, args):
                self.syncs[name] += 1
        return func(*args, **(kwargs or {}))

    @contextmanager
    def paused(self):
        before, self.active = self.active, False
        try:
            yield
        finally:
            self.active = before

    def reset(self) -> None:
        self.ops.clear()
        self.syncs.clear()
