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

`subsample = s` scores the first ceil(B / s) of the B blocks of K consecutive rows
(`trainer.data.validation.interim_keep`): whole blocks, so every rate keeps its share, and
a prefix of the validation sample's interleaved order, so every source file keeps its share to
about a row; each scored row has the very masks it has in the full evaluation. The subsample
therefore estimates approximately the same number with a larger standard error (about sqrt(s)
times). A run scores a subsample at interim evaluations, and everything at its last.

`pairs_acc` — zero-shot minimal pairs by MLM pseudo-log-likelihood (Salazar et al.
2020, as the BabyLM pipeline computes it): one copy per scored token with that
token alone masked, sum of log-probabilities, the pair is right when
PLL(good) > PLL(bad).

Every number comes with its standard error, so a sweep can say when two trials differ by
less than the measurement's own noise:
- `pairs_acc_se` = sqrt(p (1 - p) / n), binomial over the n pairs scored;
- `val_nelbo_se` and `val_acc_se`: each is a ratio of sums over validation rows
  (R = sum_i a_i / sum_i b_i: bound over real tokens, right over masked tokens), whose
  standard error over rows is, to first order (the delta method, rows as the sampling unit,
  since tokens of one row are not independent),
      se(R) = sqrt( sum_i (a_i - R b_i)^2 / (n (n - 1)) ) / mean(b).
These describe one trial's number on this evaluation set. Trials scored on the same pairs,
rows and masks share part of that noise, so the difference of two trials is less noisy than
their SEs combined. Each evaluation therefore also hands back its per-item terms (`correct` per
pair from `score_pairs`; `per_row` from `validation_metrics`), from which sweeps/stats.py judges
a difference item by item (paired).
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import nullcontext
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.pairs import MinimalPair
from trainer.data.validation import interim_keep
from trainer.objective import subs_logits

# Fixed for every run on purpose: the validation masks are common random numbers.
VALIDATION_SEED = 1_234_567
# Selection metrics are computed in float32 whatever the training precision (as the official
# BabyLM pipeline scores): a trial's number must not depend on the machine's bf16 support.
EVAL_PRECISION = "float32"


def binomial_se(proportion: float, n: int) -> float:
    """Standard error of a proportion over n independent trials (NaN for n = 0)."""
    return math.sqrt(proportion * (1.0 - proportion) / n) if n > 0 else math.nan


def ratio_se(numerators: torch.Tensor, denominators: torch.Tensor) -> float:
    """Standard error of R = sum(a) / sum(b) over n sampled units (rows), by the delta method."""
    a, b = numerators.double(), denominators.double()
    n = a.numel()
    if n < 2 or float(b.sum()) == 0.0:
        return math.nan
    ratio = a.sum() / b.sum()
    spread = ((a - ratio * b) ** 2).sum() / (n * (n - 1))
    return float(spread.sqrt() / b.mean())


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
    subsample: int = 1,
    per_row: dict | None = None,
) -> dict[str, float]:
    """val_nelbo (nats per real token) and val_acc on fixed rates and fixed masks (on one block
    of `num_rates` rows in every `subsample`: see the module's docstring).

    `per_row`, when given a dict, receives each scored row's terms (numpy arrays in row order):
    `kept` (bool over all rows: which were scored), `bound`, `tokens`, `correct`, `masked` — what
    a paired comparison of two runs on the same rows needs."""
    ids = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    n_rows, length = ids.shape
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    uniforms = torch.rand((n_rows, length), generator=generator)
    rates = (torch.arange(n_rows) % num_rates + 0.5) / num_rates
    maskable = ids >= num_special
    masked = (uniforms < rates[:, None]) & maskable
    if subsample > 1:
        # Drawn for every row above, then selected: a scored row's masks do not depend on s.
        keep = torch.from_numpy(interim_keep(n_rows, num_rates, subsample))
        ids, rates, maskable, masked = ids[keep], rates[keep], maskable[keep], masked[keep]
        n_rows = ids.shape[0]

    row_bound = torch.zeros(n_rows, dtype=torch.float64)  # per row: sum of CE / m over its masked tokens
    row_correct = torch.zeros(n_rows, dtype=torch.float64)
    row_masked = masked.sum(1).double()
    for part in _batches(n_rows, batch_size):
        batch_masked = masked[part].to(device)
        if not batch_masked.any():
            continue
        attention = _padding_mask(ids[part], pad_id, device)
        batch_ids = ids[part].to(device)
        noisy = batch_ids.masked_fill(batch_masked, mask_id)
        fraction = batch_masked.sum(1).float() / maskable[part].to(device).sum(1).clamp_min(1).float()
        time, condition = eval_time(fraction, policy, fixed_rate)
        with autocast() if autocast else nullcontext():
            logits = model(noisy, attention, time, condition=condition, output_mask=batch_masked)
        logits = subs_logits(logits, num_special)
        targets = batch_ids[batch_masked]
        token_ce = F.cross_entropy(logits, targets, reduction="none").double()
        row_of = batch_masked.nonzero(as_tuple=True)[0]
        row_rates = rates[part].to(device).double()
        offset = part.start
        row_bound.index_add_(0, (row_of + offset).cpu(), (token_ce / row_rates[row_of]).cpu())
        row_correct.index_add_(0, (row_of + offset).cpu(), (logits.argmax(-1) == targets).double().cpu())
    row_tokens = maskable.sum(1).double()
    if per_row is not None:
        per_row.update(kept=keep.numpy() if subsample > 1 else np.ones(len(row_tokens), dtype=bool),
                       bound=row_bound.numpy(), tokens=row_tokens.numpy(), correct=row_correct.numpy(),
                       masked=row_masked.numpy())
    return {
        "val_nelbo": float(row_bound.sum()) / max(float(row_tokens.sum()), 1.0),
        "val_nelbo_se": ratio_se(row_bound, row_tokens),
        "val_acc": float(row_correct.sum()) / max(float(row_masked.sum()), 1.0),
        "val_acc_se": ratio_se(row_correct, row_masked),
        "val_rows_scored": n_rows,
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
    scored: Sequence[Sequence[int]] | None = None,
) -> list[float]:
    """PLL of each token sequence: sum over its scored tokens of log p(x_l | x without l), one
    masked copy of the sequence per scored token, the rest visible as context.

    Scored tokens: every real token, or with `scored` the positions given per sequence (a target
    after its context, an option after its prefix: the official `mlm` backend scores only the
    tokens of the scored characters). Special tokens (e.g. the leading <s>) are never scored.
    The time a conditioned model sees is one over the number of real tokens (one masked).
    """
    copies: list[tuple[int, int]] = []  # (sequence index, masked position)
    for s, seq in enumerate(sequences):
        positions = range(len(seq)) if scored is None else scored[s]
        copies.extend((s, j) for j in positions if seq[j] >= num_special)
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
        attention = _padding_mask(ids, pad_id, device)
        ids, masked, time = ids.to(device), masked.to(device), time.to(device)
        with autocast() if autocast else nullcontext():
            logits = model(ids, attention, time, condition=condition, output_mask=masked)
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
    correct = [plls[2 * i] > plls[2 * i + 1] for i in range(len(pairs))]
    by_paradigm = {name: right[name] / count[name] for name in sorted(count)}
    n = sum(count.values())
    accuracy = sum(right.values()) / max(n, 1)
    return {
        "pairs_acc": accuracy,
        "pairs_acc_se": binomial_se(accuracy, n),
        "pairs_scored": n,
        "pairs_acc_by_paradigm": by_paradigm,
        "pairs_by_paradigm": dict(sorted(count.items())),
        "correct": correct,  # per pair, in the order given: the paired comparison's evidence
    }


def _padding_mask(ids: torch.Tensor, pad_id: int, device) -> torch.Tensor | None:
    """The key mask of host-side `ids` on `device`, or None when no row is padded (decided on the
    host: the model then attends everywhere without a mask pass)."""
    keep = ids != pad_id
    return None if bool(keep.all()) else keep.to(device)
