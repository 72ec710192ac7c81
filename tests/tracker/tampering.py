"""Acting as the database owner in tests: lift the ledger's append-only triggers to change
history as a forger with DDL rights could (as tests/tracker/test_ledger.py does)."""
from contextlib import contextmanager
from importlib import import_module

from django.db import connection


@contextmanager
def triggers_lifted():
    """Lift the append-only triggers for the block (only the database owner can), as a forger
    with DDL rights would; put them back afterwards."""
    triggers = import_module("tracker.migrations.0002_ledger_append_only_triggers")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in triggers.APPEND_ONLY_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            for statement in triggers.SQLITE_DROP:
                cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for table in triggers.APPEND_ONLY_TABLES:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            else:
                for statement in triggers.SQLITE_TRIGGERS:
                    cursor.execute(statement)


def raw(sql: str, params=()) -> None:
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(sql, list(params))
