"""Data sets as uint8 (N, C, H, W) train / held-out splits with a content hash (see :mod:`.datasets`)."""

from .datasets import DATASETS, TORCHVISION, DataError, download, load_split, prepare
from .folder import FolderError

__all__ = ["DATASETS", "TORCHVISION", "DataError", "FolderError", "download", "load_split", "prepare"]
