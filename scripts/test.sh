#!/usr/bin/env bash
# Runs every test with what it needs: a PostgreSQL server on a private local port for the
# database tests, Chromium (and a CJK font) for the report test, and Python with
# scikit-learn for the oracle tests. What is missing is installed from Debian's packages
# or PyPI; an install that fails is reported by name and the tests still run: the tests
# that need it are `#[ignore]`d in plain `cargo test` and run here with --include-ignored,
# so they fail saying what is missing instead of passing silently.
set -uo pipefail
cd "$(dirname "$0")/.."

# Blessing rewrites the golden files instead of checking them: never in a full run.
if [ -n "${CLIENTSEG_BLESS:-}" ]; then
    echo "CLIENTSEG_BLESS is set, which would rewrite the golden files instead of checking them; unset it (bless with: CLIENTSEG_BLESS=1 cargo test --release --test integration -- golden)" >&2
    exit 2
fi

CACHE="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/clientseg"
mkdir -p "$CACHE"
failed=()
apt_updated=""

# apt_install WHAT PACKAGE...: installs, or records WHAT as failed with apt's last words.
apt_install() {
    local what="$1"
    shift
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        failed+=("$what: not installed, and this is not a root Debian shell (install: $*)")
        return
    fi
    echo "installing $what ($*)" >&2
    local log="$CACHE/apt.log"
    if [ -z "$apt_updated" ]; then
        timeout 600 apt-get update -qq >"$log" 2>&1 && apt_updated=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq "$@" >"$log" 2>&1; then
        failed+=("$what: apt-get install $* failed: $(tail -n 3 "$log" | tr '\n' ' ')")
    fi
}

# The server binaries (initdb, pg_ctl), not just the folder a client-only package makes.
pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
    done | sort -V | tail -n 1
}

[ -n "$(pg_bin)" ] || apt_install "PostgreSQL server" postgresql
command -v chromium >/dev/null || apt_install "Chromium" chromium fonts-wqy-microhei

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
    if timeout 120 "${AS[@]}" "$PGBIN/initdb" -D "$PGDATA/data" -U clientseg --pwfile="$PGDATA/pw" \
            -A scram-sha-256 >"$PGDATA/initdb.log" 2>&1 \
        && timeout 120 "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA/data" -l "$PGDATA/log" -w -t 60 \
            -o "-p $PORT -k $PGDATA -c listen_addresses=127.0.0.1" start >/dev/null; then
        trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PGDATA"' EXIT
        export CLIENTSEG_TEST_PG_URL="postgres://clientseg:$PASSWORD@127.0.0.1:$PORT/postgres"
        echo "PostgreSQL $(basename "$(dirname "$PGBIN")") for the tests on 127.0.0.1:$PORT" >&2
    else
        failed+=("PostgreSQL server: it did not start: $(cat "$PGDATA/initdb.log" "$PGDATA/log" 2>/dev/null | tail -n 5 | tr '\n' ' ')")
        rm -rf "$PGDATA"
    fi
elif [ -z "$PGBIN" ] && [ -z "${CLIENTSEG_TEST_PG_URL:-}" ]; then
    failed+=("PostgreSQL server: no initdb under /usr/lib/postgresql/*/bin")
fi

# The oracle tests run scikit-learn from the benches' pinned requirements, in an
# environment kept outside the clone (like the build cache), rebuilt when they change.
VENV="$CACHE/venv"
if [ -z "${CLIENTSEG_TEST_PYTHON:-}" ]; then
    if ! cmp -s benches/requirements.txt "$VENV/clientseg-requirements.txt"; then
        echo "installing benches/requirements.txt into $VENV" >&2
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install "Python venv" python3-venv
            python3 -m venv "$VENV" >/dev/null 2>&1 || failed+=("Python venv: python3 -m venv failed")
        fi
        if [ -x "$VENV/bin/python" ]; then
            if timeout 1200 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
                    -r benches/requirements.txt >"$CACHE/pip.log" 2>&1; then
                cp benches/requirements.txt "$VENV/clientseg-requirements.txt"
            else
                failed+=("Python packages: pip install -r benches/requirements.txt failed: $(tail -n 3 "$CACHE/pip.log" | tr '\n' ' ')")
            fi
        fi
    fi
    [ -f "$VENV/clientseg-requirements.txt" ] && export CLIENTSEG_TEST_PYTHON="$VENV/bin/python"
fi

# The notebooks' packages (nbclient, ipykernel, matplotlib, pandas, pyarrow), in their own
# environment; the notebooks test runs every notebook against a fresh demo run.
NBVENV="$CACHE/notebooks-venv"
if [ -z "${CLIENTSEG_NOTEBOOK_PYTHON:-}" ]; then
    if ! cmp -s notebooks/requirements.txt "$NBVENV/clientseg-requirements.txt"; then
        echo "installing notebooks/requirements.txt into $NBVENV" >&2
        rm -rf "$NBVENV"
        python3 -m venv "$NBVENV" >/dev/null 2>&1 || { apt_install "Python venv" python3-venv; python3 -m venv "$NBVENV" >/dev/null 2>&1; }
        if [ -x "$NBVENV/bin/python" ]; then
            if timeout 1200 "$NBVENV/bin/python" -m pip install --quiet --disable-pip-version-check \
                    -r notebooks/requirements.txt >"$CACHE/pip-notebooks.log" 2>&1; then
                cp notebooks/requirements.txt "$NBVENV/clientseg-requirements.txt"
            else
                failed+=("notebook packages: pip install -r notebooks/requirements.txt failed: $(tail -n 3 "$CACHE/pip-notebooks.log" | tr '\n' ' ')")
            fi
        else
            failed+=("notebook packages: python3 -m venv failed")
        fi
    fi
    [ -f "$NBVENV/clientseg-requirements.txt" ] && export CLIENTSEG_NOTEBOOK_PYTHON="$NBVENV/bin/python"
fi

report_failed() {
    if [ ${#failed[@]} -gt 0 ]; then
        echo "Set-up problems (the tests that need these fail):" >&2
        printf '  - %s\n' "${failed[@]}" >&2
    fi
}
report_failed

cargo test --release -- --include-ignored
status=$?
report_failed
exit $status
