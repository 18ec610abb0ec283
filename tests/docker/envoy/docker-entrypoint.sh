#!/bin/sh
# The envoyproxy/envoy stand-in's entrypoint, doing what the official image's does:
#   - arguments that start with "-" are Envoy's: `docker run IMAGE -c x.yaml` runs envoy;
#   - $loglevel, when set, becomes envoy's --log-level;
#   - started as root, it runs the command as user envoy (uid/gid 101, or $ENVOY_UID/$ENVOY_GID
#     when set), unless ENVOY_UID=0; started as any other user (docker run --user), as that user.
set -e

case "$1" in
    -*) set -- envoy "$@" ;;
esac

if [ "$1" = envoy ] && [ -n "${loglevel:-}" ]; then
    set -- "$@" --log-level "$loglevel"
fi

if [ "$(id -u)" = 0 ] && [ "${ENVOY_UID:-}" != 0 ]; then
    if [ -n "${ENVOY_UID:-}" ]; then usermod -u "$ENVOY_UID" envoy; fi
    if [ -n "${ENVOY_GID:-}" ]; then groupmod -g "$ENVOY_GID" envoy; fi
    # So that the envoy user may write the container's log.
    chown envoy:envoy /dev/stdout /dev/stderr
    exec su-exec envoy "$@"
fi
exec "$@"
