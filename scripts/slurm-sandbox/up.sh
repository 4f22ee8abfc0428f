#!/usr/bin/env bash
# Boot a real three-host SLURM test cluster from Debian's slurm-wlm + munge:
#   <name>-ctl  controller + login node: slurmctld, slurmdbd + MariaDB (so
#               sacct works), munge, sshd on 127.0.0.1:SSH_PORT for root.
#               Shares this machine's network namespace (like the host-tier
#               sandbox), so it has the machine's outbound network (apt, PyPI)
#               and owns the bridge address 10.77.K.254.
#   <name>-n1   compute node: slurmd + munge, own network namespace, 10.77.K.1
#   <name>-n2   compute node: slurmd + munge, own network namespace, 10.77.K.2
# Each is a systemd-nspawn container booting systemd from an overlay of the
# cached root (build-rootfs.sh). The nodes hang on a host bridge pvsbrK by a
# veth pair each (eth0 inside) and have no route beyond 10.77.K.0/24. One host
# directory is bind-mounted at /shared in all three (the cluster's shared FS);
# one munge key; the same slurm.conf everywhere.
#
# Usage: scripts/slurm-sandbox/up.sh CLUSTER_NAME
#   CLUSTER_NAME  [a-z][a-z0-9-]{0,19}, not ending in '-'; one cluster per
#                 name; several clusters can run at once (each gets its own K,
#                 ports and bridge).
#
# Environment (all optional):
#   PULUMI_VLLM_CACHE       cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm)
#   PV_SLURM_SSH_PORT       login sshd port on 127.0.0.1 (default 17002+4K)
#   PV_SLURM_BOOT_TIMEOUT   seconds to wait for ssh and for both nodes idle (default 240)
#   PV_SLURM_SHARED_DIR     host dir mounted at /shared (default
#                           $CACHE/slurm/NAME/shared, removed by down.sh; a dir
#                           given here is kept)
#   PV_SANDBOX_APT_CACHE    host dir bind-mounted on /var/cache/apt/archives in
#                           all three (default $CACHE/apt-archives; "" disables)
#   PV_SLURM_OWNER_PID      pid of the process that owns the cluster (a test
#                           runner); written with its start time to
#                           $CACHE/slurm/NAME/owner so a later run can tell an
#                           orphan (owner gone) from a cluster in use
#   PV_SLURM_KEEP_FAILED=1  leave a cluster that failed to come up running (to
#                           debug it; stop it with down.sh)
#
# Ports on this machine's network (the controller shares it): slurmctld
# 17000+4K and slurmdbd 17001+4K (all addresses; munge-authenticated), sshd
# 127.0.0.1:17002+4K; MariaDB has no TCP port (socket only). K is the lowest
# free 1..250 whose bridge, subnet and ports are all unused.
# The nodes get no resolv.conf (no DNS reachable: lookups fail at once) and
# jobs see CUDA_VISIBLE_DEVICES=0,1,2,3 from stand-in GPU device nodes.
#
# Output (stdout, last line): one line of JSON, also written to
# $CACHE/slurm/NAME/cluster.json:
#   {"name","clusterName","host":"127.0.0.1","port","user":"root","privateKey",
#    "hostKey":"ssh-ed25519 AAAA...","knownHosts","instanceDir","sharedDir":"/shared",
#    "sharedHostDir","partition":"gpu","account":"pvtest","gpusPerNode":4,
#    "cpusPerNode","subnet","bridge","slurmctldPort","slurmdbdPort",
#    "controller":{"hostname","ip"},"nodes":[{"hostname","ip"},...],
#    "pids":{"ctl","n1","n2"},"consoleLogs":{...}}
# Connect: ssh -i $privateKey -o UserKnownHostsFile=$knownHosts \
#   -o StrictHostKeyChecking=yes -o BatchMode=yes -p $port root@127.0.0.1
# A node's port P is reachable from the login node (and from this machine,
# which shares its network) at http://<name>-n1:P/ or 10.77.K.1:P.
# Stop with scripts/slurm-sandbox/down.sh CLUSTER_NAME.
#
# Needs root, systemd-container, iproute2, openssh-client, overlayfs (else it
# falls back to full copies) and, for the first build, the Debian mirror.
set -euo pipefail

log() { printf 'slurm-up: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 CLUSTER_NAME"
NAME=$1
[[ $NAME =~ ^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$ ]] || die "bad CLUSTER_NAME '$NAME' (want [a-z][a-z0-9-]{0,19}, not ending in '-')"
[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in systemd-nspawn systemctl ip ssh ssh-keygen flock; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y systemd-container iproute2 openssh-client util-linux)"
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
mkdir -p "$CACHE/slurm"
CACHE=$(cd "$CACHE" && pwd -P)
INST="$CACHE/slurm/$NAME"
TIMEOUT=${PV_SLURM_BOOT_TIMEOUT:-240}
APT_CACHE=${PV_SANDBOX_APT_CACHE-$CACHE/apt-archives}
CLUSTER=${NAME//-/_}
CTL="$NAME-ctl"
NODES=("$NAME-n1" "$NAME-n2")
ROLES=(ctl n1 n2)
PARTITION=gpu
ACCOUNT=pvtest
GPUS=4
CPUS=$(nproc)

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

if [[ -e $INST ]]; then
  running=0
  for r in "${ROLES[@]}"; do
    if [[ -f $INST/$r/pid ]] && kill -0 "$(cat "$INST/$r/pid")" 2>/dev/null; then running=1; fi
  done
  (( running == 0 )) || die "cluster '$NAME' is already running; stop it with $HERE/down.sh $NAME"
  log "removing a stale instance $INST"
  "$HERE/down.sh" "$NAME" >&2
fi

t0=$(date +%s%N)
LAYER=$("$HERE/build-rootfs.sh" | tail -n 1)
[[ -d $LAYER && -f $LAYER/.pv-rootfs-complete ]] || die "build-rootfs.sh did not give a root dir"
t_build=$(ms_since "$t0")

# From here on, a failure tears down what was made.
ok=0
on_exit() {
  if (( ok == 0 )); then
    log "boot failed; cleaning up (logs were under $INST)"
    for r in "${ROLES[@]}"; do
      if [[ -f $INST/$r/console.log ]]; then
        log "--- last lines of $r console ---"; tail -n 25 "$INST/$r/console.log" >&2 || true
      fi
    done
    if [[ ${PV_SLURM_KEEP_FAILED:-0} != 1 ]]; then "$HERE/down.sh" "$NAME" >&2 || true; fi
  fi
}
trap on_exit EXIT

# ---- pick K: a free 10.77.K.0/24, bridge name and ports; make the bridge -------
exec 8>"$CACHE/slurm/.alloc.lock"
flock 8
K=
for k in $(seq 1 250); do
  ip link show "pvsbr$k" >/dev/null 2>&1 && continue
  ip -4 -o addr show | grep -q " 10\.77\.$k\." && continue
  ip -4 route show | grep -q "^10\.77\.$k\." && continue
  grep -qsx "$k" "$CACHE"/slurm/*/k && continue
  p=$(( 17000 + 4 * k ))
  ssh_port=${PV_SLURM_SSH_PORT:-$(( p + 2 ))}
  if port_taken "$p" || port_taken $(( p + 1 )) || port_taken "$ssh_port"; then continue; fi
  K=$k
  break
done
[[ -n $K ]] || die "no free 10.77.K.0/24 with free ports 17000+4K.. (K in 1..250)"
CTLD_PORT=$(( 17000 + 4 * K ))
DBD_PORT=$(( CTLD_PORT + 1 ))
SSH_PORT=${PV_SLURM_SSH_PORT:-$(( CTLD_PORT + 2 ))}
if ! [[ $SSH_PORT =~ ^[0-9]+$ ]] || (( SSH_PORT < 1024 || SSH_PORT > 65535 )); then
  die "bad PV_SLURM_SSH_PORT '$SSH_PORT'"
fi
BR="pvsbr$K"
SUBNET="10.77.$K.0/24"
CTL_IP="10.77.$K.254"
NODE_IPS=("10.77.$K.1" "10.77.$K.2")
mkdir -p "$INST"
printf '%s\n' "$K" >"$INST/k"
if [[ -n ${PV_SLURM_OWNER_PID:-} ]]; then
  [[ $PV_SLURM_OWNER_PID =~ ^[0-9]+$ && -r /proc/$PV_SLURM_OWNER_PID/stat ]] || die "PV_SLURM_OWNER_PID=$PV_SLURM_OWNER_PID is not a running process"
  # field 22 of /proc/PID/stat (after the "(comm)" field) = start time in ticks
  owner_start=$(sed 's/.*) //' "/proc/$PV_SLURM_OWNER_PID/stat" | cut -d' ' -f20)
  printf '%s %s\n' "$PV_SLURM_OWNER_PID" "$owner_start" >"$INST/owner"
fi
ip link add "$BR" type bridge
printf '%s\n' "$BR" >"$INST/bridge"
flock -u 8
exec 8>&-

# ---- network: bridge + one veth pair and network namespace per node ------------
# Configured from here: these hosts run no udev, and nspawn's own
# --network-interface refuses links udev has not initialized ("Network
# interface X is not initialized yet").
ip addr add "$CTL_IP/24" dev "$BR"
ip link set "$BR" up
for i in 1 2; do
  ns="pvs${K}n$i"; hv="pvs${K}n$i"
  ip netns add "$ns"
  printf '%s\n' "$ns" >>"$INST/netns"
  ip link add "$hv" type veth peer name eth0 netns "$ns"
  printf '%s\n' "$hv" >>"$INST/veths"
  ip link set "$hv" master "$BR"
  ip link set "$hv" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${NODE_IPS[$((i - 1))]}/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# ---- shared FS, keys ------------------------------------------------------------
SHARED_HOST=${PV_SLURM_SHARED_DIR:-$INST/shared}
mkdir -p "$SHARED_HOST"
SHARED_HOST=$(cd "$SHARED_HOST" && pwd -P)
chmod 1777 "$SHARED_HOST"
MUNGE_KEY="$INST/munge.key"
( umask 077; head -c 1024 /dev/urandom >"$MUNGE_KEY" )
KEY="$INST/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C "pv-slurm-$NAME-client" -f "$KEY"

# ---- per-container roots -----------------------------------------------------------
overlay_ok=1
make_root() { # role -> $INST/role/root (overlay on the layer, else a copy)
  local d="$INST/$1"
  mkdir -p "$d/upper" "$d/work" "$d/root"
  if (( overlay_ok )) && mount -t overlay "pvs-$NAME-$1" \
      -o "lowerdir=$LAYER,upperdir=$d/upper,workdir=$d/work" "$d/root" 2>/dev/null; then
    : >"$d/overlay"
  else
    overlay_ok=0
    rm -rf "$d/upper" "$d/work"
    rmdir "$d/root"
    cp -a --reflink=auto "$LAYER" "$d/root"
  fi
  chmod 755 "$d/root"
}
hosts_file() {
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n'
  printf '%s\t%s\n' "$CTL_IP" "$CTL" "${NODE_IPS[0]}" "${NODES[0]}" "${NODE_IPS[1]}" "${NODES[1]}"
}
slurm_conf() {
  cat <<EOF
# written by pulumi-vllm scripts/slurm-sandbox/up.sh for test cluster $NAME
ClusterName=$CLUSTER
SlurmctldHost=$CTL($CTL_IP)
SlurmctldPort=$CTLD_PORT
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups inside nspawn: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$CTL
AccountingStoragePort=$DBD_PORT
AccountingStorageEnforce=associations,limits
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmctldDebug=info
SlurmdDebug=info
# Stand-ins: no real GPUs, Gres=gpu:$GPUS is the scheduler's view only.
NodeName=${NODES[0]} NodeAddr=${NODE_IPS[0]} CPUs=$CPUS RealMemory=1024 Gres=gpu:$GPUS State=UNKNOWN
NodeName=${NODES[1]} NodeAddr=${NODE_IPS[1]} CPUs=$CPUS RealMemory=1024 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=04:00:00 DefaultTime=01:00:00 State=UP
EOF
}
gres_conf() {
  # File= is required for GPUs (22.05 drops file-less ones): stand-in char
  # devices made by build-rootfs.sh.
  printf 'AutoDetect=off\nNodeName=%s,%s Name=gpu File=/var/lib/pv-fake-gpu/nvidia[0-%s]\n' \
    "${NODES[0]}" "${NODES[1]}" "$((GPUS - 1))"
}

tc=$(date +%s%N)
MUNGE_UID=
for r in "${ROLES[@]}"; do
  make_root "$r"
  R="$INST/$r/root"
  case $r in ctl) host=$CTL ;; n1) host=${NODES[0]} ;; n2) host=${NODES[1]} ;; esac
  printf '%s\n' "$host" >"$R/etc/hostname"
  tr -d '-' </proc/sys/kernel/random/uuid >"$R/etc/machine-id"
  hosts_file >"$R/etc/hosts"
  [[ -n $MUNGE_UID ]] || MUNGE_UID=$(awk -F: '$1=="munge"{print $3":"$4}' "$R/etc/passwd")
  install -m 400 -o "${MUNGE_UID%:*}" -g "${MUNGE_UID#*:}" "$MUNGE_KEY" "$R/etc/munge/munge.key"
  slurm_conf >"$R/etc/slurm/slurm.conf"
  gres_conf >"$R/etc/slurm/gres.conf"
  chmod 644 "$R/etc/slurm/slurm.conf" "$R/etc/slurm/gres.conf"
  mkdir -p "$R/shared"
  install -d -m 700 "$R/root/.ssh"
  # Unit drop-ins: restart on failure; order behind what each daemon needs.
  for u in slurmctld slurmd slurmdbd; do
    mkdir -p "$R/etc/systemd/system/$u.service.d"
  done
done
t_roots=$(ms_since "$tc")

# Controller + login node.
R="$INST/ctl/root"
rm -f "$R"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C "pv-slurm-$NAME-host" -f "$R/etc/ssh/ssh_host_ed25519_key"
HOSTKEY=$(cut -d' ' -f1,2 "$R/etc/ssh/ssh_host_ed25519_key.pub")
KNOWN="$INST/known_hosts"
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$HOSTKEY" >"$KNOWN"
install -m 600 "$KEY.pub" "$R/root/.ssh/authorized_keys"
cat >"$R/etc/ssh/sshd_config.d/pv-slurm.conf" <<EOF
# written by pulumi-vllm scripts/slurm-sandbox/up.sh for cluster $NAME
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
cat >"$R/etc/slurm/slurmdbd.conf" <<EOF
# written by pulumi-vllm scripts/slurm-sandbox/up.sh for cluster $NAME
AuthType=auth/munge
DbdHost=$CTL
DbdPort=$DBD_PORT
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
# MariaDB over its socket; the slurm DB user authenticates by unix_socket
# (no password anywhere).
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
chown "$(awk -F: '$1=="slurm"{print $3":"$4}' "$R/etc/passwd")" "$R/etc/slurm/slurmdbd.conf"
chmod 600 "$R/etc/slurm/slurmdbd.conf"
cat >"$R/etc/systemd/system/pv-slurmdb-setup.service" <<'EOF'
[Unit]
Description=pulumi-vllm: MariaDB user and database for slurmdbd
Requires=mariadb.service
After=mariadb.service
Before=slurmdbd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

[Install]
WantedBy=multi-user.target
EOF
cat >"$R/etc/systemd/system/slurmdbd.service.d/pv.conf" <<'EOF'
[Unit]
Requires=pv-slurmdb-setup.service
After=pv-slurmdb-setup.service
[Service]
Restart=on-failure
RestartSec=2
EOF
# The cluster, the test account and root's association go into the DB before
# slurmctld first starts (which also makes slurmdbd answer before it: it
# reads the TRES list from there), so it loads them at startup. Added while
# it runs, they would reach it only by slurmdbd's asynchronous push, which
# needs the cluster registered with its control address first: racy.
cat >"$R/usr/local/sbin/pv-slurm-accounts" <<EOF
#!/bin/bash
# written by pulumi-vllm scripts/slurm-sandbox/up.sh for cluster $NAME
set -euo pipefail
for _ in \$(seq 1 240); do
  (exec 3<>/dev/tcp/$CTL_IP/$DBD_PORT) 2>/dev/null && break
  sleep 0.5
done
for _ in \$(seq 1 60); do
  sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1 && break
  sleep 1
done
sacctmgr -n -P show cluster format=cluster | grep -qx '$CLUSTER' ||
  sacctmgr -i add cluster '$CLUSTER' >/dev/null
sacctmgr -n -P show account format=account | grep -qx '$ACCOUNT' ||
  sacctmgr -i add account '$ACCOUNT' cluster='$CLUSTER' description=pulumi-vllm-tests organization=pulumi-vllm >/dev/null
sacctmgr -n -P show assoc where cluster='$CLUSTER' user=root account='$ACCOUNT' format=account | grep -qx '$ACCOUNT' ||
  sacctmgr -i add user root account='$ACCOUNT' cluster='$CLUSTER' >/dev/null
EOF
chmod 755 "$R/usr/local/sbin/pv-slurm-accounts"
cat >"$R/etc/systemd/system/pv-slurm-accounts.service" <<'UNIT'
[Unit]
Description=pulumi-vllm: cluster, test account and root association in slurmdbd
Requires=slurmdbd.service
After=slurmdbd.service
Before=slurmctld.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/pv-slurm-accounts
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
UNIT
cat >"$R/etc/systemd/system/slurmctld.service.d/pv.conf" <<'UNIT'
[Unit]
Wants=pv-slurm-accounts.service
After=pv-slurm-accounts.service
[Service]
Restart=on-failure
RestartSec=2
UNIT
systemctl --root="$R" enable mariadb.service pv-slurmdb-setup.service slurmdbd.service \
  pv-slurm-accounts.service slurmctld.service >/dev/null 2>&1

# Compute nodes.
for i in 1 2; do
  R="$INST/n$i/root"
  cat >"$R/etc/systemd/system/slurmd.service.d/pv.conf" <<'EOF'
[Service]
Restart=on-failure
RestartSec=2
EOF
  systemctl --root="$R" disable ssh.service >/dev/null 2>&1 || true
  systemctl --root="$R" enable slurmd.service >/dev/null 2>&1
done

# ---- boot ---------------------------------------------------------------------------------
tb=$(date +%s%N)
boot() { # role, extra nspawn args...
  local r=$1; shift
  local d="$INST/$r"
  local args=(
    -D "$d/root" -b --register=no --keep-unit
    --machine="pvs-$NAME-$r" --link-journal=no
    --console=read-only
    --bind="$SHARED_HOST:/shared"
    "$@"
  )
  if [[ -n $APT_CACHE ]]; then
    mkdir -p "$APT_CACHE/partial"
    args+=(--bind="$APT_CACHE:/var/cache/apt/archives")
  fi
  setsid systemd-nspawn "${args[@]}" </dev/null >"$d/console.log" 2>&1 &
  printf '%s\n' "$!" >"$d/pid"
}
# Nodes: no DNS server reachable, so no resolv.conf (lookups fail at once
# instead of timing out); names come from /etc/hosts.
boot n1 --network-namespace-path="/run/netns/pvs${K}n1" --resolv-conf=delete
boot n2 --network-namespace-path="/run/netns/pvs${K}n2" --resolv-conf=delete
boot ctl --resolv-conf=copy-host
log "booting $NAME: K=$K ($SUBNET, bridge $BR), ssh 127.0.0.1:$SSH_PORT, slurmctld :$CTLD_PORT, slurmdbd :$DBD_PORT (layer ${t_build}ms, roots ${t_roots}ms)"

ssh_opts=(
  -i "$KEY" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes
  -o UserKnownHostsFile="$KNOWN" -o GlobalKnownHostsFile=/dev/null
  -o IdentitiesOnly=yes -o ConnectTimeout=5 -o LogLevel=ERROR
)
# shellcheck disable=SC2029 # commands are built here on purpose
login() { ssh "${ssh_opts[@]}" root@127.0.0.1 "$@" </dev/null; }
alive() {
  local r
  for r in "${ROLES[@]}"; do
    kill -0 "$(cat "$INST/$r/pid")" 2>/dev/null || { log "systemd-nspawn of $r exited (log: $INST/$r/console.log)"; return 1; }
  done
}
deadline=$(( $(date +%s) + TIMEOUT ))
until login true 2>/dev/null; do
  alive || die "cluster '$NAME': a container exited before sshd answered"
  (( $(date +%s) < deadline )) || die "cluster '$NAME': sshd did not answer on 127.0.0.1:$SSH_PORT within ${TIMEOUT}s"
  sleep 0.5
done
t_ssh=$(ms_since "$tb")
# Record each container's init (nspawn's child, PID 1 of the container) with
# its start time: if nspawn itself dies, the init and its daemons live on
# (reparented), and down.sh must still be able to end exactly them.
for r in "${ROLES[@]}"; do
  npid=$(cat "$INST/$r/pid")
  for _ in $(seq 1 50); do
    init=$(ps -o pid= --ppid "$npid" | head -n 1 | tr -d ' ')
    [[ -n $init ]] && break
    sleep 0.1
  done
  [[ -n $init ]] || die "cluster '$NAME': no init process under nspawn $npid ($r)"
  printf '%s %s\n' "$init" "$(sed 's/.*) //' "/proc/$init/stat" | cut -d' ' -f20)" >"$INST/$r/init"
done

# Accounting is ready when slurmctld itself knows root in the test account (it
# loads the associations pv-slurm-accounts put into slurmdbd at its start).
# Then wait until both nodes are idle.
acct_ready="scontrol show assoc_mgr flags=assoc accounts=$ACCOUNT users=root | grep -q 'UserName=root('"
until login "$acct_ready" 2>"$INST/acct.err"; do
  alive || die "cluster '$NAME': a container exited while waiting for slurmdbd"
  if (( $(date +%s) >= deadline )); then
    cat "$INST/acct.err" >&2
    login 'systemctl --failed --no-pager; systemctl status --no-pager pv-slurm-accounts | tail -n 15
      sacctmgr -n show cluster format=cluster,controlhost,controlport; sacctmgr -n show assoc format=cluster,account,user
      tail -n 20 /var/log/slurm/slurmdbd.log /var/log/slurm/slurmctld.log' >&2 || true
    die "cluster '$NAME': accounting (slurmdbd) not ready within ${TIMEOUT}s"
  fi
  sleep 1
done
t_acct=$(ms_since "$tb")
until [[ $(login "sinfo -h -N -p $PARTITION -o '%N %t' 2>/dev/null | sort -u" 2>/dev/null || true) == "${NODES[0]} idle"$'\n'"${NODES[1]} idle" ]]; do
  alive || die "cluster '$NAME': a container exited while waiting for the nodes"
  if (( $(date +%s) >= deadline )); then
    login 'sinfo -N -l; scontrol show nodes | grep -E "NodeName|State|Reason"; tail -n 20 /var/log/slurm/slurmctld.log' >&2 || true
    die "cluster '$NAME': nodes not idle within ${TIMEOUT}s"
  fi
  sleep 1
done
log "cluster '$NAME' is up in $(ms_since "$t0")ms (ssh ${t_ssh}ms, accounting ${t_acct}ms, nodes idle $(ms_since "$tb")ms after boot)"

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
JSON=$(
  printf '{"name":%s,"clusterName":%s,"host":"127.0.0.1","port":%s,"user":"root",' "$(json_str "$NAME")" "$(json_str "$CLUSTER")" "$SSH_PORT"
  printf '"privateKey":%s,"hostKey":%s,"knownHosts":%s,"instanceDir":%s,' "$(json_str "$KEY")" "$(json_str "$HOSTKEY")" "$(json_str "$KNOWN")" "$(json_str "$INST")"
  printf '"sharedDir":"/shared","sharedHostDir":%s,"partition":%s,"account":%s,"gpusPerNode":%s,"cpusPerNode":%s,' \
    "$(json_str "$SHARED_HOST")" "$(json_str "$PARTITION")" "$(json_str "$ACCOUNT")" "$GPUS" "$CPUS"
  printf '"subnet":%s,"bridge":%s,"slurmctldPort":%s,"slurmdbdPort":%s,' "$(json_str "$SUBNET")" "$(json_str "$BR")" "$CTLD_PORT" "$DBD_PORT"
  printf '"controller":{"hostname":%s,"ip":%s},' "$(json_str "$CTL")" "$(json_str "$CTL_IP")"
  printf '"nodes":[{"hostname":%s,"ip":%s},{"hostname":%s,"ip":%s}],' \
    "$(json_str "${NODES[0]}")" "$(json_str "${NODE_IPS[0]}")" "$(json_str "${NODES[1]}")" "$(json_str "${NODE_IPS[1]}")"
  printf '"pids":{"ctl":%s,"n1":%s,"n2":%s},' "$(cat "$INST/ctl/pid")" "$(cat "$INST/n1/pid")" "$(cat "$INST/n2/pid")"
  printf '"consoleLogs":{"ctl":%s,"n1":%s,"n2":%s}}' \
    "$(json_str "$INST/ctl/console.log")" "$(json_str "$INST/n1/console.log")" "$(json_str "$INST/n2/console.log")"
)
printf '%s\n' "$JSON" >"$INST/cluster.json"
ok=1
printf '%s\n' "$JSON"
