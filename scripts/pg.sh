#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and local development.
#
#   scripts/pg.sh start DIR PORT   # initdb (once), start, create database keyhealth_test, print its URL
#   scripts/pg.sh stop DIR         # stop the cluster in DIR (no-op when it is not running)
#   scripts/pg.sh url PORT         # print the URL for a cluster on PORT
#
# Idempotent: start on a running cluster only (re)creates nothing and prints the URL.
# Trust authentication, listening on 127.0.0.1 only, socket in DIR. Logs go to DIR/server.log;
# the only thing printed on stdout is the URL, so `URL=$(scripts/pg.sh start ...)` works.
# As root, the server runs as the `postgres` user (PostgreSQL refuses root) and DIR is chowned to it.
set -euo pipefail

DB=keyhealth_test

die() { echo "pg.sh: $*" >&2; exit 2; }

find_bin() {
    local d
    for d in "${PG_BIN:-}" /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin /usr/pgsql-15/bin; do
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

BIN=$(find_bin) || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15 or set PG_BIN."

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql+psycopg://postgres@127.0.0.1:$1/$DB"; }

start() {
    local dir=$1 port=$2
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'."
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        local out
        out=$(as_pg "$BIN/initdb" -D "$dir" -A trust -U postgres -E UTF8 --no-sync 2>&1) \
            || { echo "$out" >&2; die "initdb failed in $dir (it must be empty or an existing cluster)."; }
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        # fsync off: a test cluster, thrown away; -w waits until the server accepts connections.
        as_pg "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "pg_ctl start failed (see $dir/server.log)."; }
    fi
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 || die "server on port $port is not accepting connections."
    if [ "$(as_pg "$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
        as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB"
    fi
    url "$port"
}

stop() {
    local dir=$1
    [ -f "$dir/PG_VERSION" ] || return 0
    if as_pg "$BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    fi
}

case "${1:-}" in
    start) [ $# -eq 3 ] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
    stop)  [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    url)   [ $# -eq 2 ] || die "usage: $0 url PORT"; url "$2" ;;
    *) die "usage: $0 start DIR PORT | stop DIR | url PORT" ;;
esac
