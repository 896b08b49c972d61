"""The shape of a data set's images from the configuration alone, without loading them (the GPU memory figures
of :mod:`diffsteps.resources`, the benchmarks). No stage imports this module: it never reruns one."""

from __future__ import annotations

from ..config import DataConfig

#: (channels, side) of the images each fixed-shape data set gives (MNIST's 28×28 padded to 32)
FIXED_SHAPES: dict[str, tuple[int, int]] = {"digits": (1, 8), "mnist5k": (1, 32), "mnist": (1, 32),
                                            "fashion_mnist": (1, 32), "cifar10": (3, 32)}
#: how many images each fixed-shape data set holds (train and held-out together)
FIXED_COUNTS: dict[str, int] = {"digits": 1797, "mnist5k": 5000, "mnist": 70000, "fashion_mnist": 70000,
                                "cifar10": 60000}
#: what an image folder is assumed to hold when sizing a job's memory (the count is known only once it is read)
FOLDER_COUNT = 100_000


def image_shape(cfg: DataConfig) -> tuple[int, int]:
    """(C, H) of the square images of ``data``: a folder's are data.channels (3 when null) × data.image_size."""
    if cfg.dataset == "folder":
        return cfg.channels or 3, cfg.image_size
    if cfg.dataset not in FIXED_SHAPES:
        raise ValueError(f"data.dataset = {cfg.dataset!r}: no known image shape; known: {sorted(FIXED_SHAPES)} "
                         "and 'folder'")
    return FIXED_SHAPES[cfg.dataset]


def image_count(cfg: DataConfig) -> int:
    """How many images the data set holds (:data:`FOLDER_COUNT` for a folder, an assumption)."""
    image_shape(cfg)  # the same error for an unknown data set
    return FOLDER_COUNT if cfg.dataset == "folder" else FIXED_COUNTS[cfg.dataset]
