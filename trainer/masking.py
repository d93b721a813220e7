"""Uniform and frequency-informed masking for absorbing-state diffusion.

Frequency-informed masking (the recipe's section 3) masks rare tokens more often
while keeping each sequence's mean masking probability equal to the schedule's
rate m:

1. a global weight per token from corpus statistics (`rank`: (rank+1)/V, rarer is
   larger; `inverse`: 1/(count+1)); every real token's weight is > 0;
2. per sequence, normalise the weights of its real tokens into (0, 1] by the row's
   largest weight: w <- w / max (the reference's min-max normalisation with the floor 0 in
   place of the row's minimum: a deliberate departure, see below);
3. soften with a power q (`frequency_power`): w <- w^q (q = 0 is uniform masking);
4. rescale so the mean over the sequence's real tokens is m:
   mean > m: p = w * m / mean;  mean < m: p = 1 - (1 - w) * (1 - m) / (1 - mean).
   Both keep p in [0, 1] and give mean(p) = m exactly.

Step 2 departs from the reference on purpose. The reference min-max normalises over the
row's positions, (w - min) / (max - min); we divide by the row's maximum over real tokens,
i.e. use a floor of 0 in place of the row's minimum. The two agree only on a row whose
minimum weight is that floor: a row holding a token of weight 0, such as `<pad>` here. (With
the reference's own rank weights, `<pad>` ranked most frequent, they agree on a padded row
when `<pad>` is the only token ranked above the real ones, since rank weights are affine in
the rank; other special tokens ranked above real ones shift them slightly.) The reference's
rows are padded document pieces, so many hold `<pad>`; on a row without it the reference's
minimum is the row's most frequent real token, which gets w = 0, hence 0^q = 0 and p = 0
whenever the row's mean is above m: it is never masked. Our rows are packed without
padding, so every row is of that kind, and the row max is chosen so that no real token is
pinned at 0: the floor 0 is the weight of a virtual token ranked above
every real one (the place `<pad>` holds in the reference's ranking), the mean is still
exactly m, rarer tokens are still masked more, and q -> 0 tends to uniform.

Measured (a one-off script: 2,000 rows of 128 tokens of the built-in corpus, rank weights,
q = 0.02, everything but step 2 equal, per-token p over real tokens; inverse weights give the
same to two digits):
- rows padded with `<pad>` after a document piece, as the reference's rows are: the two
  agree to float rounding (max |dp| 4e-8 at m = 0.15, 1.3e-7 at m = 0.5);
- our packed rows: the reference pins 9.6% of real tokens at p = 0 (17% on the Zipf-like
  rows of tests/test_masking.py at m = 0.3); mean |dp| = 0.027 at m = 0.15 and 0.089 at
  m = 0.5, max |dp| = 0.14 and 0.47 (a pinned token, which we mask at about m).

Other choices that differ from the reference, deliberately:
- Special tokens (ids < num_special, padding included) are never masked AND are
  left out of the max and the mean, so the realised rate over real tokens is m.
  (The reference includes them, so its realised rate drifts from m.)
- Special tokens get no frequency rank: ranks are over real tokens only.
- The curriculum ramps q linearly with training progress instead of a per-epoch
  step function, reaching the target at `frequency_curriculum_end` and clamped there.

Pure functions on tensors: no files, no Ray.
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-8


def token_weights(counts: np.ndarray, ranks: np.ndarray, method: str, num_special: int) -> torch.Tensor:
    """Global per-token masking weight (larger = rarer), float32 of length V.

    `ranks` are 0 for the most frequent token, so every real token's weight is > 0;
    special tokens' weights are irrelevant (they are never masked and never enter the
    normalisation) and set to 0.
    """
    counts_t = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    vocab = counts_t.numel()
    if method == "rank":
        ranks_t = torch.as_tensor(np.asarray(ranks), dtype=torch.float64)
        weights = (ranks_t + 1.0) / max(vocab - num_special, 1)
    elif method == "inverse":
        weights = 1.0 / (counts_t + 1.0)  # +1: tokens unseen in training get a finite weight
    else:
        raise ValueError(f"unknown frequency weighting '{method}' (expected 'rank' or 'inverse')")
    weights[:num_special] = 0.0
    return weights.float()


def curriculum_power(target_power: float, progress: float, enabled: bool, end: float = 0.9) -> float:
    """The softening power q at training progress s in [0, 1]: q * min(1, s / end) when enabled."""
    if not enabled:
        return target_power
    return target_power * min(1.0, max(progress, 0.0) / end)


def maskable_positions(input_ids: torch.Tensor, num_special: int) -> torch.Tensor:
    """Real tokens: everything that is not a special token (padding, <s>, </s>, ...)."""
    return input_ids >= num_special


def masking_probabilities(
    input_ids: torch.Tensor,
    mask_rate: torch.Tensor,
    maskable: torch.Tensor,
    weights: torch.Tensor | None = None,
    power: float = 0.0,
) -> torch.Tensor:
    """Per-position masking probability p (B, T) whose mean over each row's maskable
    positions equals that row's mask_rate; 0 at non-maskable positions."""
    rate = mask_rate.to(torch.float32).unsqueeze(1)  # (B, 1)
    maskable_f = maskable.to(torch.float32)
    if weights is None or power == 0.0:
        return rate * maskable_f

    w = weights.to(input_ids.device)[input_ids]  # (B, T)
    w_max = torch.where(maskable, w, torch.zeros_like(w)).amax(dim=1, keepdim=True)
    # In (0, 1] at real tokens: the floor is 0, not the row's minimum (see the module notes).
    normalised = (w / w_max.clamp_min(_EPS)).clamp(0.0, 1.0)
    softened = normalised.pow(power) * maskable_f
    count = maskable_f.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = softened.sum(dim=1, keepdim=True) / count
    scale_down = softened * rate / (mean + _EPS)
    lift_up = 1.0 - (1.0 - softened) * (1.0 - rate) / (1.0 - mean + _EPS)
    probs = torch.where(mean > rate, scale_down, lift_up)
    return probs.clamp(0.0, 1.0) * maskable_f


def apply_mask(
    input_ids: torch.Tensor,
    probs: torch.Tensor,
    mask_id: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each position independently with its probability. Returns (noisy ids, masked bool)."""
    draws = torch.rand(probs.shape, generator=generator, device=probs.device)
    masked = draws < probs
    return input_ids.masked_fill(masked, mask_id), masked


def masked_fraction(masked: torch.Tensor, maskable: torch.Tensor) -> torch.Tensor:
    """Realised fraction of each row's real tokens that are masked (the time the model sees)."""
    return masked.sum(dim=1).float() / maskable.sum(dim=1).clamp_min(1).float()
