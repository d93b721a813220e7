"""LAMB against closed forms of its first step, in the variant the reference, Apex's
FusedLAMB and TF-Addons share: trust ratio only where weight decay applies."""

import pytest
import torch

from trainer.optim import Lamb

LR, EPS, WD = 0.007, 1e-8, 0.1


def one_step(weight, grad, weight_decay):
    param = torch.nn.Parameter(weight.clone())
    optimizer = Lamb([{"params": [param], "weight_decay": weight_decay}], lr=LR, betas=(0.9, 0.98), eps=EPS)
    param.grad = grad.clone()
    optimizer.step()
    return param.detach()


def test_no_decay_parameters_take_a_plain_adam_step():
    # Step one of Adam: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) per
    # entry whatever the weight's norm (a bias of norm 1e-3 moves by lr = 0.007 per entry).
    weight = torch.tensor([1e-3, -2e-3, 0.0, 5e-4])
    grad = torch.tensor([0.5, -3.0, 1e-4, -0.02])
    new = one_step(weight, grad, weight_decay=0.0)
    expected = weight - LR * grad / (grad.abs() + EPS)
    assert torch.allclose(new, expected, rtol=0, atol=1e-9)


def test_decayed_parameters_move_by_lr_times_their_norm():
    # u = g / (|g| + eps) + wd * w; the step is lr * (||w|| / ||u||) * u, of norm lr * ||w||.
    torch.manual_seed(0)
    weight = torch.randn(6, 5) * 0.05
    grad = torch.randn(6, 5)
    new = one_step(weight, grad, weight_decay=WD)
    update = grad / (grad.abs() + EPS) + WD * weight
    expected = weight - LR * (weight.norm() / update.norm()) * update
    assert torch.allclose(new, expected, atol=1e-8)
    assert float((new - weight).norm()) == pytest.approx(LR * float(weight.norm()), rel=1e-5)


def test_zero_weights_with_decay_take_the_unscaled_update():
    # AdaLN-Zero's modulation weights start at 0: trust ratio 1 (the reference's rule).
    grad = torch.tensor([[0.3, -0.1], [2.0, 0.0]])
    new = one_step(torch.zeros(2, 2), grad, weight_decay=WD)
    assert torch.allclose(new, -LR * grad / (grad.abs() + EPS), atol=1e-9)

