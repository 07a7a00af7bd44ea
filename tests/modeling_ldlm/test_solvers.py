"""Solvers are pure functions over a denoise callable: they land on a constant x0 and make the promised calls."""

import pytest
import torch

from modeling_ldlm.adaptive_timesteps import warp, warp_cdf
from modeling_ldlm.noise_schedules import alpha_sigma
from modeling_ldlm.random_rows import normal_rows
from modeling_ldlm.solvers import SOLVERS, learned_timesteps, network_calls, sample, uniform_timesteps


def schedule(t):
    return alpha_sigma(t, "tan", 3.0)


class ConstantDenoiser:
    def __init__(self, x0):
        self.x0, self.calls = x0, 0

    def __call__(self, z, t):
        assert z.shape == self.x0.shape and t.shape == (z.shape[0],)
        self.calls += 1
        return self.x0.clone()


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_constant_denoiser_lands_on_x0_with_promised_calls(solver, steps):
    x0 = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(0))
    denoise = ConstantDenoiser(x0)
    z = torch.randn(3, 4, 8)
    seen = []
    out = sample(solver, denoise, z, uniform_timesteps(steps, 1.0, 0.05), schedule,
                 generator=torch.Generator().manual_seed(1), callback=lambda i, t, z_t, x: seen.append(i))
    torch.testing.assert_close(out, x0)
    assert denoise.calls == network_calls(solver, steps)
    assert seen == list(range(steps))  # one callback per step, whatever the calls per step


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m", "heun"])
def test_deterministic_solvers_follow_the_exact_trajectory_of_a_constant_x0(solver):
    """With x0 fixed the probability-flow ODE is solved exactly by DDIM: z_s = a_s x0 + s_s eps stays on one line."""
    x0, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    states = []
    sample(solver, ConstantDenoiser(x0), eps, uniform_timesteps(5, 1.0, 0.1), schedule,
           callback=lambda i, t, z, x: states.append((t, z)))
    for t, z in states:
        a, s = schedule(torch.tensor([t]))
        torch.testing.assert_close(z, a * x0 + s * eps, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("solver", ["euler_maruyama", "ddpm"])
def test_stochastic_solvers_are_reproducible_and_use_their_generator(solver):
    def run(seed):
        denoise = lambda z, t: 0.5 * z  # noqa: E731
        states = []
        sample(solver, denoise, torch.ones(2, 3, 4), uniform_timesteps(6, 1.0, 0.1), schedule,
               generator=torch.Generator().manual_seed(seed), callback=lambda i, t, z, x: states.append(z))
        return torch.stack(states)

    torch.testing.assert_close(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_per_row_generators_make_rows_independent_of_the_batch():
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6, 7)]  # noqa: E731
    batch = normal_rows((3, 4, 2), gens())
    single = normal_rows((1, 4, 2), [torch.Generator().manual_seed(6)])
    torch.testing.assert_close(batch[1:2], single)
    with pytest.raises(ValueError, match="one per row"):
        normal_rows((2, 4, 2), gens())


def test_time_grids():
    grid = uniform_timesteps(5, 1.0, 0.2)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]))
    assert uniform_timesteps(1, 0.9, 0.1).tolist() == pytest.approx([0.9])
    uniform = torch.full((8,), 1 / 8)
    torch.testing.assert_close(learned_timesteps(5, uniform, 1.0, 0.2), grid)
    probs = torch.tensor([0.5, 0.3, 0.1, 0.1])  # most loss increase at small t: steps crowd there
    learned = learned_timesteps(9, probs, 1.0, 0.0)
    assert learned[0] == 1.0 and learned[-1] == 0.0 and (learned[1:] < learned[:-1]).all()
    assert (learned < 0.5).sum() > (grid < 0.5).sum()
    u = torch.rand(50)
    torch.testing.assert_close(warp_cdf(warp(u, probs), probs), u, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=-2), dict(steps=2.0), dict(t_min=0.5, t_max=0.5),
                                 dict(t_min=0.6, t_max=0.5), dict(t_max=1.5)])
def test_bad_grids_raise(bad):
    args = dict(steps=4, t_max=1.0, t_min=0.0) | bad
    with pytest.raises(ValueError):
        uniform_timesteps(args["steps"], args["t_max"], args["t_min"])


def test_unknown_solver_raises():
    with pytest.raises(ValueError, match="Unknown solver"):
        sample("rk45", lambda z, t: z, torch.zeros(1, 2, 2), uniform_timesteps(2), schedule)
    with pytest.raises(ValueError, match="Unknown solver"):
        network_calls("rk45", 3)
