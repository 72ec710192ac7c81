"""Template filters that put ledger data in the reader's words.

    {% load event_tags %}
    {% for part in event|event_parts %}...{% endfor %}   (tracker.event_text.describe)
    {{ entry.detail|verdict_reason }}                    (tracker.audit.reason_text)
    {{ entry.detail|access_text }}                       (tracker.event_text.access_parts)
"""

from django import template

from .. import audit, event_text

register = template.Library()


@register.filter
def event_parts(event) -> list[str]:
    """The event in words: its sentence, then a "label: value" for each other payload key."""
    return event_text.describe(event)


@register.filter
def verdict_reason(verdict) -> str:
    """Why a recorded verification failed, in the reader's language."""
    return audit.reason_text(verdict)


@register.filter
def access_text(detail) -> str:
    """An access-log row's detail (filters, export format, rows, range) in the reader's words."""
    return event_text.access_text(detail)
