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
        # One multi-tensor (_foreach_) operation per group instead of one per parameter: the same
        # arithmetic, a handful of kernel launches per group (on a GPU, launches per parameter
        # would keep the host busier than the device).
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            grads = [p.grad for p in params]
            states = [self.state[p] for p in params]
            for state, param in zip(states, params):
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
            step = states[0]["step"]  # a group's parameters step together
            exp_avgs = [s["exp_avg"] for s in states]
            exp_avg_sqs = [s["exp_avg_sq"] for s in states]
            torch._foreach_mul_(exp_avgs, beta1)
            torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
            m_hat = torch._foreach_div(exp_avgs, 1 - beta1 ** step)
            denominators = torch._foreach_sqrt(torch._foreach_div(exp_avg_sqs, 1 - beta2 ** step))
            torch._foreach_add_(denominators, group["eps"])
            updates = torch._foreach_div(m_hat, denominators)
            if not group["weight_decay"]:
                torch._foreach_add_(params, updates, alpha=-group["lr"])
                continue
            torch._foreach_add_(updates, params, alpha=group["weight_decay"])
            weight_norms = torch.stack(torch._foreach_norm(params))
            update_norms = torch.stack(torch._foreach_norm(updates))
            # ||w|| / ||update|| per tensor, 1 where either is 0; computed on the device (no sync).
            trust = torch.where((weight_norms > 0) & (update_norms > 0), weight_norms / update_norms,
                                torch.ones_like(weight_norms))
            torch._foreach_mul_(updates, list(trust.unbind()))
            torch._foreach_add_(params, updates, alpha=-group["lr"])
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
    # Fused (one kernel for all parameters, its step counts on the device: no per-parameter
    # host reads) where torch has it for the parameters' device; else multi-tensor.
    device = next(model.parameters()).device.type
    fused = device in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=config.adam_eps, fused=fused,
                             foreach=None if fused else True)


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
