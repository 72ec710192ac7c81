"""NTAG 424 DNA Secure Unique NFC messages: genuine tags pass, forgeries and replays do not.
Vectors from NXP AN12196 with all-zero keys (shared/REFERENCE.md)."""
import logging

import pytest

from tracker import services
from tracker.exceptions import InvalidRequest, SunReplay, UnknownTag
from tracker.models import Tag
from tracker.tags import SunError, open_sun_key, sun_check_mac, sun_mac, sun_picc_data

ZERO = bytes(16)


def test_the_picc_data_vector_decrypts_to_its_uid_and_counter():
    message = sun_picc_data("EF963FF7828658A599F3041510671E88", ZERO)
    assert (message.uid, message.counter) == ("04DE5F1EACC040", 61)
    sun_check_mac(message, c="94EED9EE65337086", file_key=ZERO)


def test_the_vector_with_encrypted_file_data_macs_over_enc():
    message = sun_picc_data("FD91EC264309878BE6345CBE53BADF40", ZERO)
    assert (message.uid, message.counter) == ("04958CAA5C5E80", 8)
    sun_check_mac(message, c="ECC1E7F6C6C73BF6", file_key=ZERO, enc="CEE9A53E3E463EF1F459635736738962")


def test_the_plain_mirror_vector():
    assert sun_mac(uid="041E3C8A2D6B80", counter=6, file_key=ZERO) == "4B00064004B0B3D3"


def test_a_wrong_mac_or_wrong_key_is_refused():
    message = sun_picc_data("EF963FF7828658A599F3041510671E88", ZERO)
    with pytest.raises(SunError):
        sun_check_mac(message, c="94EED9EE65337087", file_key=ZERO)
    with pytest.raises(SunError):
        sun_check_mac(message, c="94EED9EE65337086", file_key=bytes(15) + b"\x01")
    with pytest.raises(SunError):
        sun_picc_data("EF963FF7828658A599F3041510671E88", bytes(15) + b"\x01")


@pytest.fixture
def sun_tag(make_media, cast, settings):
    settings.SUN_META_READ_KEY = ZERO
    media = make_media("FJ-SUN")
    services.tag_bind(uid="04DE5F1EACC040", media=media, actor=cast["staff"])
    return services.tag_set_sun_key(uid="04DE5F1EACC040", key_hex="00" * 16)


def test_tag_keys_are_stored_encrypted(sun_tag):
    stored = bytes(Tag.objects.get(pk=sun_tag.pk).sun_key_encrypted)
    assert ZERO not in stored and open_sun_key(stored) == ZERO


def test_a_genuine_message_is_accepted_once_and_its_replay_refused_and_logged(sun_tag, caplog):
    tag = services.tag_verify_sun(e="EF963FF7828658A599F3041510671E88", c="94EED9EE65337086")
    assert tag.last_counter == 61
    with caplog.at_level(logging.WARNING), pytest.raises(SunReplay):
        services.tag_verify_sun(e="EF963FF7828658A599F3041510671E88", c="94EED9EE65337086")
    assert "replay refused for tag 04DE5F1EACC040" in caplog.text


def test_an_older_counter_is_a_replay(sun_tag):
    Tag.objects.filter(pk=sun_tag.pk).update(last_counter=100)
    with pytest.raises(SunReplay):
        services.tag_verify_sun(e="EF963FF7828658A599F3041510671E88", c="94EED9EE65337086")


def test_a_forged_mac_is_refused_and_the_counter_does_not_move(sun_tag):
    with pytest.raises(InvalidRequest, match="not the genuine tag"):
        services.tag_verify_sun(e="EF963FF7828658A599F3041510671E88", c="0000000000000000")
    assert Tag.objects.get(pk=sun_tag.pk).last_counter is None


def test_a_tag_without_a_key_is_unknown(db, settings):
    settings.SUN_META_READ_KEY = ZERO
    with pytest.raises(UnknownTag):
        services.tag_verify_sun(e="EF963FF7828658A599F3041510671E88", c="94EED9EE65337086")


def test_the_phone_landing_page_checks_the_tag_and_opens_the_item(sun_tag, client_for):
    url = "/t/?e=EF963FF7828658A599F3041510671E88&c=94EED9EE65337086"
    response = client_for("staff").get(url)
    assert response.status_code == 302 and response["Location"] == "/media/FJ-SUN/"
    replay = client_for("staff").get(url)
    assert replay.status_code == 409 and b"already used" in replay.content


def test_the_landing_page_shows_no_patient_to_someone_not_logged_in(sun_tag, client_for):
    response = client_for(None).get("/t/?e=EF963FF7828658A599F3041510671E88&c=94EED9EE65337086")
    assert response.status_code == 200
    assert b"Genuine Filmroom tag" in response.content and b"FJ-SUN" in response.content
    assert b"MRN" not in response.content


def test_the_landing_page_explains_a_forgery(sun_tag, client_for):
    response = client_for(None).get("/t/?e=EF963FF7828658A599F3041510671E88&c=1111111111111111")
    assert response.status_code == 400 and b"could not be confirmed" in response.content
