"""Who read which custody chain or export cannot be quietly edited: the access log refuses
changes through the ORM and, like the ledger, in the database itself (raw SQL)."""
import pytest
from django.db import DatabaseError, connection, transaction

from tracker.audit import record_access
from tracker.choices import AccessAction, AccessSubject
from tracker.models import AccessLog, AppendOnlyError


@pytest.fixture
def entry(cast):
    return record_access(
        user=cast["auditor"], action=AccessAction.VIEWED, subject_kind=AccessSubject.PATIENT,
        subject="MRN-7", detail={"events": 3}, path="/audit/chain/?subject_kind=patient&subject=MRN-7",
    )


EDITS = [
    "UPDATE tracker_accesslog SET subject = 'MRN-8'",
    "UPDATE tracker_accesslog SET user_id = NULL",
    "DELETE FROM tracker_accesslog",
    pytest.param("TRUNCATE tracker_accesslog", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize("statement", EDITS)
def test_the_database_refuses_raw_sql_that_edits_the_access_log(entry, statement):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":  # the row's own checks first, as at a commit
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(statement)
    assert list(AccessLog.objects.values_list("subject", "user_id")) == [("MRN-7", entry.user_id)]


def test_the_orm_refuses_to_edit_the_access_log(entry):
    for attempt in (
        lambda: AccessLog.objects.update(subject="MRN-8"),
        lambda: AccessLog.objects.all().delete(),
        lambda: entry.delete(),
    ):
        with pytest.raises(AppendOnlyError), transaction.atomic():
            attempt()
    assert AccessLog.objects.get().subject == "MRN-7"
