"""The domain classifier: accuracy on digits, determinism, shapes, and its use as a feature extractor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from diffsteps.config import DomainConfig
from diffsteps.features.classifier import (EXTRACTOR_NAME, DomainFeatures, MetricInputError, load_domain_classifier,
                                          to_unit_range, train_domain_classifier)
from diffsteps.features.extract import extract_features, extract_layers

CFG = DomainConfig(channels=16, epochs=5, batch_size=64, lr=0.003, seed=0, min_accuracy=0.8)


def digits_split(n_heldout: int = 360, seed: int = 0):
    """sklearn digits as uint8 (N, 1, 8, 8) (pixel v ∈ 0..16 → round(v·255/16)), split at random."""
    d = load_digits()
    images = np.round(d.images * 255 / 16).astype(np.uint8)[:, None]
    order = np.random.default_rng(seed).permutation(len(images))
    held, train = order[:n_heldout], order[n_heldout:]
    return images[train], d.target[train], images[held], d.target[held]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    x_tr, y_tr, x_he, y_he = digits_split()
    path = tmp_path_factory.mktemp("domain") / "extractor.pt"
    info = train_domain_classifier(x_tr, y_tr, x_he, y_he, CFG, path, dataset="digits")
    return path, info, x_he, x_tr


def test_reaches_heldout_accuracy_on_digits_in_seconds(trained):
    path, info, _, _ = trained
    assert info["heldout_accuracy"] > 0.8
    assert info["accuracy_ok"] and info["min_accuracy"] == CFG.min_accuracy
    assert info["seconds"] > 0  # ~0.5 s on 2 idle cores; not asserted, wall time depends on machine load
    assert info["feature_dim"] == 4 * CFG.channels and info["num_classes"] == 10
    net, meta = load_domain_classifier(path)
    assert meta == {"dataset": "digits", "spec": {"in_channels": 1, "image_size": [8, 8], "num_classes": 10,
                                                  "channels": CFG.channels}}


def test_training_is_deterministic_and_leaves_global_rng_alone(tmp_path):
    x_tr, y_tr, x_he, y_he = digits_split(n_heldout=100)
    cfg = DomainConfig(channels=4, epochs=1, batch_size=128, lr=0.003, seed=3, min_accuracy=0.0)
    before = torch.random.get_rng_state()
    a = train_domain_classifier(x_tr, y_tr, x_he, y_he, cfg, tmp_path / "a.pt", dataset="digits")
    assert torch.equal(before, torch.random.get_rng_state())
    b = train_domain_classifier(x_tr, y_tr, x_he, y_he, cfg, tmp_path / "b.pt", dataset="digits")
    sa, sb = (load_domain_classifier(tmp_path / name)[0].state_dict() for name in ("a.pt", "b.pt"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["heldout_accuracy"] == b["heldout_accuracy"]


def test_32x32_rgb_images_work(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 3, 48)
    cfg = DomainConfig(channels=4, epochs=1, batch_size=16, lr=0.003, seed=0, min_accuracy=0.0)
    info = train_domain_classifier(x[:32], y[:32], x[32:], y[32:], cfg, tmp_path / "c.pt", dataset="cifar10")
    feats = extract_features(x[32:], EXTRACTOR_NAME, tmp_path / "c.pt", batch_size=7, device="cpu")
    assert feats.shape == (16, info["feature_dim"]) and feats.dtype == np.float32


def test_features_are_scaled_to_unit_mean_square_on_the_train_split(trained):
    path, _, _, x_tr = trained
    feats = extract_features(x_tr, EXTRACTOR_NAME, path, batch_size=512, device="cpu")
    assert np.mean(feats.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-4)


def test_the_extractor_gives_the_network_features_whatever_the_batch(trained):
    path, _, x_he, _ = trained
    net, _ = load_domain_classifier(path)
    with torch.no_grad():
        direct = net.features(to_unit_range(torch.from_numpy(x_he))).numpy()
    # an odd batch size leaves a short last batch; features must not depend on the batching
    batched = extract_features(x_he, EXTRACTOR_NAME, path, batch_size=37, device="cpu")
    assert batched.dtype == np.float32 and batched.shape == direct.shape
    np.testing.assert_allclose(batched, direct, rtol=1e-5, atol=1e-5)


def test_extractor_refuses_missing_weights_and_wrong_images(trained, tmp_path):
    path, _, x_he, _ = trained
    with pytest.raises(MetricInputError, match="needs a local weights file"):
        extract_features(x_he, EXTRACTOR_NAME, None, 8)
    with pytest.raises(MetricInputError, match="provides the layer 'features', not \\['logits'\\]"):
        extract_layers(x_he, EXTRACTOR_NAME, path, ("logits",), 8)
    ext = DomainFeatures(*load_domain_classifier(path))
    with pytest.raises(MetricInputError, match=r"trained on digits\) expects uint8 images \(N, 1, 8, 8\)"):
        ext(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(MetricInputError, match="expects uint8"):
        ext(torch.zeros(2, 1, 8, 8))
    with pytest.raises(MetricInputError, match="does not exist"):
        load_domain_classifier(tmp_path / "absent.pt")
    torch.save({"something": 1}, tmp_path / "foreign.pt")
    with pytest.raises(MetricInputError, match="format is None"):
        load_domain_classifier(tmp_path / "foreign.pt")


def test_scoring_in_domain_features_never_imports_torch_fidelity(trained):
    """torch-fidelity imports torchvision (3 s on 2 cores, more than torch itself): a scoring job that never runs
    Inception must not pay for it. A fresh interpreter, since this one has imported it already."""
    path, _, x_he, _ = trained
    np.save(path.parent / "images.npy", x_he[:16])
    code = (f"import sys, numpy as np; import diffsteps.stages.evaluate, diffsteps.stages.refstats; "
            f"from diffsteps.features.extract import extract_features; "
            f"f = extract_features(np.load({str(path.parent / 'images.npy')!r}), {EXTRACTOR_NAME!r}, {str(path)!r}, 8); "
            f"print(f.shape, sorted(m for m in ('torch_fidelity', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "(16, 64) []"


def test_bad_training_inputs_name_the_argument(tmp_path):
    x_tr, y_tr, x_he, y_he = digits_split(n_heldout=50)
    with pytest.raises(MetricInputError, match="train_images: expected a non-empty uint8"):
        train_domain_classifier(x_tr.astype(np.float32), y_tr, x_he, y_he, CFG, tmp_path / "x.pt", dataset="digits")
    with pytest.raises(MetricInputError, match="heldout_labels: expected integer labels shaped \\(50,\\)"):
        train_domain_classifier(x_tr, y_tr, x_he, y_he[:10], CFG, tmp_path / "x.pt", dataset="digits")
    assert not (tmp_path / "x.pt").exists()
