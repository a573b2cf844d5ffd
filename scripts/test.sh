#!/usr/bin/env bash
# `make test`: formatting, lint and types first (quick to fail), then the whole pytest
# suite on PostgreSQL with Redis. Run through scripts/with-services.sh.
#
#   PYTEST_WORKERS=0 make test             # no xdist (default 2, one per core)
#   PYTEST_ARGS="-k seed -x" make test     # extra pytest arguments
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin

step() { printf '\n=== %s\n' "$*"; }

step "ruff format --check"
"$BIN/ruff" format --check .
step "ruff check"
"$BIN/ruff" check .
step "mypy"
"$BIN/mypy" .

case "${DATABASE_URL:-}" in
postgres://* | postgresql://*) ;;
*)
    echo "the tests run on PostgreSQL; run them through scripts/with-services.sh (make test)" >&2
    exit 2
    ;;
esac
[ -n "${REDIS_URL:-}" ] || {
    echo "REDIS_URL is not set; run through scripts/with-services.sh (make test)" >&2
    exit 2
}

step "pytest on ${DATABASE_URL%%\?*} with Redis ${REDIS_URL}"
workers=${PYTEST_WORKERS:-2}
args=()
if [ "$workers" != 0 ]; then
    args+=(-n "$workers" --dist loadfile)
fi
# pytest exits 5 when it collected no test: that is a failure here, not a pass.
# shellcheck disable=SC2086
exec "$BIN/python" -m pytest "${args[@]}" ${PYTEST_ARGS:-}
