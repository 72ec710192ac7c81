"""Random file-room days with loan requests: the Foundation's state machine
(tests/tracker/test_state_machine.py) plus requests made, approved, denied, made ready,
cancelled and expired, and loans renewed. The model predicts every refusal (the queue refusing a
check-out to someone else, a renewal while a colleague waits or past the limit) and after every
step the base invariants hold (one open loan per item, statuses from events, an intact chain, a
projection the ledger rebuilds) and every request is where the model expects it.

A subclass in its own file rather than rules in the shared machine: the base machine's
check-out rule is overridden here to predict the queue. A hand-over keeps the loan's renewals
(the base rule, unchanged), so passing an item on never buys more renewals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from hypothesis import HealthCheck, strategies as st
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.tracker.test_state_machine import FileRoomDay, Item, maybe_place, people
from tracker import services
from tracker.choices import EventKind, MediaKind, MediaStatus, RequestStatus, Role
from tracker.exceptions import AlreadyOnLoan, Conflict, InvalidRequest, MediaRetired, NotOnLoan
from tracker.models import Loan, LoanRequest
from tracker.services.loan_requests import (
    DEFAULT_MAX_RENEWALS,
    NotAllowed,
    QueueAhead,
    RenewalRefused,
    RequestClosed,
)

OPEN = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.READY)
QUEUED = (RequestStatus.APPROVED, RequestStatus.READY)
actors = st.sampled_from(["doctor", "doctor2", "staff"])


@dataclass
class Asked:
    """What the model expects of one request."""

    requester: str
    code: str
    needed_until: int  # days from today
    status: str = RequestStatus.PENDING


class FileRoomDayWithRequests(FileRoomDay):
    def __init__(self):
        super().__init__()
        # Cancelling others' requests and renewing others' loans is for file-room staff.
        self.staff.groups.add(Group.objects.get_or_create(name=Role.FILE_ROOM)[0])
        self.asked: dict[int, Asked] = {}  # created_seq → request
        self.renewals: dict[str, int] = {}  # item code → renewals of its open loan

    def queue(self, code: str) -> list[int]:
        queued = [seq for seq, r in self.asked.items() if r.code == code and r.status in QUEUED]
        return sorted(queued, key=lambda s: (self.asked[s].status != RequestStatus.READY, s))

    def request_row(self, seq: int) -> LoanRequest:
        return LoanRequest.objects.get(created_seq=seq)

    def pick(self, data, statuses=OPEN) -> int | None:
        """A request to act on: one in `statuses` when there is one (else any: a refusal)."""
        if not self.asked:
            return None
        fitting = sorted(seq for seq, r in self.asked.items() if r.status in statuses)
        return data.draw(st.sampled_from(fitting or sorted(self.asked)))

    def some(self, *statuses) -> bool:
        return any(r.status in statuses for r in self.asked.values())

    # Two items from the start and none of the base machine's tag, place, retirement and
    # checkpoint moves (it tests those itself): the steps go to lending, asking, deciding and
    # renewing, so queues and waiting colleagues come up within short examples.
    register = bind_tag = unbind_tag = move_to_place = seen = sign_checkpoint = retire = None

    def _register(self, code: str) -> str:
        services.media_register(
            code=code,
            kind=MediaKind.FILM_JACKET,
            home_location=self.places["shelf"],
            actor=self.staff,
        )
        self.items[code] = Item(home="shelf")
        return code

    @initialize(target=FileRoomDay.media)
    def first_item(self):
        return self._register("FJ-1")

    @initialize(target=FileRoomDay.media)
    def second_item(self):
        return self._register("CD-1")

    # --- the base rules the queue changes ------------------------------------------------------

    @precondition(lambda self: any(item.holder is None for item in self.items.values()))
    @rule(code=FileRoomDay.media, borrower=people, destination=maybe_place)
    def check_out(self, code, borrower, destination):
        item = self.items[code]
        queue = self.queue(code)
        head = self.asked[queue[0]] if queue else None
        if item.status == MediaStatus.RETIRED:
            refusal = MediaRetired
        elif borrower == "gone":
            refusal = InvalidRequest
        elif item.holder is not None:
            refusal = AlreadyOnLoan
        elif head is not None and head.requester != borrower:
            refusal = QueueAhead
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.CHECKED_OUT,
            lambda: services.media_check_out(
                media=self.item(code),
                borrower=self.users[borrower],
                actor=self.staff,
                destination=self.places[destination] if destination else None,
            ),
        ):
            item.status, item.holder, item.location = MediaStatus.ON_LOAN, borrower, destination
            self.renewals[code] = 0
            if head is not None:
                head.status = RequestStatus.FULFILLED

    @precondition(lambda self: any(item.holder for item in self.items.values()))
    @rule(code=FileRoomDay.media, place=maybe_place)
    def give_back(self, code, place):
        FileRoomDay.give_back(self, code, place)

    def held_on_shelf(self) -> list[str]:
        return [
            code for code, item in self.items.items() if item.holder is None and self.queue(code)
        ]

    @precondition(lambda self: self.held_on_shelf())
    @rule(data=st.data(), reason=st.sampled_from(["", "emergency surgery"]))
    def lend_past_the_queue(self, data, reason):
        """Lend an item someone is queued for to a colleague: refused, unless staff say why."""
        code = data.draw(st.sampled_from(self.held_on_shelf()))
        head = self.asked[self.queue(code)[0]]
        borrower = "doctor2" if head.requester == "doctor" else "doctor"
        if self.attempt(
            None if reason else QueueAhead,
            EventKind.CHECKED_OUT,
            lambda: services.media_check_out(
                media=self.item(code),
                borrower=self.users[borrower],
                actor=self.staff,
                queue_override=reason,
            ),
        ):
            item = self.items[code]
            item.status, item.holder, item.location = MediaStatus.ON_LOAN, borrower, None
            self.renewals[code] = 0

    # --- requests ------------------------------------------------------------------------------

    @rule(
        code=FileRoomDay.media,
        who=st.sampled_from(["doctor", "doctor2", "doctor", "doctor2", "gone"]),
        until=st.integers(min_value=0, max_value=3),
    )
    def make_request(self, code, who, until):
        item = self.items[code]
        if who == "gone":
            refusal = InvalidRequest
        elif item.status == MediaStatus.RETIRED:
            refusal = MediaRetired
        elif any(
            r.code == code and r.requester == who and r.status in OPEN for r in self.asked.values()
        ):
            refusal = Conflict
        else:
            refusal = None
        today = timezone.localdate()
        made = []
        if self.attempt(
            refusal,
            EventKind.REQUEST_MADE,
            lambda: made.append(
                services.loan_request_make(
                    requester=self.users[who],
                    media=self.item(code),
                    needed_from=today,
                    needed_until=today + timedelta(days=until),
                    purpose="follow-up",
                )
            ),
        ):
            self.asked[made[0].created_seq] = Asked(who, code, until)

    # Deciding needs something to decide (closed requests are refused by deny and cancel too).
    @precondition(lambda self: self.some(RequestStatus.PENDING))
    @rule(data=st.data())
    def approve(self, data):
        seq = self.pick(data, [RequestStatus.PENDING, RequestStatus.DENIED])
        if seq is None:
            return
        asked = self.asked[seq]
        if asked.status != RequestStatus.PENDING:
            refusal = RequestClosed
        elif self.items[asked.code].status == MediaStatus.RETIRED:
            refusal = MediaRetired
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.REQUEST_APPROVED,
            lambda: services.loan_request_approve(request=self.request_row(seq), actor=self.staff),
        ):
            asked.status = RequestStatus.APPROVED

    @rule(data=st.data(), reason=st.sampled_from(["needed in theatre", " "]))
    def deny(self, data, reason):
        seq = self.pick(data)
        if seq is None:
            return
        asked = self.asked[seq]
        if not reason.strip():
            refusal = InvalidRequest
        elif asked.status not in OPEN:
            refusal = RequestClosed
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.REQUEST_DENIED,
            lambda: services.loan_request_deny(
                request=self.request_row(seq), actor=self.staff, reason=reason
            ),
        ):
            asked.status = RequestStatus.DENIED

    @rule(data=st.data(), who=actors)
    def cancel(self, data, who):
        seq = self.pick(data)
        if seq is None:
            return
        asked = self.asked[seq]
        if who != "staff" and who != asked.requester:
            refusal = NotAllowed
        elif asked.status not in OPEN:
            refusal = RequestClosed
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.REQUEST_CANCELLED,
            lambda: services.loan_request_cancel(
                request=self.request_row(seq), actor=self.users[who]
            ),
        ):
            asked.status = RequestStatus.CANCELLED

    @precondition(lambda self: self.some(RequestStatus.APPROVED))
    @rule(data=st.data())
    def ready(self, data):
        seq = self.pick(data, [RequestStatus.APPROVED, RequestStatus.PENDING])
        if seq is None:
            return
        asked = self.asked[seq]
        item = self.items[asked.code]
        if asked.status != RequestStatus.APPROVED:
            refusal = RequestClosed
        elif item.status == MediaStatus.RETIRED:
            refusal = MediaRetired
        elif item.status != MediaStatus.ON_SHELF:
            refusal = Conflict
        elif self.queue(asked.code)[0] != seq:
            refusal = QueueAhead
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.REQUEST_READY,
            lambda: services.loan_request_ready(request=self.request_row(seq), actor=self.staff),
        ):
            asked.status = RequestStatus.READY

    @rule(days=st.integers(min_value=0, max_value=5))
    def expire(self, days):
        now = timezone.now() + timedelta(days=days)
        passed = timezone.localdate(now) - timezone.localdate()
        due = sorted(
            seq
            for seq, r in self.asked.items()
            if r.status in OPEN and passed.days > r.needed_until
        )
        expired = services.loan_requests_expire(now=now)
        assert sorted(r.created_seq for r in expired) == due
        for seq in due:
            self.asked[seq].status = RequestStatus.EXPIRED

    @precondition(lambda self: any(item.holder for item in self.items.values()))
    @rule(code=FileRoomDay.media, who=actors)
    def renew(self, code, who):
        loan = Loan.objects.filter(media__code=code).order_by("-out_seq").first()
        if loan is None:
            return
        item = self.items[code]
        borrower = self.user_names[loan.borrower_id]
        waiting = any(
            r.code == code and r.status in OPEN and r.requester != borrower
            for r in self.asked.values()
        )
        if item.status == MediaStatus.RETIRED:
            refusal = NotOnLoan
        elif who != "staff" and who != borrower:
            refusal = NotAllowed
        elif loan.returned_at is not None:
            refusal = NotOnLoan
        elif waiting or self.renewals.get(code, 0) >= DEFAULT_MAX_RENEWALS:
            refusal = RenewalRefused
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.LOAN_RENEWED,
            lambda: services.loan_renew(loan=loan, actor=self.users[who]),
        ):
            self.renewals[code] = self.renewals.get(code, 0) + 1

    # Requests and approvals come up as often as the base machine's moves (a rule's weight is
    # the number of names it has), so queues form within short examples.
    ask_again = make_request
    approve_again = approve
    lend_again = check_out
    renew_again = renew

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def every_request_is_where_the_model_expects(self):
        stored = {
            r.created_seq: r
            for r in LoanRequest.objects.select_related("requester", "media", "loan")
        }
        assert set(stored) == set(self.asked)
        for seq, asked in self.asked.items():
            row = stored[seq]
            assert (self.user_names[row.requester_id], row.media.code, row.status) == (
                asked.requester,
                asked.code,
                asked.status,
            ), seq
            if row.status == RequestStatus.FULFILLED:
                assert (
                    row.loan.borrower_id == row.requester_id and row.loan.media_id == row.media_id
                )
        for code in self.items:
            queue = self.queue(code)
            assert [r.created_seq for r in services.request_queue(self.item(code))] == queue
            ready = [s for s in queue if self.asked[s].status == RequestStatus.READY]
            assert len(ready) <= 1, (code, ready)

    @invariant()
    def open_loans_carry_the_renewals_the_model_counted(self):
        for loan in Loan.objects.filter(returned_at__isnull=True).select_related("media"):
            assert loan.renewals == self.renewals.get(loan.media.code, 0), loan.media.code


def test_random_days_with_requests_keep_the_queue_ledger_and_projection_consistent(db):
    run_state_machine_as_test(
        FileRoomDayWithRequests,
        settings=hypothesis_settings(
            max_examples=80,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


pytestmark = pytest.mark.django_db
