"""Objective, validation bound and pseudo-log-likelihood on hand-checkable toys."""

import math

import pytest
import torch

from trainer.data.pairs import MinimalPair
from trainer.evaluate import pseudo_log_likelihoods, score_pairs, validation_metrics
from trainer.objective import MaskedBatch, subs_logits, weighted_nelbo
from trainer.optim import Lamb, lr_multiplier

SPECIAL, MASK, PAD, BOS = 16, 4, 3, 1
A, B = 16, 17  # the only real tokens of the toy vocabulary


class CopyLeft(torch.nn.Module):
    """Toy denoiser over V = 18: at a masked position, logit log 3 for the token to its
    left when that is a real token, else 0 for both real tokens. Records the times seen."""

    def __init__(self):
        super().__init__()
        self.times = []

    def forward(self, ids, attention_mask, time, condition=True, output_mask=None):
        self.times.append(time.clone())
        logits = torch.zeros(*ids.shape, 18)
        left = torch.roll(ids, 1, dims=1)
        left[:, 0] = BOS
        for token in (A, B):
            logits[..., token] = torch.where(left == token, math.log(3.0), 0.0)
        return logits[output_mask] if output_mask is not None else logits


class Uniform(torch.nn.Module):
    """Predicts every real token with equal probability."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, ids, attention_mask, time, condition=True, output_mask=None):
        logits = torch.zeros(*ids.shape, self.vocab)
        return logits[output_mask] if output_mask is not None else logits


def test_pll_by_hand():
    # [<s>, A, A]: position 1's left is <s> -> p(A) = 1/2; position 2's left is A -> p(A) = 3/4.
    # [<s>, A, B]: p(A) = 1/2 at position 1; at position 2 the left is A -> p(B) = 1/4.
    model = CopyLeft()
    plls = pseudo_log_likelihoods(model, [[BOS, A, A], [BOS, A, B]], num_special=SPECIAL, mask_id=MASK, pad_id=PAD)
    assert plls[0] == pytest.approx(math.log(0.5) + math.log(0.75))
    assert plls[1] == pytest.approx(math.log(0.5) + math.log(0.25))
    # The mask-fraction policy conditions on one masked token out of two real ones.
    assert torch.allclose(torch.cat(model.times), torch.full((4,), 0.5))


def test_pll_of_a_target_after_its_context_scores_only_the_target():
    # [<s>, A, B, A] scoring position 3 only: its left is B -> p(A) = 1/4; positions 1 and 2 are
    # context (visible, never masked). Position 0 (<s>) is never scored even when asked for.
    model = CopyLeft()
    plls = pseudo_log_likelihoods(model, [[BOS, A, B, A], [BOS, A, B, A]], num_special=SPECIAL, mask_id=MASK,
                                  pad_id=PAD, scored=[[3], [0, 2, 3]])
    assert plls[0] == pytest.approx(math.log(0.25))
    assert plls[1] == pytest.approx(2 * math.log(0.25))  # position 2: its left is A -> p(B) = 1/4
    # One masked token out of three real ones, whatever is scored.
    assert torch.allclose(torch.cat(model.times), torch.full((3,), 1 / 3))


def test_pairs_accuracy_by_paradigm():
    pairs = [
        MinimalPair("aa", "ab", "copy", "0"),  # PLL(aa) > PLL(ab): right
        MinimalPair("ab", "aa", "copy", "1"),  # wrong
        MinimalPair("aa", "ab", "other", "0"),  # right
    ]
    encode = {"aa": [BOS, A, A], "ab": [BOS, A, B]}.__getitem__
    scores = score_pairs(CopyLeft(), pairs, encode, num_special=SPECIAL, mask_id=MASK, pad_id=PAD)
    assert scores["pairs_acc"] == pytest.approx(2 / 3)
    assert scores["pairs_acc_by_paradigm"] == {"copy": 0.5, "other": 1.0}


def test_subs_suppresses_special_tokens():
    logits = subs_logits(torch.zeros(5, 20), SPECIAL)
    probs = logits.softmax(-1)
    assert bool((probs[:, :SPECIAL] == 0).all())
    assert torch.allclose(probs[:, SPECIAL:], torch.full((5, 4), 0.25))


def test_weighted_nelbo_by_hand():
    targets = torch.tensor([[1, 16, 17, 3], [1, 18, 16, 17]])
    masked = torch.tensor([[False, True, True, False], [False, False, True, False]])
    logits = subs_logits(torch.zeros(3, 20), SPECIAL)  # uniform over 4 real tokens: CE = log 4
    weights = torch.tensor([2.0, 10.0])
    # Padding (id 0 here) is not a real token: 7 of the 8 are.
    ids = torch.tensor([[1, 16, 17, 3], [1, 18, 16, 0]])
    batch = MaskedBatch.build(ids, ids.masked_fill(masked, MASK), masked, weights, torch.ones(2), pad_id=0)
    assert batch.positions.tolist() == [1, 2, 6] and batch.rows.tolist() == [0, 0, 1]
    assert batch.targets.tolist() == [16, 17, 16] and batch.real_tokens == 7 and batch.attention is not None
    loss, ce = weighted_nelbo(logits, batch)
    assert torch.allclose(ce, torch.full((3,), math.log(4)))
    assert loss.item() == pytest.approx((2 * 2 * math.log(4) + 10 * math.log(4)) / 7)
    unpadded = MaskedBatch.build(targets, targets, masked, weights, torch.ones(2), pad_id=0)
    assert unpadded.attention is None and unpadded.real_tokens == 8


def test_validation_bound_of_a_uniform_model_is_log_v_and_uses_fixed_masks():
    # NELBO per token of a model uniform over V real tokens = log V for any rate quadrature.
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(SPECIAL, SPECIAL + 40, (512, 32), generator=g)
    rows[:, 0] = BOS
    model = Uniform(SPECIAL + 40)
    first = validation_metrics(model, rows, num_rates=8, num_special=SPECIAL, mask_id=MASK, pad_id=PAD)
    again = validation_metrics(model, rows, num_rates=8, num_special=SPECIAL, mask_id=MASK, pad_id=PAD, batch_size=7)
    assert first["val_nelbo"] == pytest.approx(math.log(40), rel=0.03)
    # Same masks whatever the batching (common random numbers); only summation order differs.
    assert first["val_nelbo"] == pytest.approx(again["val_nelbo"], rel=1e-12)
    assert first["val_acc"] == again["val_acc"]
    # argmax of a constant row is the first real token: right for 1 in 40 masked targets
    assert first["val_acc"] == pytest.approx(1 / 40, abs=0.01)


def test_lr_shape():
    kw = dict(max_steps=1000, warmup=0.1, cooldown=0.1, floor=0.1)
    assert lr_multiplier(0, **kw) == pytest.approx(0.01)
    assert lr_multiplier(99, **kw) == pytest.approx(1.0)
    assert lr_multiplier(500, **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_multiplier(899, **kw) == pytest.approx(0.1, abs=1e-4)
    assert lr_multiplier(950, **kw) == pytest.approx(0.05)
    assert lr_multiplier(1000, **kw) == 0.0


def test_lamb_minimises_a_quadratic():
    w = torch.nn.Parameter(torch.tensor([2.0, -3.0, 1.5]))
    opt = Lamb([w], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        ((w - torch.tensor([1.0, 1.0, 1.0])) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(w.detach(), torch.ones(3), atol=0.1)


def test_standard_errors_by_hand():
    from trainer.evaluate import binomial_se, ratio_se

    # 30 right of 40 pairs: sqrt(0.75 * 0.25 / 40) = 0.068465
    assert binomial_se(0.75, 40) == pytest.approx(0.0684653, rel=1e-5)
    assert binomial_se(1.0, 12) == 0.0 and math.isnan(binomial_se(0.5, 0))
    # Rows (a, b) = (2, 1), (3, 2), (7, 3): R = 12 / 6 = 2; residuals a - 2b = 0, -1, 1;
    # se = sqrt(2 / (3 * 2)) / mean(b) = sqrt(1/3) / 2 = 0.288675
    a, b = torch.tensor([2.0, 3.0, 7.0]), torch.tensor([1.0, 2.0, 3.0])
    assert ratio_se(a, b) == pytest.approx(math.sqrt(1 / 3) / 2, rel=1e-9)
    # Proportional rows carry no spread; a single row has none to measure.
    assert ratio_se(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 2.0])) == 0.0
    assert math.isnan(ratio_se(torch.tensor([1.0]), torch.tensor([2.0])))


def test_validation_standard_error_matches_the_spread_of_independent_draws():
    # The delta-method SE of val_nelbo must describe how much the number moves between
    # independent validation sets: score 30 disjoint 64-row sets and compare the SE it reports
    # with the standard deviation of the 30 values. The masks are common random numbers (fixed
    # per row index and row width), so each set gets a different width (padding columns) to
    # draw its own masks, as a different sample of rows would.
    model = Uniform(SPECIAL + 40)
    g = torch.Generator().manual_seed(1)
    values, reported = [], []
    for k in range(30):
        rows = torch.full((64, 24 + k), PAD)
        rows[:, :24] = torch.randint(SPECIAL, SPECIAL + 40, (64, 24), generator=g)
        rows[:, 0] = BOS
        lengths = torch.randint(6, 25, (64,), generator=g)
        for r, n in enumerate(lengths.tolist()):
            rows[r, n:] = PAD
        out = validation_metrics(model, rows, num_rates=8, num_special=SPECIAL, mask_id=MASK, pad_id=PAD)
        values.append(out["val_nelbo"])
        reported.append(out["val_nelbo_se"])
    spread = float(torch.tensor(values).std())
    assert 0.6 * spread < float(torch.tensor(reported).mean()) < 1.6 * spread
    assert out["val_rows_scored"] == 64


def test_validation_subsample_scores_whole_blocks_with_their_full_evaluation_masks():
    # Rows outside the kept blocks (blocks of num_rates rows; the first ceil(6 / 3) = 2 of the 6
    # blocks are kept) are all padding here, so they add nothing to either sum: the full
    # evaluation and the subsample must then give the same numbers, which holds only if every
    # kept row keeps the masks it has in the full evaluation.
    g = torch.Generator().manual_seed(3)
    rows = torch.randint(A, B + 1, (48, 16), generator=g)
    rows[:, 0] = BOS
    rows[16:] = PAD
    kwargs = dict(num_rates=8, num_special=SPECIAL, mask_id=MASK, pad_id=PAD)
    full = validation_metrics(CopyLeft(), rows, **kwargs)
    sub = validation_metrics(CopyLeft(), rows, subsample=3, **kwargs)
    assert sub["val_rows_scored"] == 16 and full["val_rows_scored"] == 48
    assert sub["val_nelbo"] == pytest.approx(full["val_nelbo"], rel=1e-12)
    assert sub["val_acc"] == full["val_acc"]
