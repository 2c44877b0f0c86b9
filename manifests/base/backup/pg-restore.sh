#!/bin/sh
# pg-restore.sh: load a backup written by pg-backup.sh into an empty database.
#
#   PGHOST=... PGUSER=ham PGPASSWORD=... PGDATABASE=ham sh pg-restore.sh [--force] FILE
#
# FILE is a `ham-*.sql.gz`. The target is the database the libpq variables
# (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) name: create it fresh first,
# owned by the user HAM connects as, and connect as that user, since the dump
# carries no owners (objects belong to whoever restores them).
#
# The whole file runs in one transaction and stops at the first error
# (`psql -v ON_ERROR_STOP=1 --single-transaction`): a restore either completes or
# changes nothing. A database that already has HAM's schema (a `_sqlx_migrations`
# table) is refused, since loading a dump on top of it would fail or mix two
# states; `--force` skips that check.
set -eu

usage() {
    echo "usage: pg-restore.sh [--force] FILE.sql.gz" >&2
}

fail() {
    echo "pg-restore: $*" >&2
    exit 1
}

force=no
file=
for arg in "$@"; do
    case $arg in
        --force) force=yes ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            usage
            fail "unknown option $arg"
            ;;
        *)
            [ -z "$file" ] || {
                usage
                fail "one FILE only"
            }
            file=$arg
            ;;
    esac
done
[ -n "$file" ] || {
    usage
    exit 2
}
[ -f "$file" ] && [ -r "$file" ] || fail "cannot read $file"
command -v psql >/dev/null 2>&1 || fail "psql not found on PATH"

# The whole stream is checked before anything is loaded: a truncated or corrupt
# file is refused here rather than half-applied.
gzip -t "$file" 2>/dev/null || fail "$file is not a complete gzip file (gzip -t failed)"

db=${PGDATABASE:-(libpq default)}
existing=$(psql -X -q -A -t -v ON_ERROR_STOP=1 \
    -c "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = '_sqlx_migrations'") ||
    fail "cannot query database $db (check PGHOST, PGUSER, PGPASSWORD, PGDATABASE)"
if [ "$existing" != 0 ] && [ "$force" != yes ]; then
    fail "refusing to restore into database $db: it already has a _sqlx_migrations table (HAM's schema). Restore into a freshly created, empty database, or pass --force to try anyway."
fi

echo "pg-restore: restoring $file into database $db" >&2
tmp=$(mktemp "${TMPDIR:-/tmp}/pg-restore.XXXXXX")
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# No pipefail in POSIX sh: gunzip's success is recorded in a marker file.
{ gunzip -c "$file" && echo ok >"$tmp"; } |
    psql -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null ||
    fail "psql failed; the transaction was rolled back and database $db is unchanged"
[ "$(cat "$tmp")" = ok ] || fail "reading $file failed during the restore; database $db may hold part of it: drop and recreate it, then restore again"
echo "pg-restore: restored $file into database $db" >&2
