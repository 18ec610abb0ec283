#!/usr/bin/env bash
# Makes sure a Docker engine answers here, for the tests that run a compose file on a real one.
#
#   - installs Debian's docker.io, docker-compose and debootstrap with apt-get when a command is
#     missing (with sudo when not root);
#   - starts dockerd in the background when the daemon does not answer (machines without systemd
#     have nothing that starts it), logging to $DAPR_ENVOY_DOCKERD_LOG, and waits for it, at most
#     $DAPR_ENVOY_DOCKERD_WAIT seconds.
#
# Exits non-zero with the reason (and the daemon log's tail) when the engine cannot be made to
# answer. It never starts a second daemon next to one that is running but refuses us.
set -euo pipefail

LOG=${DAPR_ENVOY_DOCKERD_LOG:-/tmp/dapr-envoy-dockerd.log}
WAIT=${DAPR_ENVOY_DOCKERD_WAIT:-60}
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

say() { echo "engine.sh: $*" >&2; }
fail() { say "$*"; exit 1; }

# --- the commands --------------------------------------------------------------------------------
packages=()
for pair in docker:docker.io dockerd:docker.io docker-compose:docker-compose debootstrap:debootstrap; do
    command -v "${pair%%:*}" >/dev/null || packages+=("${pair#*:}")
done
if [ ${#packages[@]} -gt 0 ]; then
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
    command -v apt-get >/dev/null || fail "missing ${packages[*]} and no apt-get to install them with"
    say "installing ${packages[*]} with apt-get"
    $SUDO apt-get update -qq || fail "apt-get update failed"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" \
        || fail "apt-get install ${packages[*]} failed"
    for cmd in docker dockerd docker-compose debootstrap; do
        command -v "$cmd" >/dev/null || fail "$cmd is still not on PATH after installing ${packages[*]}"
    done
fi

# --- the daemon ----------------------------------------------------------------------------------
if err=$(docker info 2>&1 >/dev/null); then
    exit 0
fi
# A daemon that runs but refuses us (a socket we may not open) is not ours to replace.
if [ -S /var/run/docker.sock ] && [[ "$err" == *"permission denied"* ]]; then
    fail "the Docker daemon runs but refuses this user: $err (add the user to the docker group, or run as root)"
fi
if pid=$(pidof dockerd); then
    fail "dockerd runs (pid $pid) but does not answer: $err"
fi

# Without systemd nothing mounts the cgroup hierarchies dockerd needs; Debian's cgroupfs-mount
# (a docker.io recommendation) does.
if ! mountpoint -q /sys/fs/cgroup && command -v cgroupfs-mount >/dev/null; then
    $SUDO cgroupfs-mount || say "cgroupfs-mount failed; trying dockerd anyway"
fi

say "the Docker daemon does not answer ($err); starting dockerd, log in $LOG"
# Detached (its own session, no inherited descriptors), so it outlives this script and whatever
# ran it: a test run must not wait on its output, nor take it down when it ends.
$SUDO setsid dockerd </dev/null >>"$LOG" 2>&1 &
started=$!
for _ in $(seq "$WAIT"); do
    if docker info >/dev/null 2>&1; then
        say "dockerd answers"
        exit 0
    fi
    [ -d "/proc/$started" ] || break
    sleep 1
done
err=$(docker info 2>&1 >/dev/null || true)
[ -d "/proc/$started" ] && state="still running after ${WAIT}s" || state="exited"
say "dockerd did not come up ($state): $err"
say "last lines of $LOG:"
tail -n 30 "$LOG" >&2 || true
exit 1
