"""The shape of a data set's images from the configuration alone, without loading them (the GPU memory figures
of :mod:`diffsteps.resources`, the benchmarks). No stage imports this module: it never reruns one."""

from __future__ import annotations

from ..config import DataConfig

#: (channels, side) of the images each fixed-shape data set gives (MNIST's 28×28 padded to 32)
FIXED_SHAPES: dict[str, tuple[int, int]] = {"digits": (1, 8), "mnist5k": (1, 32), "mnist": (1, 32),
                                            "fashion_mnist": (1, 32), "cifar10": (3, 32)}


def image_shape(cfg: DataConfig) -> tuple[int, int]:
    """(C, H) of the square images of ``data``: a folder's are data.channels (3 when null) × data.image_size."""
    if cfg.dataset == "folder":
        return cfg.channels or 3, cfg.image_size
    if cfg.dataset not in FIXED_SHAPES:
        raise ValueError(f"data.dataset = {cfg.dataset!r}: no known image shape; known: {sorted(FIXED_SHAPES)} "
                         "and 'folder'")
    return FIXED_SHAPES[cfg.dataset]
