#!/usr/bin/env bash
# Everything a fresh Debian machine needs to run the engine and its tests, then the local stack:
#   Python packages (the exact versions of requirements.lock, then this project with --no-deps), PostgreSQL and
#   Chromium from Debian (when missing, as root), the Kafka jars from Maven Central (once, cached), and
#   `python -m engine stack up` (`--secure` with ENGINE_STACK_SECURE=1).
# Idempotent and quiet when there is nothing to do. It never stops a process it did not start.
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
  # Debian starts the services of some packages it installs (Prometheus on 9090, Alertmanager on 9093). The local
  # stack's own use other ports (19090, 19094), so they never collide. Where systemd runs them, the units of the
  # packages installed just now are stopped and disabled, by name (nobody asked for them); without systemd (in a
  # container, policy-rc.d usually keeps them from starting) they are left alone. Nothing is ever stopped by its
  # process name, which may be someone else's program.
  for pkg in "${apt_missing[@]}"; do
    case $pkg in
      prometheus | prometheus-alertmanager)
        if [ -d /run/systemd/system ]; then systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true; fi ;;
    esac
  done
fi

# requirements.lock: every package and its hash, resolved from pyproject.toml (its header says how to refresh it).
# Installed as locked, then this project alone, so a build next month gets the same versions.
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! python -c 'import engine, aiokafka, asyncpg' 2>/dev/null; then
  step "pip install -r requirements.lock && pip install --no-deps -e ."
  python -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements.lock
  python -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps -e .
  echo "$want" > "$stamp"
fi

# ENGINE_STACK_SECURE=1 (CI sets it): the secure stack, SASL_SSL Kafka and TLS-only PostgreSQL (stack up --secure);
# the engine's commands and the tests find its client settings in .state/secure.toml
if [ "${ENGINE_STACK_SECURE:-0}" = 1 ]; then
  step "python -m engine stack up --secure"
  python -m engine stack up --secure
else
  step "python -m engine stack up"
  python -m engine stack up
fi
