"""Evaluation that is comparable across trials.

`val_nelbo` — a schedule-independent bound. Substituting m = 1 - alpha(t) turns the
p = 1 NELBO of every schedule into the same integral over the mask rate,
    integral_0^1 (1/m) E[ sum_masked CE | m ] dm   (per token),
so we estimate it on a fixed midpoint quadrature of rates m_k = (k + 1/2)/K with
uniform masks, row i of the validation set at rate m_{i mod K}. The uniform draws
come from a generator with a fixed seed that does not depend on the run's config,
so every trial — whatever its schedule, p or masking — is scored on the very same
masks (common random numbers), and reruns give the same number.

`val_acc` — accuracy of the argmax at those same masked positions.

`pairs_acc` — zero-shot minimal pairs by MLM pseudo-log-likelihood (Salazar et al.
2020, as the BabyLM pipeline computes it): one copy per scored token with that
token alone masked, sum of log-probabilities, the pair is right when
PLL(good) > PLL(bad).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.pairs import MinimalPair
from trainer.objective import subs_logits

# Fixed for every run on purpose: the validation masks are common random numbers.
VALIDATION_SEED = 1_234_567


def eval_time(fraction: torch.Tensor, policy: str, fixed_rate: float) -> tuple[torch.Tensor, bool]:
    """The rate a time-conditioned model sees at evaluation and whether to condition at all."""
    if policy == "mask_fraction":
        return fraction, True
    if policy == "fixed":
        return torch.full_like(fraction, fixed_rate), True
    if policy == "off":
        return fraction, False
    raise ValueError(f"unknown eval_time_conditioning '{policy}'")


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def validation_metrics(
    model,
    rows: np.ndarray | torch.Tensor,
    *,
    num_rates: int,
    num_special: int,
    mask_id: int,
    pad_id: int,
    policy: str = "mask_fraction",
    fixed_rate: float = 0.15,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    autocast=None,
) -> dict[str, float]:
    """val_nelbo (nats per real token) and val_acc on fixed rates and fixed masks."""
    ids = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    n_rows, length = ids.shape
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    uniforms = torch.rand((n_rows, length), generator=generator)
    rates = (torch.arange(n_rows) % num_rates + 0.5) / num_rates
    maskable = ids >= num_special
    masked = (uniforms < rates[:, None]) & maskable

    total_bound = 0.0
    correct = 0
    n_masked = 0
    for part in _batches(n_rows, batch_size):
        batch_masked = masked[part].to(device)
        if not batch_masked.any():
            continue
        batch_ids = ids[part].to(device)
        noisy = batch_ids.masked_fill(batch_masked, mask_id)
        fraction = batch_masked.sum(1).float() / maskable[part].to(device).sum(1).clamp_min(1).float()
        time, condition = eval_time(fraction, policy, fixed_rate)
        with autocast() if autocast else nullcontext():
            logits = model(noisy, batch_ids != pad_id, time, condition=condition, output_mask=batch_masked)
        logits = subs_logits(logits, num_special)
        targets = batch_ids[batch_masked]
        token_ce = F.cross_entropy(logits, targets, reduction="none").double()
        row_of = batch_masked.nonzero(as_tuple=True)[0]
        row_rates = rates[part].to(device).double()
        total_bound += float((token_ce / row_rates[row_of]).sum())
        correct += int((logits.argmax(-1) == targets).sum())
        n_masked += int(targets.numel())
    real_tokens = int(maskable.sum())
    return {
        "val_nelbo": total_bound / max(real_tokens, 1),
        "val_acc": correct / max(n_masked, 1),
    }


@torch.no_grad()
def pseudo_log_likelihoods(
    model,
    sequences: Sequence[Sequence[int]],
    *,
    num_special: int,
    mask_id: int,
    pad_id: int,
    policy: str = "mask_fraction",
    fixed_rate: float = 0.15,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    autocast=None,
) -> list[float]:
    """PLL of each token sequence: sum over its real tokens of log p(x_l | x without l).

    Special tokens (e.g. the leading <s>) are context only, never scored.
    """
    copies: list[tuple[int, int]] = []  # (sequence index, masked position)
    for s, seq in enumerate(sequences):
        copies.extend((s, j) for j, tok in enumerate(seq) if tok >= num_special)
    # Similar lengths together: less padding per batch.
    copies.sort(key=lambda c: len(sequences[c[0]]))
    totals = [0.0] * len(sequences)
    for part in _batches(len(copies), batch_size):
        chunk = copies[part]
        width = max(len(sequences[s]) for s, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        for row, (s, _) in enumerate(chunk):
            ids[row, : len(sequences[s])] = torch.as_tensor(sequences[s])
        positions = torch.tensor([j for _, j in chunk])
        rows = torch.arange(len(chunk))
        targets = ids[rows, positions].clone()
        ids[rows, positions] = mask_id
        masked = torch.zeros_like(ids, dtype=torch.bool)
        masked[rows, positions] = True
        real = torch.tensor([sum(1 for t in sequences[s] if t >= num_special) for s, _ in chunk])
        fraction = 1.0 / real.clamp_min(1).float()
        time, condition = eval_time(fraction, policy, fixed_rate)
        ids, masked, time = ids.to(device), masked.to(device), time.to(device)
        with autocast() if autocast else nullcontext():
            logits = model(ids, ids != pad_id, time, condition=condition, output_mask=masked)
        log_probs = F.log_softmax(subs_logits(logits, num_special), dim=-1)
        picked = log_probs.gather(1, targets.to(device)[:, None]).squeeze(1).double().cpu()
        for (s, _), value in zip(chunk, picked.tolist()):
            totals[s] += value
    return totals


def score_pairs(
    model,
    pairs: Sequence[MinimalPair],
    encode: Callable[[str], list[int]],
    **pll_kwargs,
) -> dict:
    """Overall and per-paradigm accuracy of PLL(good) > PLL(bad)."""
    sequences = []
    for pair in pairs:
        sequences.append(encode(pair.good))
        sequences.append(encode(pair.bad))
    plls = pseudo_log_likelihoods(model, sequences, **pll_kwargs)
    right: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for i, pair in enumerate(pairs):
        count[pair.paradigm] += 1
        right[pair.paradigm] += int(plls[2 * i] > plls[2 * i + 1])
    by_paradigm = {name: right[name] / count[name] for name in sorted(count)}
    return {
        "pairs_acc": sum(right.values()) / max(sum(count.values()), 1),
        "pairs_acc_by_paradigm": by_paradigm,
    }
