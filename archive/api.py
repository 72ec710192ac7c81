"""REST API v1 for the DICOM archive: patients, studies, disc manifests, disc checks, study links
and the retention review. Thin views in tracker/api's style: validate, call one selector or
service, answer; errors have the shape {"error": {"code", "message"}}.

Who may do what follows tracker: every role finds patients, studies and what a disc holds (as
every role may find media); linking studies to an item is file-room work; the retention review
is for staff, auditors and admins.
"""
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import generics, serializers

from tracker import selectors as tracker_selectors
from tracker import services
from tracker.api.shapes import EventIdIn, MediaOut, ObjectActionApi, RoleAPIView, media_or_404
from tracker.choices import DiscVerdict, StudySource
from tracker.exceptions import UnknownObject
from tracker.models import Media
from tracker.permissions import EVERY_ROLE

from . import selectors
from . import services as archive_services
from .models import DiscManifest, DiscVerification, ManifestEntry, Patient, Series, Study

# --- output serializers ------------------------------------------------------------------------


@extend_schema_serializer(
    description=gettext_lazy(
        "An item and where it is now; `due_at` "
        "only when the caller may see the open loan."
    )
)
class WhereaboutsOut(serializers.Serializer):
    code = serializers.CharField(source="media.code")
    kind = serializers.CharField(source="media.kind")
    description = serializers.CharField(source="media.description")
    status = serializers.CharField(source="media.status")
    current_location = serializers.CharField(
        source="media.current_location.code", default=None, allow_null=True
    )
    current_holder = serializers.CharField(
        source="media.current_holder.username", default=None, allow_null=True
    )
    due_at = serializers.DateTimeField(allow_null=True)


class PatientOut(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["patient_id", "name", "birth_date", "sex"]


class StudyOut(serializers.ModelSerializer):
    patient_id = serializers.CharField(source="patient.patient_id", read_only=True)
    media = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

    class Meta:
        model = Study
        fields = [
            "study_instance_uid", "patient_id", "study_date", "accession_number", "description",
            "modalities", "medical_record_locator", "instance_count", "media",
        ]


class SeriesOut(serializers.ModelSerializer):
    class Meta:
        model = Series
        fields = [
            "series_instance_uid", "modality", "series_number", "description", "instance_count",
        ]


class PatientDetailOut(PatientOut):
    media = WhereaboutsOut(many=True, source="whereabouts")
    studies = StudyOut(many=True, source="study_rows")

    class Meta(PatientOut.Meta):
        fields = PatientOut.Meta.fields + ["media", "studies"]


class StudyDetailOut(StudyOut):
    patient_name = serializers.CharField(source="patient.name", read_only=True)
    series = SeriesOut(many=True, read_only=True)
    media = WhereaboutsOut(many=True, source="whereabouts")

    class Meta(StudyOut.Meta):
        fields = StudyOut.Meta.fields + ["patient_name", "series"]


class ActorHidden:
    """Who imported or checked a disc is an actor of its custody chain: named only to those who
    may read the chain (tracker.selectors.can_read_custody_chain), null for a clinician."""

    actor_field = ""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not tracker_selectors.can_read_custody_chain(request.user):
            data[self.actor_field] = None
        return data


@extend_schema_serializer(
    description=gettext_lazy(
        "A disc's manifest: what it held when imported. `imported_by` is null for a clinician."
    )
)
class ManifestOut(ActorHidden, serializers.ModelSerializer):
    actor_field = "imported_by"
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    imported_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    problem_count = serializers.SerializerMethodField()

    class Meta:
        model = DiscManifest
        fields = [
            "id", "media", "created_at", "file_count", "total_bytes", "dicomdir_sha256",
            "source_path", "imported_by", "event_seq", "problem_count",
        ]

    def get_problem_count(self, manifest) -> int:
        return len(manifest.problems or [])


class ProblemOut(serializers.Serializer):
    path = serializers.CharField()
    reason = serializers.CharField()


@extend_schema_serializer(
    description=gettext_lazy(
        "A disc's manifest with its problems and IHE PDI report. `imported_by` is null for a "
        "clinician."
    )
)
class ManifestDetailOut(ManifestOut):
    problems = ProblemOut(many=True, read_only=True)
    pdi_report = serializers.JSONField(read_only=True)

    class Meta(ManifestOut.Meta):
        fields = ManifestOut.Meta.fields + ["problems", "pdi_report"]


class ManifestEntryOut(serializers.ModelSerializer):
    class Meta:
        model = ManifestEntry
        fields = [
            "path", "size", "sha256", "sop_class_uid", "sop_instance_uid", "transfer_syntax_uid",
            "study_instance_uid", "series_instance_uid", "problem",
        ]


@extend_schema_serializer(
    description=gettext_lazy(
        "A returned disc compared with its manifest: missing, changed and extra files. "
        "`verified_by` is null for a clinician."
    )
)
class VerificationOut(ActorHidden, serializers.ModelSerializer):
    actor_field = "verified_by"
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    verified_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    missing = serializers.ListField(child=serializers.CharField(), read_only=True)
    changed = serializers.ListField(child=serializers.CharField(), read_only=True)
    extra = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = DiscVerification
        fields = [
            "id", "media", "manifest", "verified_at", "verified_by", "verdict", "files_checked",
            "bytes_checked", "missing", "changed", "extra", "source_path", "event_seq",
        ]


class RetentionDueOut(serializers.Serializer):
    media = serializers.CharField(source="media.code")
    kind = serializers.CharField(source="media.kind")
    status = serializers.CharField(source="media.status")
    current_location = serializers.CharField(
        source="media.current_location.code", default=None, allow_null=True
    )
    current_holder = serializers.CharField(
        source="media.current_holder.username", default=None, allow_null=True
    )
    patient_id = serializers.CharField(
        source="media.patient.patient_id", default=None, allow_null=True
    )
    rule = serializers.CharField(source="rule.name")
    rule_id = serializers.IntegerField(source="rule.pk")
    kept_since = serializers.DateField()
    due_on = serializers.DateField()
    age_then = serializers.IntegerField(allow_null=True)
    age_unknown = serializers.BooleanField()
    needs_retrieval = serializers.BooleanField()


# --- look-ups that answer 404 in words a person can act on ------------------------------------


def patient_or_404(patient_id: str, patients) -> Patient:
    found = patients.filter(patient_id=patient_id).first()
    if found is None:
        raise UnknownObject(
            _("No patient has the ID %(id)s. Check the number, or search by name.")
            % {"id": patient_id},
            patient=patient_id,
        )
    return found


def study_or_404(uid: str, studies) -> Study:
    found = studies.filter(study_instance_uid=uid).first()
    if found is None:
        raise UnknownObject(
            _("No study has the Study Instance UID %(uid)s here. Import the disc that holds it, or "
              "find it in the PACS.") % {"uid": uid},
            study=uid,
        )
    return found


def manifest_or_404(pk: int, manifests) -> DiscManifest:
    found = manifests.filter(pk=pk).first()
    if found is None:
        raise UnknownObject(_("There is no disc manifest %(id)s.") % {"id": pk}, manifest=pk)
    return found


def verification_or_404(pk: int, checks) -> DiscVerification:
    found = checks.filter(pk=pk).first()
    if found is None:
        raise UnknownObject(_("There is no disc check %(id)s.") % {"id": pk}, verification=pk)
    return found


# --- patients ------------------------------------------------------------------------------------


class PatientFilter(filters.FilterSet):
    q = filters.CharFilter(
        method="search", label=gettext_lazy("Patient ID (exact) or part of the name")
    )

    class Meta:
        model = Patient
        fields = ["q"]

    def search(self, queryset, name, value):
        found = selectors.patient_search(user=self.request.user, query=value)
        return queryset.filter(pk__in=found.values("pk"))


class PatientListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = PatientOut
    filterset_class = PatientFilter

    def get_queryset(self):
        return selectors.patient_list(user=self.request.user)


@extend_schema(
    description=gettext_lazy(
        "A patient with all their media (and "
        "where each is now) and all their studies."
    )
)
class PatientDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = PatientDetailOut
    queryset = Patient.objects.none()  # for the schema; get_object() answers requests

    def get_object(self):
        user = self.request.user
        patient = patient_or_404(self.kwargs["patient_id"], selectors.patient_list(user=user))
        patient.whereabouts = selectors.media_whereabouts(
            user=user, media=selectors.media_of_patient(user=user, patient=patient)
        )
        patient.study_rows = selectors.studies_of_patient(user=user, patient=patient)
        return patient


# --- studies -------------------------------------------------------------------------------------


class StudyFilter(filters.FilterSet):
    patient = filters.CharFilter(field_name="patient__patient_id", label=gettext_lazy("Patient ID"))
    accession = filters.CharFilter(
        field_name="accession_number", label=gettext_lazy("Accession number")
    )
    date_from = filters.DateFilter(
        field_name="study_date", lookup_expr="gte", label=gettext_lazy("Studies on or after")
    )
    date_to = filters.DateFilter(
        field_name="study_date", lookup_expr="lte", label=gettext_lazy("Studies on or before")
    )
    modality = filters.CharFilter(
        field_name="modalities", lookup_expr="icontains", label=gettext_lazy("Modality")
    )

    class Meta:
        model = Study
        fields = ["patient", "accession", "date_from", "date_to", "modality"]


class StudyListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = StudyOut
    filterset_class = StudyFilter

    def get_queryset(self):
        return selectors.study_list(user=self.request.user).prefetch_related("media")


@extend_schema(
    description=gettext_lazy(
        "A study with its series and the media "
        "that hold it (and where each is now)."
    )
)
class StudyDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = StudyDetailOut
    queryset = Study.objects.none()  # for the schema; get_object() answers requests

    def get_object(self):
        user = self.request.user
        study = study_or_404(
            self.kwargs["study_instance_uid"],
            selectors.study_list(user=user).prefetch_related("series"),
        )
        study.whereabouts = selectors.media_whereabouts(
            user=user, media=selectors.media_holding(user=user, study=study)
        )
        return study


# --- disc manifests and checks ----------------------------------------------------------------


class ManifestFilter(filters.FilterSet):
    media = filters.CharFilter(field_name="media__code", label=gettext_lazy("Media code"))

    class Meta:
        model = DiscManifest
        fields = ["media"]


class ManifestListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = ManifestOut
    filterset_class = ManifestFilter

    def get_queryset(self):
        return selectors.manifest_list(user=self.request.user)


@extend_schema(
    description=gettext_lazy(
        "What a disc held when imported: figures, problems and the IHE PDI report. The files "
        "are listed, paginated, at entries/."
    )
)
class ManifestDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = ManifestDetailOut
    queryset = DiscManifest.objects.none()  # for the schema; get_object() answers requests

    def get_object(self):
        return manifest_or_404(self.kwargs["pk"], selectors.manifest_list(user=self.request.user))


@extend_schema(description=gettext_lazy("The files of one disc manifest, by path."))
class ManifestEntryListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = ManifestEntryOut
    queryset = ManifestEntry.objects.none()  # for the schema; get_queryset() answers requests

    def get_queryset(self):
        manifest = manifest_or_404(self.kwargs["pk"], selectors.manifest_list(user=self.request.user))
        return selectors.manifest_entries(manifest=manifest)


class VerificationFilter(filters.FilterSet):
    media = filters.CharFilter(field_name="media__code", label=gettext_lazy("Media code"))
    verdict = filters.ChoiceFilter(choices=DiscVerdict.choices)

    class Meta:
        model = DiscVerification
        fields = ["media", "verdict"]


class VerificationListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = VerificationOut
    filterset_class = VerificationFilter

    def get_queryset(self):
        return selectors.verification_list(user=self.request.user)


class VerificationDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = VerificationOut
    queryset = DiscVerification.objects.none()  # for the schema; get_object() answers requests

    def get_object(self):
        return verification_or_404(self.kwargs["pk"], selectors.verification_list(user=self.request.user))


# --- linking an item to studies ----------------------------------------------------------------


class StudyUidsField(serializers.ListField):
    """Study Instance UIDs of studies Filmroom already knows; answers with the Study rows."""

    child = serializers.CharField(max_length=64)

    def __init__(self, **kwargs):
        super().__init__(allow_empty=False, max_length=500, **kwargs)

    def to_internal_value(self, data):
        uids = list(dict.fromkeys(super().to_internal_value(data)))
        studies = list(Study.objects.select_related("patient").filter(study_instance_uid__in=uids))
        unknown = sorted(set(uids) - {study.study_instance_uid for study in studies})
        if unknown:
            raise serializers.ValidationError(
                _("No study has the UID %(uids)s here. Import the disc that holds it, or find it "
                  "in the PACS first.") % {"uids": ", ".join(unknown)}
            )
        return studies


@extend_schema(
    description=gettext_lazy(
        "Record that an item holds studies Filmroom already knows (typed in, or found in the "
        "PACS)."
    )
)
class MediaStudiesLinkApi(ObjectActionApi):
    output_class = MediaOut

    class StudiesLinkIn(EventIdIn):
        studies = StudyUidsField()
        source = serializers.ChoiceField(
            choices=[StudySource.MANUAL, StudySource.PACS], default=StudySource.MANUAL
        )
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    input_class = StudiesLinkIn

    def find(self, user, code):
        return media_or_404(code)

    def act(self, media, values, actor):
        archive_services.media_link_known_studies(media=media, actor=actor, **values)
        return _media_fresh(actor, media.code)


@extend_schema(
    description=gettext_lazy(
        "Record that an item does not hold studies it was linked to; the link stays in its "
        "history."
    )
)
class MediaStudiesUnlinkApi(ObjectActionApi):
    output_class = MediaOut

    class StudiesUnlinkIn(EventIdIn):
        studies = StudyUidsField()
        reason = serializers.CharField(max_length=500)

    input_class = StudiesUnlinkIn

    def find(self, user, code):
        return media_or_404(code)

    def act(self, media, values, actor):
        services.media_studies_unlink(media=media, actor=actor, **values)
        return _media_fresh(actor, media.code)


def _media_fresh(user, code: str):
    media = tracker_selectors.media_list(user=user)
    return media.prefetch_related("tag_bindings__tag").get(code=code)


# --- retention review --------------------------------------------------------------------------


@extend_schema(
    description=gettext_lazy(
        "Media past retention under the rules, for a person to review; nothing is disposed "
        "of."
    )
)
class RetentionReviewApi(RoleAPIView, generics.ListAPIView):
    serializer_class = RetentionDueOut

    class RetentionQueryIn(serializers.Serializer):
        as_of = serializers.DateField(required=False, allow_null=True, default=None)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema needs no database
            return Media.objects.none()
        query = self.RetentionQueryIn(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.media_past_retention(today=query.validated_data["as_of"])

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "as_of", type=OpenApiTypes.DATE, location=OpenApiParameter.QUERY,
                description=gettext_lazy("List what is past retention on this day (default: today)."),
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
