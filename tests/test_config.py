import copy

import pytest
import yaml

from diffsteps.config import ConfigError, SamplerSpec, available_presets, config_hash, load_config, validate_mapping

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
    assert SamplerSpec.parse("ddim-eta0.5") == SamplerSpec("ddim-eta0.5", "ddim", eta=0.5)
    assert SamplerSpec.parse("ancestral-beta").variance == "beta"
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SamplerSpec.parse("ddim-eta2")


def test_config_hash_is_content_based(raw):
    a = validate_mapping(raw)
    b = validate_mapping(copy.deepcopy(raw))
    assert config_hash(a) == config_hash(b)
    raw["train"]["lr"] = 0.5
    assert config_hash(validate_mapping(raw)) != config_hash(a)


def test_unknown_method_lists_the_registered_ones(raw):
    from diffsteps.registry import validate_methods

    with pytest.raises(ConfigError, match=r"methods\[1\] = 'magic'.*registered methods are \['ddpm'"):
        validate_methods(validate_mapping(_set(raw, "methods", ["ddpm", "magic"])))


@pytest.mark.parametrize("dotted,value,expected", [
    ("evaluation.nll.n_images", 100000, "data.n_heldout"),
    ("evaluation.prc_neighborhood", 5000, "smaller of sampling.n_samples and data.n_heldout"),
])
def test_cross_field_rules(raw, dotted, value, expected):
    with pytest.raises(ConfigError, match=expected):
        validate_mapping(_set(raw, dotted, value))
