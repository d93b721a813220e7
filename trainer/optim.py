"""Optimisers and the learning-rate shape.

AdamW (torch's) is the default; LAMB (You et al., 2020) is the reference's choice.
torch ships no LAMB, so a short implementation is here. Like the reference, Apex's
FusedLAMB (its default, `use_nvlamb=False`) and TF-Addons (`exclude_from_layer_adaptation`
defaults to the weight-decay exclusions), it applies the trust ratio ||w|| / ||update||
only to parameter groups with weight decay; biases and normalisation parameters (no
decay) take a plain Adam step at the group's learning rate. Scaling those by their
trust ratio too (the paper's Algorithm 2 read literally, Apex's `use_nvlamb=True`)
moves them several times less (about 7x for biases at the reference's settings), so
a sweep against the reference would compare a different optimiser.
"""

from __future__ import annotations

import math

import torch


class Lamb(torch.optim.Optimizer):
    """Layer-wise adaptive moments: an Adam direction scaled per tensor by ||w|| / ||update||
    in groups with weight decay; a plain Adam step in groups without (see the module notes)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                m_hat = exp_avg / (1 - beta1 ** state["step"])
                v_hat = exp_avg_sq / (1 - beta2 ** state["step"])
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if not group["weight_decay"]:
                    param.add_(update, alpha=-group["lr"])
                    continue
                update.add_(param, alpha=group["weight_decay"])
                weight_norm = param.norm()
                update_norm = update.norm()
                trust = torch.where(
                    (weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, torch.ones_like(weight_norm)
                )
                param.add_(update * trust, alpha=-group["lr"])
        return loss


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay)
    betas = (config.beta1, config.beta2)
    if config.optimizer == "lamb":
        return Lamb(groups, lr=config.lr, betas=betas, eps=config.adam_eps)
    return torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=config.adam_eps)


def lr_multiplier(step: int, max_steps: int, warmup: float, cooldown: float, floor: float) -> float:
    """Linear warmup 0 -> 1, cosine 1 -> floor, then linear cooldown floor -> 0.

    `step` counts optimizer steps from 0; warmup/cooldown are proportions of max_steps.
    """
    warmup_steps = int(round(warmup * max_steps))
    cooldown_steps = int(round(cooldown * max_steps))
    decay_end = max_steps - cooldown_steps
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= decay_end:
        remaining = max_steps - step
        return floor * max(remaining, 0) / max(cooldown_steps, 1)
    progress = (step - warmup_steps) / max(decay_end - warmup_steps, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
