#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the cluster tests (tests/cluster/): two partitions on one node,
# `gpu` (SLURM's default, so that a job reaches `cpu` only when the profile sends it there) and `cpu`, and one fake
# GPU (gres gpu:1 backed by /dev/null). Needs root and Debian's packages (slurm-wlm, munge: installed here when
# missing). No systemd: the daemons are started directly.
# Undo with tests/cluster/slurm-down.sh. Idempotent: a cluster already up is left as it is.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "slurm-up.sh: needs root (it installs slurm-wlm and munge and writes /etc/slurm)" >&2
    exit 2
fi
if sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
    echo "slurm-up.sh: a cluster is already up: $(sinfo -h -o '%P %T %N' | tr '\n' ' ')"
    exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
             --no-install-recommends slurm-wlm munge >/dev/null; }
fi

# munge: the key, then the daemon as user munge (it refuses to run as root)
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# slurm.conf at the default path: the executor plugin's job step strips SLURM_CONF from the environment
node=$(hostname -s)
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=diffsteps
SlurmctldHost=${node}
SlurmUser=root
AuthType=auth/munge
# no cgroups, no accounting daemon: what a container allows
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# the node's figures below override what slurmd detects, so that jobs asking for 16 CPUs or 32 GB fit
SlurmdParameters=config_overrides
GresTypes=gpu
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
# a cancelled job gets SIGTERM, then SIGKILL 5 s later (pre-emption test)
KillWait=5
# finished jobs stay in scontrol's view for an hour: the tests read them after the whole run
MinJobAge=3600
NodeName=${node} CPUs=16 Boards=1 SocketsPerBoard=1 CoresPerSocket=16 ThreadsPerCore=1 RealMemory=256000 Gres=gpu:1 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=ALL MaxTime=INFINITE State=UP
CONF
echo "Name=gpu File=/dev/null" > /etc/slurm/gres.conf

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle*|mixed*|allocated*) echo "slurm-up.sh: node $node $state; partitions: $(sinfo -h -o %P | tr '\n' ' ')"; exit 0 ;;
        down*|drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
done
echo "slurm-up.sh: node $node did not come up (state '${state:-none}'); see /var/log/slurm/slurmctld.log, slurmd.log" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
