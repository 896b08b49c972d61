"""The multistep solvers against an independent implementation: diffusers' ``DPMSolverMultistepScheduler``,
``UniPCMultistepScheduler`` and ``DEISMultistepScheduler`` (a test extra, never a dependency of the package) drive
the same exact denoiser (the Gaussian-mixture oracle) on the same time grid at K = 10, and agree with the project's
``dpmpp-2m``, ``unipc`` and ``deis`` to 1e-5.

Time indices: diffusers' timestep d reads ``alphas_cumprod[d]`` = ᾱ_{d+1} in the project's convention (ᾱ_0 = 1 at
index 0), so its "linspace" grid d = 999, 899, …, 100 is the project's t = 1000, 900, …, 101. diffusers' DPM-Solver
and UniPC end at σ = 0 (``final_sigmas_type="zero"``), the data end of the project's chains; its DEIS ends at t = 1
instead, so its comparison runs the project's ``deis`` on the same grid ending at t = 1. At K = 10 every one of them
lowers the order on the final steps, as the project's solvers do at every K."""

import numpy as np
import pytest
import torch

from diffsteps.noise.schedule import Chain
from diffsteps.rng import BatchRNG
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.samplers import sample

from . import mixture_oracle

diffusers = pytest.importorskip("diffusers", reason="diffusers is the test extra's (pip install -e '.[test]')")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 warns on diffusers' own array code

K = 10
SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
            "prediction_type": "epsilon", "timestep_spacing": "linspace", "lower_order_final": True}


def linspace_times() -> np.ndarray:
    """The project's times of diffusers' "linspace" grid of K steps: d + 1, ascending (K,)."""
    d = np.linspace(0, 999, K + 1).round()[::-1][:-1].astype(np.int64)
    return np.sort(d + 1)


class DiffusersGrid:
    """A :class:`~diffsteps.noise.schedule.TimeGrid` holding diffusers' grid (the project's chain adds the data end)."""

    name = "diffusers-linspace"

    def discrete(self, alpha_bar, K_):
        assert K_ == K
        return linspace_times()


def run_diffusers(scheduler, start: torch.Tensor) -> torch.Tensor:
    """diffusers' loop: ε̂ at each timestep d (the project's t = d + 1), then its ``step``."""
    denoiser = mixture_oracle.eps_denoiser(False)
    scheduler.set_timesteps(K)
    assert np.array_equal(np.sort(scheduler.timesteps.numpy() + 1), linspace_times())
    x = start.clone()
    for d in scheduler.timesteps:
        eps = denoiser(x, torch.full((len(x),), float(d) + 1.0, dtype=torch.float64))
        x = scheduler.step(eps, d, x).prev_sample
    return x


def run_project(name: str, chain: Chain, start: torch.Tensor) -> torch.Tensor:
    return sample(mixture_oracle.eps_denoiser(False), mixture_oracle.PROCESS, chain, SamplerSpec.parse(name),
                  start.shape, BatchRNG(0), clip_x0=False, x_T=start).x0


@pytest.mark.parametrize("name,scheduler", [
    ("dpmpp-2m", lambda: diffusers.DPMSolverMultistepScheduler(
        **SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", final_sigmas_type="zero")),
    ("unipc", lambda: diffusers.UniPCMultistepScheduler(
        **SCHEDULE, solver_order=3, solver_type="bh2", predict_x0=True, final_sigmas_type="zero", disable_corrector=[])),
])
def test_solver_matches_diffusers_to_the_data_end(name, scheduler):
    start = mixture_oracle.x_T(64, 1)
    chain = mixture_oracle.DISCRETE.chain(K, DiffusersGrid())
    ours, theirs = run_project(name, chain, start), run_diffusers(scheduler(), start)
    assert float((ours - theirs).abs().max()) < 1e-5
    # and the comparison can fail: the two differ from a first-order solve by far more than that
    assert float((run_project("ddim-eta0", chain, start) - theirs).abs().max()) > 1e-3


def test_deis_matches_diffusers_on_its_grid_ending_at_t_1():
    start = mixture_oracle.x_T(64, 1)
    t = torch.from_numpy(np.concatenate([[1], linspace_times()]))
    chain = Chain.from_alpha_bar(t, mixture_oracle.DISCRETE.alpha_bar[t])  # index 0 is t = 1, where diffusers ends
    theirs = run_diffusers(diffusers.DEISMultistepScheduler(**SCHEDULE, solver_order=3, algorithm_type="deis"), start)
    ours = run_project("deis", chain, start)
    assert float((ours - theirs).abs().max()) < 1e-5
    assert float((run_project("ddim-eta0", chain, start) - theirs).abs().max()) > 1e-3


@pytest.mark.parametrize("spacing", ["quad", "logsnr", "karras"])
def test_deis_error_falls_with_every_budget(spacing):
    """The project's ``deis`` ends at the data with lower order on its final steps, so its error against the
    oracle's exact solve falls with K at every budget of a study's grid, K = 5 to 50 (diffusers' keeps full order on
    its last, large step from K = 15 on). Not on ``uniform``: linear in t, its last steps are so long in λ that every
    exponential integrator's error (DPM-Solver++, UniPC, DEIS) rises between K = 5 and 10 there."""
    start, exact = mixture_oracle.exact_from_seed(64, 0, False)
    Ks = (5, 8, 10, 12, 15, 20, 25, 30, 40, 50)
    errors = [mixture_oracle.rms_error(mixture_oracle.solve("deis", k, spacing, start, False), exact) for k in Ks]
    assert all(b < a for a, b in zip(errors, errors[1:])), dict(zip(Ks, errors))
