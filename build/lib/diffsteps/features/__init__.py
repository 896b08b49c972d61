"""Feature spaces of the quality metrics: the domain classifier (trained by the pipeline), torch-fidelity's
Inception network with its offline weights, feature extraction, and the reference statistics of each
space. DDGAN's training-time probe reads the domain space too, so nothing here scores a cell: that is
:mod:`diffsteps.metrics`."""
