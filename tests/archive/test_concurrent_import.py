"""One disc imported several times at once (two clerks at two workstations, a retried request)
is recorded once: one manifest, one `disc_imported` event, and the others are told it was
already there. PostgreSQL, committed data, one connection per thread — the database's own locks
decide, as with separate app servers."""
import pytest

from archive.models import DiscManifest, Study
from archive.services import disc_import
from tests.archive import discs
from tests.conftest import make_user
from tests.tracker.test_concurrency import assert_ledger_intact, run_together
from tracker import services
from tracker.choices import EventKind, LocationKind, MediaKind, Role
from tracker.models import CustodyEvent, Location, Media

pytestmark = pytest.mark.postgres
RACERS = 4


@pytest.fixture
def db(committed_db):
    """Committed for real, so the threads see it (see tests/tracker/test_concurrency.py)."""


@pytest.fixture
def room(db, tmp_path, settings):
    settings.DISC_IMPORT_WORKERS = 1
    shelf = Location.objects.create(code="FR-D1", name="Disc shelf", kind=LocationKind.SHELF)
    return {
        "staff": make_user("staff", Role.FILE_ROOM),
        "shelf": shelf,
        "disc": discs.ct_disc(tmp_path / "disc", files=12, series=2),
    }


def outcomes_of(results) -> tuple[list, list]:
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    return [r for r in results if not r.unchanged], [r for r in results if r.unchanged]


def test_racing_imports_onto_one_item_record_the_disc_once(room):
    item = services.media_register(
        code="CD-RACE", kind=MediaKind.CD, home_location=room["shelf"], actor=room["staff"]
    )

    imported, unchanged = outcomes_of(run_together(
        RACERS, lambda i: disc_import(root=room["disc"].root, media=item, actor=room["staff"])
    ))

    assert (len(imported), len(unchanged)) == (1, RACERS - 1)
    assert DiscManifest.objects.filter(media=item).count() == 1
    assert {r.manifest.pk for r in unchanged} == {imported[0].manifest.pk}
    assert CustodyEvent.objects.filter(kind=EventKind.DISC_IMPORTED).count() == 1
    assert Study.objects.get(study_instance_uid=room["disc"].study_instance_uid).instance_count == 12
    assert_ledger_intact()


def test_racing_imports_that_register_the_disc_register_one_item(room):
    imported, unchanged = outcomes_of(run_together(
        RACERS,
        lambda i: disc_import(
            root=room["disc"].root, media=None, actor=room["staff"], register_home=room["shelf"]
        ),
    ))

    assert (len(imported), len(unchanged)) == (1, RACERS - 1)
    assert imported[0].media_created
    assert Media.objects.filter(kind=MediaKind.CD).count() == 1
    assert {r.media.code for r in unchanged} == {imported[0].media.code}
    assert DiscManifest.objects.count() == 1
    assert CustodyEvent.objects.filter(kind=EventKind.MEDIA_REGISTERED).count() == 1
    assert CustodyEvent.objects.filter(kind=EventKind.DISC_IMPORTED).count() == 1
    assert_ledger_intact()
