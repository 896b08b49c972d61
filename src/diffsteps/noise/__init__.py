"""Noise processes: the forward corruption, kept apart from networks and samplers. Import from the submodules
(``.schedule``, ``.gaussian``, ``.gamma``, ...): nothing is imported here, so that the code of a job holds the noise
of its own family and no other."""
