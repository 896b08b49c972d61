"""The sampler registry's declarations: what every sampler is, without running it (no torch here).

One :class:`SamplerDecl` per sampler kind says:

- its **name grammar**: a regular expression with named groups for its parameters (``ddim-eta<η>``);
- the **result columns** its parameters fill in every row (DDIM's ``eta``, an ancestral chain's ``variance``);
- the **NFE** of a K-step run (Heun evaluates the network twice per step but once on the last);
- whether it is **deterministic** (a solver of the probability-flow ODE, or of the DDIM ODE under non-Gaussian
  noise), and its order as an ODE solver.

Which families a sampler applies to, and what it converges to there, are traits of the family
(:mod:`diffsteps.families`): every sampler runs on a family whose network predicts ε̂ on any chain, and a family
whose chain is fixed at training (DDGAN) has one sampler of its own. Everything that spells a sampler name
elsewhere is generated from :data:`SAMPLERS`: the params schema's pattern, the Snakemake wildcard constraint and
the CLI's parser; the result columns its parameters fill are columns of the row schema (:mod:`diffsteps.rows`). The
functions that run them are :data:`diffsteps.samplers.SAMPLER_FUNCTIONS`, keyed by :attr:`SamplerDecl.kind`; the
contract test checks that the registries agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .errors import ConfigError


class FamilyTraits(Protocol):
    """What the registry reads of a family (its options type, :class:`diffsteps.families.base.MethodOptions`)."""

    eps_prediction: bool
    own_sampler: str | None
    gaussian_marginals: bool
    stochastic_reaches_data_law: bool

    @classmethod
    def family_name(cls) -> str: ...


@dataclass(frozen=True)
class SamplerDecl:
    kind: str
    grammar: str  # a regular expression (no anchors) whose named groups are the parameters
    spelled: str  # how the grammar reads in an error message
    summary: str  # one line for the report and the schema
    nfe: Callable[[int], int]  # network evaluations of a K-step run
    deterministic: Callable[[dict[str, Any]], bool]
    #: the global order of the ODE solver (deterministic samplers) as measured on the exact mixture oracle
    #: (tests/mixture_oracle.py) at 64–256 steps on exact grids: a fact, not the order of its formula
    order: float | None = None
    columns: tuple[str, ...] = ()  # its named groups: each fills the result column of that name (diffsteps.rows)
    convert: dict[str, Callable[[str], Any]] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], str | None] = lambda params: None
    examples: tuple[str, ...] = ()  # names of this grammar the contract tests run (the plain name when empty)

    def names(self) -> tuple[str, ...]:
        """Identifiers of this kind for tests and docs: its examples, or its grammar when it has no parameter."""
        return self.examples or (self.grammar,)

    def applies_to(self, family: FamilyTraits) -> bool:
        """Every sampler runs on a family that predicts ε̂ on any chain; a family whose chain is fixed at training
        runs its own sampler only."""
        if family.eps_prediction:
            return True
        return family.own_sampler is not None and re.fullmatch(self.grammar, family.own_sampler) is not None


def _k(K: int) -> int:
    return K


def _heun_nfe(K: int) -> int:
    return 2 * K - 1  # two evaluations per step, and one on the last (an Euler step to σ̃ = 0)


def _always(params: dict[str, Any]) -> bool:
    return True


def _never(params: dict[str, Any]) -> bool:
    return False


def _eta_zero(params: dict[str, Any]) -> bool:
    return params["eta"] == 0


def _eta_in_unit(params: dict[str, Any]) -> str | None:
    return None if 0 <= params["eta"] <= 1 else "DDIM η must lie in [0, 1]"


#: kind → declaration, in the order the report lists samplers
SAMPLERS: dict[str, SamplerDecl] = {d.kind: d for d in (
    SamplerDecl("ddim", r"ddim-eta(?P<eta>\d+(?:\.\d+)?)", "ddim-eta<η> (e.g. ddim-eta0, ddim-eta1, ddim-eta0.5)",
                "DDIM (arXiv 2010.02502); η = 0 is the first-order (Euler) solver of the probability-flow ODE",
                _k, _eta_zero, order=1, columns=("eta",), convert={"eta": float},
                check=_eta_in_unit, examples=("ddim-eta0", "ddim-eta0.5", "ddim-eta1")),
    SamplerDecl("ancestral", r"ancestral-(?P<variance>betatilde|beta)", "ancestral-betatilde or ancestral-beta",
                "the ancestral posterior chain with σ² = β̃' (betatilde) or β' (beta, DDIM's σ̂)",
                _k, _never, columns=("variance",), examples=("ancestral-betatilde", "ancestral-beta")),
    SamplerDecl("dpmpp-2m", r"dpmpp-2m", "dpmpp-2m",
                "DPM-Solver++(2M) (arXiv 2211.01095, Alg. 2): second-order multistep on x̂_0, NFE = K",
                _k, _always, order=2),
    SamplerDecl("heun", r"heun", "heun",
                "EDM's Heun (arXiv 2206.00364, Alg. 1, S_churn = 0): second order, NFE = 2K − 1",
                _heun_nfe, _always, order=2),
    # its body is fourth order, but the Euler, AB2 and AB3 warm-up steps cap the global order: the first step's
    # O(h²) error is small at high noise, so the order measured at 64–256 steps is 3.5–3.7 (tending to 2 as K → ∞)
    SamplerDecl("ipndm", r"ipndm", "ipndm",
                "improved PNDM (arXiv 2204.13902): variable-step Adams–Bashforth on ε̂ of order up to 4 after a "
                "lower-order warm-up (measured global order 3.6), NFE = K",
                _k, _always, order=3.6),
    # a third-order predictor whose corrector adds one order (UniC), capped by the warm-up and the lower-order final
    # steps: measured 3.65–3.78 at 64–256 steps
    SamplerDecl("unipc", r"unipc", "unipc",
                "UniPC (arXiv 2302.04867): bh2 predictor–corrector on x̂_0, UniP of order up to 3 with the UniC "
                "corrector on the next step's evaluation, lower order on the final steps (measured global order 3.7), "
                "NFE = K",
                _k, _always, order=3.7),
    SamplerDecl("deis", r"deis", "deis",
                "DEIS-AB3 (arXiv 2204.13902): exponential integrator with ε̂ a Lagrange polynomial in log σ̃ over the "
                "last three evaluations, lower order on the final steps, NFE = K",
                _k, _always, order=3.0),
)}

#: the result columns sampler parameters fill, in registry order (each a column of diffsteps.rows)
SAMPLER_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for d in SAMPLERS.values() for c in d.columns))
#: the grammar of every sampler identifier, unanchored
SAMPLER_PATTERN = "|".join(d.grammar for d in SAMPLERS.values())
#: the same grammar without named groups (a Snakemake wildcard constraint becomes a named group itself)
SAMPLER_CONSTRAINT = re.sub(r"\(\?P<\w+>", "(?:", SAMPLER_PATTERN)


def registered_names() -> tuple[str, ...]:
    """One or more identifiers of every registered sampler (the contract tests run each)."""
    return tuple(name for d in SAMPLERS.values() for name in d.names())


def spelled() -> str:
    """Every grammar, as an error message lists them."""
    return "; ".join(d.spelled for d in SAMPLERS.values())


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed sampler identifier: its ``name``, its declaration's ``kind`` and its ``params`` (the named
    groups of the grammar, converted). ``eta`` and ``variance`` are the result columns (None where unused)."""

    name: str
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, name: str, key: str = "sampler", source: str = "params.yaml") -> "SamplerSpec":
        for decl in SAMPLERS.values():
            m = re.fullmatch(decl.grammar, name)
            if m is None:
                continue
            params = {k: decl.convert.get(k, str)(v) for k, v in m.groupdict().items()}
            problem = decl.check(params)
            if problem:
                raise ConfigError(key, name, problem, source)
            return cls(name=name, kind=decl.kind, params=tuple(params.items()))
        raise ConfigError(key, name, f"a sampler is one of: {spelled()}", source)

    @property
    def decl(self) -> SamplerDecl:
        return SAMPLERS[self.kind]

    def param(self, column: str) -> Any:
        return dict(self.params).get(column)

    @property
    def eta(self) -> float | None:
        return self.param("eta")

    @property
    def variance(self) -> str | None:
        return self.param("variance")

    @property
    def deterministic(self) -> bool:
        return self.decl.deterministic(dict(self.params))

    def nfe(self, K: int) -> int:
        return self.decl.nfe(K)

    def columns(self) -> dict[str, Any]:
        """The row columns this sampler fills (every registered one, None where it has no such parameter)."""
        return {c: self.param(c) for c in SAMPLER_COLUMNS}


def data_law_caveat(sampler: str, family: FamilyTraits) -> str | None:
    """What ``sampler`` on ``family`` (its options type) solves when that is not the Gaussian probability flow, or None.

    Under non-Gaussian noise (Gamma, mixture) a deterministic sampler solves the DDIM ODE built on
    ε̂ = E[ε | x_t], which is not the score; where the family says so (mixture noise), a stochastic one need not
    tend to the data law even with the exact denoiser (STUDY.md, Samplers)."""
    spec = SamplerSpec.parse(sampler)
    name = family.family_name()
    if family.gaussian_marginals:
        return None
    if spec.deterministic:
        return f"a solver of the DDIM ODE under {name} noise (ε̂ = E[ε | x_t] is not the score)"
    if not family.stochastic_reaches_data_law:
        return f"under {name} noise E[ε | x_t] is not the score: this chain need not tend to the data law"
    return None
