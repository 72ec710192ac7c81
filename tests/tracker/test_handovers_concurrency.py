"""Hand-overs under concurrent requests on PostgreSQL: when the receiver accepts, declines and
the giver cancels at the same instant (and when two offers race), exactly one wins, the others
are refused, and custody and the ledger agree. Each thread has its own connection and really
commits (`committed_db`), so the database's locks decide, as between app servers."""

import pytest

from tests.conftest import make_user
from tests.tracker.test_concurrency import assert_ledger_intact, run_together
from tracker import projection, services
from tracker.choices import HandoverStatus, LocationKind, MediaKind, Role
from tracker.exceptions import Conflict
from tracker.models import CustodyEvent, Handover, Loan, Location, Media

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(committed_db):
    """Every test here commits for real (see tests/tracker/test_concurrency.py for the name)."""


@pytest.fixture
def lent(db):
    """FJ-1 on loan to doctor; doctor2 and staff committed so threads see them."""
    people = {
        "staff": make_user("staff", Role.FILE_ROOM),
        "doctor": make_user("doctor", Role.CLINICIAN),
        "doctor2": make_user("doctor2", Role.CLINICIAN),
    }
    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    Location.objects.create(code="EXT", name="City General", kind=LocationKind.EXTERNAL)
    item = services.media_register(
        code="FJ-1", kind=MediaKind.FILM_JACKET, home_location=shelf, actor=people["staff"]
    )
    services.media_check_out(media=item, borrower=people["doctor"], actor=people["staff"])
    return {**people, "item": Media.objects.get(pk=item.pk)}


def test_accept_decline_and_cancel_at_once_one_wins(lent):
    handover = services.handover_offer(
        media=lent["item"], actor=lent["doctor"], to_holder=lent["doctor2"]
    )
    actions = [
        lambda: services.handover_accept(handover=handover, actor=lent["doctor2"]),
        lambda: services.handover_decline(handover=handover, actor=lent["doctor2"], reason="no"),
        lambda: services.handover_cancel(handover=handover, actor=lent["doctor"]),
    ] * 4
    before = CustodyEvent.objects.count()

    outcomes = run_together(len(actions), lambda i: actions[i]())

    won = [o for o in outcomes if isinstance(o, Handover)]
    assert len(won) == 1, outcomes
    assert all(isinstance(o, Conflict) for o in outcomes if o is not won[0]), outcomes
    assert CustodyEvent.objects.count() == before + 1
    final = Handover.objects.get(pk=handover.pk)
    loan = Loan.objects.get(media=lent["item"], returned_at__isnull=True)
    holder = lent["doctor2"] if final.status == HandoverStatus.ACCEPTED else lent["doctor"]
    assert (final.status, loan.borrower) == (won[0].status, holder)
    assert_ledger_intact()
    assert projection.rebuild(check_only=True) == []


def test_two_offers_of_one_item_at_once_one_is_pending(lent):
    ext = Location.objects.get(code="EXT")

    outcomes = run_together(
        8,
        lambda i: services.handover_offer(
            media=lent["item"],
            actor=lent["doctor"],
            to_holder=lent["doctor2"] if i % 2 else None,
            to_location=None if i % 2 else ext,
        ),
    )

    assert sum(isinstance(o, Handover) for o in outcomes) == 1, outcomes
    assert all(isinstance(o, (Handover, Conflict)) for o in outcomes), outcomes
    assert Handover.objects.filter(status=HandoverStatus.PENDING).count() == 1
    assert_ledger_intact()
