"""DICOM PS3.15 audit messages: each message validates against the A.5.1 schema's structure and
the A.5.3 table of its kind (event IDs, action codes, participant roles, media types, object
type codes), and `manage.py audit_messages` delivers each one exactly once to a real syslog
receiver on loopback, over TCP and over TLS (a self-signed certificate made here)."""
import io
import json
import os
import queue
import re
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import call_command
from django.core.management.base import CommandError

from archive.models import Patient, Study
from tests.conftest import free_port
from tracker import audit_messages, services
from tracker.audit_messages import Unreportable, messages_for
from tracker.choices import EventKind, MediaKind, StudySource
from tracker.models import CustodyEvent

pytestmark = pytest.mark.django_db


# --- the A.5.1 schema, as a checker --------------------------------------------------------------
# The RELAX NG Compact schema of PS3.15 A.5.1 (no namespace), transcribed rule by rule: which
# children in which order, which attributes (required, optional, enumerated), nothing else.

CODED = ({"csd-code", "codeSystemName", "originalText"}, {"displayName"})
DATETIME = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
BOOLEAN = {"true", "false", "1", "0"}


class SchemaError(AssertionError):
    pass


def attributes(element, required: set, optional: set = frozenset(), enums: dict | None = None):
    names = set(element.attrib)
    if not required <= names:
        raise SchemaError(f"<{element.tag}> lacks {sorted(required - names)}")
    if names - required - set(optional):
        raise SchemaError(f"<{element.tag}> has unknown attributes {sorted(names - required - set(optional))}")
    for name, allowed in (enums or {}).items():
        if name in element.attrib and element.attrib[name] not in allowed:
            raise SchemaError(f"<{element.tag} {name}={element.attrib[name]!r}> not in {sorted(allowed)}")


def coded(element):
    attributes(element, *CODED)
    if len(element) or (element.text or "").strip():
        raise SchemaError(f"<{element.tag}> is a coded value and holds no content")


def sequence(element, pattern: list[tuple[str | tuple, str]]):
    """Children of `element` in the order of `pattern`: (tag or tags, "1" | "?" | "*" | "+")."""
    children, index = list(element), 0
    for tags, occurs in pattern:
        tags = (tags,) if isinstance(tags, str) else tags
        count = 0
        while index < len(children) and children[index].tag in tags and (occurs in "*+" or count < 1):
            index, count = index + 1, count + 1
        if occurs in "1+" and count == 0:
            raise SchemaError(f"<{element.tag}> lacks <{'|'.join(tags)}>")
    if index != len(children):
        raise SchemaError(f"<{element.tag}> has <{children[index].tag}> out of place")
    return children


def validate_schema(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)
    if root.tag != "AuditMessage" or root.attrib:
        raise SchemaError("the root is not a bare <AuditMessage>")
    sequence(root, [
        ("EventIdentification", "1"), ("ActiveParticipant", "+"),
        ("AuditSourceIdentification", "1"), ("ParticipantObjectIdentification", "*"),
    ])
    event = root.find("EventIdentification")
    attributes(event, {"EventDateTime", "EventOutcomeIndicator"}, {"EventActionCode"}, {
        "EventActionCode": set("CRUDE"), "EventOutcomeIndicator": {"0", "4", "8", "12"},
    })
    if not DATETIME.fullmatch(event.get("EventDateTime")):
        raise SchemaError("EventDateTime is not an xsd:dateTime")
    for child in sequence(event, [("EventID", "1"), ("EventTypeCode", "*"), ("EventOutcomeDescription", "?")]):
        if child.tag != "EventOutcomeDescription":
            coded(child)
    for participant in root.findall("ActiveParticipant"):
        attributes(
            participant, {"UserID", "UserIsRequestor"},
            {"AlternativeUserID", "UserName", "NetworkAccessPointID", "NetworkAccessPointTypeCode"},
            {"UserIsRequestor": BOOLEAN, "NetworkAccessPointTypeCode": set("12345")},
        )
        for child in sequence(participant, [("RoleIDCode", "*"), ("MediaIdentifier", "?")]):
            if child.tag == "RoleIDCode":
                coded(child)
            else:
                attributes(child, set())
                for media_type in sequence(child, [("MediaType", "1")]):
                    coded(media_type)
    source = root.find("AuditSourceIdentification")
    attributes(source, {"AuditSourceID"}, {"AuditEnterpriseSiteID"})
    for code in sequence(source, [("AuditSourceTypeCode", "*")]):
        names = set(code.attrib)
        if "csd-code" not in names or (names - {"csd-code"} and not {"codeSystemName", "originalText"} <= names):
            raise SchemaError("AuditSourceTypeCode: a code, with codeSystemName and originalText if any")
        if names == {"csd-code"} and code.get("csd-code") not in set("123456789"):
            raise SchemaError("a bare AuditSourceTypeCode is 1..9")
    for item in root.findall("ParticipantObjectIdentification"):
        attributes(
            item, {"ParticipantObjectID"},
            {"ParticipantObjectTypeCode", "ParticipantObjectTypeCodeRole",
             "ParticipantObjectDataLifeCycle", "ParticipantObjectSensitivity"},
            {"ParticipantObjectTypeCode": {"1", "2", "3", "4"},
             "ParticipantObjectTypeCodeRole": {str(n) for n in range(1, 27)},
             "ParticipantObjectDataLifeCycle": {str(n) for n in range(1, 16)}},
        )
        children = sequence(item, [
            ("ParticipantObjectIDTypeCode", "1"),
            (("ParticipantObjectName", "ParticipantObjectQuery"), "1"),
            ("ParticipantObjectDetail", "*"), ("ParticipantObjectDescription", "*"),
        ])
        coded(children[0])
    return root


# --- the A.5.3 tables ------------------------------------------------------------------------------

def code_of(element) -> tuple[str, str]:
    return element.get("csd-code"), element.get("codeSystemName")


def roles(participant) -> set[tuple[str, str]]:
    return {code_of(r) for r in participant.findall("RoleIDCode")}


def with_role(root, code: str) -> list:
    return [p for p in root.findall("ActiveParticipant") if (code, "DCM") in roles(p)]


def objects(root, type_code: str, role: str) -> list:
    return [
        o for o in root.findall("ParticipantObjectIdentification")
        if o.get("ParticipantObjectTypeCode") == type_code and o.get("ParticipantObjectTypeCodeRole") == role
    ]


MEDIA_TYPES = {"110010", "110030", "110031", "110032", "110033", "110034", "110035", "110036", "110037", "110038"}


def check_common(root, event_code: str, action: str):
    event = root.find("EventIdentification")
    assert code_of(event.find("EventID")) == (event_code, "DCM")
    assert event.get("EventActionCode") == action
    assert event.get("EventOutcomeIndicator") == "0"
    requestors = [p for p in root.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert len(requestors) == 1, "exactly one requestor (A.5.3.4.1, A.5.3.5)"
    studies = objects(root, "2", "3")
    for study in studies:
        assert code_of(study.find("ParticipantObjectIDTypeCode")) == ("110180", "DCM")
    patients = objects(root, "1", "1")
    for patient in patients:
        assert code_of(patient.find("ParticipantObjectIDTypeCode")) == ("2", "RFC-3881")
    assert len(patients) >= 1
    return studies, patients


def check_media(root, role: str, media_type: str):
    (media,) = with_role(root, role)
    assert media.get("UserIsRequestor") == "false"
    assert roles(media) == {(role, "DCM")}
    assert code_of(media.find("MediaIdentifier/MediaType")) == (media_type, "DCM")
    assert media_type in MEDIA_TYPES
    return media


def validate_export(xml: bytes, media_type: str):
    """Table A.5.3.4-1, Data Export."""
    root = validate_schema(xml)
    studies, patients = check_common(root, "110106", "R")
    media = check_media(root, "110154", media_type)
    sources = with_role(root, "110153")
    assert 1 <= len(sources) <= 2  # the person and/or the process exporting
    for participant in root.findall("ActiveParticipant"):
        assert participant is media or participant in sources or roles(participant) == {("110152", "DCM")}
    return root, studies, patients


def validate_import(xml: bytes, media_type: str):
    """Table A.5.3.5-1, Data Import."""
    root = validate_schema(xml)
    studies, patients = check_common(root, "110107", "C")
    media = check_media(root, "110155", media_type)
    importers = [p for p in with_role(root, "110152")]
    assert 1 <= len(importers) <= 2
    for participant in root.findall("ActiveParticipant"):
        assert participant is media or participant in importers or ("110153", "DCM") in roles(participant)
    return root, studies, patients


def validate_begin_transferring(xml: bytes):
    """Table A.5.3.3-1, Begin Transferring DICOM Instances: one sender, one receiver, 1..N
    studies, one patient."""
    root = validate_schema(xml)
    studies, patients = check_common(root, "110102", "E")
    assert len(with_role(root, "110153")) == 1 and len(with_role(root, "110152")) == 1
    assert len(studies) >= 1 and len(patients) == 1
    for study in studies:
        assert study.find("ParticipantObjectName") is not None or study.find("ParticipantObjectQuery") is not None
    return root, studies, patients


# --- a file room's day ---------------------------------------------------------------------------


@pytest.fixture
def day(cast, places, make_media):
    """A disc brought in by a patient and imported, lent to another hospital, sent back by
    courier; a jacket linked to a PACS study, lent and moved; a jacket nobody's."""
    patient = Patient.objects.create(patient_id="P-42", name="Li Wei")
    ct = Study.objects.create(study_instance_uid="1.2.840.9.1", patient=patient, accession_number="ACC-1")
    mr = Study.objects.create(study_instance_uid="1.2.840.9.2", patient=patient)
    disc = make_media("CD-1", kind=MediaKind.CD)
    imported = services.media_disc_imported(
        media=disc, manifest_id=1, studies=[ct, mr], summary={"files": 12}, actor=cast["staff"]
    )
    lent = services.media_check_out(
        media=disc, borrower=cast["doctor"], actor=cast["staff"], destination=places["external"]
    )
    services.media_transfer(media=disc, actor=cast["staff"], to_location=places["courier"])
    jacket = make_media("FJ-9", patient=patient)
    services.media_studies_link(media=jacket, studies=[ct], actor=cast["staff"], source=StudySource.PACS)
    services.media_check_out(media=jacket, borrower=cast["doctor2"], actor=cast["staff"])
    services.media_transfer(media=jacket, actor=cast["staff"], to_holder=cast["doctor"])
    orphan = make_media("FJ-0")
    services.media_check_out(media=orphan, borrower=cast["doctor"], actor=cast["staff"])
    return {"imported": imported, "lent_seq": lent.out_seq, "patient": patient, "ct": ct, "mr": mr}


def event(kind: str, code: str) -> CustodyEvent:
    return CustodyEvent.objects.filter(kind=kind, media__code=code).order_by("seq").last()


def test_a_disc_import_is_a_data_import_with_the_disc_as_source_media(day):
    (message,) = messages_for(day["imported"])
    assert message.event.code == "110107"
    root, studies, patients = validate_import(message.xml, "110032")
    assert sorted(s.get("ParticipantObjectID") for s in studies) == ["1.2.840.9.1", "1.2.840.9.2"]
    assert [p.get("ParticipantObjectID") for p in patients] == ["P-42"]
    (person,) = [p for p in root.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert person.get("UserID") == "staff@filmroom.local"
    assert "Li Wei" not in message.xml.decode()  # patient names never leave the database


def test_a_check_out_to_another_hospital_is_an_export_and_a_begin_transferring(day):
    export, transferring = messages_for(event(EventKind.CHECKED_OUT, "CD-1"))
    root, studies, patients = validate_export(export.xml, "110032")
    destinations = {p.get("UserID") for p in with_role(root, "110152")}
    assert destinations == {"doctor@filmroom.local", "EXT"}
    assert len(studies) == 2
    root, studies, patients = validate_begin_transferring(transferring.xml)
    (receiver,) = with_role(root, "110152")
    assert (receiver.get("UserID"), receiver.get("UserName")) == ("EXT", "City General")
    assert transferring.filename.endswith(f"-110102-{transferring.event_id}.xml")


def test_a_move_to_a_courier_begins_a_transfer_too(day):
    found = messages_for(event(EventKind.TRANSFERRED, "CD-1"))
    assert [m.event.code for m in found] == ["110106", "110102"]
    validate_export(found[0].xml, "110032")
    validate_begin_transferring(found[1].xml)


def test_a_jacket_lent_and_handed_on_is_an_export_naming_the_studies_linked_before(day):
    (lent,) = messages_for(event(EventKind.CHECKED_OUT, "FJ-9"))
    root, studies, patients = validate_export(lent.xml, "110010")
    assert [s.get("ParticipantObjectID") for s in studies] == ["1.2.840.9.1"]
    assert studies[0].find("ParticipantObjectName").text == "ACC-1"
    (handed,) = messages_for(event(EventKind.TRANSFERRED, "FJ-9"))
    root, _, _ = validate_export(handed.xml, "110010")
    assert {p.get("UserID") for p in with_role(root, "110152")} == {"doctor@filmroom.local"}


def test_an_item_with_no_known_patient_gives_no_message(day):
    with pytest.raises(Unreportable, match="FJ-0 has no known patient"):
        messages_for(event(EventKind.CHECKED_OUT, "FJ-0"))


def test_the_checker_refuses_what_the_schema_refuses(day):
    """The schema checker above can fail: each of these breaks one rule of A.5.1."""
    (message,) = messages_for(day["imported"])

    def changed(mutate) -> bytes:
        root = ET.fromstring(message.xml)
        mutate(root)
        return ET.tostring(root)

    def no_event_id(root):
        identification = root.find("EventIdentification")
        identification.remove(identification.find("EventID"))

    def participant_after_source(root):
        participant = root.find("ActiveParticipant")
        root.remove(participant)
        root.insert(list(root).index(root.find("AuditSourceIdentification")) + 1, participant)

    def object_without_name(root):
        item = root.find("ParticipantObjectIdentification")
        item.remove(item.find("ParticipantObjectName"))

    def unknown_action(root):
        root.find("EventIdentification").set("EventActionCode", "X")

    def rfc3881_code_attribute(root):
        event_id = root.find("EventIdentification/EventID")
        event_id.set("code", event_id.attrib.pop("csd-code"))

    def requestor_not_boolean(root):
        root.find("ActiveParticipant").set("UserIsRequestor", "yes")

    validate_schema(changed(lambda root: None))
    for mutate in (no_event_id, participant_after_source, object_without_name, unknown_action,
                   rfc3881_code_attribute, requestor_not_boolean):
        with pytest.raises(SchemaError):
            validate_schema(changed(mutate))


# --- the command, files and syslog ------------------------------------------------------------------


def run(*arguments) -> dict:
    out = io.StringIO()
    call_command("audit_messages", *arguments, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


class Receiver:
    """A syslog collector on loopback (RFC 6587 octet counting, plain or TLS): each finished
    connection's frames go to `connections`."""

    def __init__(self, context: ssl.SSLContext | None = None, *, close_notify: bool = True):
        self.close_notify = close_notify
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.connections: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            try:
                if self.context:
                    connection = self.context.wrap_socket(connection, server_side=True)
                frames = self._frames(connection.makefile("rb"))
                if self.context and self.close_notify:  # answer close_notify with its own
                    try:
                        connection.unwrap()
                    except OSError:
                        pass
                self.connections.put(frames)
            except (OSError, ssl.SSLError) as exc:
                self.connections.put(exc)
            finally:
                connection.close()

    @staticmethod
    def _frames(stream) -> list[bytes]:
        frames = []
        while True:
            length = b""
            while (byte := stream.read(1)) not in (b" ", b""):
                length += byte
            if not length:
                return frames
            frames.append(stream.read(int(length)))

    def next_connection(self) -> list[bytes] | Exception:
        return self.connections.get(timeout=20)

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        self.listener.close()
        self.thread.join(timeout=5)


SYSLOG_HEADER = re.compile(
    rb"<85>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ filmroom \d+ IHE\+RFC-3881 - \xef\xbb\xbf"
)


def xml_of(frame: bytes) -> bytes:
    header = SYSLOG_HEADER.match(frame)
    assert header, frame[:120]
    return frame[header.end():]


def test_the_command_writes_each_message_once_and_remembers_where_it_stopped(day, tmp_path, make_media, cast):
    first = run("--out", str(tmp_path))
    files = sorted(p.name for p in tmp_path.glob("*.xml"))
    assert first["files"] == len(files) == 7  # import; 2+2 for CD-1; 1+1 for FJ-9
    assert any("FJ-0" in reason for reason in first["skipped"])
    for name in files:
        validate_schema((tmp_path / name).read_bytes())
    assert json.loads((tmp_path / "state.json").read_text())["files"] == first["last_seq"]
    again = run("--out", str(tmp_path))
    assert (again["events"], again["files"]) == (0, 0)
    services.media_return(media=day["imported"].media, actor=cast["staff"])
    lent = make_media("CD-2", kind=MediaKind.DVD, patient=day["patient"])
    services.media_check_out(media=lent, borrower=cast["doctor"], actor=cast["staff"])
    third = run("--out", str(tmp_path))
    assert (third["events"], third["files"]) == (1, 1)  # the return is not an export
    assert len(list(tmp_path.glob("*.xml"))) == 8


def test_syslog_over_tcp_receives_every_message_exactly_once(day, tmp_path, cast, make_media):
    receiver = Receiver()
    try:
        address = f"127.0.0.1:{receiver.port}"
        result = run("--out", str(tmp_path), "--syslog", address)
        frames = receiver.next_connection()
        assert result["sent"] == len(frames) == 7
        written = {p.read_bytes() for p in tmp_path.glob("*.xml")}
        assert {xml_of(f) for f in frames} == written
        for frame in frames:
            validate_schema(xml_of(frame))
        assert run("--out", str(tmp_path), "--syslog", address)["sent"] == 0
        assert receiver.connections.empty()  # nothing new: not even a connection
        lent = make_media("CD-3", kind=MediaKind.USB, patient=day["patient"])
        services.media_check_out(media=lent, borrower=cast["doctor"], actor=cast["staff"])
        assert run("--out", str(tmp_path), "--syslog", address)["sent"] == 1
        (frame,) = receiver.next_connection()
        validate_export(xml_of(frame), "110030")
    finally:
        receiver.close()


def test_a_repository_that_is_down_gets_everything_once_when_it_is_back(day, tmp_path):
    port = free_port()  # nothing listens there
    with pytest.raises(CommandError, match="did not take the messages"):
        run("--out", str(tmp_path), "--syslog", f"127.0.0.1:{port}")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["syslog"] == {}
    receiver = Receiver()
    try:
        result = run("--out", str(tmp_path), "--syslog", f"127.0.0.1:{receiver.port}")
        assert result["sent"] == len(receiver.next_connection()) == 7
    finally:
        receiver.close()


def self_signed(tmp_path, name: str = "repo"):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} (test)")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file, key_file


def test_syslog_over_tls_checks_the_certificate_and_delivers_once(day, tmp_path, settings):
    context, ca, _ = self_signed(tmp_path)
    out = tmp_path / "out"
    receiver = Receiver(context)
    try:
        address = f"127.0.0.1:{receiver.port}"
        # The system's trust store does not know this repository: nothing is sent, nothing lost.
        with pytest.raises(CommandError, match="did not take the messages"):
            run("--out", str(out), "--syslog", address, "--tls")
        assert isinstance(receiver.next_connection(), (ssl.SSLError, OSError))
        result = run("--out", str(out), "--syslog", address, "--tls", "--ca", str(ca))
        frames = receiver.next_connection()
        assert result["sent"] == len(frames) == 7
        assert {xml_of(f) for f in frames} == {p.read_bytes() for p in out.glob("*.xml")}
        # The settings name the same repository: the command remembers it was all sent.
        settings.AUDIT_REPOSITORY, settings.AUDIT_REPOSITORY_TLS = address, True
        settings.AUDIT_REPOSITORY_CA = str(ca)
        assert run("--out", str(out))["sent"] == 0
        assert receiver.connections.empty()
        state = json.loads((out / "state.json").read_text())
        assert state["syslog"] == {f"tls://{address}": result["last_seq"]}
    finally:
        receiver.close()


def test_a_repository_that_wants_a_client_certificate_gets_the_configured_one(day, tmp_path, settings):
    """IHE ATNA authenticates both ends: the repository refuses a sender without a certificate
    it trusts, and takes the messages once FILMROOM_AUDIT_REPOSITORY_CERT/KEY name one."""
    context, ca, _ = self_signed(tmp_path)
    _, client_cert, client_key = self_signed(tmp_path, "filmroom")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_cert)
    receiver = Receiver(context)
    try:
        address = f"127.0.0.1:{receiver.port}"
        settings.AUDIT_REPOSITORY, settings.AUDIT_REPOSITORY_TLS = address, True
        settings.AUDIT_REPOSITORY_CA = str(ca)
        with pytest.raises(CommandError, match="did not take the messages"):
            run("--out", str(tmp_path / "out"))
        assert isinstance(receiver.next_connection(), (ssl.SSLError, OSError))
        assert json.loads((tmp_path / "out" / "state.json").read_text())["syslog"] == {}
        settings.AUDIT_REPOSITORY_CERT, settings.AUDIT_REPOSITORY_KEY = str(client_cert), str(client_key)
        assert run("--out", str(tmp_path / "out"))["sent"] == len(receiver.next_connection()) == 7
    finally:
        receiver.close()


def test_a_refused_client_certificate_is_never_counted_as_delivered(tmp_path):
    """A TLS 1.3 repository refuses our certificate only after our side of the handshake is done,
    and its alert can look like the end of a clean shutdown (SSLSocket.unwrap() returned
    normally for 15 refused connections in 200). Every refused connection must raise."""
    context, ca, _ = self_signed(tmp_path)
    _, client_cert, client_key = self_signed(tmp_path, "filmroom")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca)  # trusts only itself, not the sender's certificate
    receiver = Receiver(context)
    repository = audit_messages.Repository(
        "127.0.0.1", receiver.port, tls=True, ca_file=str(ca),
        cert_file=str(client_cert), key_file=str(client_key),
    )
    message = SimpleNamespace(xml=b"<AuditMessage/>" * 200)
    try:
        counted = 0
        for _ in range(100):
            try:
                with audit_messages.SyslogSender(repository) as sender:
                    sender.send(message)
                counted += 1
            except OSError:
                pass
            assert isinstance(receiver.next_connection(), (ssl.SSLError, OSError))
        assert counted == 0
    finally:
        receiver.close()


def test_a_tls_repository_that_hangs_up_without_close_notify_is_not_counted_as_delivered(day, tmp_path, settings):
    """Only its close_notify says it read everything: a connection that just ends is sent again
    next time (the repository may get a batch twice, never lose one)."""
    context, ca, _ = self_signed(tmp_path)
    receiver = Receiver(context, close_notify=False)
    try:
        settings.AUDIT_REPOSITORY, settings.AUDIT_REPOSITORY_TLS = f"127.0.0.1:{receiver.port}", True
        settings.AUDIT_REPOSITORY_CA = str(ca)
        with pytest.raises(CommandError, match="did not take the messages"):
            run("--out", str(tmp_path / "out"))
        assert len(receiver.next_connection()) == 7
        assert json.loads((tmp_path / "out" / "state.json").read_text())["syslog"] == {}
    finally:
        receiver.close()


def test_a_long_backlog_goes_in_batches_one_connection_each(day, tmp_path, monkeypatch):
    monkeypatch.setattr("tracker.management.commands.audit_messages.BATCH_EVENTS", 2)
    receiver = Receiver()
    try:
        result = run("--out", str(tmp_path), "--syslog", f"127.0.0.1:{receiver.port}")
        connections = [receiver.next_connection() for _ in range(3)]
        assert receiver.connections.empty()
        # import + CD-1 lent (1 + 2), CD-1 to the courier + FJ-9 lent (2 + 1), FJ-9 handed on + FJ-0 (1)
        assert [len(frames) for frames in connections] == [3, 3, 1]
        sent = [xml_of(frame) for frames in connections for frame in frames]
        assert result["sent"] == len(set(sent)) == 7
    finally:
        receiver.close()


def test_since_sends_again_on_purpose(day, tmp_path):
    receiver = Receiver()
    try:
        address = f"127.0.0.1:{receiver.port}"
        run("--out", str(tmp_path), "--syslog", address)
        assert len(receiver.next_connection()) == 7
        again = run("--out", str(tmp_path), "--syslog", address, "--since", str(day["lent_seq"]))
        frames = receiver.next_connection()
        after = {
            p.read_bytes() for p in tmp_path.glob("*.xml") if int(p.name[:12]) > day["lent_seq"]
        }
        assert again["sent"] == len(frames) == len(after) == 4  # the courier move (2), FJ-9 (2)
        assert {xml_of(f) for f in frames} == after
    finally:
        receiver.close()


def test_a_frame_is_rfc5424_with_octet_counting():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    frame = audit_messages.syslog_frame(b"<AuditMessage/>", now=when)
    length, _, message = frame.partition(b" ")
    assert int(length) == len(message)
    assert message.startswith(b"<85>1 2026-01-02T03:04:05.000000Z ")
    tail = f" filmroom {os.getpid()} IHE+RFC-3881 - ".encode() + b"\xef\xbb\xbf<AuditMessage/>"
    assert message.endswith(tail)
