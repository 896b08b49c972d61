"""Feature extraction (the distances are :mod:`diffsteps.metrics.distances`).

Two extractors are supported:

* ``inception-v3-compat`` (torch-fidelity's FID Inception network, pool3 = 2048-d), only from a local weights
  file: a missing path is refused here, so torch-fidelity is never asked to download;
* ``domain-classifier`` (:mod:`.classifier`), from the checkpoint the pipeline trains.

Both run through one batching loop, which feeds each network uint8 (B, C, H, W) batches as torch-fidelity's
``get_featuresdict_from_dataset`` does. torch-fidelity is imported only where Inception runs: importing it costs
more than importing torch (it imports torchvision), and most scoring jobs work in domain features alone.

Images are uint8 (N, C, H, W). Grey images are replicated to 3 channels for Inception only; the domain
extractor sees the native channels. Features come back as float32 (N, D).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .classifier import EXTRACTOR_NAME as DOMAIN_EXTRACTOR
from ..errors import MetricInputError
from .classifier import FEATURE_NAME, DomainFeatures, check_images, domain_label, load_domain_classifier

INCEPTION_EXTRACTOR = "inception-v3-compat"
EXTRACTORS = (DOMAIN_EXTRACTOR, INCEPTION_EXTRACTOR)
#: the float32 arithmetic of Inception's convolutions and matmuls on a GPU (``evaluation.inception.precision``):
#: IEEE float32, the protocol's, or TF32 (a 10-bit mantissa: Inception twice as fast on an H200, FID moved by 0.08%,
#: benchmarks/results/feature_throughput.json), by its name in torch's ``fp32_precision`` settings; on the CPU both
#: are IEEE float32. The domain classifier always runs in IEEE float32 (it is small).
PRECISIONS = {"float32": "ieee", "tf32": "tf32"}
PRECISION_LABELS = {"float32": "IEEE float32", "tf32": "TF32"}


def inception_label(precision: str = "float32") -> str:
    """The label of Inception features at a precision, written beside every Inception number."""
    return f"Inception-v3 pool3 (torch-fidelity inception-v3-compat, {PRECISION_LABELS[precision]})"


def resolve_weights(extractor: str, weights_path: str | Path | None) -> Path:
    """The local weights file of a supported extractor; None or a missing file is refused, never downloaded."""
    if extractor not in EXTRACTORS:
        raise MetricInputError(f"feature extractor {extractor!r} is not supported; use one of {list(EXTRACTORS)}")
    if weights_path is None:
        # torch-fidelity would download Inception weights for a None path; this study never downloads
        raise MetricInputError(f"feature extractor {extractor!r} needs a local weights file; got None "
                               "(weights are never downloaded)")
    path = Path(weights_path)
    if not path.is_file():
        raise MetricInputError(f"weights file {path} for feature extractor {extractor!r} does not exist")
    return path


def weights_key(extractor: str, weights_path: str | Path | None) -> tuple[str, int, int]:
    """(resolved path, mtime ns, size) of an extractor's weights file: what the per-process caches below are keyed
    on, so that a job of many cells hashes and loads each weights file once and a rewritten file is read again."""
    path = resolve_weights(extractor, weights_path).resolve()
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _sha256(key: tuple[str, int, int]) -> str:
    from ..io import sha256_file

    return sha256_file(key[0])


def weights_sha256(extractor: str, weights_path: str | Path | None) -> str:
    """The sha256 of an extractor's weights file (written beside every number), hashed once per process."""
    return _sha256(weights_key(extractor, weights_path))


@functools.lru_cache(maxsize=8)
def _label(extractor: str, key: tuple[str, int, int], precision: str) -> str:
    if extractor == INCEPTION_EXTRACTOR:
        return inception_label(precision)
    return domain_label(load_domain_classifier(key[0])[1]["dataset"])


def extractor_label(extractor: str, weights_path: str | Path | None, precision: str = "float32") -> str:
    """The human label written beside every number, e.g. ``domain classifier (trained on digits)``, or Inception's
    with its precision."""
    return _label(extractor, weights_key(extractor, weights_path), check_precision(extractor, precision))


def check_precision(extractor: str, precision: str) -> str:
    """The precision the extractor runs at: ``precision`` for Inception, IEEE float32 for the domain classifier;
    an unknown name is refused."""
    if precision not in PRECISIONS:
        raise MetricInputError(f"precision {precision!r} is not supported; use one of {list(PRECISIONS)}")
    return precision if extractor == INCEPTION_EXTRACTOR else "float32"


@functools.lru_cache(maxsize=8)
def _feature_extractor(extractor: str, layers: tuple[str, ...], key: tuple[str, int, int],
                       device: str) -> torch.nn.Module:
    """The extractor's network for ``layers`` (uint8 batch → tuple of float features, one per layer), in eval mode
    on ``device``, built (its weights loaded) once per process."""
    if extractor == DOMAIN_EXTRACTOR:
        if set(layers) != {FEATURE_NAME}:
            raise MetricInputError(f"the domain classifier provides the layer {FEATURE_NAME!r}, not {list(layers)}")
        net = DomainFeatures(*load_domain_classifier(key[0]))
    else:
        from torch_fidelity.utils import create_feature_extractor

        net = create_feature_extractor(extractor, list(layers), cuda=False, feature_extractor_weights_path=key[0],
                                       feature_extractor_internal_dtype="float32", verbose=False)
    return net.requires_grad_(False).eval().to(device)


@contextlib.contextmanager
def fp32_precision(precision: str = "float32") -> Iterator[None]:
    """Convolutions and matmuls at ``precision`` (:data:`PRECISIONS`) for the duration, whatever the process set
    before: cuDNN's default on Ampere and later GPUs is TF32, which moves features, so IEEE float32 is set
    explicitly where it is asked for. No effect on CPU."""
    cudnn, cuda = torch.backends.cudnn, torch.backends.cuda
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):  # torch ≥ 2.9
        saved = (cudnn.conv.fp32_precision, cuda.matmul.fp32_precision)
        cudnn.conv.fp32_precision = cuda.matmul.fp32_precision = PRECISIONS[precision]
        try:
            yield
        finally:
            cudnn.conv.fp32_precision, cuda.matmul.fp32_precision = saved
    else:
        saved = (cudnn.allow_tf32, cuda.matmul.allow_tf32)
        cudnn.allow_tf32 = cuda.matmul.allow_tf32 = precision == "tf32"
        try:
            yield
        finally:
            cudnn.allow_tf32, cuda.matmul.allow_tf32 = saved


def feature_layer(extractor: str) -> str:
    """The extractor's default layer for 'fid', which is also its default for 'kid' and 'prc': one feature
    space for every metric."""
    if extractor == DOMAIN_EXTRACTOR:
        return FEATURE_NAME
    if extractor == INCEPTION_EXTRACTOR:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        return FeatureExtractorInceptionV3.get_default_feature_layer_for_metric("fid")
    raise MetricInputError(f"feature extractor {extractor!r} is not supported; use one of {list(EXTRACTORS)}")


def extract_layers(images: np.ndarray, extractor: str, weights_path: str | Path | None, layers: tuple[str, ...],
                   batch_size: int, device: str | torch.device = "cpu", precision: str = "float32"
                   ) -> dict[str, np.ndarray]:
    """uint8 (N, C, H, W) → {layer: float32 (N, D_layer)}, in batches of ``batch_size``, at ``precision`` inside
    Inception (:func:`check_precision`; never autocast).

    The FID layer has D = 2048 (Inception pool3) or 4·channels (domain classifier).
    """
    check_images(images)
    key = weights_key(extractor, weights_path)
    if batch_size < 1:
        raise MetricInputError(f"batch_size = {batch_size} is invalid: must be ≥ 1")
    if extractor == INCEPTION_EXTRACTOR and images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)  # Inception is an RGB network: grey → (g, g, g)
    precision = check_precision(extractor, precision)
    device = torch.device(device)
    net = _feature_extractor(extractor, tuple(layers), key, str(device))
    batches = []
    # the array is already in memory: no DataLoader (its workers would only add start-up on a 2-core machine)
    with fp32_precision(precision), torch.no_grad():
        for i in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device)
            batches.append([f.to(torch.float32).cpu() for f in net(batch)])
    return {layer: torch.cat([b[j] for b in batches]).numpy() for j, layer in enumerate(layers)}


def extract_features(images: np.ndarray, extractor: str, weights_path: str | Path | None, batch_size: int,
                     device: str | torch.device = "cpu", precision: str = "float32") -> np.ndarray:
    """The FID layer of :func:`extract_layers`: uint8 (N, C, H, W) → float32 (N, D)."""
    layer = feature_layer(extractor)
    return extract_layers(images, extractor, weights_path, (layer,), batch_size, device, precision)[layer]
