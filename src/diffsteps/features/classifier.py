"""The domain feature extractor: a small CNN classifier trained by the pipeline on the labelled train split.

Its penultimate activation is a cheap, data-set-specific feature for FID/KID/precision–recall on small
and CPU runs, where Inception-v3 is unavailable or meaningless (8×8 digits). Numbers computed on it are
NOT comparable to published Inception FID; every result carries the label
``domain classifier (trained on <dataset>)``.

Network (w = ``DomainConfig.channels``), input x = images / 127.5 − 1 of shape (B, C, H, W):

    conv3×3(C→w) → ReLU → conv3×3(w→2w, stride 2) → ReLU → conv3×3(2w→4w, stride 2) → ReLU
    → AdaptiveAvgPool(2×2) → flatten (16w) → Linear(16w→4w) → ReLU  = penultimate h(x) ∈ R^{4w}
    → Linear(4w→num_classes)                                         = logits

The feature is φ(x) = h(x) / c with one constant c = sqrt(mean_{i,d} h_d(x_i)²) over the training
split, fixed after training. KID's kernel k(x, y) = (xᵀy / D + 1)³ assumes features of order one (as
Inception's pool3 is); raw activations of order ten would make the cubic term dominate and the KID
estimate very noisy. A single scale leaves precision/recall unchanged and scales FID by 1/c².

Adaptive pooling makes the same network valid for 8×8 digits and 32×32 MNIST/CIFAR. There is no batch
normalisation, so a feature never depends on the other images of its batch.

As an extractor (:class:`DomainFeatures`) it takes uint8 batches, as torch-fidelity's extractors do, and runs
through the same batching loop as Inception (:mod:`.extract`); its weights come from the checkpoint written by
:func:`train_domain_classifier`. Nothing here imports torch-fidelity: training the classifier and scoring in its
features start in the time of torch alone.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import DomainConfig
from ..errors import MetricInputError
from ..io import atomic_torch_save

#: the extractor's name (``--extractor``, reference statistics, records)
EXTRACTOR_NAME = "domain-classifier"
#: The one feature layer it provides; FID, KID and precision/recall all use it.
FEATURE_NAME = "features"
#: Written into every checkpoint, checked on load.
CHECKPOINT_FORMAT = "diffsteps-domain-classifier/1"


def domain_label(dataset: str) -> str:
    """The label that every domain-feature result carries."""
    return f"domain classifier (trained on {dataset})"


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 x = images / 127.5 − 1 ∈ [−1, 1] (the network input convention)."""
    return images.to(torch.float32) / 127.5 - 1.0


class DomainClassifier(nn.Module):
    """The CNN of the module docstring. ``features(x)``: φ (B, 4w); ``forward(x)``: logits (B, num_classes)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int):
        super().__init__()
        w = channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(16 * w, 4 * w), nn.ReLU(),
        )
        self.head = nn.Linear(4 * w, num_classes)
        self.feature_dim = 4 * w
        # the constant c of the module docstring; a buffer, so it travels in the state dict
        self.register_buffer("feature_scale", torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) / self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def check_images(images: np.ndarray, name: str = "images") -> None:
    """Refuse anything but a non-empty uint8 (N, C, H, W) array with C ∈ {1, 3}."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
        raise MetricInputError(f"{name}: expected a non-empty uint8 array shaped (N, C, H, W), got {got}")
    if images.shape[1] not in (1, 3):
        raise MetricInputError(f"{name}: expected 1 or 3 channels, got shape {images.shape}")


def _check_labels(labels: np.ndarray, images: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(images):
        raise MetricInputError(f"{name}: expected integer labels shaped ({len(images)},), "
                               f"got {labels.dtype} {labels.shape}")
    if labels.min() < 0:
        raise MetricInputError(f"{name}: labels must be ≥ 0, got minimum {labels.min()}")
    return labels.astype(np.int64)


def _penultimate_rms(net: DomainClassifier, images: np.ndarray, batch_size: int, device: torch.device) -> float:
    """c = sqrt(mean over images and dimensions of h(x)²), accumulated in float64."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            h = net.body(to_unit_range(torch.from_numpy(images[start:start + batch_size]).to(device)))
            total += float(h.double().pow(2).sum())
    return math.sqrt(total / (len(images) * net.feature_dim))


def _accuracy(net: DomainClassifier, images: np.ndarray, labels: np.ndarray, batch_size: int,
              device: torch.device) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_unit_range(torch.from_numpy(images[start:start + batch_size]).to(device))
            pred = net(x).argmax(dim=1).cpu().numpy()
            correct += int((pred == labels[start:start + batch_size]).sum())
    return correct / len(images)


def train_domain_classifier(train_images: np.ndarray, train_labels: np.ndarray, heldout_images: np.ndarray,
                            heldout_labels: np.ndarray, cfg: DomainConfig, out_path: str | Path, *, dataset: str,
                            device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train the domain classifier with Adam on cross-entropy and save an atomic checkpoint at ``out_path``.

    Images are uint8 (N, C, H, W), labels int (N,). The run is deterministic for ``cfg.seed`` on CPU:
    the initial weights and the per-epoch shuffles come from that seed alone (the global torch RNG is
    left as it was). The checkpoint holds the state dict, the architecture spec and ``dataset``.

    Returns {"heldout_accuracy", "train_accuracy", "feature_dim", "feature_scale" (c), "num_classes",
    "seconds", "min_accuracy", "accuracy_ok"}; ``accuracy_ok`` is heldout_accuracy ≥ cfg.min_accuracy (the caller
    decides whether a weak extractor fails the stage).
    """
    check_images(train_images, "train_images")
    check_images(heldout_images, "heldout_images")
    if train_images.shape[1:] != heldout_images.shape[1:]:
        raise MetricInputError(f"heldout_images: shape {heldout_images.shape[1:]} differs from the train "
                               f"split's {train_images.shape[1:]}")
    y_train = _check_labels(train_labels, train_images, "train_labels")
    y_heldout = _check_labels(heldout_labels, heldout_images, "heldout_labels")
    num_classes = int(max(y_train.max(), y_heldout.max())) + 1
    if num_classes < 2:
        raise MetricInputError(f"train_labels: a classifier needs at least 2 classes, got {num_classes}")

    device = torch.device(device)
    start = time.perf_counter()
    spec = {"in_channels": int(train_images.shape[1]), "image_size": [int(s) for s in train_images.shape[2:]],
            "num_classes": num_classes, "channels": int(cfg.channels)}
    # fork_rng keeps the caller's global torch stream untouched while the seed fixes the initial weights
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = DomainClassifier(spec["in_channels"], num_classes, cfg.channels).to(device)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    y_train_t = torch.from_numpy(y_train)
    net.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train_images), generator=shuffle)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = to_unit_range(torch.from_numpy(train_images[idx.numpy()]).to(device))
            loss = F.cross_entropy(net(x), y_train_t[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    scale = _penultimate_rms(net, train_images, cfg.batch_size, device)
    if not scale > 0:
        raise MetricInputError(f"domain classifier trained on {dataset}: every penultimate activation is zero "
                               f"on the train split; try another evaluation.domain.lr (now {cfg.lr}) or seed")
    net.feature_scale.fill_(scale)
    train_acc = _accuracy(net, train_images, y_train, cfg.batch_size, device)
    heldout_acc = _accuracy(net, heldout_images, y_heldout, cfg.batch_size, device)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_torch_save(out_path, {"format": CHECKPOINT_FORMAT, "dataset": dataset, "spec": spec, "state_dict": state})
    return {"heldout_accuracy": heldout_acc, "train_accuracy": train_acc, "feature_dim": net.feature_dim,
            "feature_scale": scale, "num_classes": num_classes, "seconds": time.perf_counter() - start,
            "min_accuracy": cfg.min_accuracy, "accuracy_ok": heldout_acc >= cfg.min_accuracy}


def load_domain_classifier(path: str | Path) -> tuple[DomainClassifier, dict[str, Any]]:
    """Rebuild the classifier from a checkpoint; returns (network in eval mode on CPU, checkpoint metadata).

    The metadata is {"dataset", "spec"}; a missing or foreign file raises :class:`MetricInputError`.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricInputError(f"domain classifier checkpoint {path} does not exist "
                               "(it is written by the pipeline's domain-extractor stage)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a corrupt or foreign file
        raise MetricInputError(f"{path}: not a readable domain classifier checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise MetricInputError(f"{path}: format is {found!r}, expected {CHECKPOINT_FORMAT!r}")
    spec = ckpt["spec"]
    net = DomainClassifier(spec["in_channels"], spec["num_classes"], spec["channels"])
    net.load_state_dict(ckpt["state_dict"])
    net.requires_grad_(False)
    net.eval()
    return net, {"dataset": ckpt["dataset"], "spec": spec}


class DomainFeatures(nn.Module):
    """The extractor: uint8 images (B, C, H, W) → ``(φ float32 (B, 4w),)``, one tuple entry per layer as
    torch-fidelity's extractors return them. Anything but uint8 images of the training data's shape is refused,
    naming the data set."""

    def __init__(self, net: DomainClassifier, meta: dict[str, Any]):
        super().__init__()
        self.net, self.dataset, self.spec = net, meta["dataset"], meta["spec"]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        expected = (self.spec["in_channels"], *self.spec["image_size"])
        if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise MetricInputError(f"domain classifier (trained on {self.dataset}) expects uint8 images "
                                   f"(N, {', '.join(map(str, expected))}), got {got}")
        return (self.net.features(to_unit_range(x)).to(torch.float32),)
