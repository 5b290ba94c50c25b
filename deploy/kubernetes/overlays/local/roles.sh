#!/bin/sh
# Run once by the postgres image's entrypoint when it creates the database (mounted into
# /docker-entrypoint-initdb.d by every deployment shape): the roles the stack connects as.
# docs/design.md (Postgres roles) says why.
#   POSTGRES_APP_USER  the app's and worker's role: logs in, owns POSTGRES_DB and its
#                      schema, nothing more (no superuser, no CREATEROLE, no CREATEDB)
#   metrics            the monitoring profile's exporter: pg_monitor only, no table
# Both log in with POSTGRES_PASSWORD (the image has read POSTGRES_PASSWORD_FILE into it).
# The image's superuser (POSTGRES_USER, `postgres`) may log in only inside the container,
# over its socket: never over the network, whatever password a client knows.
set -eu

[ -n "${POSTGRES_APP_USER:-}" ] || { echo "Environment variable POSTGRES_APP_USER is required." >&2; exit 1; }
[ "$POSTGRES_APP_USER" != "$POSTGRES_USER" ] || {
    echo "Environment variable POSTGRES_APP_USER is invalid: it must differ from the superuser $POSTGRES_USER." >&2
    exit 1
}

psql --variable ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --no-psqlrc --quiet \
    --set app="$POSTGRES_APP_USER" --set password="$POSTGRES_PASSWORD" --set db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
ALTER DATABASE :"db" OWNER TO :"app";
ALTER SCHEMA public OWNER TO :"app";
CREATE ROLE metrics LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'password' IN ROLE pg_monitor;
-- Other databases are no one's but the superuser's.
REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO metrics;
SQL

# The superuser over the network: refused before any password is asked.
hba="$PGDATA/pg_hba.conf"
{ echo "host all $POSTGRES_USER all reject"; cat "$hba"; } > "$hba.new"
mv "$hba.new" "$hba"
echo "roles.sh: role $POSTGRES_APP_USER owns $POSTGRES_DB; role metrics has pg_monitor; $POSTGRES_USER logs in locally only"
