"""DICOM PS3.15 audit messages (Annex A.5) for custody events, and sending them to an audit
repository by syslog.

Schema followed: the DICOM Audit Message Schema of PS3.15 A.5.1 (RELAX NG Compact, derived from
RFC 3881; coded values as `csd-code`, `codeSystemName`, `originalText`), with the message tables
A.5.3.3 (Begin Transferring DICOM Instances), A.5.3.4 (Data Export) and A.5.3.5 (Data Import) as
published in the 2024e/2025e editions. Element order is the schema's: EventIdentification,
ActiveParticipant+, AuditSourceIdentification, ParticipantObjectIdentification*.

Which ledger events produce which messages (one XML document each, named by seq and event ID):
- `checked_out`, `transferred` → Data Export (110106, action R): custody of the physical item,
  and of the images on it, leaves the file room's hands for a person or a place. The item is the
  Media participant (110154 Destination Media, MediaType from CID 405: film 110010, CD 110032,
  DVD 110033, USB 110030); the staff member who did it and the program (the reader station, or
  "filmroom") are the exporting participants (110153 Source Role ID; the person is the one
  requestor, or the program when no person is recorded); the borrower or receiver and the place
  it goes to are the remote participants (110152 Destination Role ID).
- a `checked_out` or `transferred` to a place of kind external (another hospital) or transit (a
  courier) → also Begin Transferring DICOM Instances (110102, action E): the studies on the item
  start a journey between two places. The message needs at least one known study and exactly one
  patient (A.5.3.3); an item without them gets the Data Export only.
- `disc_imported` → Data Import (110107, action C): a disc's files entered the archive. The disc
  is the Media participant (110155 Source Media); the person who imported it and the program are
  the importing participants (110152).
Studies are the item's studies as the ledger stood at that event (disc imports and study links
before it, minus unlinks); patients are the item's patient and the patients of those studies.
Both tables require at least one patient: an event on an item with no known patient produces no
message, and the command says so. Every message carries EventTypeCode (the ledger kind, in the
local coding scheme 99FILMROOM) and EventOutcomeIndicator 0 (the ledger records only what
happened).

Privacy: ParticipantObjectName is required by the schema (a name or a query) but the patient's
name is optional in the tables; Filmroom writes the patient ID there and never the name (names
stay out of everything it writes outside the database), and a study's accession number (or its
UID). People are `username@AUDIT_SOURCE_ID` (A.5.2.1's loginName@domain-name).

Sending (`SyslogSender`): RFC 5424 messages (PRI <85>: facility 10 authpriv, severity 5 notice,
as IHE ATNA uses; APP-NAME "filmroom"; MSGID "IHE+RFC-3881"; no structured data; the XML after a
UTF-8 BOM) over TCP with octet-counting framing (RFC 6587 3.4.1), or over TLS (RFC 5425, same
framing), checking the repository's certificate against a CA file and optionally presenting a
client certificate (ATNA's mutual authentication).
"""
from __future__ import annotations

import contextlib
import os
import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from django.conf import settings

from archive.models import Study

from . import ledger
from .choices import EventKind, LocationKind, MediaKind
from .models import CustodyEvent

DCM = "DCM"
LOCAL = "99FILMROOM"  # a private coding scheme designator (DICOM reserves "99" prefixes for them)


@dataclass(frozen=True)
class Code:
    code: str
    system: str
    meaning: str

    @property
    def attributes(self) -> dict:
        return {"csd-code": self.code, "codeSystemName": self.system, "originalText": self.meaning}


EXPORT = Code("110106", DCM, "Export")
IMPORT = Code("110107", DCM, "Import")
BEGIN_TRANSFERRING = Code("110102", DCM, "Begin Transferring DICOM Instances")
SOURCE_ROLE = Code("110153", DCM, "Source Role ID")
DESTINATION_ROLE = Code("110152", DCM, "Destination Role ID")
DESTINATION_MEDIA = Code("110154", DCM, "Destination Media")
SOURCE_MEDIA = Code("110155", DCM, "Source Media")
APPLICATION = Code("110150", DCM, "Application")
STUDY_INSTANCE_UID = Code("110180", DCM, "Study Instance UID")
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
MEDIA_TYPES = {  # DICOM CID 405 Media Type
    MediaKind.FILM_JACKET: Code("110010", DCM, "Film"),
    MediaKind.CD: Code("110032", DCM, "CD"),
    MediaKind.DVD: Code("110033", DCM, "DVD"),
    MediaKind.USB: Code("110030", DCM, "USB Disk Emulation"),
    MediaKind.OTHER: Code("other", LOCAL, "Other physical media"),
}
MEDIA_LABELS = {
    MediaKind.FILM_JACKET: "Film jacket", MediaKind.CD: "CD", MediaKind.DVD: "DVD",
    MediaKind.USB: "USB stick", MediaKind.OTHER: "Item",
}
EXPORTED_KINDS = (EventKind.CHECKED_OUT, EventKind.TRANSFERRED)
REPORTED_KINDS = (*EXPORTED_KINDS, EventKind.DISC_IMPORTED)
JOURNEY_PLACES = (LocationKind.EXTERNAL, LocationKind.TRANSIT)
PROGRAM = "filmroom"
SYSLOG_PRI = 10 * 8 + 5  # authpriv.notice
APP_NAME = "filmroom"
MSGID = "IHE+RFC-3881"
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class AuditMessage:
    seq: int
    event_id: str
    event: Code
    xml: bytes

    @property
    def filename(self) -> str:
        return f"{self.seq:012d}-{self.event.code}-{self.event_id}.xml"


class Unreportable(Exception):
    """The event cannot be told as a conformant message (e.g. no patient known)."""


# --- building messages --------------------------------------------------------------------------


def reportable_events(*, after: int, up_to: int | None = None) -> Iterator[CustodyEvent]:
    """The events that produce audit messages, seq > `after` (and ≤ `up_to`), in seq order."""
    events = CustodyEvent.objects.filter(seq__gt=after, kind__in=REPORTED_KINDS)
    if up_to is not None:
        events = events.filter(seq__lte=up_to)
    return events.select_related(
        "media", "media__patient", "actor", "device", "to_location", "holder"
    ).order_by("seq").iterator(chunk_size=500)


def messages_for(event: CustodyEvent) -> list[AuditMessage]:
    """The audit messages one ledger event produces (Unreportable when it can produce none)."""
    media = event.media
    if media is None:
        raise Unreportable(f"event {event.seq} names no item")
    studies = _studies(event)
    patients = sorted(
        {s.patient.patient_id for s in studies if s.patient_id}
        | ({media.patient.patient_id} if media.patient_id else set())
        | ({event.payload["patient_id"]} if event.payload.get("patient_id") else set())
    )
    if not patients:
        raise Unreportable(
            f"event {event.seq}: item {media.code} has no known patient, and a PS3.15 message "
            "needs one"
        )
    if event.kind == EventKind.DISC_IMPORTED:
        return [_message(event, IMPORT, _data_import(event, studies, patients))]
    found = [_message(event, EXPORT, _data_export(event, studies, patients))]
    place = event.to_location
    if place is not None and place.kind in JOURNEY_PLACES and studies and len(patients) == 1:
        found.append(_message(event, BEGIN_TRANSFERRING, _begin_transferring(event, studies, patients)))
    return found


def _message(event: CustodyEvent, code: Code, root: ET.Element) -> AuditMessage:
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode()
    return AuditMessage(seq=event.seq, event_id=str(event.event_id), event=code, xml=xml)


def _studies(event: CustodyEvent) -> list[Study]:
    """The item's studies as the ledger stood at this event (a disc import: the disc's own)."""
    if event.kind == EventKind.DISC_IMPORTED:
        uids = set(event.payload.get("studies", []))
    else:
        uids = set()
        changes = CustodyEvent.objects.filter(
            media_id=event.media_id, seq__lte=event.seq,
            kind__in=[EventKind.DISC_IMPORTED, EventKind.STUDIES_LINKED, EventKind.STUDIES_UNLINKED],
        ).order_by("seq").values_list("kind", "payload")
        for kind, payload in changes:
            if kind == EventKind.STUDIES_UNLINKED:
                uids -= set(payload.get("studies", []))
            else:
                uids |= set(payload.get("studies", []))
    return list(
        Study.objects.filter(study_instance_uid__in=uids).select_related("patient")
        .order_by("study_instance_uid")
    )


def _root(event: CustodyEvent, code: Code, action: str) -> ET.Element:
    root = ET.Element("AuditMessage")
    identification = ET.SubElement(
        root, "EventIdentification", EventActionCode=action,
        EventDateTime=ledger.format_time(event.received_at), EventOutcomeIndicator="0",
    )
    ET.SubElement(identification, "EventID", code.attributes)
    kind = EventKind(event.kind)
    ET.SubElement(identification, "EventTypeCode", Code(kind.value, LOCAL, _english(kind)).attributes)
    return root


def _english(kind: EventKind) -> str:
    from django.utils import translation

    with translation.override("en"):
        return str(kind.label)


def _participant(
    root: ET.Element, user_id: str, *, requestor: bool, roles: list[Code], user_name: str = "",
    media_type: Code | None = None,
) -> None:
    attributes = {"UserID": user_id}
    if user_name:
        attributes["UserName"] = user_name
    attributes["UserIsRequestor"] = "true" if requestor else "false"
    element = ET.SubElement(root, "ActiveParticipant", attributes)
    for role in roles:
        ET.SubElement(element, "RoleIDCode", role.attributes)
    if media_type is not None:
        identifier = ET.SubElement(element, "MediaIdentifier")
        ET.SubElement(identifier, "MediaType", media_type.attributes)


def _person_id(user) -> str:
    return f"{user.get_username()}@{settings.AUDIT_SOURCE_ID}"


def _local_side(root: ET.Element, event: CustodyEvent, role: Code) -> None:
    """The person who did it (the requestor) and the program that recorded it."""
    if event.actor is not None:
        _participant(
            root, _person_id(event.actor), requestor=True, roles=[role],
            user_name=event.actor.get_full_name(),
        )
    program = f"{PROGRAM}/{event.device.name}" if event.device is not None else PROGRAM
    _participant(root, program, requestor=event.actor is None, roles=[role, APPLICATION])


def _media(root: ET.Element, event: CustodyEvent, role: Code) -> None:
    media = event.media
    _participant(
        root, f"{MEDIA_LABELS[media.kind]} {media.code}", requestor=False, roles=[role],
        media_type=MEDIA_TYPES[media.kind],
    )


def _source(root: ET.Element) -> None:
    source = ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=settings.AUDIT_SOURCE_ID)
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": "4"})  # application server process


def _objects(root: ET.Element, studies: list[Study], patients: list[str]) -> None:
    for study in studies:
        element = ET.SubElement(
            root, "ParticipantObjectIdentification",
            ParticipantObjectID=study.study_instance_uid, ParticipantObjectTypeCode="2",
            ParticipantObjectTypeCodeRole="3",
        )
        ET.SubElement(element, "ParticipantObjectIDTypeCode", STUDY_INSTANCE_UID.attributes)
        name = ET.SubElement(element, "ParticipantObjectName")
        name.text = study.accession_number or study.study_instance_uid
    for patient_id in patients:
        element = ET.SubElement(
            root, "ParticipantObjectIdentification", ParticipantObjectID=patient_id,
            ParticipantObjectTypeCode="1", ParticipantObjectTypeCodeRole="1",
        )
        ET.SubElement(element, "ParticipantObjectIDTypeCode", PATIENT_NUMBER.attributes)
        ET.SubElement(element, "ParticipantObjectName").text = patient_id


def _data_export(event: CustodyEvent, studies: list[Study], patients: list[str]) -> ET.Element:
    root = _root(event, EXPORT, "R")
    if event.holder is not None:
        _participant(
            root, _person_id(event.holder), requestor=False, roles=[DESTINATION_ROLE],
            user_name=event.holder.get_full_name(),
        )
    if event.to_location is not None:
        _participant(
            root, event.to_location.code, requestor=False, roles=[DESTINATION_ROLE],
            user_name=event.to_location.name,
        )
    _local_side(root, event, SOURCE_ROLE)
    _media(root, event, DESTINATION_MEDIA)
    _source(root)
    _objects(root, studies, patients)
    return root


def _data_import(event: CustodyEvent, studies: list[Study], patients: list[str]) -> ET.Element:
    root = _root(event, IMPORT, "C")
    _local_side(root, event, DESTINATION_ROLE)
    _media(root, event, SOURCE_MEDIA)
    _source(root)
    _objects(root, studies, patients)
    return root


def _begin_transferring(event: CustodyEvent, studies: list[Study], patients: list[str]) -> ET.Element:
    root = _root(event, BEGIN_TRANSFERRING, "E")
    program = f"{PROGRAM}/{event.device.name}" if event.device is not None else PROGRAM
    _participant(root, program, requestor=event.actor is None, roles=[SOURCE_ROLE, APPLICATION])
    place = event.to_location
    _participant(root, place.code, requestor=False, roles=[DESTINATION_ROLE], user_name=place.name)
    if event.actor is not None:  # "other participants": the person who sent it on its way
        _participant(
            root, _person_id(event.actor), requestor=True, roles=[],
            user_name=event.actor.get_full_name(),
        )
    _source(root)
    _objects(root, studies, patients)
    return root


# --- syslog ---------------------------------------------------------------------------------------


def syslog_frame(xml: bytes, *, now: datetime | None = None) -> bytes:
    """One RFC 5424 message carrying `xml`, framed by octet counting (RFC 6587 3.4.1)."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    hostname = "".join(c for c in socket.gethostname() if 33 <= ord(c) <= 126)[:255] or "-"
    header = (
        f"<{SYSLOG_PRI}>1 {stamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {hostname} {APP_NAME} "
        f"{os.getpid()} {MSGID} - "
    )
    message = header.encode("ascii") + UTF8_BOM + xml
    return f"{len(message)} ".encode("ascii") + message


@dataclass
class Repository:
    """Where audit messages go: host and port, plain TCP or TLS (with a CA file to trust and an
    optional client certificate and key)."""

    host: str
    port: int
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    timeout: float = 10.0

    @classmethod
    def parse(cls, address: str, **options) -> Repository:
        host, sep, port = address.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"“{address}” is not HOST:PORT")
        return cls(host=host.strip("[]"), port=int(port), **options)

    @property
    def name(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"


class SyslogSender:
    """A connection to the repository: `send()` writes one framed message; leaving the `with`
    block normally ends the connection and returns only once the repository has read to the end
    and closed its side (OSError otherwise). Syslog has no acknowledgement; this end-of-stream
    handshake is the nearest thing to one: it also surfaces a TLS 1.3 repository refusing our
    client certificate, which it says only after the handshake looked complete to us."""

    def __init__(self, repository: Repository):
        self.repository = repository
        self.connection: socket.socket | _TlsConnection | None = None

    def __enter__(self) -> SyslogSender:
        repo = self.repository
        raw = socket.create_connection((repo.host, repo.port), timeout=repo.timeout)
        try:
            if repo.tls:
                context = ssl.create_default_context(cafile=repo.ca_file or None)
                if repo.cert_file:
                    context.load_cert_chain(repo.cert_file, repo.key_file or None)
                self.connection = _TlsConnection(raw, context, server_hostname=repo.host)
            else:
                self.connection = raw
        except BaseException:
            raw.close()
            raise
        return self

    def send(self, message: AuditMessage) -> None:
        self.connection.sendall(syslog_frame(message.xml))

    def __exit__(self, exc_type, exc, traceback) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            if exc_type is None and isinstance(connection, _TlsConnection):
                connection.finish()
            elif exc_type is None:
                _finish_tcp(connection)
        finally:
            connection.close()


def _finish_tcp(connection: socket.socket) -> None:
    """A TCP half-close, then read until the repository closes its side (a reset raises)."""
    connection.shutdown(socket.SHUT_WR)
    while connection.recv(4096):
        pass


class _TlsConnection:
    """TLS driven by hand through memory BIOs, so that its end can tell the repository's
    close_notify (it read everything we sent) from a refusal or a connection that just ends.

    `SSLSocket.unwrap()` cannot: OpenSSL's SSL_shutdown() reports a received fatal alert (a TLS
    1.3 repository refusing our client certificate says so only after our handshake finished)
    with the same success as a close_notify, and CPython returns normally; measured, 15 refused
    connections in 200 counted as delivered. Here our close_notify goes out, then records are
    read until one of: the repository's close_notify (SSLZeroReturnError: delivered), an alert
    (SSLError), the connection ending or resetting (SSLEOFError, OSError), or the timeout. Only
    the first counts: the others leave the batch to be sent again on the next run, so a
    repository may get a batch twice but never loses one."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self._drive(self.tls.do_handshake)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.tls.write(view):]
        self._flush()

    def finish(self) -> None:
        try:
            self.tls.unwrap()  # writes our close_notify, then wants the repository's
        except ssl.SSLWantReadError:
            pass
        self._flush()
        # Read, not unwrap() again: only SSL_read tells a close_notify (SSLZeroReturnError) from
        # a fatal alert (SSLError). Session tickets a TLS 1.3 server sends unasked are read too.
        try:
            while self._drive(lambda: self.tls.read(16384)):  # b"" is a close_notify too
                pass
        except ssl.SSLZeroReturnError:
            pass

    def close(self) -> None:
        self.sock.close()

    def _drive(self, operation):
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                self._flush()
                if data := self.sock.recv(16384):
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._flush()  # the alert OpenSSL wrote, if any, tells the repository why
                raise
            else:
                self._flush()
                return result

    def _flush(self) -> None:
        if data := self.outgoing.read():
            self.sock.sendall(data)
