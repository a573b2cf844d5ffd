#!/usr/bin/env bash
# Run a command with DATABASE_URL and REDIS_URL pointing at a reachable PostgreSQL and
# Redis (scripts/ensure-services.sh); private instances it had to start are stopped
# afterwards unless KEEP_SERVICES=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
env_lines=$(scripts/ensure-services.sh start)
eval "$env_lines"
if [ "${KEEP_SERVICES:-0}" != 1 ]; then
    trap 'scripts/ensure-services.sh stop' EXIT
fi
"$@"
