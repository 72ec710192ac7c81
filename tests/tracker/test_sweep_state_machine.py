"""Random weeks in the file room with a clock that only moves forward: Hypothesis lends, returns,
hands over, sends items by courier, reads tags and reminds by hand in any order; after every step
the sweep runs (as cron would) and the test checks that the open flags are exactly the items
whose condition holds, that a second pass adds nothing, that every overdue borrower with an
address was reminded within the interval, and that the projection (at the end of each example) rebuilds from the ledger."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, strategies as st
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tracker import projection, services
from tracker.choices import FlagKind, LocationKind, MediaKind, MediaStatus
from tracker.models import CustodyEvent, Flag, Loan, Location, Media, Reminder

CODES = ["FJ-1", "CD-1"]
TRANSIT_HOURS, NOT_SEEN_DAYS, REMINDER_DAYS = 48, 10, 3
codes = st.sampled_from(CODES)
people = st.sampled_from(["doctor", "doctor2"])


class SweepWeeks(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._savepoint = transaction.atomic()  # each example starts empty, rolled back after
        self._savepoint.__enter__()
        User = get_user_model()
        self.staff = User.objects.create_user(username="sw-staff", password="x")
        self.people = {
            "doctor": User.objects.create_user(username="sw-doctor", email="d@hospital.example"),
            "doctor2": User.objects.create_user(username="sw-doctor2"),  # no address
        }
        self.shelf = Location.objects.create(code="SW-A1", name="Shelf", kind=LocationKind.SHELF)
        self.clinic = Location.objects.create(code="SW-ORTHO", name="Ortho", kind=LocationKind.DEPARTMENT)
        self.courier = Location.objects.create(code="SW-COURIER", name="Courier", kind=LocationKind.TRANSIT)
        self.now = timezone.now()

    def teardown(self):
        try:  # once per example: a replay per step would cost more than the rest together
            assert projection.rebuild(check_only=True) == []
        finally:
            transaction.set_rollback(True)
            self._savepoint.__exit__(None, None, None)

    @initialize()
    def register(self):
        for code in CODES:
            services.media_register(
                code=code, kind=MediaKind.FILM_JACKET, home_location=self.shelf, actor=self.staff
            )

    def item(self, code: str) -> Media:
        return Media.objects.get(code=code)

    # --- the file room ---------------------------------------------------------------------------

    @rule(who=people, due_hours=st.integers(-72, 240))
    def lend(self, who, due_hours):
        media = Media.objects.filter(status=MediaStatus.ON_SHELF).first()
        if media is not None:
            services.media_check_out(
                media=media, borrower=self.people[who], actor=self.staff,
                due_at=max(self.now, timezone.now()) + timedelta(hours=due_hours),
            )

    @rule(code=codes)
    def give_back(self, code):
        media = self.item(code)
        if media.status in (MediaStatus.ON_LOAN, MediaStatus.IN_TRANSIT):
            services.media_return(media=media, actor=self.staff)

    @rule(who=people)
    def hand_over(self, who):
        loan = Loan.objects.filter(returned_at__isnull=True).select_related("media").first()
        if loan is not None:
            services.media_transfer(media=loan.media, to_holder=self.people[who], actor=self.staff)

    @rule(code=codes)
    def give_to_courier(self, code):
        services.media_transfer(media=self.item(code), to_location=self.courier, actor=self.staff)

    @rule(code=codes, at_clinic=st.booleans())
    def read_tag(self, code, at_clinic):
        services.media_seen(media=self.item(code), location=self.clinic if at_clinic else self.shelf)

    @rule(code=codes)
    def remind_by_hand(self, code):
        loan = Loan.objects.filter(media__code=code, returned_at__isnull=True, borrower__email__gt="").first()
        if loan is not None:
            services.loan_remind(loan=loan, actor=self.staff, now=self.now)

    @rule(hours=st.integers(1, 24 * 12))
    def time_passes(self, hours):
        self.now += timedelta(hours=hours)

    # --- the sweep, after every step ------------------------------------------------------------

    @invariant()
    def the_sweep_makes_flags_follow_their_conditions(self):
        services.sweep(now=self.now)
        before = CustodyEvent.objects.count()
        assert services.sweep(now=self.now).changes == 0
        assert CustodyEvent.objects.count() == before, "a second pass added events"

        def flagged(kind):
            return set(Flag.objects.filter(kind=kind, cleared_at__isnull=True).values_list("media_id", flat=True))

        overdue = Loan.objects.filter(returned_at__isnull=True, due_at__lt=self.now)
        assert set(
            Flag.objects.filter(kind=FlagKind.OVERDUE, cleared_at__isnull=True).values_list("loan_id", flat=True)
        ) == set(overdue.values_list("pk", flat=True))
        stuck = Media.objects.filter(
            status=MediaStatus.IN_TRANSIT, last_seen_at__lt=self.now - timedelta(hours=TRANSIT_HOURS)
        )
        assert flagged(FlagKind.IN_TRANSIT) == set(stuck.values_list("pk", flat=True))
        unseen = Media.objects.filter(
            status=MediaStatus.ON_SHELF, last_seen_at__lt=self.now - timedelta(days=NOT_SEEN_DAYS)
        )
        assert flagged(FlagKind.NOT_SEEN) == set(unseen.values_list("pk", flat=True))
        recent = self.now - timedelta(days=REMINDER_DAYS)
        for loan in overdue.filter(borrower__email__gt=""):
            assert Reminder.objects.filter(loan=loan, sent_at__gt=recent).exists(), loan
        assert not Reminder.objects.filter(loan__borrower__email="").exists()


def test_random_weeks_keep_flags_equal_to_their_conditions(db, settings):
    settings.FLAG_TRANSIT_HOURS = TRANSIT_HOURS
    settings.FLAG_NOT_SEEN_DAYS = NOT_SEEN_DAYS
    settings.REMINDER_EVERY_DAYS = REMINDER_DAYS
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run_state_machine_as_test(
        SweepWeeks,
        settings=hypothesis_settings(
            max_examples=30, stateful_step_count=25, deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
