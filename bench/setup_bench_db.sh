#!/usr/bin/env bash
# Prepare a PostgreSQL database for benchmarking TokenHub against an upstream at $UPSTREAM
# (default http://127.0.0.1:9100/v1): catalog, a user with credit, a key and one channel per format.
# Prints the sk-hub key on stdout. Uses DATABASE_URL / REDIS_URL / TOKENHUB_ENCRYPTION_KEYS from the env.
set -euo pipefail
cd "$(dirname "$0")/.."
UPSTREAM="${UPSTREAM:-http://127.0.0.1:9100/v1}"
PY=.venv/bin/python
db_name="${DATABASE_URL##*/}"
psql "${DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$db_name\"" -c "CREATE DATABASE \"$db_name\"" >&2
$PY manage.py migrate -v0 >&2
$PY manage.py import_models channels_app/data/default_catalog.json >&2
$PY manage.py create_user bench --password-stdin <<<"bench-password-123" >&2
$PY manage.py create_user owner --password-stdin <<<"owner-password-123" >&2
$PY manage.py grant bench 1000000 --memo "bench credit" >&2
echo bench-upstream-key | $PY manage.py add_channel --owner owner --provider openai-compatible --name bench-openai \
  --base-url "$UPSTREAM" --models gpt-4o-mini,deepseek-chat --cut 20 >&2
echo bench-upstream-key | $PY manage.py add_channel --owner owner --provider anthropic --name bench-anthropic \
  --base-url "${UPSTREAM%/v1}" --models claude-haiku-4-5 --cut 20 >&2
$PY manage.py create_api_key bench --name bench
