import copy
import re

import pytest
import yaml

from diffsteps.config import ConfigError, config_hash
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.params import available_presets, load_config, preset_path, validate_mapping

from .conftest import ROOT


@pytest.fixture()
def raw():
    with open(ROOT / "params.yaml") as fh:
        return yaml.safe_load(fh)


def test_default_params_and_every_preset_are_valid():
    load_config(ROOT / "params.yaml")
    assert {"cpu", "gpu", "paper", "smoke"} <= set(available_presets())
    for name in available_presets():
        load_config(ROOT / "src/diffsteps/presets" / f"{name}.yaml")


def _set(raw, dotted, value):
    node = raw
    *head, last = dotted.split(".")
    for part in head:
        node = node[part]
    node[last] = value
    return raw


@pytest.mark.parametrize("dotted,value,key,expected", [
    ("train.images", -5, "train.images", "≥ 1"),
    ("sampling.budgets", [10, 2000], "sampling.budgets[1]", "≤ noise.T = 1000"),
    ("sampling.budgets", [10, -3], "sampling.budgets.1", "≥ 2"),
    ("sampling.samplers", ["ddim-eta0", "euler"], "sampling.samplers.1", "ddim-eta"),
    ("sampling.spacings", ["uniform", "cubic"], "sampling.spacings.1", "one of"),
    ("evaluation.kid_subset_size", 100000, "evaluation.kid_subset_size", "sampling.n_samples"),
    ("data.dataset", "imagenet", "data.dataset", "digits"),
    ("evaluation.inception.precision", "bf16", "evaluation.inception.precision", "tf32"),
])
def test_bad_values_name_the_key_the_value_and_what_is_allowed(raw, dotted, value, key, expected):
    with pytest.raises(ConfigError) as err:
        validate_mapping(_set(raw, dotted, value))
    msg = str(err.value)
    assert key in msg and expected in msg and repr(value if not isinstance(value, list) else value[-1])[:6] in msg


def test_typo_key_is_an_error_listing_allowed_keys(raw):
    raw["train"]["learning_rate"] = raw["train"].pop("lr")
    with pytest.raises(ConfigError, match=r"train\.learning_rate.*unknown key; allowed keys here are \[.*'lr'"):
        validate_mapping(raw)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_sampler_grammar():
    spec = SamplerSpec.parse("ddim-eta0.5")
    assert (spec.kind, spec.eta, spec.variance, spec.deterministic) == ("ddim", 0.5, None, False)
    assert SamplerSpec.parse("ancestral-beta").variance == "beta"
    assert SamplerSpec.parse("ddim-eta0").deterministic and SamplerSpec.parse("dpmpp-2m").deterministic
    assert [SamplerSpec.parse(n).nfe(10) for n in ("ddim-eta0", "heun", "ipndm", "dpmpp-2m")] == [10, 19, 10, 10]
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SamplerSpec.parse("ddim-eta2")
    with pytest.raises(ConfigError, match="ddim-eta<η>.*ancestral-betatilde.*dpmpp-2m; heun; ipndm"):
        SamplerSpec.parse("euler")


def test_config_hash_is_content_based(raw):
    a = validate_mapping(raw)
    b = validate_mapping(copy.deepcopy(raw))
    assert config_hash(a) == config_hash(b)
    raw["train"]["lr"] = 0.5
    assert config_hash(validate_mapping(raw)) != config_hash(a)


def test_undefined_run_lists_the_defined_ones(raw):
    with pytest.raises(ConfigError, match=r"methods\[1\] = 'magic'.*defined runs are \['ddgan', 'ddgm'"):
        validate_mapping(_set(raw, "methods", ["ddpm", "magic"]))


def test_unknown_family_lists_the_registered_ones(raw):
    raw["method_config"]["magic"] = {"family": "magic"}
    with pytest.raises(ConfigError, match=r"method_config.magic.family = 'magic'.*must be one of the method families "
                                          r"\['ddgan', 'ddgm', 'ddpm', 'flow', 'mixture', 'vdm'\]"):
        validate_mapping(raw)


@pytest.mark.parametrize("run,entry,key,expected", [
    ("ddgm", {"family": "ddgm", "theta0": 0.0}, "method_config.ddgm.theta0", "must be > 0"),
    ("ddgm", {"family": "ddgm", "theta0": 0.1, "loss": "l3"}, "method_config.ddgm.loss", "must be one of"),
    ("ddgm", {"family": "ddgm", "theta0": 0.1, "p": 0.5}, "method_config.ddgm.p", "unknown key"),
    ("mixture", {"family": "mixture", "p": 1.0, "phi": 0.5}, "method_config.mixture.p", "must be < 1"),
    ("mixture", {"family": "mixture", "p": 0.3}, "method_config.mixture.phi = None", "a required key is missing"),
    ("flow", {"family": "flow", "t_min": 0.5, "t_max": 0.4}, "method_config.flow.t_max", "must exceed t_min"),
    ("flow", {"family": "flow", "t_max": 1.0}, "method_config.flow.t_max", "must be < 1"),
    ("flow", {"family": "flow", "time_sampling": "beta"}, "method_config.flow.time_sampling", "must be one of"),
    ("mixture", {"family": "mixture", "p": 0.3, "phi": {"start": 0.2}}, "method_config.mixture.phi",
     "must be component sd φ in (0, 1): a constant, or {start, end}"),
    ("mixture", {"family": "mixture", "p": 0.3, "phi": 1.5}, "method_config.mixture.phi = 1.5", "in (0, 1)"),
    ("Bad-Name", {"family": "ddpm"}, "method_config", "must match ^[a-z][a-z0-9_]*$ (a run name"),
])
def test_bad_run_options_name_the_key(raw, run, entry, key, expected):
    raw["method_config"][run] = entry
    with pytest.raises(ConfigError, match=re.escape(key) + ".*" + re.escape(expected)):
        validate_mapping(raw)


def test_reference_runs_must_be_in_the_study(raw):
    raw["sampling"]["reference"]["methods"] = ["mixture", "ddgm_skewed_l2"]
    with pytest.raises(ConfigError, match=r"sampling.reference.methods\[1\] = 'ddgm_skewed_l2'.*must be one of the runs sampled"):
        validate_mapping(raw)


def test_run_options_are_typed():
    from diffsteps.families.ddgm import DDGMOptions
    from diffsteps.families.mixture import MixtureOptions, PhiSchedule

    cfg = validate_mapping(yaml.safe_load(preset_path("smoke").read_text()))
    assert cfg.method_config["ddgm"] == DDGMOptions(family="ddgm", theta0=0.1, loss="l1")
    mix = cfg.method_config["mixture"]
    assert isinstance(mix, MixtureOptions) and mix.phi == PhiSchedule(0.4, 0.6)
    assert mix.describe() == "p=0.3, phi=0.4→0.6" and str(PhiSchedule(0.5, 0.5)) == "0.5"


@pytest.mark.parametrize("dotted,value,expected", [
    ("evaluation.nll.n_images", 100000, "data.n_heldout"),
    ("evaluation.prc_neighborhood", 11, r"evaluation.prc_neighborhood = 11 is invalid: must be ≤ 10 \(k of k-NN .* "
                                        r"store the radii of k = 1..10\)"),
    ("evaluation.inception.n", 5000, r"evaluation.inception.n = 5000 is invalid: .* ≤ 360"),
    ("evaluation.inception.n_ref", 3, r"evaluation.inception.n_ref = 3 is invalid: must be > evaluation.prc_neighborhood"),
    ("evaluation.inception.samplers", ["ddim-eta0.5"], r"evaluation.inception.samplers\[0\] = 'ddim-eta0.5' .* one of"),
    ("evaluation.memorisation.quantile", 1.0, "evaluation.memorisation.quantile"),
])
def test_cross_field_rules(raw, dotted, value, expected):
    with pytest.raises(ConfigError, match=expected):
        validate_mapping(_set(raw, dotted, value))


def test_prc_neighborhood_needs_more_images_than_k(raw):
    raw = _set(_set(raw, "sampling.n_samples", 8), "sampling.batch_size", 8)
    with pytest.raises(ConfigError, match="smaller of sampling.n_samples and data.n_heldout"):
        validate_mapping(_set(raw, "evaluation.prc_neighborhood", 8))


def test_replicates_are_validated(raw):
    raw["train"]["replicates"] = {"methods": ["ddpm"], "seeds": [1, 2]}
    raw["sampling"]["reference"]["methods"] = ["ddpm"]
    cfg = validate_mapping(raw)
    assert cfg.train.seeds_of("ddpm") == (*cfg.train.seeds, 1, 2) and cfg.train.seeds_of("ddgm") == cfg.train.seeds
    with pytest.raises(ConfigError, match=r"train.replicates.methods\[0\] = 'ddgm'.*must be one of methods"):
        validate_mapping(_set(copy.deepcopy(raw), "train.replicates.methods", ["ddgm"]))  # defined, not in the study
    with pytest.raises(ConfigError, match=r"train.replicates.seeds\[0\] = \d+ .*must not be one of train.seeds"):
        validate_mapping(_set(copy.deepcopy(raw), "train.replicates.seeds", list(cfg.train.seeds[:1])))
    with pytest.raises(ConfigError, match=r"sampling.reference.methods\[0\] = 'ddpm'.*train.replicates.methods"):
        validate_mapping(_set(copy.deepcopy(raw), "train.replicates.methods", [m for m in raw["methods"] if m != "ddpm"][:1]))


def test_replicate_grids_repeat_every_cell_of_the_replicated_runs(raw):
    from diffsteps import cells
    from diffsteps.config import to_plain

    raw["train"]["replicates"] = {"methods": ["ddpm"], "seeds": [7]}
    raw["sampling"]["reference"]["methods"] = ["ddpm"]
    cfg = to_plain(validate_mapping(raw))
    base = [w for w in cells.iter_wildcards(cfg, "sample") if w["method"] == "ddpm" and w["ts"] == cfg["train"]["seeds"][0]]
    extra = [w for w in cells.iter_wildcards(cfg, "sample") if w["ts"] == 7]
    assert {w["method"] for w in extra} == {"ddpm"}
    assert sorted((w["sampler"], w["spacing"], w["budget"], w["seed"]) for w in extra) == \
        sorted((w["sampler"], w["spacing"], w["budget"], w["seed"]) for w in base)  # reference cell included
    for stage in ("train", "evaluate", "nll", "solver_error"):
        assert any(w["ts"] == 7 for w in cells.iter_wildcards(cfg, stage)), stage


def test_bound_runs_are_validated_against_the_families_declarations(raw):
    """evaluation.nll.methods lists runs whose family defines a bound (the others are no job at all); a replicated
    bounded run gets the bound of each of its training runs, with nothing more to say."""
    from diffsteps import cells

    assert validate_mapping(raw).evaluation.nll.methods == ("ddpm", "vdm")
    for run in ("ddgm_skewed", "mixture", "ddgan"):
        with pytest.raises(ConfigError, match=rf"evaluation.nll.methods\[1\] = '{run}'.*defines no bound .*the runs "
                                              r"with one are \['ddpm', 'vdm'\]"):
            validate_mapping(_set(copy.deepcopy(raw), "evaluation.nll.methods", ["ddpm", run]))
    raw["train"]["replicates"] = {"methods": ["ddgm_skewed", "vdm", "ddpm"], "seeds": [7]}
    raw["sampling"]["reference"]["methods"] = ["ddpm"]
    validate_mapping(raw)
    bounds = {(w["method"], w["ts"]) for w in cells.iter_wildcards(raw, "nll")}
    assert bounds == {(run, ts) for run in ("ddpm", "vdm") for ts in (*raw["train"]["seeds"], 7)}


def test_a_run_with_a_chain_of_its_own_has_its_own_grid(raw):
    """DDGAN's step counts are an option of its run: one model per T, sampled at NFE = T with its own sampler; it
    cannot take the study's reference chain, and its T are checked like any option."""
    from diffsteps import cells

    ddgan = raw["method_config"]["ddgan"]
    models = [w["model"] for w in cells.iter_wildcards(raw, "train") if w["method"] == "ddgan"]
    assert models == [f"ddgan/T{T}" for T in ddgan["T"] for _ in raw["train"]["seeds"]]
    own = [w for w in cells.iter_wildcards(raw, "sample") if w["method"] == "ddgan"]
    assert {(w["sampler"], w["spacing"], w["budget"]) for w in own} == {("ancestral-betatilde", "uniform", T)
                                                                        for T in ddgan["T"]}
    with pytest.raises(ConfigError, match=r"sampling.reference.methods\[0\] = 'ddgan'.*sampled at every budget"):
        validate_mapping(_set(copy.deepcopy(raw), "sampling.reference.methods", ["ddgan"]))
    for T, expected in (([1, 1], "non-unique"), ([0], "must be ≥ 1"), ([], "should be non-empty")):
        with pytest.raises(ConfigError, match=r"method_config.ddgan.T.*" + re.escape(expected)):
            validate_mapping(_set(copy.deepcopy(raw), "method_config.ddgan.T", T))


def test_a_reference_chain_on_the_grids_sampler_and_spacing_is_refused():
    """A sampling job holds every cell of one run's sampler and spacing, so the reference chain must be a job of its
    own: a reference sampler and spacing that the grid also samples is refused, naming the key."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["sampling"]["samplers"] = [*raw["sampling"]["samplers"], raw["sampling"]["reference"]["sampler"]]
    with pytest.raises(ConfigError, match=r"sampling\.reference\.sampler.*sampling grid"):
        validate_mapping(raw)
    raw["sampling"]["reference"]["spacing"] = "quad"  # a spacing the grid does not sample: a job of its own
    assert "quad" not in raw["sampling"]["spacings"]
    validate_mapping(raw)
