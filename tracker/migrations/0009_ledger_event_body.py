"""Each event's hashed bytes as a stored generated column (CustodyEvent.body), so that verifying
the ledger is hashing bytes the database derived from the event's columns itself.

The database computes the column for the rows already there. SQLite adds a STORED generated column
only in CREATE TABLE, so Django remakes the table there, which drops its triggers: the append-only
triggers of 0002 are created again. Only built-in functions are used (tracker/event_body_sql.py
says why), so nothing else is created."""
import importlib

from django.db import migrations, models

import tracker.event_body_sql

TRIGGERS = importlib.import_module("tracker.migrations.0002_ledger_append_only_triggers")


def _sqlite_triggers(schema_editor) -> None:
    for statement in TRIGGERS.SQLITE_DROP + TRIGGERS.SQLITE_TRIGGERS:
        schema_editor.execute(statement, params=None)


class AddGeneratedField(migrations.AddField):
    """AddField that remakes the table on SQLite (ALTER TABLE cannot add a STORED column there)
    and keeps the ledger's append-only triggers."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        to_model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, to_model):
            from_model = from_state.apps.get_model(app_label, self.model_name)
            field = to_model._meta.get_field(self.name)
            schema_editor._remake_table(from_model, create_field=field)
            _sqlite_triggers(schema_editor)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        super().database_backwards(app_label, schema_editor, from_state, to_state)
        if schema_editor.connection.vendor == "sqlite":
            _sqlite_triggers(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("tracker", "0008_access_log")]

    operations = [
        AddGeneratedField(
            model_name="custodyevent",
            name="body",
            field=models.GeneratedField(
                db_persist=True,
                expression=tracker.event_body_sql.EventBody(),
                null=True,
                output_field=models.BinaryField(),
                verbose_name="canonical body",
            ),
        ),
    ]
