#!/usr/bin/env bash
# Runs the test suite with everything it needs: Chromium for the report test and a
# private PostgreSQL server on a local port for the database tests (installing Debian's
# packages first if the machine lacks them), runs `cargo test --release`, and stops the
# server again.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(pg_bin)" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL for the database tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# The report test opens report.html in headless Chromium; a CJK font makes its
# screenshot show Chinese.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium for the report test" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi

PGBIN="$(pg_bin)"
if [ -n "$PGBIN" ] && [ -z "${CLIENTSEG_TEST_PG_URL:-}" ]; then
    PGDATA="$(mktemp -d /tmp/clientseg-pg.XXXXXX)"
    PORT="${CLIENTSEG_TEST_PG_PORT:-55432}"
    # Skip ports something already listens on (a server left by an interrupted run).
    while (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do PORT=$((PORT + 1)); done
    PASSWORD="clientseg-test-$$"
    # The server refuses to run as root: run it as the postgres user when we are root.
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PGDATA" postgres
        chown postgres "$PGDATA"
        AS=(runuser -u postgres --)
    else
        AS=()
    fi
    echo "$PASSWORD" > "$PGDATA/pw"
    chmod 644 "$PGDATA/pw"
    "${AS[@]}" "$PGBIN/initdb" -D "$PGDATA/data" -U clientseg --pwfile="$PGDATA/pw" -A scram-sha-256 >/dev/null
    "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA/data" -l "$PGDATA/log" -w \
        -o "-p $PORT -k $PGDATA -c listen_addresses=127.0.0.1" start >/dev/null \
        || { cat "$PGDATA/log" >&2; exit 1; }
    trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PGDATA"' EXIT
    export CLIENTSEG_TEST_PG_URL="postgres://clientseg:$PASSWORD@127.0.0.1:$PORT/postgres"
    echo "PostgreSQL $(basename "$(dirname "$PGBIN")") for the tests on 127.0.0.1:$PORT" >&2
fi

# The k-means equivalence test runs scikit-learn from the benches' pinned environment
# (the same one `clientseg bench` uses).
VENV="target/bench/venv"
if [ -z "${CLIENTSEG_TEST_PYTHON:-}" ] && command -v python3 >/dev/null; then
    if ! cmp -s benches/requirements.txt "$VENV/clientseg-requirements.txt"; then
        echo "installing benches/requirements.txt into $VENV" >&2
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$VENV"
            python3 -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r benches/requirements.txt
        cp benches/requirements.txt "$VENV/clientseg-requirements.txt"
    fi
    export CLIENTSEG_TEST_PYTHON="$PWD/$VENV/bin/python"
fi

cargo test --release
