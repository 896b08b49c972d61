"""The study on a real SLURM cluster: tests/cluster/slurm-up.sh brings up a single-node one (with one fake GPU),
which .ci/run starts before the suite; without a cluster these tests skip, and fail when CI is set."""
