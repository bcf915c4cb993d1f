#!/bin/bash
# SPDX-License-Identifier: MIT
# Docker compose cluster test (issue 8): builds the image from this
# repository, brings docker/compose.yml up under a unique project name and
# checks, on real containers with their own addresses:
#   health; publish + call through the client service; key rotation
#   without downtime (SIGHUP); scale-out to 5
#   nodes; `docker kill` of a node (every node detects it, RPCs fail over);
#   partition and heal (`docker network disconnect/connect`); 10% loss and
#   20 ms delay on one node (`tc netem` in its network namespace) without
#   false deaths.
# It prints the convergence, detection and heal times and always tears
# down what it created (the containers, network, volumes and test image;
# the base image and the build cache are kept for the next run).
#
# Needs root: it installs and starts Docker when missing (Debian 12:
# docker.io, docker-compose, debootstrap) and builds the base image
# debian:bookworm-slim locally with debootstrap from the machine's own apt
# mirror.  Not root: prints "SKIPPED: ..." and exits 0.
#
# Exit status: 0 pass (or skipped); 1 fail, with "FAIL: reason" as the
# last line.
#
# Environment:
#   COMPOSE          compose command (default: "docker compose" when it
#                    works, else "docker-compose")
#   NT_DEBIAN_MIRROR mirror for debootstrap (default: from apt's sources)
#   NT_DOCKER_KEEP=1 leave the cluster running at the end (debugging)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
T_START=$(date +%s%3N)

say() { printf 'docker-test: %s\n' "$*"; }
now_ms() { date +%s%3N; }
secs() { # MS -> "1.234 s"
  printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000))
}

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: tests/docker/run.sh needs root (it installs and runs Docker)"
  exit 0
fi

# ---- failure handling and teardown ----------------------------------------

FAIL_REASON=""
STARTED=0
PROJECT=""
IMAGE=""
work=""
bg_pids=()
compose_cmd=()

fail() {
  FAIL_REASON=$*
  exit 1
}

# Every compose call is bounded (an `up` waits for health checks).
dc() { timeout 300 "${compose_cmd[@]}" -p "$PROJECT" -f "$ROOT/docker/compose.yml" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  set +e
  # A signal's trap runs inside whatever redirection was active: write to
  # the script's own stdout and stderr.
  exec 1>&3 2>&4
  if [ "$rc" -ne 0 ] && [ -z "$FAIL_REASON" ]; then
    FAIL_REASON="unexpected error (exit status $rc), see above"
  fi
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$PROJECT" ] && [ "${#compose_cmd[@]}" -gt 0 ]; then
    if [ "$rc" -ne 0 ] && [ "$STARTED" = 1 ]; then
      echo "---- last log lines of the cluster ----" >&2
      dc logs --no-color --tail 15 >&2 2>&1
      echo "---------------------------------------" >&2
    fi
    if [ "${NT_DOCKER_KEEP:-0}" = 1 ]; then
      say "NT_DOCKER_KEEP=1: project $PROJECT left running"
    else
      dc down -v --remove-orphans -t 5 >/dev/null 2>&1
      # Whatever compose left behind (containers run by hand, networks).
      local ids
      mapfile -t ids < <(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
      [ "${#ids[@]}" -eq 0 ] || docker rm -f -v "${ids[@]}" >/dev/null 2>&1
      mapfile -t ids < <(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
      [ "${#ids[@]}" -eq 0 ] || docker network rm "${ids[@]}" >/dev/null 2>&1
      # The test image.  Its layers stay as the next run's build cache
      # (--no-prune); stale source layers of earlier runs (labelled by the
      # Dockerfile, not used by this build) are removed.
      if [ -n "$IMAGE" ]; then
        docker rmi --no-prune "$IMAGE" >/dev/null 2>&1
        local keep id
        keep=$(grep -oE -e '---> [0-9a-f]{12}' -e 'Successfully built [0-9a-f]{12}' \
          "$work/build.log" 2>/dev/null | grep -oE '[0-9a-f]{12}$' | tr '\n' ' ')
        if [ -n "$keep" ]; then
          for id in $(docker images -q -f dangling=true -f label=io.notifier.stage); do
            case " $keep " in *" $id "*) ;; *) docker rmi "$id" >/dev/null 2>&1 ;; esac
          done
        fi
      fi
    fi
  fi
  [ -n "$work" ] && rm -rf "$work"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: $FAIL_REASON"
  fi
  exit "$rc"
}
exec 3>&1 4>&2
trap cleanup EXIT
# A command failing under set -e: name it in the one-line reason.
set -E
trap 'FAIL_REASON=${FAIL_REASON:-"line $LINENO: $BASH_COMMAND failed"}' ERR
trap 'FAIL_REASON=${FAIL_REASON:-interrupted}; exit 1' INT TERM

# until_ok LIMIT_S T0_MS WHAT CMD...: runs CMD until it succeeds, at most
# LIMIT_S seconds; ELAPSED = ms since T0_MS.  STATE (set by CMD) is given
# in the failure reason.
STATE=""
ELAPSED=0
until_ok() {
  local limit=$1 t0=$2 what=$3
  shift 3
  local end=$(($(now_ms) + limit * 1000))
  STATE=""
  until "$@"; do
    if [ "$(now_ms)" -ge "$end" ]; then
      fail "$what: not within ${limit}s${STATE:+ ($STATE)}"
    fi
    sleep 0.2
  done
  ELAPSED=$(($(now_ms) - t0))
}

# ---- Docker set-up ----------------------------------------------------------

export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get -o DPkg::Lock::Timeout=300 update -qq || fail "apt-get update failed"
    apt_updated=1
  fi
  say "installing: $*"
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null ||
    fail "apt-get install $* failed"
}

have_compose_v2() { docker compose version >/dev/null 2>&1; }

T0=$(now_ms)
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
if ! command -v docker-compose >/dev/null 2>&1 && ! { command -v docker >/dev/null 2>&1 && have_compose_v2; }; then
  need+=(docker-compose)
fi
command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ "${#need[@]}" -eq 0 ] || apt_install "${need[@]}"

if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose_cmd <<<"$COMPOSE"
elif have_compose_v2; then
  compose_cmd=(docker compose)
else
  compose_cmd=(docker-compose)
fi

# One daemon for the machine: start it only when none answers.
if ! docker info >/dev/null 2>&1; then
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: /var/log/dockerd.log)"
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  fi
  end=$(($(now_ms) + 90000))
  until docker info >/dev/null 2>&1; do
    if [ "$(now_ms)" -ge "$end" ]; then
      fail "dockerd did not answer within 90s: $(tail -n 1 /var/log/dockerd.log 2>/dev/null)"
    fi
    sleep 0.5
  done
fi

# The Debian archive mirror apt uses here, from sources.list (one-line
# format) or sources.list.d/*.sources (deb822): the first "deb" entry with
# the suite "bookworm".
apt_mirror() {
  local f m
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    m=$(awk '$1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == "bookworm" && $i ~ /^https?:\/\//) { print $i; exit }
        }' "$f")
    [ -n "$m" ] && { echo "$m"; return 0; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    m=$(awk 'BEGIN { RS = ""; FS = "\n" }
        {
          types = ""; uris = ""; suites = ""; enabled = "yes"
          for (i = 1; i <= NF; i++) {
            line = $i
            if (line ~ /^#/) continue
            n = index(line, ":"); if (n == 0) continue
            k = tolower(substr(line, 1, n - 1)); v = substr(line, n + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (k == "types") types = v
            else if (k == "uris") uris = v
            else if (k == "suites") suites = v
            else if (k == "enabled") enabled = tolower(v)
          }
          if (enabled == "no" || (" " types " ") !~ / deb /) next
          if ((" " suites " ") !~ / bookworm /) next
          split(uris, u, /[ \t]+/)
          for (j in u) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
        }' "$f")
    [ -n "$m" ] && { echo "$m"; return 0; }
  done
  return 1
}

BASE=debian:bookworm-slim
if docker image inspect "$BASE" >/dev/null 2>&1; then
  say "base image $BASE: present, kept"
else
  exec 9>/var/lock/notifier-docker-base.lock
  flock -w 600 9 || fail "another run holds /var/lock/notifier-docker-base.lock"
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    mirror=${NT_DEBIAN_MIRROR:-$(apt_mirror || true)}
    [ -n "$mirror" ] || fail "no bookworm mirror found in /etc/apt/sources.list{,.d/*.sources}; set NT_DEBIAN_MIRROR"
    rootfs=$(mktemp -d /var/tmp/notifier-rootfs.XXXXXX)
    say "building $BASE with debootstrap from $mirror"
    t=$(now_ms)
    if ! timeout 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
      reason=$(tail -n 1 "$rootfs.log")
      rm -rf "$rootfs" "$rootfs.log"
      fail "debootstrap bookworm from $mirror failed: $reason"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null || {
      rm -rf "$rootfs" "$rootfs.log"
      fail "docker import of the debootstrap rootfs failed"
    }
    rm -rf "$rootfs" "$rootfs.log"
    say "base image $BASE built in $(secs $(($(now_ms) - t)))"
  fi
  exec 9>&-
fi
T_SETUP=$(($(now_ms) - T0))
say "set-up done in $(secs "$T_SETUP")"
say "docker: $(docker version -f '{{.Server.Version}}' 2>/dev/null), compose: ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2>/dev/null || true)"

# ---- image and cluster -------------------------------------------------------

PROJECT=ntdocker$(date +%s)$$
IMAGE=notifier-test:$PROJECT
work=$(mktemp -d /tmp/notifier-docker.XXXXXX)

T0=$(now_ms)
say "building $IMAGE from docker/Dockerfile"
if ! timeout 1800 docker build --force-rm -f docker/Dockerfile -t "$IMAGE" \
      --build-arg BASE_IMAGE="$BASE" . >"$work/build.log" 2>&1; then
  tail -n 20 "$work/build.log" >&2
  if grep -qiE "temporary failure resolving|could not resolve|failed to fetch|unable to connect" "$work/build.log"; then
    fail "docker build: containers cannot reach the Debian mirror ($(grep -m1 -iE 'temporary failure resolving|could not resolve|failed to fetch|unable to connect' "$work/build.log"))"
  fi
  fail "docker build failed: $(tail -n 1 "$work/build.log")"
fi
T_BUILD=$(($(now_ms) - T0))
say "image built in $(secs "$T_BUILD")"

# A fresh cluster key, readable by the image's user (uid 10001) only.
docker run --rm --network none "$IMAGE" notifier keygen >"$work/cluster.key" || fail "notifier keygen in the image failed"
chown 10001:10001 "$work/cluster.key"
chmod 400 "$work/cluster.key"
export NOTIFIER_IMAGE=$IMAGE NOTIFIER_KEY_PATH=$work/cluster.key
export NOTIFIER_LOG_LEVEL=info CLIENT_MEMBERS=4

NODE_SERVICES="node1 node2 node3 echo"

# Running containers of SERVICE (oldest first).
ctrs_of() {
  docker ps --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" \
    --format '{{.Label "com.docker.compose.container-number"}} {{.ID}}' |
    sort -n | awk '{ print $NF }'
}
# Every running notifierd container.
nodes() {
  local s
  for s in $NODE_SERVICES; do ctrs_of "$s"; done
}
name_of() { docker inspect -f '{{.Name}}' "$1" | sed 's#^/##'; }

# snap CTR...: each node's stats --json into $work/snap/CTR (in parallel).
snap() {
  rm -rf "$work/snap"
  mkdir -p "$work/snap"
  local c pids=()
  for c in "$@"; do
    timeout 10 docker exec "$c" notifier -s 127.0.0.1:7070 --timeout 2000 \
      stats --json >"$work/snap/$c" 2>/dev/null &
    pids+=($!)
  done
  for c in "${pids[@]}"; do wait "$c" || true; done
}
# jget FILE KEY: a numeric or string field of a flat JSON object.
jget() {
  grep -o "\"$2\":[^,}]*" "$1" 2>/dev/null | head -n 1 | cut -d: -f2 | tr -d '"'
}

# view_ok N CTR...: every listed node sees N alive members, none suspect,
# holds a converged directory, and all digests are equal.
view_ok() {
  local n=$1 c a s v d first="" ok=0
  shift
  snap "$@"
  STATE=""
  for c in "$@"; do
    a=$(jget "$work/snap/$c" members_alive)
    s=$(jget "$work/snap/$c" members_suspect)
    v=$(jget "$work/snap/$c" converged)
    d=$(jget "$work/snap/$c" digest)
    STATE+="$(name_of "$c"): alive=${a:-?} suspect=${s:-?} converged=${v:-?} digest=${d:0:8}; "
    [ "$a" = "$n" ] && [ "$s" = 0 ] && [ "$v" = 1 ] || ok=1
    [ -n "$first" ] || first=$d
    [ "$d" = "$first" ] && [ -n "$d" ] || ok=1
  done
  return $ok
}

# sees_dead ID CTR...: every listed node holds member ID as dead (or gone).
sees_dead() {
  local id=$1 c st
  shift
  STATE=""
  local ok=0
  for c in "$@"; do
    st=$(timeout 10 docker exec "$c" notifier -s 127.0.0.1:7070 --timeout 2000 members --json 2>/dev/null |
      grep -o "{[^{}]*\"id\":\"$id\"[^{}]*}" | grep -o '"state":"[a-z]*"' | cut -d'"' -f4)
    STATE+="$(name_of "$c") sees it ${st:-gone}; "
    case "$st" in dead | left | "") ;; *) ok=1 ;; esac
  done
  return $ok
}

healthy() { # CTR...: all healthy
  local c h
  STATE=""
  for c in "$@"; do
    h=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c" 2>/dev/null)
    STATE+="$(name_of "$c")=$h "
    [ "$h" = healthy ] || return 1
  done
}

node_id() { # CTR -> the node id
  timeout 10 docker exec "$1" notifier -s 127.0.0.1:7070 --timeout 2000 stats --json 2>/dev/null |
    grep -o '"node":"[0-9a-f]*"' | cut -d'"' -f4
}

# rpc_from CTR EXPECT_N [EXCLUDE_ID]: an echo RPC through node CTR gets
# exactly EXPECT_N replies, all ok, none from EXCLUDE_ID.
rpc_from() {
  local c=$1 n=$2 ex=${3:-} out
  out=$(timeout 10 docker exec "$c" notifier -s 127.0.0.1:7070 --timeout 2000 --json \
    rpc echo @user:42 echo ping 2>&1) || { STATE="rpc: $out"; return 1; }
  STATE="rpc: $out"
  [ "$(grep -o '"status":"[a-z_]*"' <<<"$out" | grep -c '"ok"')" = "$n" ] || return 1
  [ "$(grep -o '"status":"[a-z_]*"' <<<"$out" | grep -vc '"ok"')" = 0 ] || return 1
  [ -z "$ex" ] || ! grep -q "\"node\":\"$ex\"" <<<"$out"
}

T_TESTS=$(now_ms)

# ---- 1. up, health -------------------------------------------------------------
say "starting the cluster (project $PROJECT): node1 node2 node3 echo + client"
T0=$(now_ms)
STARTED=1
dc up -d --no-build >"$work/up.log" 2>&1 || {
  tail -n 5 "$work/up.log" >&2
  fail "compose up failed: $(grep -m 1 -i error "$work/up.log" || tail -n 1 "$work/up.log")"
}
mapfile -t N < <(nodes)
[ "${#N[@]}" = 4 ] || fail "expected 4 node containers after up, got ${#N[@]}"
until_ok 90 "$T0" "health of the 4 nodes" healthy "${N[@]}"
T_HEALTHY=$ELAPSED
until_ok 60 "$T0" "convergence of 4 nodes" view_ok 4 "${N[@]}"
T_CONV4=$ELAPSED
say "healthy after $(secs "$T_HEALTHY"), 4 nodes converged after $(secs "$T_CONV4") (from compose up)"

# ---- 2. the client service: publish and call ----------------------------------
client=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
  --filter "label=com.docker.compose.service=client" | head -n 1)
[ -n "$client" ] || fail "the client service was not started by compose up"
client_done() {
  STATE=$(docker inspect -f '{{.State.Status}}' "$client")
  [ "$STATE" = exited ]
}
until_ok 60 "$(now_ms)" "the client service to finish" client_done
crc=$(docker inspect -f '{{.State.ExitCode}}' "$client")
docker logs "$client" >"$work/client.log" 2>&1
[ "$crc" = 0 ] || fail "client service exited $crc: $(tail -n 1 "$work/client.log")"
grep -q '^hello from the client$' "$work/client.log" || fail "client: no echo reply in its output"
grep -q '"status":"ok"' "$work/client.log" || fail "client: no ok reply in its --json output"
sink_seen() {
  local s c
  STATE=""
  for s in node1 node2 node3; do
    c=$(ctrs_of "$s")
    docker logs "$c" 2>/dev/null | grep -q '^orders [0-9]* created order 1 from the client$' ||
      { STATE="no sink line on $s"; return 1; }
  done
}
until_ok 10 "$(now_ms)" "the published order at the seeds' sinks" sink_seen
say "client service: published (seen by the 3 sinks) and called echo (exit 0)"
sed 's/^/    client| /' "$work/client.log"

# ---- 3. rotate the key without downtime (docker/README.md) ------------------------
# The secret is the host file, bind-mounted: rewrite it in place (same
# inode) and SIGHUP the nodes, in three steps: install, switch, remove.
key_old=$(cat "$work/cluster.key")
key_new=$(docker run --rm --network none "$IMAGE" notifier keygen) || fail "keygen failed"
reloaded() { # N: every node logged "keys reloaded" at least N times
  local c k
  STATE=""
  for c in "${N[@]}"; do
    k=$(docker logs "$c" 2>&1 | grep -c 'msg="keys reloaded"')
    STATE+="$(name_of "$c")=$k "
    [ "$k" -ge "$1" ] || return 1
  done
}
T0=$(now_ms)
step=0
for keys in "$key_old $key_new" "$key_new $key_old" "$key_new"; do
  step=$((step + 1))
  tr ' ' '\n' <<<"$keys" >"$work/cluster.key"
  dc kill -s SIGHUP node1 node2 node3 echo >/dev/null 2>&1 || fail "compose kill -s SIGHUP failed"
  until_ok 20 "$T0" "every node reloading its key file (step $step of 3)" reloaded "$step"
  view_ok 4 "${N[@]}" || fail "cluster view changed during key rotation step $step: $STATE"
done
T_ROTATE=$ELAPSED
snap "${N[@]}"
for c in "${N[@]}"; do
  for k in members_dead drop_unknown_key drop_auth gossip_drop_unknown_key gossip_drop_auth; do
    [ "$(jget "$work/snap/$c" $k)" = 0 ] || fail "key rotation: $(name_of "$c") has $k=$(jget "$work/snap/$c" $k)"
  done
done
out=$(dc run --rm --no-deps -T client notifier --json rpc echo 1 echo new-key 2>&1) ||
  fail "client service with the new key failed: $out"
if docker run --rm --network "$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "${N[0]}")" \
  -e NOTIFIER_KEY="$key_old" "$IMAGE" notifier -s node1:7070 --timeout 2000 stats >/dev/null 2>&1; then
  fail "the old key is still accepted after the rotation"
fi
say "key rotated in 3 SIGHUP steps in $(secs "$T_ROTATE"): view unchanged, no frame refused, no death; the old key is refused afterwards"

# ---- 4. scale out to 5 nodes ----------------------------------------------------
say "scaling echo to 2 replicas (5 nodes)"
T0=$(now_ms)
dc up -d --no-build --no-deps --scale echo=2 echo >"$work/scale.log" 2>&1 ||
  fail "compose up --scale echo=2 failed: $(tail -n 1 "$work/scale.log")"
mapfile -t N < <(nodes)
[ "${#N[@]}" = 5 ] || fail "expected 5 node containers after scaling, got ${#N[@]}"
until_ok 60 "$T0" "convergence of 5 nodes" view_ok 5 "${N[@]}"
T_CONV5=$ELAPSED
say "5 nodes converged $(secs "$T_CONV5") after the scale command"
docker exec "${N[0]}" notifier -s 127.0.0.1:7070 members | sed 's/^/    /'

# ---- 5. kill a node: detection everywhere, RPC fail-over ------------------------
mapfile -t E < <(ctrs_of echo)
victim=${E[1]}
victim_id=$(node_id "$victim")
[ -n "$victim_id" ] || fail "could not read the node id of $(name_of "$victim")"
survivors=()
for c in "${N[@]}"; do [ "$c" = "$victim" ] || survivors+=("$c"); done
vname=$(name_of "$victim")
say "docker kill $vname (node $victim_id)"
T0=$(now_ms)
docker kill "$victim" >/dev/null
until_ok 30 "$T0" "every node detecting the killed node" sees_dead "$victim_id" "${survivors[@]}"
T_DETECT=$ELAPSED
until_ok 30 "$T0" "RPC fail-over to the surviving echo replica" rpc_from "${survivors[0]}" 1 "$victim_id"
T_FAILOVER=$ELAPSED
until_ok 30 "$T0" "a converged view of the 4 survivors" view_ok 4 "${survivors[@]}"
T_CONVKILL=$ELAPSED
out=$(dc run --rm --no-deps -T client notifier --json rpc echo @user:42 echo after-kill 2>&1) ||
  fail "client service rpc after the kill failed: $out"
grep -q "\"node\":\"$victim_id\"" <<<"$out" && fail "client rpc still answered by the killed node"
[ "$(docker inspect -f '{{.State.Running}}' "$victim")" = false ] ||
  fail "the killed container was started again"
say "killed node seen dead by all 4 survivors after $(secs "$T_DETECT"); RPCs answered by survivors only after $(secs "$T_FAILOVER"); survivors converged after $(secs "$T_CONVKILL")"
docker rm -f "$victim" >/dev/null
N=("${survivors[@]}")

# ---- 6. partition and heal --------------------------------------------------------
net=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" \
  --filter "label=com.docker.compose.network=cluster")
[ -n "$net" ] || fail "the compose network was not found"
netname=$(docker network inspect -f '{{.Name}}' "$net")
cut=$(ctrs_of node1)
cut_id=$(node_id "$cut")
rest=()
for c in "${N[@]}"; do [ "$c" = "$cut" ] || rest+=("$c"); done
say "partition: docker network disconnect $netname $(name_of "$cut")"
T0=$(now_ms)
docker network disconnect "$netname" "$cut"
until_ok 30 "$T0" "the other nodes detecting the partitioned node1" sees_dead "$cut_id" "${rest[@]}"
T_PDETECT=$ELAPSED
alone() {
  snap "$cut"
  STATE="node1: alive=$(jget "$work/snap/$cut" members_alive) suspect=$(jget "$work/snap/$cut" members_suspect)"
  [ "$(jget "$work/snap/$cut" members_alive)" = 1 ] && [ "$(jget "$work/snap/$cut" members_suspect)" = 0 ]
}
until_ok 30 "$T0" "node1 seeing itself alone" alone
T_PALONE=$ELAPSED
# The client's server list starts with node1: it must fail over to node2.
out=$(dc run --rm --no-deps -T client sh -ec \
  'notifier pub orders 7 created during-partition; notifier --json rpc echo 7 echo during-partition' 2>&1) ||
  fail "client service during the partition failed: $out"
say "node1 seen dead by the 3 others after $(secs "$T_PDETECT"), node1 alone after $(secs "$T_PALONE"); the client failed over to node2 (pub + rpc ok)"
say "heal: docker network connect --alias node1 $netname $(name_of "$cut")"
T0=$(now_ms)
docker network connect --alias node1 "$netname" "$cut"
until_ok 60 "$T0" "a single converged view after the heal" view_ok 4 "${N[@]}"
T_HEAL=$ELAPSED
say "healed: one converged view on all 4 nodes (equal digests) after $(secs "$T_HEAL")"

# ---- 7. packet loss and delay on one node -------------------------------------------
lossy=$(ctrs_of node3)
lpid=$(docker inspect -f '{{.State.Pid}}' "$lossy")
peer_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(ctrs_of node1)")
# tcp_rtt: median TCP connect time (ms) from node3's namespace to node1,
# over 7 tries: the SYN leaves through node3's eth0, so it shows the delay.
tcp_rtt() {
  nsenter -t "$lpid" -n python3 - "$peer_ip" <<'PY'
import socket, sys, time
ts = []
for _ in range(7):
    t = time.monotonic()
    with socket.create_connection((sys.argv[1], 7070), timeout=5):
        ts.append((time.monotonic() - t) * 1000)
print("%.1f" % sorted(ts)[len(ts) // 2])
PY
}
rtt0=$(tcp_rtt) || fail "TCP connect from node3 to node1 failed before the impairment"
impair="tc netem"
impair_stats() {
  nsenter -t "$lpid" -n tc -s qdisc show dev eth0 |
    awk '/netem/ { on = 1 } on && /Sent/ { gsub(/[(,]/, " "); print "sent " $4 " packets, dropped " $7; exit }'
}
if ! nsenter -t "$lpid" -n tc qdisc add dev eth0 root netem loss 10% delay 20ms 2>"$work/tc.err"; then
  # A kernel without sch_netem (CONFIG_NET_SCH_NETEM unset, as on the
  # project's development and CI machines): the same impairment through NFQUEUE and a small
  # user-space queue in node3's namespace that drops 10% of eth0's outgoing
  # packets and releases the others 20 ms later, in order.
  say "tc netem unavailable ($(head -n 1 "$work/tc.err")): emulating it with NFQUEUE"
  impair="NFQUEUE emulation of netem"
  cat >"$work/nfq_netem.py" <<'PY'
import os, random, select, socket, struct, sys, time
QUEUE, LOSS, DELAY, STATS = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
NETLINK_NETFILTER, SUBSYS = 12, 3  # nfnetlink, NFNL_SUBSYS_QUEUE
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
A_PACKET_HDR, A_VERDICT_HDR, A_CFG_CMD, A_CFG_PARAMS = 1, 2, 1, 2
CMD_BIND, COPY_META, NF_DROP, NF_ACCEPT = 1, 1, 0, 1
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.bind((0, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
seq = 0
def attr(t, data):
    a = struct.pack("HH", 4 + len(data), t) + data
    return a + b"\0" * (-len(a) % 4)
def send(typ, attrs):
    global seq
    seq += 1
    body = struct.pack("BBH", socket.AF_UNSPEC, 0, socket.htons(QUEUE)) + b"".join(attrs)
    s.send(struct.pack("IHHII", 16 + len(body), (SUBSYS << 8) | typ, 1, seq, 0) + body)
send(MSG_CONFIG, [attr(A_CFG_CMD, struct.pack("!BxH", CMD_BIND, 0))])
send(MSG_CONFIG, [attr(A_CFG_PARAMS, struct.pack("!IB", 0, COPY_META))])
def verdict(pid, v):
    send(MSG_VERDICT, [attr(A_VERDICT_HDR, struct.pack("!II", v, pid))])
held, seen, dropped, last = [], 0, 0, 0.0
print("ready", flush=True)
while True:
    timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
    if select.select([s], [], [], timeout)[0]:
        data, off = s.recv(1 << 16), 0
        while off + 16 <= len(data):
            ln, typ = struct.unpack_from("IH", data, off)
            if ln < 16:
                break
            if typ == (SUBSYS << 8) | MSG_PACKET:
                a = off + 20
                while a + 4 <= off + ln:
                    alen, at = struct.unpack_from("HH", data, a)
                    if alen < 4:
                        break
                    if at & 0x7fff == A_PACKET_HDR:
                        pid = struct.unpack_from("!I", data, a + 4)[0]
                        seen += 1
                        if random.random() < LOSS:
                            dropped += 1
                            verdict(pid, NF_DROP)
                        else:
                            held.append((time.monotonic() + DELAY, pid))
                    a += (alen + 3) & ~3
            off += (ln + 3) & ~3
    now = time.monotonic()
    while held and held[0][0] <= now:
        verdict(held.pop(0)[1], NF_ACCEPT)
    if now - last >= 0.5:
        last = now
        with open(STATS + ".tmp", "w") as f:
            f.write("sent %d packets, dropped %d\n" % (seen, dropped))
        os.replace(STATS + ".tmp", STATS)
PY
  nsenter -t "$lpid" -n python3 -u "$work/nfq_netem.py" 7 0.10 0.020 "$work/nfq.stats" \
    >"$work/nfq.out" 2>&1 &
  bg_pids+=($!)
  nfq_ready() { STATE=$(tail -n 1 "$work/nfq.out" 2>/dev/null); grep -q ready "$work/nfq.out"; }
  until_ok 10 "$(now_ms)" "the NFQUEUE helper to start" nfq_ready
  # --queue-bypass: should the helper die, packets pass instead of being lost.
  nsenter -t "$lpid" -n iptables-legacy -w -A OUTPUT -o eth0 -j NFQUEUE \
    --queue-num 7 --queue-bypass 2>"$work/ipt.err" ||
    fail "NFQUEUE rule in node3's namespace: $(head -n 1 "$work/ipt.err")"
  impair_stats() { cat "$work/nfq.stats" 2>/dev/null; }
fi
rtt1=$(tcp_rtt) || fail "TCP connect from node3 to node1 failed under the impairment"
say "node3's eth0: 10% loss, 20 ms delay ($impair); TCP connect node3->node1: median ${rtt0} ms before, ${rtt1} ms now"
awk -v r="$rtt1" 'BEGIN { exit !(r >= 19) }' || fail "the 20 ms delay is not in effect (TCP connect ${rtt1} ms)"

snap "${N[@]}"
susp0=0
dead_before=""
for c in "${N[@]}"; do
  susp0=$((susp0 + $(jget "$work/snap/$c" gossip_suspicions)))
  dead_before+="$(jget "$work/snap/$c" members_dead) "
done
say "a new echo replica joins while node3 is lossy"
T0=$(now_ms)
dc up -d --no-build --no-deps --scale echo=2 echo >"$work/scale2.log" 2>&1 ||
  fail "compose up --scale echo=2 (under loss) failed: $(tail -n 1 "$work/scale2.log")"
mapfile -t N < <(nodes)
[ "${#N[@]}" = 5 ] || fail "expected 5 node containers, got ${#N[@]}"
until_ok 60 "$T0" "convergence of 5 nodes with node3 lossy" view_ok 5 "${N[@]}"
T_CONVLOSS=$ELAPSED
say "5 nodes converged under loss after $(secs "$T_CONVLOSS")"
# No false deaths: for OBS seconds every node keeps all 5 members alive
# (a suspect counts: it may refute) and its dead count never grows.
OBS=15
end=$(($(now_ms) + OBS * 1000))
samples=0
dips=0
declare -A lastdead=()
while [ "$(now_ms)" -lt "$end" ]; do
  snap "${N[@]}"
  samples=$((samples + 1))
  for c in "${N[@]}"; do
    a=$(jget "$work/snap/$c" members_alive)
    s=$(jget "$work/snap/$c" members_suspect)
    d=$(jget "$work/snap/$c" members_dead)
    if [ -z "$a" ] || [ -z "$s" ] || [ -z "$d" ]; then
      fail "node $(name_of "$c") did not answer stats under loss"
    fi
    [ $((a + s)) = 5 ] || fail "false death under loss: $(name_of "$c") has alive=$a suspect=$s dead=$d"
    [ "$a" = 5 ] || dips=$((dips + 1))
    if [ -n "${lastdead[$c]:-}" ] && [ "$d" -gt "${lastdead[$c]}" ]; then
      fail "false death under loss: members_dead on $(name_of "$c") grew to $d"
    fi
    lastdead[$c]=$d
  done
  sleep 0.5
done
susp1=0
dead_after=""
for c in "${N[@]}"; do
  susp1=$((susp1 + $(jget "$work/snap/$c" gossip_suspicions)))
  dead_after+="${lastdead[$c]} "
done
view_ok 5 "${N[@]}" || fail "not converged at the end of the loss window: $STATE"
rpc_from "${N[0]}" 2 || fail "echo RPC under loss: $STATE"
say "under loss for ${OBS}s: $samples samples of 5 nodes, no false death (members_alive=5 in all but $dips node-samples, $((susp1 - susp0)) suspicions raised and refuted; members_dead per node: ${dead_before% } before, ${dead_after% } after); node3's eth0: $(impair_stats)"

# ---- summary -------------------------------------------------------------------------
T_END=$(now_ms)
echo
say "RESULTS"
printf '  %-44s %s\n' \
  "set-up (install, dockerd, base image)" "$(secs "$T_SETUP")" \
  "image build" "$(secs "$T_BUILD")" \
  "compose up -> 4 nodes healthy" "$(secs "$T_HEALTHY")" \
  "compose up -> 4 nodes converged" "$(secs "$T_CONV4")" \
  "key rotation, 3 SIGHUP steps" "$(secs "$T_ROTATE")" \
  "scale to 5 -> converged" "$(secs "$T_CONV5")" \
  "kill -> seen dead by every survivor" "$(secs "$T_DETECT")" \
  "kill -> RPCs answered by survivors only" "$(secs "$T_FAILOVER")" \
  "kill -> survivors converged" "$(secs "$T_CONVKILL")" \
  "partition -> node1 seen dead by the others" "$(secs "$T_PDETECT")" \
  "heal -> single converged view" "$(secs "$T_HEAL")" \
  "join under 10% loss/20 ms -> converged" "$(secs "$T_CONVLOSS")" \
  "cluster tests" "$(secs $((T_END - T_TESTS)))" \
  "total" "$(secs $((T_END - T_START)))"
echo "PASS: docker compose cluster (${compose_cmd[*]})"
