"""An auditor reading an item's custody chain on its page or through the API is recorded in the
access log; a file-room member reading it at the counter is not; a clinician cannot read it."""
from tracker.models import AccessLog


def test_an_auditor_reading_an_items_chain_is_recorded_on_the_page_and_the_api(client_for, make_media):
    item = make_media("FJ-READ")
    auditor = client_for("auditor")
    assert auditor.get(f"/media/{item.code}/").status_code == 200
    assert auditor.get(f"/api/v1/media/{item.code}/chain/").status_code == 200
    rows = list(AccessLog.objects.order_by("id").values_list("user__username", "action", "subject_kind", "subject", "path"))
    assert rows == [
        ("auditor", "viewed", "media", "FJ-READ", "/media/FJ-READ/"),
        ("auditor", "viewed", "media", "FJ-READ", "/api/v1/media/FJ-READ/chain/"),
    ]


def test_staff_at_the_counter_and_a_refused_clinician_leave_no_access_row(client_for, make_media):
    item = make_media("FJ-READ2")
    assert client_for("staff").get(f"/api/v1/media/{item.code}/chain/").status_code == 200
    assert client_for("doctor").get(f"/api/v1/media/{item.code}/chain/").status_code == 403
    assert not AccessLog.objects.exists()
