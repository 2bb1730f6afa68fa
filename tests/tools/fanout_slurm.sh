#!/usr/bin/env bash
# Fan-out with a real Slurm: starts munged, slurmctld and slurmd (Debian munge, slurm-wlm) in a
# temporary directory on loopback, submits scripts/fanout/slurm-array.sbatch as an array of 3
# tasks (sbatch --array=0-2 --wait), merges the parts and compares the result with a
# one-machine build (same samples, same bytes). The daemons are stopped by their pid files when
# the test ends, whatever happens.
set -euo pipefail
: "${S2S_BIN:?set S2S_BIN to the built tools}" "${S2S_SRC:?set S2S_SRC to the source root}"
missing=
for t in munged munge slurmctld slurmd sbatch sinfo; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || missing="$missing $t"
done
if [ -n "$missing" ]; then
  if [ "${CI:-}" = true ]; then
    echo "fanout_slurm.sh: FAIL: not installed:$missing (scripts/install-deps.sh installs slurm-wlm and munge)" >&2
    exit 1
  fi
  echo "fanout_slurm.sh: not installed:$missing: Slurm fan-out not tested here (apt-get install slurm-wlm munge; under CI=true this fails)" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "fanout_slurm.sh: FAIL: needs root to start slurmd" >&2
    exit 1
  fi
  echo "fanout_slurm.sh: not root: a private slurmd cannot be started; not tested here" >&2
  exit 0
fi
PATH=$PATH:/usr/sbin
B=$S2S_BIN
tmp=$(mktemp -d)
chmod 755 "$tmp" # munged wants its socket directory reachable by everyone
stop_daemons() {
  for f in slurmd slurmctld munged; do
    pid=$(cat "$tmp/run/$f.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  # give them a moment to exit before their files are removed
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=0
    for f in slurmd slurmctld munged; do
      pid=$(cat "$tmp/run/$f.pid" 2>/dev/null || true) # the daemon removes it as it exits
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.3
  done
}
trap 'stop_daemons; rm -rf "$tmp"' EXIT
fail() {
  echo "fanout_slurm.sh: FAIL: $*" >&2
  for f in "$tmp"/log/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
mkdir -p "$tmp/run" "$tmp/key" "$tmp/state" "$tmp/spool" "$tmp/log" "$tmp/out"
chmod 700 "$tmp/key"
# munge: our own key and socket (the system's munged, if any, is not touched)
dd if=/dev/urandom of="$tmp/key/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/key/munge.key"
munged --socket="$tmp/run/munge.sock" --key-file="$tmp/key/munge.key" --log-file="$tmp/log/munged.log" \
  --pid-file="$tmp/run/munged.pid" --seed-file="$tmp/key/seed" || fail "munged did not start"
munge -S "$tmp/run/munge.sock" -n | unmunge -S "$tmp/run/munge.sock" >/dev/null || fail "munge round trip"
# two free TCP ports on loopback
read -r p1 p2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)
cat >"$tmp/slurm.conf" <<EOF
ClusterName=s2stest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$p1
SlurmdPort=$p2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/run/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# sbatch --wait polls every 2 s only while MinJobAge/2 <= 2 (else 2, 8, 32, ... s)
MinJobAge=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES State=UP MaxTime=INFINITE
EOF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -i || fail "slurmctld did not start"
slurmd || fail "slurmd did not start"
for _ in $(seq 1 50); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && break
  sleep 0.2
done
sinfo -h -o %T | grep -q idle || fail "the node did not become idle: $(sinfo 2>&1)"
echo "ok: munged, slurmctld, slurmd up on 127.0.0.1:$p1/$p2 (node $host idle)"

# the samples recipe with speech = ctx (all 80 items, a third of the audio: short under ASan)
sed -e 's/^speech = .*/speech = ctx/' -e "s#^root = .*#root = $S2S_SRC/data#" "$S2S_SRC/manifests/samples.recipe" >"$tmp/samples.recipe"
# a codebook, cheaply (k-means on all frames is slow under ASan): 50 units from 5000 frames of
# the speech of a few questions; the one-machine build and the parts share it
"$B/s2s-import" cmmlu --lang zh --shard 0/4 "$S2S_SRC/data/samples-zh-choice" 2>/dev/null | "$B/s2s-synth" 2>/dev/null |
  "$B/s2s-resample" --rate 16000 2>/dev/null | "$B/s2s-tokenize" train -k 50 --max-frames 5000 -o "$tmp/cb.cb" 2>/dev/null ||
  fail "training a codebook"
cb=$tmp/cb.cb
"$S2S_SRC/scripts/fanout/recipe-with-codebook.sh" "$tmp/samples.recipe" "$cb" "$tmp/s.recipe" || fail "recipe-with-codebook.sh"
# the reference: one-machine build with the same codebook
t0=$(date +%s.%N)
"$B/s2s-build" "$tmp/s.recipe" -o "$tmp/one" -j 2 >"$tmp/one.log" 2>&1 || { cat "$tmp/one.log" >&2; fail "one-machine build"; }
t1=$(date +%s.%N)

# the array: 3 tasks, parts 0/3, 1/3, 2/3 (S2S_BIN reaches the tasks through sbatch's --export=ALL)
export S2S_BIN=$B
sbatch --array=0-2 --wait --chdir="$tmp" --output="$tmp/out/task-%A_%a.out" --job-name=s2s-fanout-test \
  "$S2S_SRC/scripts/fanout/slurm-array.sbatch" "$tmp/s.recipe" "$tmp/parts" >"$tmp/sbatch.log" 2>&1 ||
  { cat "$tmp/sbatch.log" "$tmp"/out/*.out >&2 2>/dev/null; fail "sbatch --array=0-2 --wait"; }
t2=$(date +%s.%N)
for i in 0 1 2; do
  f=$(ls "$tmp"/out/task-*_$i.out 2>/dev/null) || fail "no output of task $i"
  grep -q "part $i/3 on $host" "$f" || fail "task $i did not build part $i/3: $(cat "$f")"
  grep -q "built and verified" "$f" || fail "task $i: $(cat "$f")"
done
"$B/s2s-shard" merge "$tmp/parts/0" "$tmp/parts/1" "$tmp/parts/2" -o "$tmp/merged" 2>"$tmp/merge.log" ||
  fail "merge: $(cat "$tmp/merge.log")"
"$B/s2s-shard" verify "$tmp/merged" >/dev/null || fail "merged directory does not verify"
"$B/s2s-shard" cat "$tmp/one" >"$tmp/one.tar"
"$B/s2s-shard" cat "$tmp/merged" >"$tmp/merged.tar"
python3 "$S2S_SRC/tests/tools/fanout_compare.py" "$tmp/one.tar" "$tmp/merged.tar" 3 || fail "Slurm result differs from the one-machine build"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "figures: one-machine build %.1f s; sbatch --array=0-2 --wait %.1f s (includes Slurm polling)\n", b - a, c - b }'
echo "fanout_slurm.sh: all checks passed"
