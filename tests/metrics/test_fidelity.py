"""Reference statistics, scoring through them and the tidy rows (the distances themselves: test_distances.py)."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from diffsteps.config import (ClaimsConfig, DomainConfig, EvaluationConfig, InceptionConfig, MemorisationConfig, NLLConfig,
                              ProbeConfig,
                             SolverErrorConfig, StepsNeededConfig)
from diffsteps.io import sha256_array, sha256_file
from diffsteps.features.classifier import EXTRACTOR_NAME, DomainFeatures, MetricInputError, train_domain_classifier
from diffsteps.features.extract import INCEPTION_EXTRACTOR, extract_features, inception_label
from diffsteps.metrics.refstats import StaleReferenceStats, load_reference_stats, reference_stats
from diffsteps.metrics.fidelity import (IS_METRIC, METRICS, NO_INCEPTION, ROW_KEYS, floor_rows, inception_score_row,
                                        not_available_rows, not_computed_rows, score)
from diffsteps.features.inception_weights import NO_LOGITS, inception_network

from ..conftest import ROOT

DOMAIN = DomainConfig(channels=16, epochs=5, batch_size=64, lr=0.003, seed=0, min_accuracy=0.8)
EVAL = EvaluationConfig(batch_size=128, kid_subset_size=100, kid_subsets=10, prc_neighborhood=3,
                        inception=InceptionConfig(None, None, None, None, None),
                        memorisation=MemorisationConfig(quantile=0.5, pairs=4), domain=DOMAIN,
                        nll=NLLConfig(methods=(), budgets=(4,), variances=("beta",), n_images=16, batch_size=16, seed=0, draws=1),
                        probe=ProbeConfig(8),
                        solver_error=SolverErrorConfig(8, 0, 8, 256), steps_needed=StepsNeededConfig(0.1, 0.02, 200, 0),
                        claims=ClaimsConfig(0.1))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Digits as uint8 (N, 1, 8, 8), a 360-image held-out split, a trained extractor and train statistics."""
    d = load_digits()
    images = np.round(d.images * 255 / 16).astype(np.uint8)[:, None]
    order = np.random.default_rng(0).permutation(len(images))
    held, train = order[:360], order[360:]
    root = tmp_path_factory.mktemp("fidelity")
    weights = root / "extractor.pt"
    train_domain_classifier(images[train], d.target[train], images[held], d.target[held], DOMAIN, weights,
                            dataset="digits")
    split_sha = sha256_array(images[train], d.target[train])
    ref = reference_stats(images[train], split_sha, images[held], "held", EXTRACTOR_NAME, weights, root / "train.npz",
                          n=None, n_heldout=None, seed=0, batch_size=256)
    return {"train": images[train], "heldout": images[held], "weights": weights, "split_sha": split_sha,
            "ref": ref, "ref_path": root / "train.npz"}


def test_reference_stats_round_trip_and_refuse_stale_keys(digits, tmp_path):
    ref, path = digits["ref"], digits["ref_path"]
    assert ref.n == len(digits["train"]) and ref.features.dtype == np.float32
    weights_sha = sha256_file(digits["weights"])
    loaded = load_reference_stats(path, digits["split_sha"], weights_sha, EXTRACTOR_NAME)
    np.testing.assert_array_equal(loaded.features, ref.features)
    np.testing.assert_array_equal(loaded.sigma, ref.sigma)
    assert loaded.meta == ref.meta and loaded.meta["feature_extractor"] == "domain classifier (trained on digits)"
    with pytest.raises(StaleReferenceStats, match="split_sha256 is .* but 'other' is expected"):
        load_reference_stats(path, "other", weights_sha)
    with pytest.raises(StaleReferenceStats, match="weights_sha256"):
        load_reference_stats(path, digits["split_sha"], "0" * 64)
    with pytest.raises(StaleReferenceStats, match="extractor"):
        load_reference_stats(path, digits["split_sha"], weights_sha, INCEPTION_EXTRACTOR)
    with pytest.raises(StaleReferenceStats, match="n is 1437 but 500 is expected"):
        load_reference_stats(path, digits["split_sha"], weights_sha, EXTRACTOR_NAME, expect_n=500)
    # a seeded subset: reproducible, and n above the split size is refused
    a, b = (reference_stats(digits["train"], "s", digits["heldout"], "h", EXTRACTOR_NAME, digits["weights"],
                            tmp_path / f"{name}.npz", n=100, n_heldout=50, seed=1, batch_size=64) for name in "ab")
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.heldout_distance, b.heldout_distance)
    assert a.n == 100 and a.meta["n_split"] == len(digits["train"]) and len(a.heldout_features) == 50
    assert a.meta["n_heldout"] == 50 and a.meta["heldout_sha256"] == "h"
    with pytest.raises(MetricInputError, match=r"n = 5000 is invalid: must lie in \[2, 1437\]"):
        reference_stats(digits["train"], "s", digits["heldout"], "h", EXTRACTOR_NAME, digits["weights"],
                        tmp_path / "c.npz", n=5000, n_heldout=None, seed=1, batch_size=64)


def test_heldout_digits_score_close_to_train_statistics(digits):
    rows = floor_rows(digits["ref"], EVAL, "cpu", seed=0)
    assert [r["metric"] for r in rows] == list(METRICS)
    assert all(tuple(r) == ROW_KEYS for r in rows)
    by = {r["metric"]: r for r in rows}
    assert all(r["status"] == "ok" and r["reason"] is None and r["n"] == 360 and r["n_ref"] == 1437 for r in rows)
    assert all(r["feature_extractor"] == "domain classifier (trained on digits)" for r in rows)
    assert all(r["weights_sha256"] == sha256_file(digits["weights"]) for r in rows)
    assert by["kid"]["std"] is not None and by["fid"]["std"] is None
    assert 0.0 <= by["precision"]["value"] <= 1.0 and 0.0 <= by["recall"]["value"] <= 1.0
    assert by["precision"]["value"] > 0.8 and by["recall"]["value"] > 0.8
    # noise scored the same way is far worse: the floor is small on this scale
    noise = np.random.default_rng(0).integers(0, 256, digits["heldout"].shape, dtype=np.uint8)
    noisy = {r["metric"]: r for r in score(noise, digits["ref"], EXTRACTOR_NAME, digits["weights"], EVAL, "cpu", 0).rows}
    assert by["fid"]["value"] < 0.05 * noisy["fid"]["value"]
    assert by["kid"]["value"] < 0.05 * noisy["kid"]["value"]
    assert noisy["precision"]["value"] < 0.1


def test_score_at_a_smaller_n_and_refuses_foreign_weights(digits, tmp_path):
    rows = score(digits["heldout"], digits["ref"], EXTRACTOR_NAME, digits["weights"],
                 dataclasses.replace(EVAL, kid_subset_size=500), "cpu", seed=3, n=64).rows
    assert {r["n"] for r in rows} == {64}
    other = tmp_path / "other.pt"
    train_domain_classifier(digits["train"][:200], np.arange(200) % 10, digits["heldout"][:50], np.arange(50) % 10,
                            dataclasses.replace(DOMAIN, epochs=1, seed=5), other, dataset="digits")
    with pytest.raises(StaleReferenceStats, match="weights_sha256"):
        score(digits["heldout"], digits["ref"], EXTRACTOR_NAME, other, EVAL, "cpu", seed=0)
    with pytest.raises(MetricInputError, match="absent.pt for feature extractor 'domain-classifier' does not exist"):
        score(digits["heldout"], digits["ref"], EXTRACTOR_NAME, tmp_path / "absent.pt", EVAL, "cpu", seed=0)


def test_inception_without_weights_is_not_computed_and_offline(no_network, digits):
    rows = not_computed_rows(n=360)
    assert [r["metric"] for r in rows] == list(METRICS)
    assert all(tuple(r) == ROW_KEYS and r["status"] == "not_computed" and r["reason"] == NO_INCEPTION
               and r["value"] is None and r["feature_extractor"] == inception_label("float32") and r["n"] == 360 for r in rows)
    with pytest.raises(MetricInputError, match="needs a local weights file; got None"):
        extract_features(digits["heldout"], INCEPTION_EXTRACTOR, None, 64, "cpu")


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """A randomly initialised Inception state dict in torch-fidelity's format, with a real (random) classifier."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = inception_network()
    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_features_from_local_weights_replicate_grey(no_network, random_inception, digits):
    grey = digits["heldout"][:3]
    feats = extract_features(grey, INCEPTION_EXTRACTOR, random_inception, 2, "cpu")
    assert feats.shape == (3, 2048) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats, extract_features(np.repeat(grey, 3, axis=1), INCEPTION_EXTRACTOR,
                                                          random_inception, 3, "cpu"))


def test_inception_rows_with_local_weights(no_network, random_inception, digits, tmp_path):
    # as few images as the metrics allow: each costs a 299×299 Inception pass on the CPU
    cfg = dataclasses.replace(EVAL, kid_subset_size=2, prc_neighborhood=1)
    ref = reference_stats(digits["train"][:3], "split", digits["heldout"][:2], "held", INCEPTION_EXTRACTOR,
                          random_inception, tmp_path / "inc.npz", n=None, n_heldout=None, seed=0, batch_size=8)
    rows = score(digits["heldout"][:2], ref, INCEPTION_EXTRACTOR, random_inception, cfg, "cpu", seed=0).rows
    assert [r["metric"] for r in rows] == list(METRICS)
    assert all(r["status"] == "ok" and r["feature_extractor"] == inception_label("float32") and r["n"] == 2 and r["n_ref"] == 3
               and r["weights_sha256"] == sha256_file(random_inception) for r in rows)
    # the floor is the same two held-out images: the generated set scores exactly like it
    assert [r["value"] for r in floor_rows(ref, cfg, "cpu", seed=0)] == [r["value"] for r in rows]
    with pytest.raises(StaleReferenceStats, match="split_sha256"):
        load_reference_stats(tmp_path / "inc.npz", "another split", sha256_file(random_inception))


def test_inception_score_is_refused_without_logits_and_computed_with_them(no_network, random_inception, digits,
                                                                         tmp_path):
    images = digits["heldout"][:2]
    state = torch.load(random_inception, weights_only=True)
    state["fc.weight"] = torch.full_like(state["fc.weight"], float("nan"))  # the converted weights' placeholder
    torch.save(state, tmp_path / "no_logits.pth")
    refused = inception_score_row(images, tmp_path / "no_logits.pth", EVAL, "cpu", seed=0)
    assert refused["status"] == "not_available" and refused["reason"] == NO_LOGITS == \
        "not available: these weights have no logits"
    assert refused["value"] is None and refused["metric"] == IS_METRIC
    computed = inception_score_row(images, random_inception, EVAL, "cpu", seed=0)
    assert computed["status"] == "ok" and 1.0 <= computed["value"] <= 1008  # IS lies in [1, number of classes]


def test_not_available_rows_carry_the_reason():
    rows = not_available_rows("not available: the data set has no labels", "folder", n=10)
    assert [r["metric"] for r in rows] == list(METRICS)
    assert all(r["status"] == "not_available" and r["value"] is None and r["std"] is None and r["n"] == 10
               and r["reason"] == "not available: the data set has no labels"
               and r["feature_extractor"] == "domain classifier (trained on folder)" for r in rows)


def test_memorisation_row_flags_copied_digits_and_not_the_heldout_split(digits):
    """Real features (the domain classifier): copies of training digits are 'memorised', held-out ones are not."""
    by = {r["metric"]: r for r in floor_rows(digits["ref"], EVAL, "cpu", seed=0)}
    floor = by["memorisation"]
    assert floor["status"] == "ok" and abs(floor["value"] - 0.5) < 0.02  # the held-out level is the quantile
    copies = score(digits["train"][:360], digits["ref"], EXTRACTOR_NAME, digits["weights"], EVAL, "cpu", seed=0)
    copied = {r["metric"]: r for r in copies.rows}["memorisation"]
    assert copied["value"] == 1.0 and copied["n"] == 360
    assert np.all(copies.nearest.distance == 0.0)
    # each copy's nearest training image is itself: the pairs index the training split, not the subset
    np.testing.assert_array_equal(copies.nearest.split_index, np.arange(360))


def test_features_are_extracted_in_ieee_float32(digits, monkeypatch):
    """cuDNN defaults to TF32 convolutions on recent GPUs; extraction switches it off and restores it after. The
    domain classifier runs in IEEE float32 whatever precision Inception is given."""
    seen = []
    original = DomainFeatures.forward

    def spy(self, x):
        seen.append((torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision))
        return original(self, x)

    monkeypatch.setattr(DomainFeatures, "forward", spy)
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    extract_features(digits["heldout"][:4], EXTRACTOR_NAME, digits["weights"], 4, "cpu")
    extract_features(digits["heldout"][:4], EXTRACTOR_NAME, digits["weights"], 4, "cpu", precision="tf32")
    assert seen == [("ieee", "ieee")] * 2
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before


def test_inception_runs_at_its_precision_and_its_numbers_say_which(no_network, random_inception, digits, tmp_path,
                                                                   monkeypatch):
    """evaluation.inception.precision = tf32: Inception's convolutions and matmuls run in TF32 (on a GPU; the CPU
    computes IEEE float32 either way), the statistics record it, every Inception row's label names it, and
    statistics of the other precision are refused as stale."""
    from diffsteps.features import extract

    seen = []
    original = extract.fp32_precision

    @contextlib.contextmanager
    def spy(precision="float32"):
        with original(precision):
            seen.append((torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision))
            yield

    monkeypatch.setattr(extract, "fp32_precision", spy)
    tf32 = dataclasses.replace(EVAL, kid_subset_size=2, prc_neighborhood=1,
                               inception=dataclasses.replace(EVAL.inception, precision="tf32"))
    ref = reference_stats(digits["train"][:3], "split", digits["heldout"][:2], "held", INCEPTION_EXTRACTOR,
                          random_inception, tmp_path / "inc.npz", n=None, n_heldout=None, seed=0, batch_size=8,
                          precision="tf32")
    assert ref.meta["precision"] == "tf32" and ref.meta["feature_extractor"] == inception_label("tf32")
    rows = score(digits["heldout"][:2], ref, INCEPTION_EXTRACTOR, random_inception, tf32, "cpu", seed=0).rows
    assert seen == [("tf32", "tf32")] * 3  # the statistics' two splits, then the scored images
    assert {r["feature_extractor"] for r in rows} == {inception_label("tf32")} and "TF32" in inception_label("tf32")
    assert "IEEE float32" in inception_label("float32")
    assert {r["feature_extractor"] for r in floor_rows(ref, tf32, "cpu", seed=0)} == {inception_label("tf32")}
    float32 = dataclasses.replace(tf32, inception=EVAL.inception)
    with pytest.raises(StaleReferenceStats, match="precision = 'tf32' but the images are scored with 'float32'"):
        score(digits["heldout"][:2], ref, INCEPTION_EXTRACTOR, random_inception, float32, "cpu", seed=0)
    with pytest.raises(StaleReferenceStats, match="precision = 'tf32'"):
        floor_rows(ref, float32, "cpu", seed=0)
    with pytest.raises(MetricInputError, match="precision 'bf16' is not supported"):
        extract_features(digits["heldout"][:2], INCEPTION_EXTRACTOR, random_inception, 2, "cpu", precision="bf16")


def test_the_schema_offers_exactly_the_precisions_extraction_knows():
    import yaml

    from diffsteps.features.extract import PRECISIONS, PRECISION_LABELS

    schema = yaml.safe_load((ROOT / "src/diffsteps/schemas/params.schema.yaml").read_text())
    inception = schema["properties"]["evaluation"]["properties"]["inception"]["properties"]["precision"]
    assert inception["enum"] == list(PRECISIONS) == list(PRECISION_LABELS)
