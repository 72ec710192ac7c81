"""Demo data: a file room with shelves, clinics and another hospital; the four roles; ~200 media
with tags, patients and studies; loans (a few overdue) and some history.

Idempotent: every ledger write uses an event_id derived from what it does, so a second run
replays the same events and changes nothing."""
import hashlib
import random
import uuid
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from archive.models import Patient, RetentionRule, Study
from archive.retention import example_rules
from tracker import services
from tracker.choices import LocationKind, MediaKind, MediaStatus, Role, StudySource
from tracker.models import CustodyEvent, Location, Media

SEED_NAMESPACE = uuid.UUID("6b1d3f0e-54a4-4c43-9b43-5f0d3c1c9a21")
# Demo users get <username>@ this (a reserved example domain), so reminders have somewhere to go.
DEMO_MAIL_DOMAIN = "filmroom.example"
DEMO_USERS = [
    # username, password, role, first name, last name
    ("staff", "filmroom-staff", Role.FILE_ROOM, "Sam", "Archer"),
    ("doctor", "filmroom-doctor", Role.CLINICIAN, "Dana", "Osei"),
    ("doctor2", "filmroom-doctor2", Role.CLINICIAN, "Wei", "Chen"),
    ("auditor", "filmroom-auditor", Role.AUDITOR, "Ines", "Moreau"),
    ("admin", "filmroom-admin", Role.ADMIN, "Alex", "Kim"),
]
LOCATIONS = [
    # code, name, kind, parent, shelf order
    ("FR", "File room", LocationKind.ROOM, None, 0),
    *[(f"FR-A{n}", f"Shelf A{n}", LocationKind.SHELF, "FR", n) for n in range(1, 5)],
    *[(f"FR-B{n}", f"Shelf B{n}", LocationKind.SHELF, "FR", 10 + n) for n in range(1, 5)],
    ("ORTHO", "Orthopaedics clinic", LocationKind.DEPARTMENT, None, 100),
    ("ED", "Emergency department", LocationKind.DEPARTMENT, None, 101),
    ("ONCO", "Oncology", LocationKind.DEPARTMENT, None, 102),
    ("EXT-CITY", "City General Hospital", LocationKind.EXTERNAL, None, 200),
    ("COURIER", "Courier", LocationKind.TRANSIT, None, 300),
]
FAMILY = ["Li", "Wang", "Zhang", "Smith", "Garcia", "Nguyen", "Okafor", "Rossi", "Novak", "Haddad"]
GIVEN = ["Mei", "Jun", "Anna", "Omar", "Lucia", "Tom", "Ada", "Ravi", "Sara", "Ken"]
STUDY_TYPES = [("CR", "Chest X-ray"), ("CT", "CT abdomen"), ("MR", "MRI knee"), ("CR", "Wrist X-ray"),
               ("CT", "CT head"), ("MG", "Mammogram"), ("US", "Ultrasound abdomen")]


def seed_event(*parts) -> uuid.UUID:
    return uuid.uuid5(SEED_NAMESPACE, ":".join(str(p) for p in parts))


class Command(BaseCommand):
    help = "Create demo locations, users (printed with passwords), media, tags, studies and loans."

    def add_arguments(self, parser):
        parser.add_argument("--media", type=int, default=200, help="How many media (default 200).")

    def handle(self, *args, **options):
        rng = random.Random(20261124)
        users = self.seed_users()
        places = self.seed_locations()
        patients = self.seed_patients(count=max(10, options["media"] // 3))
        media = self.seed_media(rng, options["media"], places, patients, users["staff"])
        self.seed_history(random.Random(1124), media, places, users)
        self.seed_retention_rules()
        self.stdout.write(f"Demo data ready: {Media.objects.count()} media, {len(places)} locations.")
        self.stdout.write("Demo logins (username / password):")
        for username, password, role, *_names in DEMO_USERS:
            self.stdout.write(f"  {username:<9} {password:<18} {Role(role).label}")

    def seed_retention_rules(self) -> None:
        """The example rules from archive.retention, saved once (admins edit them afterwards)."""
        for rule in example_rules():
            RetentionRule.objects.get_or_create(
                media_kind=rule.media_kind,
                modality=rule.modality,
                defaults={
                    "name": rule.name, "retain_years": rule.retain_years,
                    "minor_until_age": rule.minor_until_age, "keep_until_age": rule.keep_until_age,
                    "note": rule.note,
                },
            )

    def seed_users(self) -> dict:
        User = get_user_model()
        users = {}
        for role in Role.values:
            Group.objects.get_or_create(name=role)
        for username, password, role, first, last in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last}
            )
            if created:
                user.set_password(password)
                user.is_staff = role == Role.ADMIN
                user.is_superuser = role == Role.ADMIN
                user.save()
            if not user.email:  # reminders need an address; one set since is kept
                user.email = f"{username}@{DEMO_MAIL_DOMAIN}"
                user.save(update_fields=["email"])
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def seed_locations(self) -> dict:
        places = {}
        for code, name, kind, parent, order in LOCATIONS:
            places[code], _ = Location.objects.get_or_create(
                code=code,
                defaults={"name": name, "kind": kind, "parent": places.get(parent), "shelf_order": order},
            )
        return places

    def seed_patients(self, count: int) -> list:
        patients = []
        for n in range(1, count + 1):
            rng = random.Random(n)  # per patient, so a second run draws the same values
            patient, created = Patient.objects.get_or_create(
                patient_id=f"MRN{100000 + n}",
                defaults={
                    "name": f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
                    "birth_date": date(1940, 1, 1) + timedelta(days=rng.randrange(30000)),
                    "sex": rng.choice("MF"),
                },
            )
            if created:
                for k in range(rng.randint(1, 3)):
                    modality, description = rng.choice(STUDY_TYPES)
                    Study.objects.create(
                        study_instance_uid=f"1.2.826.0.1.3680043.10.1124.{n}.{k + 1}",
                        patient=patient,
                        study_date=date(2015, 1, 1) + timedelta(days=rng.randrange(4000)),
                        accession_number=f"ACC{n:05d}{k + 1}",
                        description=description,
                        modalities=modality,
                    )
            patients.append(patient)
        return patients

    @transaction.atomic
    def seed_media(self, rng, count, places, patients, staff) -> list:
        shelves = [p for p in places.values() if p.kind == LocationKind.SHELF]
        kinds = [MediaKind.FILM_JACKET] * 6 + [MediaKind.CD] * 3 + [MediaKind.DVD]
        media = []
        for n in range(1, count + 1):
            kind = rng.choice(kinds)
            patient = patients[(n - 1) % len(patients)]
            code = f"{'FJ' if kind == MediaKind.FILM_JACKET else 'D'}{n:05d}"
            item = services.media_register(
                code=code,
                kind=kind,
                home_location=shelves[n % len(shelves)],
                patient=patient,
                actor=staff,
                event_id=seed_event(code, "register"),
            )
            services.media_studies_link(
                media=item,
                studies=list(patient.studies.all()),
                actor=staff,
                source=StudySource.PACS,
                event_id=seed_event(code, "studies"),
            )
            uid = "04" + hashlib.sha256(code.encode()).hexdigest()[:12].upper()
            services.tag_bind(uid=uid, media=item, actor=staff, event_id=seed_event(code, "bind"))
            media.append(item)
        return media

    @transaction.atomic
    def seed_history(self, rng, media, places, users) -> None:
        staff, doctor, doctor2 = users["staff"], users["doctor"], users["doctor2"]
        # Due dates count from the first seeding, so a second run asks for the same ones and
        # replays its events instead of conflicting with them.
        now = CustodyEvent.objects.get(event_id=seed_event(media[0].code, "register")).received_at
        clinics = [places["ORTHO"], places["ED"], places["ONCO"]]
        for n, item in enumerate(media[: len(media) // 4]):
            borrower = doctor if n % 2 else doctor2
            item.refresh_from_db()
            if n % 3 == 0:  # borrowed before and brought back
                services.media_check_out(
                    media=item, borrower=borrower, actor=staff, destination=rng.choice(clinics),
                    event_id=seed_event(item.code, "loan1"),
                )
                services.media_return(media=item, actor=staff, event_id=seed_event(item.code, "return1"))
            if n % 5 == 4:
                continue
            due = now - timedelta(days=3) if n % 7 == 0 else now + timedelta(days=rng.randint(2, 20))
            services.media_check_out(
                media=item, borrower=borrower, actor=staff, destination=rng.choice(clinics),
                due_at=due, event_id=seed_event(item.code, "loan2"),
            )
            if n % 6 == 1:
                other = doctor2 if borrower == doctor else doctor
                services.media_transfer(
                    media=item, actor=borrower, to_holder=other, event_id=seed_event(item.code, "handover")
                )
        item = Media.objects.get(pk=media[-1].pk)
        if item.status == MediaStatus.ON_SHELF:
            services.media_seen(
                media=item, location=places["FR-B4"], actor=staff, event_id=seed_event(item.code, "seen")
            )
