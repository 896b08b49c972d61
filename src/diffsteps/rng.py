"""Random streams that make sampling reproducible per sample.

Samplers draw every random number through an :class:`RNG`. :class:`StackedRNG` gives each sample
its own generator seeded from (seed, sample index), as EDM's ``StackedRandomGenerator`` does, so a
sample's trajectory does not depend on the batch size and every step budget starts from the same
x_T. :class:`BatchRNG` is one generator for a whole batch (training, where per-sample identity
does not matter); it lives on the training device, so that a training step draws its noise where it
uses it: a copy from host memory each step would make the host wait for the device.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class RNG(Protocol):
    """What a noise process or sampler may ask for. ``shape[0]`` is the batch dimension."""

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> torch.Tensor: ...

    def rand(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> torch.Tensor: ...

    def randint(self, low: int, high: int, shape: Sequence[int], *,
                device: torch.device | str = "cpu") -> torch.Tensor: ...

    def standard_gamma(self, concentration: np.ndarray | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Γ(concentration_b, 1) variates of ``shape`` in float64, one concentration per sample (B,)."""


def _gamma_from(generator: torch.Generator, concentration: torch.Tensor) -> torch.Tensor:
    """Γ(concentration, 1) variates in float64 (the shape of ``concentration``), driven by one draw of
    ``generator``.

    Float64 matters: a float32 Gamma sampler fails at both ends of the shapes a diffusion needs (few
    distinct values at shape ~1e10, underflow at shape ~1e-2). The variates come from a child
    generator seeded by one draw of ``generator``, because rejection sampling consumes a variable
    number of draws: this way every stream stays reproducible and aligned (one draw per call,
    whatever the shape and the values).
    """
    child = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    # torch.distributions.Gamma samples through this function but takes no generator; this takes one
    return torch._standard_gamma(concentration, generator=child)


def _per_sample(concentration: np.ndarray | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The concentrations as a float64 vector with one entry per sample, shape (B,), on their own device."""
    conc = torch.as_tensor(concentration, dtype=torch.float64)
    if tuple(conc.shape) != (shape[0],):
        raise ValueError(f"standard_gamma: concentration has shape {tuple(conc.shape)}; expected one per sample, "
                         f"({shape[0]},)")
    return conc


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` of the stream ``seed`` (independent streams per pair)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class BatchRNG:
    """One generator for the whole batch, on ``generator_device``: every draw is made there, then moved to the
    ``device`` asked for (no move when they agree, as in training).

    The stream is reproducible per (seed, device type): a CUDA generator (Philox) draws other numbers than the
    CPU one (Mersenne Twister) from the same seed, so a run on the CPU gives the same numbers on every CPU.
    """

    def __init__(self, seed: int, generator_device: torch.device | str = "cpu"):
        self.device = torch.device(generator_device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def randn(self, shape, *, dtype=torch.float32, device="cpu"):
        return torch.randn(tuple(shape), generator=self.generator, dtype=dtype, device=self.device).to(device)

    def rand(self, shape, *, dtype=torch.float32, device="cpu"):
        return torch.rand(tuple(shape), generator=self.generator, dtype=dtype, device=self.device).to(device)

    def randint(self, low, high, shape, *, device="cpu"):
        return torch.randint(low, high, tuple(shape), generator=self.generator, device=self.device).to(device)

    def standard_gamma(self, concentration, shape):
        """Γ(concentration_b, 1) of ``shape`` (float64, on the generator's device); ``concentration`` is (B,),
        one per sample.

        On the CPU the variates come from a child generator (:func:`_gamma_from`); a CUDA generator draws them
        itself, because its stream advances by a fixed amount per call whatever rejection sampling consumes."""
        conc = _per_sample(concentration, shape).to(self.device).reshape(-1, *([1] * (len(shape) - 1)))
        conc = conc.expand(tuple(shape)).contiguous()
        if self.device.type == "cpu":
            return _gamma_from(self.generator, conc)
        return torch._standard_gamma(conc, generator=self.generator)

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def to_device(draws: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Draws on ``device``. From the CPU to a GPU they go through pinned memory without blocking: a copy from pageable
    memory would make the host wait for the device's queue at every step of a sampler."""
    device = torch.device(device)
    if device.type == "cuda" and draws.device.type == "cpu":
        return draws.pin_memory().to(device, non_blocking=True)
    return draws.to(device)


class StackedRNG:
    """One CPU generator per sample: row j of every draw comes from generator j only."""

    def __init__(self, seed: int, indices: Sequence[int]):
        self.generators = [torch.Generator().manual_seed(sample_seed(seed, int(i))) for i in indices]

    def _check(self, shape) -> tuple[int, ...]:
        shape = tuple(shape)
        if not shape or shape[0] != len(self.generators):
            raise ValueError(f"StackedRNG holds {len(self.generators)} streams but was asked for shape {shape}")
        return shape[1:]

    def randn(self, shape, *, dtype=torch.float32, device="cpu"):
        rest = self._check(shape)
        return to_device(torch.stack([torch.randn(rest, generator=g, dtype=dtype) for g in self.generators]), device)

    def rand(self, shape, *, dtype=torch.float32, device="cpu"):
        rest = self._check(shape)
        return to_device(torch.stack([torch.rand(rest, generator=g, dtype=dtype) for g in self.generators]), device)

    def randint(self, low, high, shape, *, device="cpu"):
        rest = self._check(shape)
        return to_device(torch.stack([torch.randint(low, high, rest, generator=g) for g in self.generators]), device)

    def standard_gamma(self, concentration, shape):
        rest = self._check(shape)
        conc = _per_sample(concentration, shape).cpu()
        return torch.stack([_gamma_from(g, c.expand(rest).contiguous()) for g, c in zip(self.generators, conc)])
