"""The training objective: SUBS-parameterised masked cross-entropy, NELBO-weighted.

SUBS (MDLM): the denoiser never predicts a token that cannot be a clean target and
unmasked positions copy their input, so only masked positions carry loss. MDLM
suppresses the `<mask>` logit; since special tokens are never masked here, none of
them can ever be a target, so we suppress all special-token logits (a strict
generalisation; the reference suppresses nothing).

Loss of a micro-batch (the reference's normalisation):

    sum_rows  w_row * sum_{masked positions of the row} CE   /   #non-pad tokens

with w_row = (dm/du)^p / m from `schedules.loss_weight`. For p = 1 its expectation is
the NELBO in nats per token.

Everything the loss needs to know about where the masks fell (the masked positions as indices,
their rows and targets, whether any row is padded, the token count) is computed on the host from
the CPU mask before the copy to the device (`MaskedBatch.build`): on a GPU, reading a boolean
mask's True count, or a tensor's value, would make the host wait for the device.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F


@dataclass
class MaskedBatch:
    """A masked micro-batch, ready for the device: the noisy ids, the key mask (None when no row
    is padded), the masked positions as indices into the flattened batch (row-major), each
    position's row and target, the rows' loss weights and time inputs, and the real-token count
    that normalises the loss (a Python int)."""

    noisy: torch.Tensor  # [B, T]
    attention: torch.Tensor | None  # [B, T] bool, True = real token; None = no padding
    positions: torch.Tensor  # [N] long
    rows: torch.Tensor  # [N] long
    targets: torch.Tensor  # [N] long
    loss_weights: torch.Tensor  # [B]
    time: torch.Tensor  # [B]
    real_tokens: int

    @classmethod
    def build(cls, ids: torch.Tensor, noisy: torch.Tensor, masked: torch.Tensor, loss_weights: torch.Tensor,
              time: torch.Tensor, pad_id: int) -> "MaskedBatch":
        """From the CPU tensors of a micro-batch (`masked` [B, T] bool)."""
        positions = masked.reshape(-1).nonzero().squeeze(1)
        keep = ids != pad_id
        real_tokens = int(keep.sum())
        return cls(noisy, None if real_tokens == keep.numel() else keep, positions, positions // ids.shape[1],
                   ids.reshape(-1).index_select(0, positions), loss_weights, time, real_tokens)

    def to(self, device: torch.device) -> "MaskedBatch":
        """Copied to `device` without waiting: from pinned memory, non-blocking, on a GPU."""
        if device.type == "cpu":
            return self
        moved = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, torch.Tensor):
                value = value.pin_memory().to(device, non_blocking=True)
            moved[spec.name] = value
        return MaskedBatch(**moved)


def subs_logits(logits: torch.Tensor, num_special: int) -> torch.Tensor:
    """Float32 logits with the special tokens' entries set to -inf."""
    logits = logits.float()
    logits[..., :num_special] = float("-inf")
    return logits


def masked_logits(model, batch: MaskedBatch, num_special: int, condition: bool = True) -> torch.Tensor:
    """Logits (N, V) at the batch's masked positions only (row-major order), SUBS-suppressed.

    The output head (a d x V matmul) runs only where the loss needs it.
    """
    # Called through forward (not encode + head) so DDP's gradient hooks run.
    logits = model(batch.noisy, batch.attention, batch.time, condition=condition, output_positions=batch.positions)
    return subs_logits(logits, num_special)


def weighted_nelbo(logits: torch.Tensor, batch: MaskedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-token CE) for logits at the batch's masked positions; see the module docstring."""
    token_ce = F.cross_entropy(logits, batch.targets, reduction="none")
    weighted = (token_ce * batch.loss_weights.to(token_ce.dtype).index_select(0, batch.rows)).sum()
    return weighted / batch.real_tokens, token_ce
