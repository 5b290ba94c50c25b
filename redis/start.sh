#!/bin/sh
# The redis container's entrypoint and healthcheck. The redis image reads no secret from a
# file, so this does: the password of the ACL user `app` is REDIS_PASSWORD, or the content
# of the file REDIS_PASSWORD_FILE names (a Docker secret). redis-server gets its users on
# standard input, the password as a SHA-256 only: it never appears on a command line, in
# the container's configuration or in a file.
#   start.sh [ARG...]   run redis-server (extra arguments go to it)
#   start.sh check      the healthcheck: PING as `app`, expecting PONG
# Users: `default` is off (nobody administers Redis over the network); `app` may run what
# a channel layer and a cache need, nothing of @admin or @dangerous (CONFIG, FLUSHALL,
# DEBUG, KEYS, ...); `metrics` (the monitoring profile's exporter, same password) may only
# read the server's statistics: no key, no channel, no other command.
set -eu

fail() {
    echo "$*" >&2
    exit 1
}

# The same rules as the app's (mainkode_example/env.py): one of the two forms, a file
# that exists and is not empty, its final line break dropped.
if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
    [ -z "${REDIS_PASSWORD:-}" ] || fail "Environment variables REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: set one."
    [ -r "$REDIS_PASSWORD_FILE" ] || fail "Environment variable REDIS_PASSWORD_FILE is invalid: cannot read $REDIS_PASSWORD_FILE."
    password=$(cat "$REDIS_PASSWORD_FILE")
    password=${password%"$(printf '\r')"}
    [ -n "$password" ] || fail "Environment variable REDIS_PASSWORD_FILE is invalid: $REDIS_PASSWORD_FILE is empty."
else
    [ -n "${REDIS_PASSWORD:-}" ] || fail "Environment variable REDIS_PASSWORD is required (or REDIS_PASSWORD_FILE)."
    password=$REDIS_PASSWORD
fi

if [ "${1:-}" = check ]; then
    [ "$(REDISCLI_AUTH=$password redis-cli --no-auth-warning --user app ping)" = PONG ]
    exit
fi

hash=$(printf '%s' "$password" | sha256sum | cut -d ' ' -f 1)
unset password REDIS_PASSWORD
# The channel layer and the cache hold only transient data: no persistence.
exec redis-server - --save "" --appendonly no "$@" <<CONFIG
user default off
user app on #$hash ~* &* +@all -@dangerous -@admin
user metrics on #$hash resetkeys resetchannels -@all +ping +info +client|setname +slowlog|get +slowlog|len +latency|latest +latency|histogram
CONFIG
