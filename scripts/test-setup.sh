#!/usr/bin/env bash
# Prepare what the test suite needs beyond the virtualenv; safe to run any number of times.
#  - tests/interop/node_modules from the committed lock (npm ci), when missing or older than
#    the lock;
#  - openssl, node and npm on PATH (interop tests drive them).
# PostgreSQL is started by the suite itself (tests/support/postgres.py) from the installed
# server binaries.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
interop="$root/tests/interop"

missing=()
for tool in openssl node npm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "test-setup: missing on PATH: ${missing[*]} (install openssl and Node.js 20+ with npm)" >&2
  exit 1
fi

# PostgreSQL server binaries (initdb, pg_ctl) for the storage tests: Debian's package when absent.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
   && ! { command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; }; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test-setup: installing PostgreSQL server binaries (apt-get install postgresql)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "test-setup: no PostgreSQL server binaries (initdb); install the postgresql package" >&2
    [[ "${CI:-}" == "true" ]] && exit 1
  fi
fi

# npm writes node_modules/.package-lock.json on every install: it is the install's timestamp.
installed="$interop/node_modules/.package-lock.json"
if [[ ! -f "$installed" || "$interop/package-lock.json" -nt "$installed" ]]; then
  echo "test-setup: installing npm packages for interop tests (npm ci in tests/interop)"
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$installed"
else
  echo "test-setup: tests/interop/node_modules is up to date"
fi
