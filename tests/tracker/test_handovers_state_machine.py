"""Random file-room days with hand-overs: the Foundation's state machine
(tests/tracker/test_state_machine.py) plus hand-overs offered, accepted (in the UI or by a read
at a station), declined and cancelled, among check-outs, returns and transfers. The model
predicts every refusal and where each item and hand-over stands; after every step the base
invariants hold (one open loan per item, statuses from events, an intact chain, a projection the
ledger rebuilds) and so do the hand-over ones: at most one pending hand-over per item, its loan
the item's open loan, the item's holder that loan's borrower, and custody moved only by an
acceptance (or by a return or transfer, which closes the pending hand-over as superseded)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.db.models import Count
from hypothesis import HealthCheck, strategies as st
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from tests.tracker.test_state_machine import PLACES, FileRoomDay, Item, moved_status, places
from tracker import services
from tracker.choices import EventKind, HandoverStatus, LocationKind, MediaKind, MediaStatus
from tracker.choices import ReaderMode, Role
from tracker.exceptions import Conflict, InvalidRequest, MediaRetired, NotOnLoan
from tracker.ledger import Read
from tracker.models import Handover, Loan, Media, ReaderDevice
from tracker.projection.handovers import SUPERSEDED_BY_RETURN, SUPERSEDED_BY_TRANSFER
from tracker.services.handovers import HandoverClosed
from tracker.services.loan_requests import NotAllowed

actors = st.sampled_from(["doctor", "doctor2", "staff"])
# "receiver" / "giver" stand for the hand-over's own people, so answers are often allowed.
answerers = st.sampled_from(["receiver", "receiver", "doctor", "doctor2", "staff"])
withdrawers = st.sampled_from(["giver", "giver", "doctor", "doctor2", "staff"])
receivers = st.sampled_from(
    [
        "doctor",
        "doctor2",
        "staff",
        "gone",
        "place:clinic",
        "place:external",
        "place:shelf2",
        "place:courier",
    ]
)


@dataclass
class Offered:
    """What the model expects of one hand-over."""

    code: str
    giver: str  # the borrower when it was offered
    offered_by: str
    person: str | None
    place: str | None
    status: str = HandoverStatus.PENDING
    reason: str = ""


class FileRoomDayWithHandovers(FileRoomDay):
    def __init__(self):
        super().__init__()
        # Acting on others' hand-overs is for file-room staff.
        self.staff.groups.add(Group.objects.get_or_create(name=Role.FILE_ROOM)[0])
        clinicians = Group.objects.get_or_create(name=Role.CLINICIAN)[0]
        for name in ("doctor", "doctor2", "gone"):  # an item is handed to clinicians
            self.users[name].groups.add(clinicians)
        self.offered: dict[int, Offered] = {}  # offered_seq → hand-over

    # Two items from the start and none of the base machine's tag and checkpoint moves: the
    # steps go to lending, handing on and moving, so hand-overs meet returns and transfers.
    # Retiring and sightings are left to the base machine too: a retired item would end its
    # hand-overs early, and moves to a place already test what a sighting would here.
    register = bind_tag = unbind_tag = sign_checkpoint = retire = seen = None

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

    def pending(self, code: str) -> int | None:
        found = [
            s
            for s, h in self.offered.items()
            if h.code == code and h.status == HandoverStatus.PENDING
        ]
        assert len(found) <= 1
        return found[0] if found else None

    def supersede(self, code: str, reason: str) -> None:
        seq = self.pending(code)
        if seq is not None:
            self.offered[seq].status, self.offered[seq].reason = HandoverStatus.CANCELLED, reason

    def pick(self, data) -> int | None:
        """A hand-over to act on: a pending one when there is one (else any: a refusal)."""
        if not self.offered:
            return None
        fitting = sorted(s for s, h in self.offered.items() if h.status == HandoverStatus.PENDING)
        return data.draw(st.sampled_from(fitting or sorted(self.offered)))

    def row(self, seq: int) -> Handover:
        return Handover.objects.get(offered_seq=seq)

    def who(self, name: str, handover: Offered) -> str:
        if name == "receiver":
            return handover.person or "staff"
        return handover.giver if name == "giver" else name

    def some_pending(self) -> bool:
        return any(h.status == HandoverStatus.PENDING for h in self.offered.values())

    # --- the base rules a pending hand-over notices --------------------------------------------

    @rule(code=FileRoomDay.media, place=st.sampled_from([None, "shelf", "clinic"]))
    def give_back(self, code, place):
        before = self.items[code].status
        FileRoomDay.give_back(self, code, place)
        if before not in (MediaStatus.ON_SHELF, MediaStatus.RETIRED):
            self.supersede(code, SUPERSEDED_BY_RETURN)

    @rule(code=FileRoomDay.media, person=st.sampled_from(["doctor", "doctor2", "gone"]))
    def hand_over(self, code, person):
        """A transfer straight to a person (staff at the desk), not through a hand-over."""
        moved = self.items[code].holder is not None and person != "gone"
        FileRoomDay.hand_over(self, code, person, None)
        if moved and self.items[code].status != MediaStatus.RETIRED:
            self.supersede(code, SUPERSEDED_BY_TRANSFER)

    # --- hand-overs --------------------------------------------------------------------------------

    @rule(code=FileRoomDay.media, by=actors, to=receivers, note=st.sampled_from(["", "ward 3"]))
    def offer(self, code, by, to, note):
        self._offer(code, by, to, note)

    @precondition(lambda self: any(item.holder for item in self.items.values()))
    @rule(data=st.data(), by=st.sampled_from(["borrower", "borrower", "staff"]), to=receivers)
    def borrower_offers(self, data, by, to):
        """An item on loan offered by its borrower (or staff): the usual case."""
        code = data.draw(st.sampled_from(sorted(c for c, i in self.items.items() if i.holder)))
        self._offer(code, self.items[code].holder if by == "borrower" else by, to, "")

    def _offer(self, code, by, to, note):
        item = self.items[code]
        kind, _sep, name = to.partition(":")
        place = name if kind == "place" else None
        person = None if place else to
        if item.status == MediaStatus.RETIRED:
            refusal = MediaRetired
        elif item.holder is None:
            refusal = NotOnLoan
        elif by != "staff" and by != item.holder:
            refusal = NotAllowed
        elif self.pending(code) is not None:
            refusal = Conflict
        elif person is not None and (person == "gone" or person == item.holder):
            refusal = InvalidRequest
        elif place is not None and (
            PLACES[place] == LocationKind.TRANSIT or place == item.location
        ):
            refusal = InvalidRequest
        else:
            refusal = None
        made = []
        if self.attempt(
            refusal,
            EventKind.HANDOVER_OFFERED,
            lambda: made.append(
                services.handover_offer(
                    media=self.item(code),
                    actor=self.users[by],
                    to_holder=self.users[person] if person else None,
                    to_location=self.places[place] if place else None,
                    note=note,
                )
            ),
        ):
            self.offered[made[0].offered_seq] = Offered(code, item.holder, by, person, place)

    def took(self, seq: int) -> None:
        """The model after an acceptance: custody moves as a transfer to the receiver."""
        handover = self.offered[seq]
        item = self.items[handover.code]
        if handover.person is not None:
            item.holder, item.location = handover.person, None
            item.status = moved_status(None, True)
        else:
            item.location, item.status = handover.place, moved_status(handover.place, True)
        handover.status = HandoverStatus.ACCEPTED

    @precondition(lambda self: self.some_pending())
    @rule(data=st.data(), who=answerers)
    def accept(self, data, who):
        seq = self.pick(data)
        handover = self.offered[seq]
        who = self.who(who, handover)
        if who != "staff" and who != handover.person:
            refusal = NotAllowed
        elif handover.status != HandoverStatus.PENDING:
            refusal = HandoverClosed
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.TRANSFERRED,
            lambda: services.handover_accept(handover=self.row(seq), actor=self.users[who]),
        ):
            self.took(seq)

    @precondition(lambda self: self.some_pending())
    @rule(data=st.data(), who=answerers, reason=st.sampled_from(["on leave", "on leave", " "]))
    def decline(self, data, who, reason):
        seq = self.pick(data)
        handover = self.offered[seq]
        who = self.who(who, handover)
        if who != "staff" and who != handover.person:
            refusal = NotAllowed
        elif not reason.strip():
            refusal = InvalidRequest
        elif handover.status != HandoverStatus.PENDING:
            refusal = HandoverClosed
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.HANDOVER_DECLINED,
            lambda: services.handover_decline(
                handover=self.row(seq), actor=self.users[who], reason=reason
            ),
        ):
            handover.status, handover.reason = HandoverStatus.DECLINED, reason

    @precondition(lambda self: self.some_pending())
    @rule(data=st.data(), who=withdrawers)
    def cancel(self, data, who):
        seq = self.pick(data)
        handover = self.offered[seq]
        who = self.who(who, handover)
        if who != "staff" and who not in (handover.giver, handover.offered_by):
            refusal = NotAllowed
        elif handover.status != HandoverStatus.PENDING:
            refusal = HandoverClosed
        else:
            refusal = None
        if self.attempt(
            refusal,
            EventKind.HANDOVER_CANCELLED,
            lambda: services.handover_cancel(handover=self.row(seq), actor=self.users[who]),
        ):
            handover.status = HandoverStatus.CANCELLED

    @precondition(lambda self: any(item.holder for item in self.items.values()))
    @rule(
        code=FileRoomDay.media,
        mode=st.sampled_from(
            [ReaderMode.CHECK_OUT, ReaderMode.LOCATE, ReaderMode.TRANSFER, ReaderMode.INVENTORY]
        ),
        place=places,
        borrower=st.sampled_from([None, "doctor", "doctor2", "staff"]),
    )
    def tap_at_station(self, code, mode, place, borrower):
        self._tap(code, mode, place, borrower)

    @precondition(lambda self: self.some_pending())
    @rule(data=st.data(), right=st.booleans())
    def receiver_taps(self, data, right):
        """The receiver's station reads the item: the right one (a check-out station with them
        as the borrower, a locate or transfer station at the place) or a near miss."""
        seq = self.pick(data)
        handover = self.offered[seq]
        if handover.person is not None:
            borrower = handover.person if right else data.draw(st.sampled_from(["staff", None]))
            self._tap(handover.code, ReaderMode.CHECK_OUT, "shelf", borrower)
        else:
            mode = data.draw(st.sampled_from([ReaderMode.LOCATE, ReaderMode.TRANSFER]))
            place = handover.place if right else data.draw(places)
            self._tap(handover.code, mode if right else ReaderMode.CHECK_IN, place, None)

    def _tap(self, code, mode, place, borrower):
        """A read at a station: the hook finds the hand-over it accepts (or none), and the read
        accepts it with no actor; a station that does not fit is refused."""
        device, _created = ReaderDevice.objects.get_or_create(
            name=f"sm-{mode}-{place}", defaults={"location": self.places[place], "mode": mode}
        )
        services.station_configure(
            device=device, mode=mode, borrower=self.users[borrower] if borrower else None
        )
        seq = self.pending(code)
        handover = self.offered.get(seq)
        fits = handover is not None and (
            (
                handover.person is not None
                and mode == ReaderMode.CHECK_OUT
                and handover.person == borrower
            )
            or (handover.place == place and mode in (ReaderMode.LOCATE, ReaderMode.TRANSFER))
        )
        found = services.handover_for_station_read(
            media=Media(pk=self.item(code).pk),
            device=device,
            borrower=self.users[borrower] if borrower else None,
        )
        assert (found.offered_seq if found else None) == (seq if fits else None)
        if handover is None:
            return
        if self.attempt(
            None if fits else NotAllowed,
            EventKind.TRANSFERRED,
            lambda: services.handover_accept(
                handover=self.row(seq),
                actor=None,
                device=device,
                event_id=uuid.uuid4(),
                read=Read("04A1B2C3D4E5F6"),
            ),
        ):
            self.took(seq)

    # Offers and answers come up as often as the base machine's moves (a rule's weight is the
    # number of names it has), so hand-overs meet returns and transfers within short examples.
    offer_again = borrower_offers
    accept_again = accept
    decline_again = decline
    cancel_again = cancel
    tap_again = receiver_taps
    lend_again = FileRoomDay.check_out

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def at_most_one_pending_hand_over_per_item(self):
        doubled = (
            Handover.objects.filter(status=HandoverStatus.PENDING)
            .values("media")
            .annotate(pending=Count("pk"))
            .filter(pending__gt=1)
        )
        assert not doubled.exists()

    @invariant()
    def a_pending_hand_over_is_of_the_items_open_loan_and_holder(self):
        for media in Media.objects.all():
            loan = Loan.objects.filter(media=media, returned_at__isnull=True).first()
            assert media.current_holder_id == (loan.borrower_id if loan else None), media.code
            for handover in Handover.objects.filter(media=media, status=HandoverStatus.PENDING):
                assert loan is not None and handover.loan_id == loan.pk, media.code
                assert handover.from_holder_id == loan.borrower_id, media.code

    @invariant()
    def every_hand_over_is_where_the_model_expects(self):
        stored = {h.offered_seq: h for h in Handover.objects.select_related("media")}
        assert set(stored) == set(self.offered)
        for seq, offered in self.offered.items():
            row = stored[seq]
            assert (
                row.media.code,
                self.user_names[row.from_holder_id],
                self.user_names.get(row.to_holder_id),
                self.place_names.get(row.to_location_id),
                row.status,
                row.reason,
            ) == (
                offered.code,
                offered.giver,
                offered.person,
                offered.place,
                offered.status,
                offered.reason,
            ), seq


def test_random_days_with_hand_overs_keep_custody_ledger_and_projection_consistent(db):
    run_state_machine_as_test(
        FileRoomDayWithHandovers,
        settings=hypothesis_settings(
            max_examples=80,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


pytestmark = pytest.mark.django_db
