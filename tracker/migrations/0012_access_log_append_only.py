"""The access log refuses UPDATE and DELETE in the database too, like the ledger (0002): who read
which custody chain or export is itself an audit record, and must not be quietly edited even
with raw SQL. The PostgreSQL trigger function is the ledger's (0002)."""
import importlib

from django.db import migrations

LEDGER = importlib.import_module("tracker.migrations.0002_ledger_append_only_triggers")
TABLE = "tracker_accesslog"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER {TABLE}_no_{op.lower()} BEFORE {op} ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'filmroom: {TABLE} is append-only ({op} refused)'); END"""
    for op in ("UPDATE", "DELETE")
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {TABLE}_no_{op}" for op in ("update", "delete")]
POSTGRES_TRIGGERS = [
    LEDGER.POSTGRES_FUNCTION,
    f"""CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION filmroom_refuse_ledger_change()""",
    f"""CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION filmroom_refuse_ledger_change()""",
]
POSTGRES_DROP = [
    f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
]


def create_triggers(apps, schema_editor):
    statements = {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}[schema_editor.connection.vendor]
    for statement in statements:
        schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    statements = {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}[schema_editor.connection.vendor]
    for statement in statements:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("tracker", "0011_scan_message_source_and_language_preference")]
    operations = [migrations.RunPython(create_triggers, drop_triggers)]
