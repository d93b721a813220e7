"""Noise schedules of absorbing-state diffusion: mask rate m(t) and loss weight.

Convention (MDLM's): alpha(t) is the probability that a token is still clean at
time t, alpha(0) = 1, and the mask rate is m(t) = 1 - alpha(t), increasing in t.
(The reference code runs some schedules the other way round; with t uniform the
distribution of m and the weight as a function of m are the same, so the tests
check the distribution of m, not t.)

Every schedule maps u ~ U(0, 1) to a mask rate m and the derivative dm/du >= 0.
The loss weight of a sequence is

    w = |alpha'(u)|^p / (1 - alpha(u)) = (dm/du)^p / m,

with p = `derivative_power`: p = 1 is the true NELBO weight (an unbiased
estimate of the integral of (1/m) E[masked CE | m] dm over the range of m that
the schedule covers), p = 0 drops the derivative and leaves 1/m.

Pure functions on tensors: no files, no Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Guards against division by zero, as in the reference.
_EPS = 1e-8
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class ScheduleParams:
    """The schedule fields of TrainConfig, gathered so the math needs no config import."""

    schedule: str = "cosine"
    derivative_power: float = 1.0
    time_epsilon: float = 1e-3
    gaussian_mean: float = 0.2
    gaussian_std: float = 0.12
    bimodal_left_mean: float = 0.12
    bimodal_left_std: float = 0.02
    bimodal_right_mean_start: float = 0.4
    bimodal_right_mean_end: float = 0.85
    bimodal_right_std: float = 0.08
    bimodal_right_rate: float = 1.0
    bimodal_left_weight: float = 0.6

    @classmethod
    def from_config(cls, config) -> "ScheduleParams":
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


def stratified_uniform(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Low-discrepancy draws u_i = (i + v_i) / B, v_i ~ U(0,1): one per stratum of [0, 1).

    Lowers the variance of the batch's loss estimate compared with i.i.d. draws.
    """
    offsets = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    return (torch.arange(batch_size, dtype=torch.float64) + offsets) / batch_size


def bimodal_right_mean(params: ScheduleParams, progress: float) -> float:
    """Right mode's mean mu_R(s) = mu_R0 + (mu_R1 - mu_R0)(1 - exp(-r s)), s = progress in [0, 1].

    With r = 1 it reaches only 63% of the way to mu_R1 at the end of training (as in the reference).
    """
    s = min(max(progress, 0.0), 1.0)
    start, end = params.bimodal_right_mean_start, params.bimodal_right_mean_end
    return start + (end - start) * (1.0 - math.exp(-params.bimodal_right_rate * s))


def _floored(u: torch.Tensor, t_min: float) -> tuple[torch.Tensor, float]:
    """t = (1 - t_min) u + t_min, so m never reaches 0; returns t and dt/du.

    MDLM floors t at eps. We floor at the t where each schedule's m reaches eps instead,
    so the mask rate is at least eps for every schedule: cosine's m grows like t^2, and
    a t floor of 1e-3 would leave m ~ 1e-6 and weights 1/m ~ 1e6 at p = 0.
    """
    return (1.0 - t_min) * u + t_min, 1.0 - t_min


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def _truncated_gaussian(u: torch.Tensor, mean: float, std: float, low: float, high: float):
    """Inverse-CDF draw of m ~ N(mean, std^2) truncated to [low, high], and dm/du.

    Design choice (the reference's quirk): the reference clamps alpha but takes the
    derivative from the unclamped z, so the ~5% of draws that fall outside [0, 1] get
    a flat rate with a huge weight. We truncate the distribution instead: u is mapped
    into [Phi(a), Phi(b)] before the inverse CDF, so every draw is in range and the
    derivative is that of the map actually used.
    """
    cdf_low = _normal_cdf((low - mean) / std)
    cdf_high = _normal_cdf((high - mean) / std)
    span = cdf_high - cdf_low
    q = (cdf_low + span * u).clamp(_EPS, 1.0 - _EPS)
    z = _SQRT2 * torch.erfinv(2.0 * q - 1.0)
    m = (mean + std * z).clamp(low, high)
    density = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)  # phi(z)
    dm_du = std * span / density
    return m, dm_du


def mask_rate_and_derivative(
    u: torch.Tensor, params: ScheduleParams, progress: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map u in [0, 1) to the mask rate m and dm/du (both float64, shape of u)."""
    u = u.to(torch.float64)
    name = params.schedule
    eps = params.time_epsilon
    if name == "linear":
        t, dt = _floored(u, eps)
        return t, torch.full_like(u, dt)
    if name == "log_linear":
        # MDLM: alpha(t) = 1 - (1 - eps) t, on t floored at eps as MDLM samples it.
        t, dt = _floored(u, eps)
        return (1.0 - eps) * t, torch.full_like(u, (1.0 - eps) * dt)
    if name == "cosine":
        # alpha = cos(pi/2 t): mean mask rate 1 - 2/pi.
        t, dt = _floored(u, 2.0 / math.pi * math.acos(1.0 - eps))
        angle = 0.5 * math.pi * t
        return 1.0 - torch.cos(angle), 0.5 * math.pi * torch.sin(angle) * dt
    if name == "cosine_squared":
        # alpha = cos^2(pi/2 t): m = sin^2, dm/dt = pi sin cos.
        t, dt = _floored(u, 2.0 / math.pi * math.asin(math.sqrt(eps)))
        angle = 0.5 * math.pi * t
        return torch.sin(angle) ** 2, math.pi * torch.sin(angle) * torch.cos(angle) * dt
    low = max(eps, _EPS)
    if name == "gaussian":
        return _truncated_gaussian(u, params.gaussian_mean, params.gaussian_std, low, 1.0)
    if name == "bimodal_gaussian":
        # Component from the stratified u itself: u < w_L -> left with u' = u / w_L,
        # else right with u' = (u - w_L) / (1 - w_L). This keeps the batch stratified over
        # the mixture (the reference draws the component independently of t, so its
        # stratification holds only within a component). The derivative is that of the
        # chosen component's own map, as in the reference; the estimator stays unbiased
        # for p = 1 because sum_c w_c * integral over component c of (1/m) E[CE|m] dm
        # = the NELBO integral.
        w_left = params.bimodal_left_weight
        right_mean = bimodal_right_mean(params, progress)
        m = torch.empty_like(u)
        dm = torch.empty_like(u)
        left = u < w_left
        if left.any():
            u_left = u[left] / max(w_left, _EPS)
            m[left], dm[left] = _truncated_gaussian(
                u_left, params.bimodal_left_mean, params.bimodal_left_std, low, 1.0
            )
        right = ~left
        if right.any():
            u_right = (u[right] - w_left) / max(1.0 - w_left, _EPS)
            m[right], dm[right] = _truncated_gaussian(
                u_right, right_mean, params.bimodal_right_std, low, 1.0
            )
        return m, dm
    raise ValueError(f"unknown schedule '{name}'")


def loss_weight(mask_rate: torch.Tensor, derivative: torch.Tensor, derivative_power: float) -> torch.Tensor:
    """w = |alpha'|^p / (1 - alpha) = (dm/du)^p / m, per sequence."""
    return derivative.abs().pow(derivative_power) / (mask_rate + _EPS)


def sample_schedule(
    batch_size: int,
    params: ScheduleParams,
    progress: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified per-sequence mask rates and their loss weights for one micro-batch."""
    u = stratified_uniform(batch_size, generator)
    m, dm = mask_rate_and_derivative(u, params, progress)
    return m.float(), loss_weight(m, dm, params.derivative_power).float()


def mean_mask_rate(params: ScheduleParams, progress: float = 0.0, nodes: int = 100_000) -> float:
    """E[m] by midpoint quadrature over u (for printing and checks)."""
    u = (torch.arange(nodes, dtype=torch.float64) + 0.5) / nodes
    m, _ = mask_rate_and_derivative(u, params, progress)
    return float(m.mean())
