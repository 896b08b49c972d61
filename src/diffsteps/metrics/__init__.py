"""Metrics of sample quality. Import from the submodules: nothing is imported here, so that a job's code holds the
metrics it computes and no other."""
