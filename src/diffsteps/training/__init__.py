"""Generic training: one loop for every method, EMA with warm-up, atomic resumable checkpoints."""

from .checkpoint import ModelFileError, ResumeMismatch, load_ema_model
from .ema import EMA, ema_decay
from .loop import TrainingDiverged, TrainResult, train

__all__ = ["EMA", "ModelFileError", "ResumeMismatch", "TrainResult", "TrainingDiverged", "ema_decay",
           "load_ema_model", "train"]
