#!/usr/bin/env bash
# Stops what tests/cluster/slurm-up.sh started: every job, the SLURM daemons and munged; its state is removed.
set -uo pipefail
scancel --full --user "$(id -un)" 2>/dev/null
for daemon in slurmd slurmctld munged; do
    pkill -x "$daemon" 2>/dev/null
done
running() {  # pgrep matches one process name of at most 15 characters at a time
    for daemon in slurmd slurmctld munged; do pgrep -x "$daemon" >/dev/null && return 0; done
    return 1
}
for _ in $(seq 20); do
    running || break
    sleep 0.5
done
for daemon in slurmd slurmctld munged; do
    pkill -9 -x "$daemon" 2>/dev/null
done
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
echo "slurm-down.sh: stopped"
