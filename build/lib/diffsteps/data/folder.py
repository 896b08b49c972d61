"""A data set from any folder of images (the `folder` data set).

Files are found recursively and read in sorted relative-path order, so the same folder always gives
the same array. Every image is converted to the requested mode first (``L`` for 1 channel, ``RGB`` for
3), center-cropped to a square of side min(W, H) and resized to ``image_size`` with PIL's bicubic
filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: File name endings read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_MODES = {1: "L", 3: "RGB"}


class FolderError(ValueError):
    """An image folder is missing, empty, unreadable or asked for an unsupported shape."""


def image_paths(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted by relative POSIX path for determinism."""
    if not folder.is_dir():
        raise FolderError(f"data.folder = {str(folder)!r}: no such directory; expected a folder of images "
                          f"({', '.join(IMAGE_SUFFIXES)}, searched recursively)")
    paths = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise FolderError(f"data.folder = {str(folder)!r} holds no images; expected files ending in "
                          f"{', '.join(IMAGE_SUFFIXES)} (searched recursively)")
    return sorted(paths, key=lambda p: p.relative_to(folder).as_posix())


def load_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image → uint8 (C, image_size, image_size): convert, center-crop to a square, bicubic resize."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(_MODES[channels])  # before resizing: palette images must not be interpolated
    except (UnidentifiedImageError, OSError) as exc:
        raise FolderError(f"cannot read image {str(path)!r}: {exc}") from exc
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((image_size, image_size), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def load_folder(folder: str | Path, image_size: int | None, channels: int | None) -> np.ndarray:
    """All images under ``folder`` → uint8 (N, C, image_size, image_size); ``channels`` defaults to 3."""
    if image_size is None:
        raise FolderError("data.image_size = None is invalid: the 'folder' data set needs an image size "
                          "(images are center-cropped and resized to image_size × image_size)")
    channels = 3 if channels is None else channels
    if channels not in _MODES:
        raise FolderError(f"data.channels = {channels!r} is invalid: must be 1 (grayscale) or 3 (RGB)")
    paths = image_paths(Path(folder))
    return np.stack([load_image(p, image_size, channels) for p in paths])
