"""Noise schedules against closed forms, finite differences and known numbers."""

import math

import pytest
import torch

from trainer.schedules import (
    ScheduleParams,
    bimodal_right_mean,
    loss_weight,
    mask_rate_and_derivative,
    mean_mask_rate,
    sample_schedule,
    stratified_uniform,
)

ALL = ["linear", "log_linear", "cosine", "cosine_squared", "gaussian", "bimodal_gaussian"]
GRID = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000


def params(name, **kw):
    return ScheduleParams(schedule=name, **kw)


def normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def normal_pdf(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def test_cosine_mean_rate_is_one_minus_two_over_pi():
    assert mean_mask_rate(params("cosine", time_epsilon=0.0)) == pytest.approx(1 - 2 / math.pi, abs=1e-6)


@pytest.mark.parametrize("name", ["linear", "cosine_squared"])
def test_half_mean_rate(name):
    assert mean_mask_rate(params(name, time_epsilon=0.0)) == pytest.approx(0.5, abs=1e-6)


def test_cosine_rate_distribution_matches_closed_form_cdf():
    # m = 1 - cos(pi t / 2), t ~ U(0,1)  =>  P(m <= x) = (2/pi) arccos(1 - x)
    m, _ = mask_rate_and_derivative(GRID, params("cosine", time_epsilon=0.0))
    for x in (0.05, 0.2, 0.5, 0.8, 0.95):
        empirical = float((m <= x).double().mean())
        assert empirical == pytest.approx(2 / math.pi * math.acos(1 - x), abs=1e-4)


def test_truncated_gaussian_mean_matches_closed_form():
    # Mean of N(0.2, 0.12^2) truncated to [eps, 1]: mu + sigma (phi(a) - phi(b)) / (Phi(b) - Phi(a)).
    mu, sigma, low = 0.2, 0.12, 1e-3
    a, b = (low - mu) / sigma, (1 - mu) / sigma
    expected = mu + sigma * (normal_pdf(a) - normal_pdf(b)) / (normal_cdf(b) - normal_cdf(a))
    got = mean_mask_rate(params("gaussian", gaussian_mean=mu, gaussian_std=sigma, time_epsilon=low))
    assert got == pytest.approx(expected, abs=1e-5)
    m, _ = mask_rate_and_derivative(GRID, params("gaussian"))
    assert float(m.min()) >= low and float(m.max()) <= 1.0


def test_bimodal_mean_rates_of_the_best_config():
    # mdlm-recipe.md: mean mask rate 0.232 at the start, 0.346 at the end; mu_R reaches 0.684.
    best = params("bimodal_gaussian")
    assert bimodal_right_mean(best, 0.0) == pytest.approx(0.4)
    assert bimodal_right_mean(best, 1.0) == pytest.approx(0.684, abs=1e-3)
    assert mean_mask_rate(best, 0.0) == pytest.approx(0.232, abs=1e-3)
    assert mean_mask_rate(best, 1.0) == pytest.approx(0.346, abs=1e-3)


def test_bimodal_left_share_equals_left_weight():
    m, _ = mask_rate_and_derivative(GRID, params("bimodal_gaussian", bimodal_left_weight=0.3))
    # P(m < 0.22) = w_L P_L(m < 0.22) + (1 - w_L) P_R(m < 0.22), modes 0.12 +- 0.02 and 0.4 +- 0.08.
    expected = 0.3 * normal_cdf((0.22 - 0.12) / 0.02) + 0.7 * normal_cdf((0.22 - 0.4) / 0.08)
    assert float((m < 0.22).double().mean()) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_derivative_matches_finite_differences(name):
    p = params(name, gaussian_std=0.2, bimodal_left_std=0.05)
    u = torch.tensor([0.05, 0.13, 0.31, 0.47, 0.52, 0.74, 0.88, 0.97], dtype=torch.float64)
    if name == "bimodal_gaussian":
        u = u[(u - p.bimodal_left_weight).abs() > 0.02]  # not across the component switch
    h = 1e-6
    _, dm = mask_rate_and_derivative(u, p, progress=0.3)
    m_plus, _ = mask_rate_and_derivative(u + h, p, progress=0.3)
    m_minus, _ = mask_rate_and_derivative(u - h, p, progress=0.3)
    numeric = (m_plus - m_minus) / (2 * h)
    if name == "bimodal_gaussian":
        # The weight uses the derivative of the chosen component's own map u' -> m,
        # u' = u / w_L (left) or (u - w_L) / (1 - w_L) (right): du'/du = 1 / w_c.
        w_left = p.bimodal_left_weight
        numeric = numeric * torch.where(u < w_left, torch.tensor(w_left), torch.tensor(1 - w_left)).double()
    assert torch.allclose(dm, numeric, rtol=1e-4, atol=1e-6)
    assert bool((dm >= 0).all())


@pytest.mark.parametrize("name", ALL)
def test_weights_at_p0_and_p1(name):
    m, dm = mask_rate_and_derivative(GRID[::1000], params(name))
    assert float(m.min()) >= 1e-3 * (1 - 1e-3) - 1e-12  # every schedule keeps m >= eps
    assert torch.allclose(loss_weight(m, dm, 0.0), 1 / m, rtol=1e-4)
    assert torch.allclose(loss_weight(m, dm, 1.0), dm / m, rtol=1e-4)
    half = loss_weight(m, dm, 0.5)
    assert torch.allclose(half, dm.sqrt() / m, rtol=1e-4)


@pytest.mark.parametrize(
    "name,kw",
    [("linear", {}), ("cosine", {}), ("cosine_squared", {}), ("gaussian", {"gaussian_mean": 0.5, "gaussian_std": 0.3})],
)
def test_p1_weight_gives_the_nelbo_integral(name, kw):
    # With p = 1, E_u[w(u) g(m(u))] = integral of g(m)/m dm over the schedule's range.
    # For g(m) = m^2 over [low, 1] that is (1 - low^2) / 2.
    low = 1e-3
    p = params(name, time_epsilon=0.0 if name != "gaussian" else low, **kw)
    m, dm = mask_rate_and_derivative(GRID, p)
    estimate = float((loss_weight(m, dm, 1.0) * m * m).mean())
    lo = float(m.min()) if name != "gaussian" else low
    assert estimate == pytest.approx((1 - lo * lo) / 2, abs=2e-4)


def test_stratified_draws_one_per_stratum():
    u = stratified_uniform(64, torch.Generator().manual_seed(3))
    strata = torch.floor(u * 64).long()
    assert sorted(strata.tolist()) == list(range(64))


def test_sample_schedule_is_finite_and_seeded():
    for name in ALL:
        rates, weights = sample_schedule(32, params(name, derivative_power=1.0), 0.5, torch.Generator().manual_seed(0))
        again, _ = sample_schedule(32, params(name, derivative_power=1.0), 0.5, torch.Generator().manual_seed(0))
        assert torch.equal(rates, again)
        assert bool(torch.isfinite(weights).all()) and bool((weights > 0).all())
        assert bool((rates > 0).all()) and bool((rates <= 1).all())
