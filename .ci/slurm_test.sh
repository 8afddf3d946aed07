#!/usr/bin/env bash
# Run a Snakemake workflow through the SLURM profile (workflow/profiles/slurm) on a real, one-node
# SLURM cluster started on this machine, and check that its jobs went through sbatch.
#
#   bash .ci/slurm_test.sh [SNAKEFILE] [CONFIGFILE|-] [EXPECTED_OUTPUT...]
#
# SNAKEFILE        default tests/slurm/Snakefile (a three-rule workflow, one rule with gpu=1)
# CONFIGFILE       passed as --configfile; `-` or empty for none
# EXPECTED_OUTPUT  paths relative to the working directory that must exist afterwards
#                  (default for tests/slurm/Snakefile: its four outputs)
#
# Environment:
#   SLURM_TEST_WORKDIR  run the workflow there and keep it (default: a temporary folder,
#                       removed at exit). Relative paths are taken from the current directory.
#   SLURM_TEST_PROFILE  profile folder to test (default workflow/profiles/slurm)
#   SLURM_TEST_TIMEOUT  seconds the Snakemake run may take (default 480)
#   SLURM_TEST_SNAKEMAKE_ARGS  extra Snakemake arguments, split on blanks (e.g.
#                       --replace-workflow-config, so a tiny CONFIGFILE replaces the embedded
#                       config/config.yaml instead of being merged into it)
#   VENV                Python environment with Snakemake (default .venv of the repository)
#
# Needs root on Debian/Ubuntu: installs slurm-wlm and munge with apt-get when missing, and
# snakemake-executor-plugin-slurm (version pinned in constraints.txt) into $VENV when missing.
# Everything else lives in a temporary folder: munged on its own socket and key, slurmctld and
# slurmd on free ports with their own state, spool and log files, and no accounting database
# (so the plugin polls job states with squeue; MinJobAge keeps finished jobs visible to it).
# The node advertises one fake GPU (gres/gpu backed by /dev/null), so jobs of rules that
# declare `resources: gpu=1` are submitted with --gpus=1 exactly as on a real cluster, and
# their job step gets CUDA_VISIBLE_DEVICES from SLURM. Client commands (sbatch, squeue, srun,
# ...) find the temporary slurm.conf through wrappers put first on PATH; /etc is not touched.
# The daemons this script started are always stopped at exit. Idempotent; about a minute.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
PROFILE=${SLURM_TEST_PROFILE:-$ROOT/workflow/profiles/slurm}
RUN_TIMEOUT=${SLURM_TEST_TIMEOUT:-480}
PLUGIN=snakemake-executor-plugin-slurm
PLUGIN_FALLBACK_VERSION=2.8.0   # the version constraints.txt pins, in case the line is absent

log() { printf '[slurm_test] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

abspath() { # print an absolute path for $1 (need not exist)
    case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac
}

# ---------------------------------------------------------------- arguments
SNAKEFILE=$(abspath "${1:-$ROOT/tests/slurm/Snakefile}")
CONFIGFILE=${2:-}
[[ $CONFIGFILE == - ]] && CONFIGFILE=
[[ -n $CONFIGFILE ]] && CONFIGFILE=$(abspath "$CONFIGFILE")
EXPECTED=("${@:3}")
if [[ ${#EXPECTED[@]} -eq 0 && $SNAKEFILE == "$ROOT/tests/slurm/Snakefile" ]]; then
    EXPECTED=(out/data/a.txt out/data/b.txt out/model.txt out/summary.txt)
fi
[[ -f $SNAKEFILE ]] || die "no Snakefile at $SNAKEFILE"
[[ -z $CONFIGFILE || -f $CONFIGFILE ]] || die "no config file at $CONFIGFILE"
[[ -f $PROFILE/config.yaml ]] || die "no profile at $PROFILE/config.yaml"
[[ $(uname -s) == Linux ]] || die "needs Linux"
[[ $(id -u) -eq 0 ]] || die "needs root (installs packages, runs slurmctld/slurmd as root)"
[[ -x $PY ]] || die "no Python environment at $VENV (run: make setup)"

# ---------------------------------------------------------------- installs (only when missing)
missing=()
for tool in sbatch squeue scancel scontrol sinfo srun slurmctld slurmd; do
    command -v "$tool" >/dev/null || { missing+=(slurm-wlm); break; }
done
command -v munged >/dev/null || missing+=(munge)
if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || die "slurm/munge missing and no apt-get to install them"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

want=$(sed -n "s/^$PLUGIN==\([^ ;#]*\).*/\1/p" "$ROOT/constraints.txt" 2>/dev/null | head -n1)
want=${want:-$PLUGIN_FALLBACK_VERSION}
have=$("$PY" -c "import importlib.metadata as m; print(m.version('$PLUGIN'))" 2>/dev/null || true)
if [[ $have != "$want" ]]; then
    log "installing $PLUGIN==$want into $VENV (found: ${have:-none})"
    constraints=()
    [[ -f $ROOT/constraints.txt ]] && constraints=(-c "$ROOT/constraints.txt")
    "$PY" -m pip install --quiet "${constraints[@]}" "$PLUGIN==$want"
fi

# ---------------------------------------------------------------- scratch folder, cleanup
TMP=$(mktemp -d /tmp/slurm-test.XXXXXX)
chmod 0755 "$TMP"
mkdir -p "$TMP"/{etc,bin,state,spool,run,log,munge}
chmod 0711 "$TMP/munge"   # munged: others need execute permission to reach the socket
if [[ -n ${SLURM_TEST_WORKDIR:-} ]]; then
    WORKDIR=$(abspath "$SLURM_TEST_WORKDIR")
else
    WORKDIR=$TMP/work
fi
mkdir -p "$WORKDIR"

PIDS=()     # daemons started here, stopped in reverse order
SMK_PID=    # the Snakemake run, while it runs
cleanup() {
    local rc=$?
    set +e
    if [[ -n ${SMK_PID:-} ]] && kill -0 "$SMK_PID" 2>/dev/null; then
        log "interrupting snakemake"
        kill -INT "$SMK_PID" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$SMK_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$SMK_PID" 2>/dev/null
        wait "$SMK_PID" 2>/dev/null
    fi
    if [[ -x $TMP/bin/squeue ]] && [[ ${#PIDS[@]} -gt 0 ]]; then
        # cancel whatever is still queued or running, so no job step outlives slurmd
        local ids
        ids=$("$TMP/bin/squeue" -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null)
        if [[ -n $ids ]]; then
            # shellcheck disable=SC2086
            "$TMP/bin/scancel" $ids 2>/dev/null
            for _ in $(seq 20); do
                [[ -z $("$TMP/bin/squeue" -h -t RUNNING,COMPLETING -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ $rc -ne 0 ]]; then
        log "failed (exit $rc); daemon logs follow"
        for f in "$TMP"/log/*.log; do
            [[ -f $f ]] && { echo "----- $f (tail)"; tail -n 40 "$f"; } >&2
        done
        for f in "$WORKDIR"/.snakemake/slurm_logs/*/*/*.log; do
            [[ -f $f ]] && { echo "----- $f"; tail -n 60 "$f"; } >&2
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- munge
MUNGE_SOCKET=$TMP/munge/munge.socket
dd if=/dev/urandom of="$TMP/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$TMP/munge/munge.key"
munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$TMP/munge/munge.key" \
    --pid-file="$TMP/run/munged.pid" --seed-file="$TMP/munge/munged.seed" \
    --log-file="$TMP/log/munged.log" >>"$TMP/log/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
    munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 && break
    sleep 0.2
done
munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null || die "munged did not start"

# ---------------------------------------------------------------- slurm.conf
NODE=$(hostname -s)
# CPUs, sockets, cores, threads and memory as slurmd detects them on this machine
HW=$(slurmd -C | sed -n 's/^NodeName=[^ ]* //p' | head -n1)
[[ -n $HW ]] || die "slurmd -C did not describe this node"
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
REALMEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
HW=${HW/RealMemory=$REALMEM/}
# Advertise at least 256 GB so the profile's memory requests (sbatch --mem) fit as written;
# memory is not a consumable resource here (CR_CPU) and config_overrides keeps slurmd from
# draining the node for having less than configured.
MEM=$(( REALMEM > 262144 ? REALMEM : 262144 ))
read -r CTLD_PORT SLURMD_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

CONF=$TMP/etc/slurm.conf
cat >"$CONF" <<EOF
# one-node test cluster written by .ci/slurm_test.sh
ClusterName=snaketest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/run/slurmctld.pid
SlurmdPidFile=$TMP/run/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups (containers), no accounting daemon
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
PropagateResourceLimits=NONE
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
# finished jobs stay visible to squeue (the plugin's status command here) for an hour
MinJobAge=3600
InactiveLimit=0
KillWait=5
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 $HW RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
# a fake GPU: counted and allocated by SLURM; /dev/null stands in for its device file
cat >"$TMP/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu Count=1 File=/dev/null
EOF

# Client commands read SLURM_CONF. The plugin's job-step executor removes SLURM_* variables
# before it calls srun inside a job, so wrappers on PATH pin the config for every call.
for tool in sbatch srun squeue scancel scontrol sinfo sacct sacctmgr sshare salloc; do
    real=$(command -v "$tool" || true)
    [[ -n $real ]] || continue
    printf '#!/bin/sh\nSLURM_CONF=%s\nexport SLURM_CONF\nexec %s "$@"\n' "$CONF" "$real" \
        >"$TMP/bin/$tool"
    chmod 0755 "$TMP/bin/$tool"
done
export SLURM_CONF=$CONF
export PATH=$TMP/bin:$VENV/bin:$PATH
# sbatch exports this environment to the jobs: a GPU they see must come from SLURM
unset CUDA_VISIBLE_DEVICES

# ---------------------------------------------------------------- daemons
slurmctld -D -i -f "$CONF" >>"$TMP/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$CONF" -N "$NODE" >>"$TMP/log/slurmd.out" 2>&1 &
PIDS+=($!)

state=
for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n1 || true)
    [[ $state == idle ]] && break
    [[ $state == inval || $state == drain* ]] && die "node $NODE is '$state' (see slurmctld.log)"
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a SLURM daemon exited"; done
    sleep 0.5
done
[[ $state == idle ]] || die "node $NODE is '${state:-unknown}', not idle, after 60 s"
log "SLURM up: node $NODE ($CPUS CPUs, 1 fake GPU), slurmctld port $CTLD_PORT"

# ---------------------------------------------------------------- the workflow
# The working folder gets the workflow's config/ folder (if any), so that a Snakefile's own
# `configfile: "config/config.yaml"` resolves as it does from the repository root.
SRCCONF=$(dirname "$SNAKEFILE")/../config
if [[ -d $SRCCONF && ! -e $WORKDIR/config ]]; then
    ln -s "$(cd "$SRCCONF" && pwd)" "$WORKDIR/config"
fi
cmd=(snakemake --snakefile "$SNAKEFILE" --directory "$WORKDIR" --profile "$PROFILE")
[[ -n $CONFIGFILE ]] && cmd+=(--configfile "$CONFIGFILE")
read -r -a extra <<<"${SLURM_TEST_SNAKEMAKE_ARGS:-}"
cmd+=("${extra[@]}")
# test-only executor settings: squeue instead of sacct (no accounting daemon), first status
# check after 5 s instead of 40 s, keep every job's SLURM log for the checks below
cmd+=(--slurm-status-command squeue --slurm-init-seconds-before-status-checks 5
    --slurm-keep-successful-logs)
log "running: ${cmd[*]}"
start=$SECONDS
# in the background, so that a signal to this script is handled at once (cleanup interrupts
# Snakemake, which then scancels its jobs) instead of after Snakemake returns
timeout --signal=INT --kill-after=30 "$RUN_TIMEOUT" "${cmd[@]}" &
SMK_PID=$!
rc=0
wait "$SMK_PID" || rc=$?
SMK_PID=
[[ $rc -eq 0 ]] || die "snakemake failed (exit $rc$([[ $rc -eq 124 ]] && echo ", timed out"))"
log "snakemake finished in $((SECONDS - start)) s"

# ---------------------------------------------------------------- checks
fail=0
for out in "${EXPECTED[@]}"; do
    if [[ -e $WORKDIR/$out ]]; then
        log "ok: $out"
    else
        log "MISSING: $out"
        fail=1
    fi
done

# every job this run submitted: id|name|state|comment (the plugin's comment is rule_<name>...)
jobs=$(squeue -h -t all -o '%i|%j|%T|%k')
printf '%s\n' "$jobs" | sed 's/^/[slurm_test] squeue: /' >&2
[[ -n $jobs ]] || { log "no SLURM job was submitted"; fail=1; }
if grep -qv '|COMPLETED|' <<<"$jobs"; then
    log "not every SLURM job completed"
    fail=1
fi
allocated=$(grep -c 'sched: Allocate JobId=' "$TMP/log/slurmctld.log" || true)
njobs=$(grep -c . <<<"$jobs" || true)
log "slurmctld allocated $allocated job(s); squeue lists $njobs"
[[ $allocated -ge 1 && $allocated -ge $njobs ]] || fail=1

# jobs of rules that declare resources: gpu=N must have asked SLURM for N GPUs
gpu_rules=$(
    cd "$WORKDIR" && snakemake --snakefile "$SNAKEFILE" --profile "$PROFILE" \
        ${CONFIGFILE:+--configfile "$CONFIGFILE"} "${extra[@]}" --forceall -n 2>&1 |
        awk '/^(local)?rule [^ ]+:$/ {r=$NF; sub(":","",r)} /resources:.*gpu=[1-9]/ {print r}' |
        sort -u
)
log "rules declaring a gpu: ${gpu_rules:-none}"
if [[ $SNAKEFILE == "$ROOT/tests/slurm/Snakefile" && $gpu_rules != *train* ]]; then
    log "could not list the rules that declare a gpu"
    fail=1
fi
for rule in $gpu_rules; do
    ids=$(awk -F'|' -v r="rule_$rule" '$4==r || index($4, r"_wildcards_")==1 {print $1}' <<<"$jobs")
    [[ -n $ids ]] || continue   # not run this time
    for id in $ids; do
        if scontrol show job "$id" | grep -Eq 'gres/gpu=[1-9]|gres:gpu:[1-9]|gpu:[1-9]'; then
            log "ok: job $id (rule $rule) was allocated a GPU"
        else
            log "job $id (rule $rule) declares gpu but did not request one from SLURM"
            scontrol show job "$id" >&2
            fail=1
        fi
    done
done
[[ $fail -eq 0 ]] || die "checks failed"
log "PASS: $njobs SLURM job(s), all outputs present"
