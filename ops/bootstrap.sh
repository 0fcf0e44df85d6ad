#!/usr/bin/env bash
# Everything a fresh Debian machine needs to run the engine and its tests, then the local stack:
#   Python packages (pip install -e '.[dev]'), PostgreSQL and Chromium from Debian (when missing, as root),
#   the Kafka jars from Maven Central (once, cached), and `python -m engine stack up`.
# Idempotent and quiet when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.state/bootstrap.stamp
mkdir -p .state

step() { printf '== %s\n' "$*" >&2; }

apt_missing=()
[ -x "$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | tail -n1)" ] || apt_missing+=(postgresql)
command -v psql >/dev/null || apt_missing+=(postgresql-client)
command -v java >/dev/null || apt_missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || apt_missing+=(maven)
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v promtool >/dev/null || apt_missing+=(prometheus)
command -v amtool >/dev/null || apt_missing+=(prometheus-alertmanager)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${apt_missing[*]} (run as root, or: sudo apt-get install ${apt_missing[*]})" >&2
    exit 1
  fi
  step "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${apt_missing[@]}" >/dev/null
  # Debian starts its own services on install; the engine uses its own, on other ports
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    if command -v systemctl >/dev/null; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    pkill -f "/usr/bin/$svc" 2>/dev/null || true
  done
fi

want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! python -c 'import engine, aiokafka, asyncpg' 2>/dev/null; then
  step "pip install -e .[dev]"
  python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi

step "python -m engine stack up"
python -m engine stack up
