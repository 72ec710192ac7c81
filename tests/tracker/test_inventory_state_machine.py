"""Random file-room days with shelf inventories: the Foundation's state machine
(tests/tracker/test_state_machine.py) plus inventories started on a shelf or on the room that
holds both shelves, tags read into them (known, unknown, read twice), closed and cancelled at any
point of the day. The model predicts every refusal (an overlapping open inventory, closing or
reading into one that is over) and, at closing, exactly which items are recorded seen and where,
which are flagged missing and which flags are cleared; the base invariants (one open loan per
item, statuses from events, an intact chain, a projection the ledger rebuilds) hold after every
step, and the open inventory_missing flags are the ones the model expects."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, strategies as st
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import initialize, invariant, multiple, rule, run_state_machine_as_test

from tests.tracker.test_state_machine import UIDS, FileRoomDay, Item
from tracker import services
from tracker.choices import EventKind, FlagKind, InventoryStatus, LocationKind, MediaStatus
from tracker.exceptions import Conflict
from tracker.models import CustodyEvent, Flag, InventorySession, Location

SHELVES = ("shelf", "shelf2")
SCOPES = ("room", "shelf", "shelf2", "clinic")
UNKNOWN_UID = "0A0B0C0D"


@dataclass
class Counted:
    """What the model expects of one inventory."""

    scope: str
    status: str = InventoryStatus.OPEN
    reads: set[str] = field(default_factory=set)


class FileRoomDayWithInventories(FileRoomDay):
    def __init__(self):
        super().__init__()
        room = Location.objects.create(code="SM-room", name="room", kind=LocationKind.ROOM)
        Location.objects.filter(pk__in=[self.places[s].pk for s in SHELVES]).update(parent=room)
        self.places["room"] = room
        self.place_names[room.pk] = "room"
        self.inventories: dict[int, Counted] = {}
        self.flagged: set[str] = set()  # items with an open inventory_missing flag

    @initialize(target=FileRoomDay.media)
    def shelve_two_tagged_jackets(self):
        """Every day starts with a tagged jacket on each shelf, so inventories have work."""
        for code, home, uid in (("INV-1", "shelf", UIDS[0]), ("INV-2", "shelf2", UIDS[1])):
            media = services.media_register(code=code, kind="film_jacket", home_location=self.places[home],
                                            actor=self.staff)
            services.tag_bind(uid=uid, media=media, actor=self.staff)
            self.items[code] = Item(home=home, tag=uid)
            self.tags[uid] = code
        return multiple("INV-1", "INV-2")

    def within(self, scope: str) -> set[str]:
        return {scope, *SHELVES} if scope == "room" else {scope}

    def pick(self, index: int) -> int | None:
        ids = sorted(self.inventories)
        return ids[index % len(ids)] if ids else None

    @rule(scope=st.sampled_from(SCOPES))
    def start_inventory(self, scope):
        overlapping = any(
            c.status == InventoryStatus.OPEN and (scope in self.within(c.scope) or c.scope in self.within(scope))
            for c in self.inventories.values()
        )
        before = CustodyEvent.objects.count()
        if overlapping:
            with pytest.raises(Conflict):
                services.inventory_start(scope=self.places[scope], actor=self.staff)
            assert CustodyEvent.objects.count() == before
            return
        session = services.inventory_start(scope=self.places[scope], actor=self.staff)
        assert CustodyEvent.objects.count() == before + 1 and session.pk == before + 1
        self.inventories[session.pk] = Counted(scope)

    @rule(index=st.integers(0, 5), uids=st.lists(st.sampled_from([*UIDS, UNKNOWN_UID]), min_size=1, max_size=4))
    def read_tags(self, index, uids):
        pk = self.pick(index)
        if pk is None:
            return
        counted = self.inventories[pk]
        before = CustodyEvent.objects.count()
        session = InventorySession.objects.get(pk=pk)
        if counted.status != InventoryStatus.OPEN:
            with pytest.raises(Conflict):
                services.inventory_record_reads(session=session, uids=uids)
        else:
            recorded = services.inventory_record_reads(session=session, uids=uids)
            assert recorded.added == len(set(uids) - counted.reads)
            counted.reads |= set(uids)
        assert CustodyEvent.objects.count() == before  # reads are input, not events

    @rule(index=st.integers(0, 5), everything=st.booleans(), skip=st.sampled_from([None, *UIDS]))
    def read_what_is_there(self, index, everything, skip=None):
        """Walk the shelves with a reader: every tag the ledger places within the scope, or
        (a pile brought back from the clinics) every tag in use."""
        pk = self.pick(index)
        if pk is None or self.inventories[pk].status != InventoryStatus.OPEN:
            return
        counted = self.inventories[pk]
        within = self.within(counted.scope)
        uids = [uid for uid, code in self.tags.items()
                if code is not None and uid != skip and (everything or self.items[code].location in within)]
        if uids:
            services.inventory_record_reads(session=InventorySession.objects.get(pk=pk), uids=uids)
            counted.reads |= set(uids)

    @rule(index=st.integers(0, 5))
    def close_inventory(self, index):
        pk = self.pick(index)
        if pk is not None:
            self.close(pk)

    @rule(scope=st.sampled_from(SCOPES), everything=st.booleans(), skip=st.sampled_from([None, *UIDS]))
    def count_a_shelf_in_one_go(self, scope, everything, skip):
        """Start, walk the shelves (perhaps missing one tag), close: a whole inventory in one step."""
        self.start_inventory(scope)
        pk = max(self.inventories, default=None)
        if pk is None or self.inventories[pk].status != InventoryStatus.OPEN:
            return
        self.read_what_is_there(sorted(self.inventories).index(pk), everything, skip)
        self.close(pk)

    def close(self, pk: int) -> None:
        counted = self.inventories[pk]
        session = InventorySession.objects.get(pk=pk)
        before = CustodyEvent.objects.count()
        if counted.status != InventoryStatus.OPEN:
            with pytest.raises(Conflict):
                services.inventory_close(session=session, actor=self.staff)
            assert CustodyEvent.objects.count() == before
            return
        within = self.within(counted.scope)
        read = {self.tags[uid] for uid in counted.reads if self.tags.get(uid) is not None}
        seen = sorted(code for code in read if self.items[code].status != MediaStatus.RETIRED)
        found = [code for code in seen if code in self.flagged]  # a retired item stays flagged
        missing = sorted(
            code for code, item in self.items.items()
            if item.home in within and item.status == MediaStatus.ON_SHELF and code not in read
        )
        newly_flagged = [code for code in missing if code not in self.flagged]

        services.inventory_close(session=session, actor=self.staff)

        kinds = list(CustodyEvent.objects.filter(seq__gt=before).order_by("seq").values_list("kind", flat=True))
        assert kinds == (
            [EventKind.INVENTORY_CLOSED] + [EventKind.SEEN] * len(seen)
            + [EventKind.FLAG_CLEARED] * len(found) + [EventKind.FLAG_RAISED] * len(newly_flagged)
        )
        for code in seen:
            item = self.items[code]
            place = item.location if item.location in within else counted.scope
            if item.status == MediaStatus.IN_TRANSIT:  # the room and its shelves are no courier
                item.status = MediaStatus.ON_LOAN if item.holder else MediaStatus.ON_SHELF
            item.location = place
        self.flagged = (self.flagged - set(found)) | set(missing)
        counted.status = InventoryStatus.CLOSED

    @rule(index=st.integers(0, 5))
    def cancel_inventory(self, index):
        pk = self.pick(index)
        if pk is None:
            return
        counted = self.inventories[pk]
        session = InventorySession.objects.get(pk=pk)
        before = CustodyEvent.objects.count()
        if counted.status != InventoryStatus.OPEN:
            with pytest.raises(Conflict):
                services.inventory_cancel(session=session, actor=self.staff)
            assert CustodyEvent.objects.count() == before
            return
        services.inventory_cancel(session=session, actor=self.staff)
        assert CustodyEvent.objects.count() == before + 1
        counted.status = InventoryStatus.CANCELLED

    @invariant()
    def inventories_and_missing_flags_are_as_the_model_expects(self):
        stored = dict(InventorySession.objects.values_list("pk", "status"))
        assert stored == {pk: c.status for pk, c in self.inventories.items()}
        open_flags = set(
            Flag.objects.filter(kind=FlagKind.INVENTORY_MISSING, cleared_at__isnull=True)
            .values_list("media__code", flat=True)
        )
        assert open_flags == self.flagged


def test_random_days_with_inventories_keep_the_ledger_and_projection_consistent(db):
    run_state_machine_as_test(
        FileRoomDayWithInventories,
        settings=hypothesis_settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
