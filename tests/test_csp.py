"""Every page is served under a strict Content-Security-Policy and needs nothing it forbids: no
inline script, no inline style, no inline event handler. The pages are found by walking the URL
configuration, so a page added later is checked too."""
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import make_user
from tracker.choices import Role

INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "inline style element": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "inline event handler": re.compile(r"<[^>]+\son[a-z]+\s*=", re.I),
    "javascript: link": re.compile(r"href\s*=\s*[\"']\s*javascript:", re.I),
}
# Pages that are not HTML pages of ours or that act on GET (logout is POST-only).
SKIP = re.compile(r"^(api/|admin/|i18n/|logout/|static/|media/)")


def parameterless_paths(patterns=None, prefix: str = "") -> list[str]:
    found = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = str(entry.pattern)
        if "<" in route or route.startswith("^"):
            continue
        if isinstance(entry, URLResolver):
            found += parameterless_paths(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            found.append(prefix + route)
    return sorted({p for p in found if not SKIP.match(p)})


def test_the_walk_finds_the_pages_people_use():
    paths = parameterless_paths()
    assert {"", "login/"} <= set(paths)
    assert len(paths) >= 8, paths


@pytest.mark.parametrize("role", [Role.FILE_ROOM, Role.CLINICIAN, Role.AUDITOR, Role.ADMIN])
def test_every_page_has_the_policy_and_nothing_inline(client, db, role):
    user = make_user(f"csp-{role}", role, is_staff=role == Role.ADMIN)
    client.force_login(user)
    checked = []
    for path in [*parameterless_paths(), "api/docs/"]:
        response = client.get("/" + path)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue  # a redirect, a role's 403, a download: not a page this role reads
        policy = response.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, (path, policy)
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, (path, policy)
        html = response.content.decode()
        for what, pattern in INLINE.items():
            match = pattern.search(html)
            assert match is None, f"/{path} has an {what}: {html[max(0, match.start() - 80):match.end() + 80]!r}"
        checked.append(path)
    assert "" in checked and len(checked) >= 4, checked


def test_the_login_and_error_pages_meet_the_policy_too(client, db):
    for path in ("/login/", "/no-such-page/"):
        response = client.get(path)
        html = response.content.decode()
        assert "script-src 'self'" in response.get("Content-Security-Policy", "")
        assert not any(pattern.search(html) for pattern in INLINE.values()), path


def test_the_item_and_station_pages_meet_the_policy(client, make_media, cast, places):
    from tracker.models import ReaderDevice

    item = make_media("FJ-CSP")
    ReaderDevice.objects.create(name="desk-csp", location=places["shelf"], mode="locate")
    client.force_login(cast["staff"])
    for path in (f"/media/{item.code}/", "/station/desk-csp/"):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        for what, pattern in INLINE.items():
            assert pattern.search(html) is None, f"{path} has an {what}"
