#!/usr/bin/env bash
# Stops what tests/cluster/slurm-up.sh started: every job, the SLURM daemons and munged; its state is removed.
set -uo pipefail
scancel --full --user "$(id -un)" 2>/dev/null
for daemon in slurmd slurmctld munged; do
    pkill -x "$daemon" 2>/dev/null
done
for _ in $(seq 20); do
    pgrep -x 'slurmd|slurmctld|munged' >/dev/null || break
    sleep 0.5
done
pkill -9 -x 'slurmd|slurmctld|munged' 2>/dev/null
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
echo "slurm-down.sh: stopped"
