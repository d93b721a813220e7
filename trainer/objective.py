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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def subs_logits(logits: torch.Tensor, num_special: int) -> torch.Tensor:
    """Float32 logits with the special tokens' entries set to -inf."""
    logits = logits.float()
    logits[..., :num_special] = float("-inf")
    return logits


def masked_logits(
    model,
    noisy_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    masked: torch.Tensor,
    time: torch.Tensor | None,
    num_special: int,
    condition: bool = True,
) -> torch.Tensor:
    """Logits (N, V) at the masked positions only (row-major order), SUBS-suppressed.

    The output head (a d x V matmul) runs only where the loss needs it.
    """
    # Called through forward (not encode + head) so DDP's gradient hooks run.
    logits = model(noisy_ids, attention_mask, time, condition=condition, output_mask=masked)
    return subs_logits(logits, num_special)


def weighted_nelbo(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    weights: torch.Tensor,
    normaliser: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-token CE) for logits at masked positions; see the module docstring."""
    token_ce = F.cross_entropy(logits, targets[masked], reduction="none")
    rows = masked.nonzero(as_tuple=True)[0]
    weighted = (token_ce * weights.to(token_ce.dtype)[rows]).sum()
    return weighted / normaliser, token_ce
