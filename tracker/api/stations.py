"""The scan ingest endpoint: reader stations deliver their reads under their own API key."""
import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..exceptions import DomainError, error_body
from ..models import Location, ReaderDevice, ReaderKey
from .shapes import ERRORS, ErrorSerializer

User = get_user_model()

MAX_SCANS_PER_BATCH = 500


class ReaderKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>`: the request comes from the reader station owning the key."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        keyword, _sep, key = header.partition(" ")
        if keyword != self.keyword:
            return None
        prefix = key.strip().partition(".")[0]
        row = _usable_key(prefix)
        if row is None or not row.is_valid(key.strip()):
            raise drf_exceptions.AuthenticationFailed(_("This reader key is unknown or was revoked."))
        if row.has_expired or not row.reader.is_active:
            raise drf_exceptions.AuthenticationFailed(_("This reader key has expired or its reader is disabled."))
        return AnonymousUser(), row

    def authenticate_header(self, request):
        return self.keyword


_KEY_MODELS = (ReaderKey, ReaderDevice, Location)


@functools.cache
def _key_query(vendor: str) -> tuple[str, list]:
    """The SQL of _usable_key and, per model, its fields with the converters the ORM would apply
    (SQLite hands times and booleans over as text and integers)."""
    aliases = {ReaderKey: "k", ReaderDevice: "r", Location: "l"}
    columns, readers = [], []
    for model in _KEY_MODELS:
        table = model._meta.db_table
        fields = []
        for f in model._meta.concrete_fields:
            columns.append(f"{aliases[model]}.{connection.ops.quote_name(f.column)}")
            col = f.get_col(table)
            fields.append((f.attname, col, connection.ops.get_db_converters(col) + f.get_db_converters(connection)))
        readers.append((model, fields))
    sql = (
        f"SELECT {', '.join(columns)} FROM {ReaderKey._meta.db_table} k "
        f"JOIN {ReaderDevice._meta.db_table} r ON r.id = k.reader_id "
        f"JOIN {Location._meta.db_table} l ON l.id = r.location_id "
        "WHERE k.prefix = %s AND NOT k.revoked"
    )
    return sql, readers


def _usable_key(prefix: str) -> ReaderKey | None:
    """The unrevoked key with this prefix, its reader and the reader's place, in one plain query:
    every delivery pays for it, and compiling the ORM's version cost more than running it."""
    sql, readers = _key_query(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    values, made = iter(row), []
    for model, fields in readers:
        names, converted = [], []
        for (attname, col, converters), value in zip(fields, values):
            for converter in converters:
                value = converter(value, col, connection)
            names.append(attname)
            converted.append(value)
        made.append(model.from_db(connection.alias, names, converted))
    key, reader, location = made
    reader.location = location
    key.reader = reader
    return key


class IsReader(BasePermission):
    message = gettext_lazy("Only a reader station's key may post scans.")

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ReaderKey)


class ScanIn(serializers.Serializer):
    event_id = serializers.UUIDField()
    uid = serializers.CharField(max_length=64, trim_whitespace=True)
    read_at = serializers.DateTimeField()
    counter = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**53)


class ScanBatchIn(serializers.Serializer):
    reader = serializers.CharField(required=False, help_text=gettext_lazy("Must be the key's own reader, if given."))
    scans = serializers.ListField(child=serializers.DictField(), allow_empty=False)


class ScanResultOut(serializers.Serializer):
    event_id = serializers.CharField()
    stored = serializers.BooleanField(help_text=gettext_lazy("The server holds this read; the agent may forget it."))
    status = serializers.IntegerField()
    outcome = serializers.CharField(required=False)
    code = serializers.CharField()
    message = serializers.CharField()
    media = serializers.CharField(required=False, allow_null=True)
    seq = serializers.IntegerField(required=False, allow_null=True)
    replayed = serializers.BooleanField(required=False)


class ScanBatchOut(serializers.Serializer):
    reader = serializers.CharField()
    results = ScanResultOut(many=True)


@extend_schema(
    description=gettext_lazy(
        "A reader station delivers a batch of reads (up to 500). Each read is idempotent by its "
        "event_id; each gets its own result, and a bad read never stops the rest of the batch."
    )
)
class ScanIngestApi(APIView):

    authentication_classes = [ReaderKeyAuthentication]
    permission_classes = [IsReader]

    @extend_schema(request=ScanBatchIn, responses={200: ScanBatchOut, 413: ErrorSerializer, **ERRORS})
    def post(self, request):
        reader = request.auth.reader
        batch = ScanBatchIn(data=request.data)
        batch.is_valid(raise_exception=True)
        claimed = batch.validated_data.get("reader")
        if claimed and claimed != reader.name:
            raise drf_exceptions.PermissionDenied(
                _("This key belongs to reader %(name)s; it cannot post as %(other)s.")
                % {"name": reader.name, "other": claimed}
            )
        scans = batch.validated_data["scans"]
        if len(scans) > MAX_SCANS_PER_BATCH:
            return Response(
                error_body("batch_too_large", _("At most %(n)d scans per request.") % {"n": MAX_SCANS_PER_BATCH}),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return Response({"reader": reader.name, "results": self.record(reader, scans)})

    def record(self, reader, scans: list[dict]) -> list[dict]:
        """Validate each read, record the valid ones together (services.scan_record_many keeps
        their order and gives each its own result), and answer one result per read."""
        shape = ScanIn()  # one serializer for all: building its fields costs more than using them
        results: list[dict | None] = [None] * len(scans)
        reads, places = [], []
        for index, item in enumerate(scans):
            try:
                data = shape.run_validation(item)
            except drf_exceptions.ValidationError as invalid:
                errors = invalid.detail if isinstance(invalid.detail, dict) else {"scan": invalid.detail}
                fields = "; ".join(f"{name}: {' '.join(map(str, errs))}" for name, errs in errors.items())
                event_id = str(item.get("event_id", ""))[:64]
                results[index] = {"event_id": event_id, "stored": False, "status": 400, "code": "invalid",
                                  "message": fields}
                continue
            reads.append(services.StationRead(
                event_id=data["event_id"], raw_uid=data["uid"], read_at=data["read_at"],
                counter=data.get("counter"),
            ))
            places.append(index)
        for index, read, outcome in zip(places, reads, services.scan_record_many(device=reader, reads=reads)):
            results[index] = self.result(read, outcome)
        return results

    @staticmethod
    def result(read, outcome) -> dict:
        if isinstance(outcome, DomainError):
            return {"event_id": str(read.event_id), "stored": False, "status": outcome.status,
                    "code": outcome.code, "message": outcome.message}
        record, replayed = outcome
        return {
            "event_id": str(record.event_id),
            "stored": True,
            "status": 200 if replayed else 201,
            "outcome": record.outcome,
            "code": record.code,
            "message": record.message,
            "media": record.media.code if record.media_id else None,
            "seq": record.event_seq,
            "replayed": replayed,
        }


class ReaderKeyScheme(OpenApiAuthenticationExtension):
    """Describe the reader key in the OpenAPI schema: `Authorization: Api-Key <key>`."""

    target_class = ReaderKeyAuthentication
    name = "ReaderKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": str(gettext_lazy("`Api-Key <key>` as printed by `manage.py register_reader`."))}

