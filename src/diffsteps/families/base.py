"""What a method family declares about itself, without torch: its options type (``method_config.<run>``), the
JSON schema of those options, its traits and the grid of cells its runs have.

Everything that depends on a family reads it here, on the options type of the run: the params checks (which runs
may have a bound, a reference chain, replicates), the workflow (which models and cells a run has, which code a
job of the run depends on), the sampler registry (which samplers apply, which converge to the data law) and the
report (why a number is "n/a" or "not defined"). Nothing keeps lists of family names elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping


@dataclass(frozen=True)
class Grid:
    """The cells of one run as its family declares them, each wildcard mapped to the dotted params.yaml key that
    lists its values (``{run}`` stands for the run: a list of its own options), or fixed to a literal.

    ``models``: the wildcards that index the run's trained networks besides the training seed (none for a run
    trained once; DDGAN: one model per T). ``cells``: the wildcards of its sampling cells. ``constants``: the
    wildcards every cell of the run holds at one value (a family with one sampler of its own). ``model``: the
    ``{model}`` a cell's network is, formatted from the cell's wildcards (``{method}``, or ``{method}/T{budget}``).
    """

    models: Mapping[str, str]
    cells: Mapping[str, str]
    constants: Mapping[str, str]
    model: str


#: the grid of a family trained once and sampled at every budget with every sampler and spacing of the study
SHARED_GRID = Grid(models={}, cells={"sampler": "sampling.samplers", "spacing": "sampling.spacings",
                                     "budget": "sampling.budgets"}, constants={}, model="{method}")


@dataclass(frozen=True)
class MethodOptions:
    """One run of the study, as defined under ``method_config.<run>``: its family and options.

    The fields after ``family`` are the keyword arguments of the family's noise process (:meth:`noise_kwargs`),
    so a new option needs no plumbing between params.yaml and the process; the class variables are the family's
    traits.
    """

    family: str

    #: the JSON schema of one entry of method_config of this family (its ``family`` key is fixed by
    #: :func:`diffsteps.families.entry_schema`)
    schema: ClassVar[Mapping[str, Any]] = {}
    #: which models and sampling cells a run of this family has
    grid: ClassVar[Grid] = SHARED_GRID
    #: the network predicts ε̂ on a chain it was not trained at: every sampler of the study runs on it, at any budget
    eps_prediction: ClassVar[bool] = True
    #: the one sampler (and spacing) of a family whose chain is fixed at training, None for the others
    own_sampler: ClassVar[str | None] = None
    own_spacing: ClassVar[str | None] = None
    #: the forward marginals are Gaussian: E[ε | x_t] is (up to scale) the score, so every sampler tends to the
    #: data law as K → T and a deterministic one solves the probability-flow ODE
    gaussian_marginals: ClassVar[bool] = True
    #: a stochastic sampler on ε̂ = E[ε | x_t] tends to the data law with the exact denoiser (STUDY.md, Samplers)
    stochastic_reaches_data_law: ClassVar[bool] = True
    #: None when the family defines a likelihood bound; else the reason the report prints instead of a number
    nll_undefined_reason: ClassVar[str | None] = None
    #: whether the family has a continuous-time bound (T = ∞) besides its K-step ones
    continuous_time: ClassVar[bool] = False
    #: UNet-sized networks one training step holds (their activations and Adam moments; DDGAN: G and D)
    networks: ClassVar[int] = 1
    #: the family's chain is the study's ``noise`` schedule (DDGAN's is a VP-SDE of its own options: it reads no noise.*)
    uses_noise_schedule: ClassVar[bool] = True
    #: a run of the family has a probe job: the domain FID of the EMA snapshots its training keeps
    #: (:meth:`snapshot_every`), sampled on its own chain (so only a family with an own sampler is probed)
    probed: ClassVar[bool] = False

    @classmethod
    def bound_reason(cls, variance: str | None) -> str | None:
        """Why a bound cell of this family is not defined (None when it is): ``variance`` is the reverse variance
        of a K-step ancestral chain (``betatilde`` or ``beta``), or None for the continuous-time (T = ∞) bound."""
        if cls.nll_undefined_reason is not None:
            return cls.nll_undefined_reason
        if variance is None and not cls.continuous_time:
            return (f"{cls.family_name()} is a discrete-time model (trained on a fixed T-step chain): its bound exists "
                    "on K-step chains only, not at T = ∞")
        return None

    @classmethod
    def family_name(cls) -> str:
        """The family this options type belongs to: the name of the module that declares it."""
        return cls.__module__.rsplit(".", 1)[-1]

    @classmethod
    def from_params(cls, entry: Mapping[str, Any]) -> "MethodOptions":
        """The options of one method_config entry that :attr:`schema` accepted (YAML lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()})

    def noise_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.not_noise()}

    @classmethod
    def not_noise(cls) -> frozenset[str]:
        """Fields that are not keyword arguments of the noise process (the family, the grid's lists)."""
        return frozenset({"family"})

    def snapshot_every(self) -> int:
        """Steps between the EMA snapshots that training keeps for the probe stage (0: none; a probed family's
        option)."""
        return 0

    def probe_points(self, steps: int) -> int:
        """The weights the probe scores after a run of ``steps`` steps: a snapshot every :meth:`snapshot_every`
        steps before the last, and the final weights (none without snapshots)."""
        every = self.snapshot_every()
        return (steps - 1) // every + 1 if every else 0

    def problems(self) -> list[tuple[str, Any, str]]:
        """Cross-field errors the schema cannot state, as (option, value, what is expected); none by default."""
        return []

    def describe(self) -> str:
        """The options as written in result rows, e.g. ``theta0=0.5, loss=l1`` ('' when there are none)."""
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.noise_kwargs().items())
