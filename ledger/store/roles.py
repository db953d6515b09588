"""A PostgreSQL role for the application that cannot change the log (docs/security.md).

The migration role owns the tables and runs ``alembic upgrade`` (and view rebuilds, which
rename tables); the API, the workers and the CLI connect as an application role made here,
whose grants are derived from :mod:`ledger.store.tables`:

==========================  ===============================  =================================
table                       grants                           why
==========================  ===============================  =================================
entries                     SELECT, INSERT                   the log: appended, never changed
merkle_nodes, checkpoints   SELECT, INSERT                   written once per subtree / note
verification_runs           SELECT, INSERT                   a record of each verification
ledger_head                 SELECT, INSERT, UPDATE           the head row moves on each append
api_keys                    SELECT, INSERT, UPDATE           ``keys revoke`` sets revoked_at
subject_keys                SELECT, INSERT, UPDATE           erasure nulls the wrapped key
projector_checkpoints       SELECT, INSERT, UPDATE           projector positions
view_*                      SELECT, INSERT, UPDATE, DELETE   read models, derived from the log
alembic_version             SELECT                           readiness checks the schema
==========================  ===============================  =================================

plus USAGE on the schema and on its sequences. No role made here holds UPDATE, DELETE or
TRUNCATE on ``entries``: a compromised application cannot rewrite the log even before the
append-only triggers would refuse it, and cannot drop the triggers (it owns nothing).
"""

from __future__ import annotations

import re
import sys

from sqlalchemy import Engine, text

from ledger.errors import ConfigurationError, ValidationError
from ledger.store.tables import metadata

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # used with fullmatch; quoted as well
_APPEND_ONLY = ("entries", "merkle_nodes", "checkpoints", "verification_runs")
_UPDATED = ("ledger_head", "api_keys", "subject_keys", "projector_checkpoints")


def table_grants() -> dict[str, tuple[str, ...]]:
    """The privileges of the application role on each table of the schema."""
    grants: dict[str, tuple[str, ...]] = {"alembic_version": ("SELECT",)}
    for table in metadata.sorted_tables:
        if table.name in _APPEND_ONLY:
            grants[table.name] = ("SELECT", "INSERT")
        elif table.name in _UPDATED:
            grants[table.name] = ("SELECT", "INSERT", "UPDATE")
        elif table.name.startswith("view_"):
            grants[table.name] = ("SELECT", "INSERT", "UPDATE", "DELETE")
        else:  # a table this module does not know yet: read only until someone decides
            grants[table.name] = ("SELECT",)
    return grants


def app_role_sql(role: str, *, login: bool = True, schema: str = "public") -> list[str]:
    """The statements that create ``role`` and grant it what the application needs."""
    if not _ROLE.fullmatch(role):
        raise ValidationError(
            "a role name is 1 to 63 lowercase letters, digits or '_', not starting with a digit",
            field="role",
        )
    if not _ROLE.fullmatch(schema):
        raise ValidationError("not a schema name", field="schema")
    statements = [
        f'CREATE ROLE "{role}" {"LOGIN" if login else "NOLOGIN"}',
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
    ]
    statements += [
        f'GRANT {", ".join(privileges)} ON "{schema}"."{table}" TO "{role}"'
        for table, privileges in sorted(table_grants().items())
    ]
    statements.append(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    return statements


def create_app_role(engine: Engine, role: str, *, login: bool = True) -> None:
    """Create ``role`` on the PostgreSQL database of ``engine`` (migrated to head), in one
    transaction. Run as the tables' owner."""
    if engine.dialect.name != "postgresql":
        raise ConfigurationError("database roles exist only on PostgreSQL")
    statements = app_role_sql(role, login=login)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


if __name__ == "__main__":  # python -m ledger.store.roles NAME: print the SQL
    for line in app_role_sql(sys.argv[1] if len(sys.argv) > 1 else "pactledger_app"):
        print(f"{line};")
