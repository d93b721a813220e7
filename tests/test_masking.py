"""Masking: target mean rate, special tokens never masked, rarer tokens favoured, curriculum."""

import numpy as np
import pytest
import torch

from trainer.masking import (
    apply_mask,
    curriculum_power,
    maskable_positions,
    masked_fraction,
    masking_probabilities,
    token_weights,
)

SPECIAL = 16
VOCAB = 200


def corpus_statistics():
    # Token 16 is the most frequent, 199 the rarest: count = 1000 / (id - 15).
    counts = np.zeros(VOCAB, dtype=np.int64)
    ids = np.arange(SPECIAL, VOCAB)
    counts[SPECIAL:] = 1000 // (ids - SPECIAL + 1)
    ranks = np.empty(VOCAB, dtype=np.int64)
    ranks[SPECIAL:] = ids - SPECIAL
    ranks[:SPECIAL] = np.arange(VOCAB - SPECIAL, VOCAB)
    return counts, ranks


def batch(rows=64, length=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(SPECIAL, VOCAB, (rows, length), generator=g)
    ids[:, 0] = 1  # <s>
    lengths = torch.randint(length // 2, length + 1, (rows,), generator=g)
    for r, n in enumerate(lengths.tolist()):
        ids[r, n:] = 3  # <pad>
        if n < length:
            ids[r, n - 1] = 2  # </s> before padding
    return ids


@pytest.mark.parametrize("method", ["rank", "inverse"])
@pytest.mark.parametrize("power", [0.02, 0.5, 1.0, 3.0])
def test_mean_rate_equals_schedule_rate_per_row(method, power):
    ids = batch()
    maskable = maskable_positions(ids, SPECIAL)
    rates = torch.linspace(0.01, 0.99, ids.shape[0])  # both branches of the rescale
    weights = token_weights(*corpus_statistics(), method, SPECIAL)
    probs = masking_probabilities(ids, rates, maskable, weights, power)
    row_mean = (probs * maskable).sum(1) / maskable.sum(1)
    assert torch.allclose(row_mean, rates, atol=1e-5)
    assert bool((probs >= 0).all()) and bool((probs <= 1).all())
    assert bool((probs[~maskable] == 0).all())


def test_uniform_masking_is_the_rate_everywhere():
    ids = batch()
    maskable = maskable_positions(ids, SPECIAL)
    rates = torch.rand(ids.shape[0])
    probs = masking_probabilities(ids, rates, maskable, None, 0.0)
    assert torch.equal(probs, rates[:, None] * maskable)
    # Power 0 with weights is uniform too (0^0 = 1 for every token).
    weights = token_weights(*corpus_statistics(), "rank", SPECIAL)
    assert torch.allclose(masking_probabilities(ids, rates, maskable, weights, 0.0), probs)


def test_rarer_tokens_are_masked_more_often():
    ids = batch()
    maskable = maskable_positions(ids, SPECIAL)
    weights = token_weights(*corpus_statistics(), "rank", SPECIAL)
    probs = masking_probabilities(ids, torch.full((ids.shape[0],), 0.3), maskable, weights, 1.0)
    for r in range(ids.shape[0]):
        real = maskable[r]
        order = torch.argsort(ids[r][real])  # larger id = rarer in corpus_statistics
        p = probs[r][real][order]
        assert bool((p[1:] >= p[:-1] - 1e-6).all())


def test_special_tokens_never_masked_and_realised_rate_matches():
    ids = batch(rows=256, length=64, seed=1)
    maskable = maskable_positions(ids, SPECIAL)
    weights = token_weights(*corpus_statistics(), "rank", SPECIAL)
    rates = torch.full((ids.shape[0],), 0.4)
    probs = masking_probabilities(ids, rates, maskable, weights, 0.5)
    g = torch.Generator().manual_seed(0)
    total_masked, total_real = 0, 0
    for _ in range(20):
        noisy, masked = apply_mask(ids, probs, 4, g)
        assert not bool(masked[~maskable].any())
        assert bool((noisy[masked] == 4).all()) and torch.equal(noisy[~masked], ids[~masked])
        total_masked += int(masked.sum())
        total_real += int(maskable.sum())
    assert total_masked / total_real == pytest.approx(0.4, abs=0.01)


def test_masked_fraction_counts_real_tokens_only():
    ids = torch.tensor([[1, 20, 21, 22, 23, 3, 3]])
    masked = torch.tensor([[False, True, False, True, False, False, False]])
    assert masked_fraction(masked, maskable_positions(ids, SPECIAL)).item() == pytest.approx(0.5)


def test_curriculum_ramps_linearly_then_holds():
    assert curriculum_power(0.4, 0.0, True, 0.8) == 0.0
    assert curriculum_power(0.4, 0.4, True, 0.8) == pytest.approx(0.2)
    assert curriculum_power(0.4, 0.8, True, 0.8) == pytest.approx(0.4)
    assert curriculum_power(0.4, 1.0, True, 0.8) == pytest.approx(0.4)
    assert curriculum_power(0.4, 0.1, False, 0.8) == 0.4


def test_rank_weights_grow_with_rank_and_ignore_specials():
    counts, ranks = corpus_statistics()
    w = token_weights(counts, ranks, "rank", SPECIAL)
    assert bool((w[:SPECIAL] == 0).all())
    assert bool((w[SPECIAL + 1 :] > w[SPECIAL:-1]).all())
    inv = token_weights(counts, ranks, "inverse", SPECIAL)
    assert inv[SPECIAL] == pytest.approx(1 / 1001)


def zipf_rows(rows=400, length=128, vocab=2000, exponent=1.1, seed=0):
    """Packed rows (no padding) of tokens drawn from a Zipf law, as a real corpus gives them:
    token SPECIAL + k has probability proportional to 1 / (k + 1)^exponent. Returns the rows
    and (counts, ranks) measured on them, the way prepare.py builds the frequency table."""
    rng = np.random.default_rng(seed)
    law = 1.0 / np.arange(1, vocab - SPECIAL + 1) ** exponent
    ids = SPECIAL + rng.choice(vocab - SPECIAL, size=(rows, length), p=law / law.sum())
    ids[:, 0] = 1  # <s>
    counts = np.bincount(ids.ravel(), minlength=vocab)
    counts[:SPECIAL] = 0
    order = np.lexsort((np.arange(vocab), -counts, np.arange(vocab) < SPECIAL))
    ranks = np.empty(vocab, dtype=np.int64)
    ranks[order] = np.arange(vocab)
    return torch.from_numpy(ids), counts, ranks


def realised_rates(ids, probs, draws=40, seed=0):
    """Per token id: the share of its occurrences that were masked over `draws` mask draws."""
    g = torch.Generator().manual_seed(seed)
    vocab = int(ids.max()) + 1
    masked_count = torch.zeros(vocab)
    for _ in range(draws):
        _, masked = apply_mask(ids, probs, 4, g)
        masked_count += torch.bincount(ids[masked], minlength=vocab).float()
    seen = torch.bincount(ids.ravel(), minlength=vocab).float() * draws
    return masked_count, seen


@pytest.mark.parametrize("method", ["rank", "inverse"])
def test_zipf_corpus_no_real_token_is_pinned_and_rarer_is_masked_more(method):
    # The case the reference's per-row min-max breaks on packed rows: there the row's most
    # frequent real token got p = 0 in every row (17% of real tokens here) and the corpus's
    # most frequent token was never masked at all.
    ids, counts, ranks = zipf_rows()
    maskable = maskable_positions(ids, SPECIAL)
    rate = 0.3
    weights = token_weights(counts, ranks, method, SPECIAL)
    probs = masking_probabilities(ids, torch.full((ids.shape[0],), rate), maskable, weights, 0.02)
    assert int((probs[maskable] == 0).sum()) == 0
    masked, seen = realised_rates(ids, probs)
    most_frequent = int(np.argmax(counts))
    # Rank weights put the most frequent token at ~0.27 here (it is still masked less than
    # the mean, but not never); a binomial over ~10^5 draws has a standard error below 0.002.
    assert masked[most_frequent] / seen[most_frequent] > 0.2
    # Over the whole corpus the realised rate is the schedule's (the mean-rate identity).
    assert float(masked.sum() / seen[SPECIAL:].sum()) == pytest.approx(rate, abs=0.003)
    # Rarer is masked more: the realised rate rises across frequency bands (most frequent
    # first). Bands hold ~equal shares of the corpus's tokens.
    real = np.arange(SPECIAL, len(counts))
    real = real[counts[real] > 0]
    by_frequency = real[np.argsort(-counts[real], kind="stable")]
    cumulative = np.cumsum(counts[by_frequency]) / counts[by_frequency].sum()
    bands = [by_frequency[(cumulative > lo) & (cumulative <= lo + 0.25)] for lo in (0.0, 0.25, 0.5, 0.75)]
    band_rates = [float(masked[b].sum() / seen[b].sum()) for b in bands if len(b)]
    assert all(a < b for a, b in zip(band_rates, band_rates[1:])), band_rates


def test_mean_rate_identity_holds_on_packed_rows_for_every_rate():
    ids, counts, ranks = zipf_rows(rows=64)
    maskable = maskable_positions(ids, SPECIAL)
    rates = torch.linspace(0.001, 0.999, ids.shape[0])  # both branches of the rescale
    weights = token_weights(counts, ranks, "rank", SPECIAL)
    for power in (0.02, 0.3, 1.0, 5.0):
        probs = masking_probabilities(ids, rates, maskable, weights, power)
        row_mean = (probs * maskable).sum(1) / maskable.sum(1)
        assert torch.allclose(row_mean, rates, atol=2e-5), power
        assert bool((probs[maskable] > 0).all()) and bool((probs <= 1).all())


def test_vanishing_power_approaches_uniform_masking():
    # Every real weight sits in [w_min, 1] after normalisation, with w_min >= 1 / V for
    # rank weights, so w^q lies in [V^-q, 1] and |p - m| <= m (1 - V^-q) / V^-q -> 0 as q -> 0.
    ids, counts, ranks = zipf_rows(rows=64)
    vocab = len(counts)
    maskable = maskable_positions(ids, SPECIAL)
    rate = torch.full((ids.shape[0],), 0.3)
    weights = token_weights(counts, ranks, "rank", SPECIAL)
    gaps = []
    for power in (0.1, 0.01, 0.001, 1e-5):
        probs = masking_probabilities(ids, rate, maskable, weights, power)
        gap = float((probs[maskable] - 0.3).abs().max())
        floor = vocab ** -power
        assert gap <= 0.3 * (1 - floor) / floor + 1e-6, (power, gap)
        gaps.append(gap)
    assert gaps[-1] < 1e-4 and all(a > b for a, b in zip(gaps, gaps[1:]))


def reference_min_max_probabilities(ids, rate, maskable, weights, power):
    """The reference's step 2 (min-max over all the row's positions), then the same softening and
    mean-preserving rescale over real tokens as ours: only the normalisation differs."""
    w = weights[ids].double()
    normalised = (w - w.amin(1, keepdim=True)) / (w.amax(1, keepdim=True) - w.amin(1, keepdim=True) + 1e-8)
    softened = normalised.pow(power) * maskable
    mean = softened.sum(1, keepdim=True) / maskable.sum(1, keepdim=True)
    m = rate.double().unsqueeze(1)
    return torch.where(mean > m, softened * m / mean, 1 - (1 - softened) * (1 - m) / (1 - mean)) * maskable


def test_row_max_equals_the_references_min_max_only_where_the_floor_token_is_in_the_row():
    # Real tokens 16, 17, 18 with weights 1/4, 1/2, 1; <pad> (3) and every special weigh 0.
    weights = torch.zeros(20)
    weights[16:19] = torch.tensor([0.25, 0.5, 1.0])
    rate = torch.tensor([0.35])
    packed = torch.tensor([[16, 17, 18]])
    padded = torch.tensor([[16, 17, 18, 3]])

    def both(ids):
        maskable = maskable_positions(ids, SPECIAL)
        ours = masking_probabilities(ids, rate, maskable, weights, power=1.0).double()
        return ours, reference_min_max_probabilities(ids, rate, maskable, weights, power=1.0)

    # With <pad> in the row its weight 0 is the row minimum: (w - 0) / (1 - 0) = w / max.
    ours, reference = both(padded)
    assert torch.allclose(ours, reference, atol=1e-6)
    # Without it, by hand: ours w / max = (1/4, 1/2, 1), mean 7/12 > 0.35, p = w * 0.35 * 12/7
    # = (0.15, 0.3, 0.6); the reference's (w - 1/4) / (3/4) = (0, 1/3, 1), mean 4/9,
    # p = (0, 1/3, 1) * 0.35 * 9/4 = (0, 0.2625, 0.7875): its most frequent token is never masked.
    ours, reference = both(packed)
    assert torch.allclose(ours, torch.tensor([[0.15, 0.3, 0.6]], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(reference, torch.tensor([[0.0, 0.2625, 0.7875]], dtype=torch.float64), atol=1e-6)
