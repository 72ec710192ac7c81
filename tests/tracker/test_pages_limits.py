"""Lists take any limit and offset a client sends: too large is the largest page or the end,
never a server error (schemathesis found a 500 with limit=52650697497650593792 on SQLite)."""


def test_huge_or_negative_limits_and_offsets_give_pages_not_errors(client_for, make_media):
    make_media("FJ-PAGE")
    staff = client_for("staff")
    for query in ("limit=52650697497650593792&offset=-275046", "limit=5&offset=52650697497650593792",
                  "limit=0", "limit=-3&offset=abc"):
        response = staff.get(f"/api/v1/media/?{query}")
        assert response.status_code == 200, (query, response.content)
    assert len(staff.get("/api/v1/media/?limit=100000").json()["results"]) == 1
    assert staff.get("/api/v1/media/?limit=5&offset=52650697497650593792").json()["results"] == []


def test_a_nul_character_in_a_value_is_a_clear_400_on_every_database(client_for, make_media):
    """PostgreSQL refuses NUL in text (schemathesis found a 500 for a destination holding one)."""
    make_media("FJ-NUL")
    doctor = client_for("doctor")
    response = doctor.post("/api/v1/loan-requests/", {
        "media": "FJ-NUL", "needed_from": "2026-12-01", "needed_until": "2026-12-02",
        "purpose": "follow-up", "destination": "OR\u0000THO",
    }, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert client_for("staff").get("/api/v1/media/FJ-%00NUL/").status_code in (400, 404)
