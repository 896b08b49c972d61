"""Generic training: one loop for every method, EMA with warm-up, atomic resumable checkpoints. Import
from the submodules (``.loop``, ``.checkpoint``, ``.ema``). How a batch updates a model (its learner)
is the method's, in :mod:`diffsteps.learners`, so this package sits above the methods, never below."""
