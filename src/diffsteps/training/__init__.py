"""Generic training: one loop for every method, learners (one objective or two adversarial players),
EMA with warm-up, atomic resumable checkpoints. Import from the submodules (``.loop``, ``.learners``,
``.checkpoint``, ``.ema``): methods import the learners, and the loop imports methods."""
