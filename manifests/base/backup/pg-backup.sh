#!/bin/sh
# pg-backup.sh: a compressed logical backup of HAM's PostgreSQL database.
#
#   BACKUP_DIR=/backup PGHOST=postgres.ham.svc PGUSER=ham PGPASSWORD=... PGDATABASE=ham \
#     sh pg-backup.sh
#
# Connects with the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE) and writes ${BACKUP_DIR}/ham-<UTC %Y%m%dT%H%M%SZ>.sql.gz: plain SQL
# from `pg_dump --no-owner --no-privileges`, so it restores into any database
# as any user (pg-restore.sh). The file appears only complete and verified: the
# dump is written under a `.partial` name and renamed after `gzip -t` passes.
# Prints the file's path as the last line on stdout; messages go to stderr. On
# any failure it exits non-zero and leaves no file behind.
#
# POSIX sh has no pipefail: pg_dump's success is recorded by touching a marker
# file after it, and the marker is checked once the pipe has finished.
set -eu

fail() {
    echo "pg-backup: $*" >&2
    exit 1
}

[ -n "${BACKUP_DIR:-}" ] || fail "BACKUP_DIR is not set: name the directory to write the backup into"
[ -d "$BACKUP_DIR" ] || fail "BACKUP_DIR $BACKUP_DIR is not a directory"
command -v pg_dump >/dev/null 2>&1 || fail "pg_dump not found on PATH"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$BACKUP_DIR/ham-$stamp.sql.gz"
partial="$final.partial"
dumped="$final.dumped"
[ ! -e "$final" ] || fail "$final already exists"

# A backup holds every secret-sealed value and session hash: owner-only files.
umask 077
cleanup() {
    rm -f "$partial" "$dumped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "pg-backup: dumping database ${PGDATABASE:-(libpq default)} on ${PGHOST:-(libpq default)} to $final" >&2
# A failing pg_dump skips the marker; `&&` keeps `set -e` from exiting in the
# middle of the pipe, and gzip's own status is the pipe's.
{ pg_dump --no-owner --no-privileges && : >"$dumped"; } | gzip -c >"$partial"
[ -e "$dumped" ] || fail "pg_dump failed; no backup written"
gzip -t "$partial" || fail "the compressed dump does not verify (gzip -t); no backup written"
mv "$partial" "$final"
echo "pg-backup: wrote $final ($(wc -c <"$final" | tr -d ' ') bytes)" >&2
echo "$final"
