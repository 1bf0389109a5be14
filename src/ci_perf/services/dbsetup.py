"""The SQL that prepares the stack's PostgreSQL server for the app: its role, its database and the extra
databases (`stack.databases`), read by psql from a file or stdin, never from argv (it holds passwords)."""

from __future__ import annotations

from ci_perf.services.base import StackConfig
from ci_perf.services.placeholders import database_role


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def app_sql(cfg: StackConfig) -> str:
    """Local backend: the server starts empty; create the app's role and database, and let the system
    sampler (which connects as the app's role) reset statement counters and read every session."""
    user, db = ident(cfg.db_user), ident(cfg.db_name)
    return (
        f"CREATE ROLE {user} LOGIN PASSWORD {literal(cfg.db_password)};\n"
        f"CREATE DATABASE {db} OWNER {user};\n"
        f"\\connect {db}\n"
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n"
        f"GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO {user};\n"
        f"GRANT pg_read_all_stats TO {user};\n"
    )


def extra_databases_sql(cfg: StackConfig, timescaledb: bool = False) -> str:
    """Each extra database, owned by its role (created when it is not the app's)."""
    lines: list[str] = []
    made = {cfg.db_user}
    for spec in cfg.databases:
        user, password = database_role(cfg, spec)
        if user not in made:
            lines.append(f"CREATE ROLE {ident(user)} LOGIN PASSWORD {literal(password)};")
            made.add(user)
        lines.append(f"CREATE DATABASE {ident(spec.name)} OWNER {ident(user)};")
        if timescaledb:  # an audit database on TimescaleDB wants its hypertables
            lines += [f"\\connect {ident(spec.name)}", "CREATE EXTENSION IF NOT EXISTS timescaledb;"]
    return "".join(line + "\n" for line in lines)
