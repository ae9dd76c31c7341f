#!/usr/bin/env bash
# Makes the connection DATABASE_URL describes work, for .ci/run. When it already works
# (PostgreSQL up as the README documents), this changes nothing. Otherwise, for a local
# server only: creates the database the URL names if it is missing and, with
# --trust-localhost (given by .ci/run only for a PostgreSQL it installed itself, whose
# Debian default asks for a password on 127.0.0.1), trusts 127.0.0.1 and ::1 in
# pg_hba.conf and reloads. Administration goes through the Unix socket as the postgres
# user (Debian's `local all postgres peer`).
set -euo pipefail
: "${DATABASE_URL:?DATABASE_URL must be set}"
trust_localhost=false
[ "${1:-}" = --trust-localhost ] && trust_localhost=true

read -r host port db user < <(node -e '
  const url = new URL(process.env.DATABASE_URL);
  console.log(url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1", url.port || 5432,
    decodeURIComponent(url.pathname.slice(1)) || "postgres", decodeURIComponent(url.username) || "postgres");')

connects() { psql "$1" -w -X -q -t -A -c 'SELECT 1' >/dev/null 2>&1; }
connects "$DATABASE_URL" && exit 0

case "$host" in
  127.0.0.1 | localhost | ::1) ;;
  *) echo "ci: cannot connect to DATABASE_URL ($host:$port), and it is not a local server this script may set up" >&2; exit 1 ;;
esac

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres -- "$@"; fi; }
admin() { as_postgres psql -X -q -t -A -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }

# The URL's database on the same server: does the password step, not the database, fail?
server_url=$(node -e 'const url = new URL(process.env.DATABASE_URL); url.pathname = "/postgres"; console.log(url.href)')
if ! connects "$server_url"; then
  if [ "$trust_localhost" != true ]; then
    echo "ci: cannot log in to $host:$port as $user; trust 127.0.0.1 in pg_hba.conf, or put the password in DATABASE_URL" >&2
    exit 1
  fi
  hba=$(admin -c 'SHOW hba_file')
  echo "ci: trusting 127.0.0.1 and ::1 in $hba (a PostgreSQL this run installed)"
  # First match wins: these lines go before Debian's scram-sha-256 ones.
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  admin -c 'SELECT pg_reload_conf()' >/dev/null
  for _ in $(seq 1 50); do connects "$server_url" && break; sleep 0.1; done
fi

if [ "$(admin -v db="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")" != 1 ]; then
  echo "ci: creating database $db"
  admin -v db="$db" <<<'CREATE DATABASE :"db"'
fi

connects "$DATABASE_URL" || { echo "ci: still cannot connect to DATABASE_URL ($host:$port/$db as $user)" >&2; exit 1; }
