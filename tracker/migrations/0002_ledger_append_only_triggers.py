"""Database triggers that refuse UPDATE and DELETE on the ledger tables, so even raw SQL cannot
rewrite history. Removing them needs DDL rights on the database (the owner), which is where
the signed checkpoints take over: a rewrite made that way is still detected by verify_ledger."""
from django.db import migrations

APPEND_ONLY_TABLES = ("tracker_custodyevent", "tracker_ledgercheckpoint")

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
        BEGIN SELECT RAISE(ABORT, 'filmroom: {table} is append-only ({op} refused)'); END"""
    for table in APPEND_ONLY_TABLES
    for op in ("UPDATE", "DELETE")
]

SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {table}_no_{op}"
    for table in APPEND_ONLY_TABLES
    for op in ("update", "delete")
]

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION filmroom_refuse_ledger_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'filmroom: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
"""
POSTGRES_TRIGGERS = [POSTGRES_FUNCTION] + [
    statement
    for table in APPEND_ONLY_TABLES
    for statement in (
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION filmroom_refuse_ledger_change()""",
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION filmroom_refuse_ledger_change()""",
    )
]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}.get(vendor)
    if statements is None:
        raise RuntimeError(f"Filmroom's ledger needs append-only triggers; {vendor} is not supported.")
    for statement in statements:
        schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement, params=None)
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS filmroom_refuse_ledger_change()")


class Migration(migrations.Migration):
    dependencies = [("tracker", "0001_initial")]
    operations = [migrations.RunPython(create_triggers, drop_triggers)]
