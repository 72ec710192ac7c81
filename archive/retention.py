"""Retention review: which media have been kept as long as the rules ask (archive.RetentionRule).

Rules are data an administrator edits. This module only lists items for a person to review; it
never retires or destroys anything — disposal is a decision recorded through tracker.services
(media_retire) by someone who looked at the item.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tracker.choices import MediaStatus
from tracker.models import Media

from .models import RetentionRule

# How specific a rule is for an item: a rule naming both the kind and a modality beats one
# naming the kind, which beats one naming a modality, which beats a rule naming neither.
SPECIFICITY = {(True, True): 3, (True, False): 2, (False, True): 1, (False, False): 0}

_MODALITY_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def example_rules() -> list[RetentionRule]:
    """The rules REFERENCE.md gives as examples (unsaved): mammography 10 years (MQSA allows up to
    10); adults 8 years and children until 25 (NHS records guidance). seed_demo may save them."""
    return [
        RetentionRule(
            name=str(_("Mammography")), modality="MG", retain_years=10,
            note=str(_("MQSA: at least 5 years, up to 10.")),
        ),
        RetentionRule(
            name=str(_("Adults 8 years, children until 25")), retain_years=8,
            minor_until_age=18, keep_until_age=25,
            note=str(_("NHS records guidance: adults 8 years; children until their 25th birthday.")),
        ),
    ]


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def modalities_of(media: Media) -> set[str]:
    """Modality codes of the item's studies ("CT\\MR", "CT,MR" and "CT MR" all count)."""
    found: set[str] = set()
    for study in media.studies.all():
        found.update(code.upper() for code in _MODALITY_SPLIT.split(study.modalities or "") if code)
    return found


@dataclass(frozen=True)
class RetentionDue:
    """One item past retention: the rule applied, the date it became due and why."""

    media: Media
    rule: RetentionRule
    due_on: date
    # The newest study date on the item, or the day it was registered when no study has a date.
    kept_since: date
    # The patient's age at `kept_since`, when the birth date is known.
    age_then: int | None
    # The rule has a clause for minors but the patient's birth date is unknown: a person must
    # check the age before disposal.
    age_unknown: bool

    @property
    def needs_retrieval(self) -> bool:
        """On loan, in transit or missing: it has to be found before anyone can dispose of it."""
        return self.media.status != MediaStatus.ON_SHELF


def rule_for(
    media: Media, rules: list[RetentionRule], modalities: set[str]
) -> RetentionRule | None:
    """The most specific rule matching the item; among equally specific ones, the one that keeps
    the item longest (two modality rules can both match a jacket holding MG and CT)."""
    matching = [
        rule for rule in rules
        if (not rule.media_kind or rule.media_kind == media.kind)
        and (not rule.modality or rule.modality.upper() in modalities)
    ]
    if not matching:
        return None
    def specificity(rule: RetentionRule) -> int:
        return SPECIFICITY[(bool(rule.media_kind), bool(rule.modality))]

    best = max(specificity(rule) for rule in matching)
    candidates = [rule for rule in matching if specificity(rule) == best]
    return max(candidates, key=lambda r: (r.retain_years, r.keep_until_age or 0))


def due_date(media: Media, rule: RetentionRule, kept_since: date) -> tuple[date, int | None, bool]:
    """When the rule lets the item go: (due date, patient's age at kept_since, age unknown)."""
    due = add_years(kept_since, rule.retain_years)
    has_minor_clause = rule.minor_until_age is not None and rule.keep_until_age is not None
    birth_date = media.patient.birth_date if media.patient else None
    if birth_date is None:
        return due, None, has_minor_clause
    age = age_on(birth_date, kept_since)
    if has_minor_clause and age < rule.minor_until_age:
        due = max(due, add_years(birth_date, rule.keep_until_age))
    return due, age, False


def media_past_retention(*, today: date | None = None) -> list[RetentionDue]:
    """Media whose retention has passed on `today` (default: today), for review, oldest due first.

    Retired items are left out; items on loan or missing are listed and marked. An item no rule
    matches is never listed."""
    today = today or timezone.localdate()
    rules = list(RetentionRule.objects.all())
    if not rules:
        return []
    # Nothing kept for less than the shortest rule can be due: skip it in the database.
    cutoff = add_years(today, -min(rule.retain_years for rule in rules))
    candidates = (
        Media.objects.exclude(status=MediaStatus.RETIRED)
        .annotate(newest_study=Max("studies__study_date"))
        .filter(
            Q(newest_study__lte=cutoff)
            | Q(newest_study__isnull=True, created_at__date__lte=cutoff)
        )
        .select_related("patient", "current_location", "current_holder", "home_location")
        .prefetch_related("studies")
        .order_by("code")
    )
    due_items = []
    for media in candidates:
        rule = rule_for(media, rules, modalities_of(media))
        if rule is None:
            continue
        kept_since = media.newest_study or timezone.localdate(media.created_at)
        due, age, age_unknown = due_date(media, rule, kept_since)
        if due <= today:
            due_items.append(RetentionDue(media, rule, due, kept_since, age, age_unknown))
    due_items.sort(key=lambda item: (item.due_on, item.media.code))
    return due_items

