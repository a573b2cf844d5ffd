#!/usr/bin/env bash
# Make sure a PostgreSQL and a Redis are reachable for the tests and benchmarks, and
# print the environment that points at them (eval it):
#
#   eval "$(scripts/ensure-services.sh)"      # start (or reuse) and print exports
#   scripts/ensure-services.sh stop           # stop the private instances, if any
#
# Uses the ones already listening on PGHOST:PGPORT (default 127.0.0.1:5432, trust auth,
# user postgres) and REDIS_HOST:REDIS_PORT (default 127.0.0.1:6379). When one is not
# reachable, starts a private instance under .run/ on a free port (from 55432 / 56379),
# which `stop` shuts down again. A DATABASE_URL / REDIS_URL already in the environment
# that answers is used as it is (so each developer can keep their own database).
#
# Overrides: PGHOST PGPORT REDIS_HOST REDIS_PORT (where to look first), PRIVATE_PGPORT,
# PRIVATE_REDIS_PORT (where private ones start), SCRM_DB_NAME (default scrm),
# SCRM_REDIS_DB (default 0). Messages go to stderr; only the exports go to stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${REDIS_PORT:-6379}"
PRIVATE_PGPORT="${PRIVATE_PGPORT:-55432}"
PRIVATE_REDIS_PORT="${PRIVATE_REDIS_PORT:-56379}"
SCRM_DB_NAME="${SCRM_DB_NAME:-scrm}"
SCRM_REDIS_DB="${SCRM_REDIS_DB:-0}"

say() { echo "ensure-services: $*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

port_open() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

free_port() { # first port from $1 on which nothing listens on 127.0.0.1
    local port=$1
    for _ in $(seq 1 50); do
        if ! port_open 127.0.0.1 "$port"; then
            echo "$port"
            return 0
        fi
        port=$((port + 1))
    done
    die "no free port found from $1"
}

as_root() { [ "$(id -u)" = 0 ]; }

apt_install() { # package...: only as root on Debian; anything else is the operator's job
    if as_root && command -v apt-get >/dev/null; then
        say "installing $* with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    else
        die "$* missing; install it (Debian: apt-get install $*)"
    fi
}

# --- PostgreSQL ---------------------------------------------------------------

pg_works() { # url: answers a query (not merely an open port)
    if command -v psql >/dev/null; then
        PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1
    else
        local hostport=${1#*@}
        hostport=${hostport%%/*}
        port_open "${hostport%:*}" "${hostport##*:}"
    fi
}

pg_bindir() {
    local candidate
    for candidate in "$(command -v pg_ctl 2>/dev/null || true)" /usr/lib/postgresql/*/bin/pg_ctl; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            dirname "$(readlink -f "$candidate")"
            return 0
        fi
    done
    return 1
}

# initdb and postgres refuse to run as root: run them as a system user.
pg_os_user() {
    if ! as_root; then
        id -un
        return
    fi
    if id postgres >/dev/null 2>&1; then
        echo postgres
        return
    fi
    if ! id scrm-pg >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin scrm-pg >&2
    fi
    echo scrm-pg
}

as_pg_user() { # command...
    local user
    user=$(pg_os_user)
    if [ "$user" = "$(id -un)" ]; then
        "$@"
    elif command -v runuser >/dev/null; then
        (cd / && runuser -u "$user" -- "$@")
    else
        (cd / && su -s /bin/sh "$user" -c "$(printf '%q ' "$@")")
    fi
}

private_pg_datadir() {
    # .run/ may sit under a directory the postgres user cannot enter (/root/...);
    # then the cluster lives in /tmp, and .run/pg.datadir says where.
    if [ -f "$RUN_DIR/pg.datadir" ]; then
        cat "$RUN_DIR/pg.datadir"
        return
    fi
    local dir="$RUN_DIR/pg"
    mkdir -p "$dir"
    if as_root; then
        chown "$(pg_os_user)" "$dir"
        if ! as_pg_user test -w "$dir"; then
            rmdir "$dir"
            dir=$(mktemp -d /tmp/scrm-pg.XXXXXX)
            chown "$(pg_os_user)" "$dir"
        fi
    fi
    chmod 700 "$dir"
    echo "$dir" >"$RUN_DIR/pg.datadir"
    echo "$dir"
}

start_private_pg() { # prints the port
    local bindir datadir port
    bindir=$(pg_bindir) || {
        apt_install postgresql >&2
        bindir=$(pg_bindir) || die "PostgreSQL server binaries not found"
    }
    mkdir -p "$RUN_DIR"
    datadir=$(private_pg_datadir)
    if [ -f "$RUN_DIR/pg.port" ] && as_pg_user "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
        port=$(cat "$RUN_DIR/pg.port")
        say "reusing the private PostgreSQL on 127.0.0.1:$port ($datadir)"
        echo "$port"
        return
    fi
    if [ ! -f "$datadir/PG_VERSION" ]; then
        say "initdb $datadir"
        as_pg_user "$bindir/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 --no-locale >"$RUN_DIR/initdb.log" 2>&1 ||
            die "initdb failed; see $RUN_DIR/initdb.log"
    fi
    port=$(free_port "$PRIVATE_PGPORT")
    say "starting a private PostgreSQL on 127.0.0.1:$port (log: $datadir/server.log)"
    # fsync off: this cluster holds only test data and is thrown away.
    as_pg_user "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
        -o "-p $port -h 127.0.0.1 -k $datadir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >&2 || die "PostgreSQL did not start; see $datadir/server.log"
    echo "$port" >"$RUN_DIR/pg.port"
    echo "$port"
}

stop_private_pg() {
    [ -f "$RUN_DIR/pg.datadir" ] || return 0
    local bindir datadir
    datadir=$(cat "$RUN_DIR/pg.datadir")
    bindir=$(pg_bindir) || return 0
    if as_pg_user "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
        say "stopping the private PostgreSQL ($datadir)"
        as_pg_user "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
    fi
    rm -f "$RUN_DIR/pg.port"
}

# --- Redis --------------------------------------------------------------------

redis_works() { # host port
    if command -v redis-cli >/dev/null; then
        [ "$(timeout 5 redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = PONG ]
    else
        port_open "$1" "$2"
    fi
}

start_private_redis() { # prints the port
    local port
    command -v redis-server >/dev/null || apt_install redis-server >&2
    mkdir -p "$RUN_DIR"
    if [ -f "$RUN_DIR/redis.port" ] && redis_works 127.0.0.1 "$(cat "$RUN_DIR/redis.port")"; then
        port=$(cat "$RUN_DIR/redis.port")
        say "reusing the private Redis on 127.0.0.1:$port"
        echo "$port"
        return
    fi
    port=$(free_port "$PRIVATE_REDIS_PORT")
    say "starting a private Redis on 127.0.0.1:$port"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
        --dir "$RUN_DIR" --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log" >&2
    for _ in $(seq 1 50); do
        if redis_works 127.0.0.1 "$port"; then
            echo "$port" >"$RUN_DIR/redis.port"
            echo "$port"
            return
        fi
        sleep 0.1
    done
    die "Redis did not start; see $RUN_DIR/redis.log"
}

stop_private_redis() {
    [ -f "$RUN_DIR/redis.pid" ] || return 0
    local pid
    pid=$(cat "$RUN_DIR/redis.pid")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping the private Redis (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$RUN_DIR/redis.pid" "$RUN_DIR/redis.port"
}

# --- main ---------------------------------------------------------------------

start() {
    local database_url redis_url port
    if [[ "${DATABASE_URL:-}" == postgres://* || "${DATABASE_URL:-}" == postgresql://* ]] && pg_works "$DATABASE_URL"; then
        database_url=$DATABASE_URL
        say "PostgreSQL: using DATABASE_URL from the environment"
    elif pg_works "postgres://postgres@$PGHOST:$PGPORT/postgres"; then
        database_url="postgres://postgres@$PGHOST:$PGPORT/$SCRM_DB_NAME"
        say "PostgreSQL: using $PGHOST:$PGPORT"
    else
        say "PostgreSQL: nothing answers on $PGHOST:$PGPORT"
        port=$(start_private_pg)
        database_url="postgres://postgres@127.0.0.1:$port/$SCRM_DB_NAME"
    fi

    if [[ "${REDIS_URL:-}" =~ ^redis://([^:/@]+):([0-9]+) ]] && redis_works "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"; then
        redis_url=$REDIS_URL
        say "Redis: using REDIS_URL from the environment"
    elif redis_works "$REDIS_HOST" "$REDIS_PORT"; then
        redis_url="redis://$REDIS_HOST:$REDIS_PORT/$SCRM_REDIS_DB"
        say "Redis: using $REDIS_HOST:$REDIS_PORT"
    else
        say "Redis: nothing answers on $REDIS_HOST:$REDIS_PORT"
        port=$(start_private_redis)
        redis_url="redis://127.0.0.1:$port/$SCRM_REDIS_DB"
    fi

    printf 'export DATABASE_URL=%q\n' "$database_url"
    printf 'export REDIS_URL=%q\n' "$redis_url"
}

case "${1:-start}" in
start) start ;;
stop)
    stop_private_pg
    stop_private_redis
    ;;
*) die "usage: $0 [start|stop]" ;;
esac
