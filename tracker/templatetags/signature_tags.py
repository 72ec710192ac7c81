"""Template tags for signatures on the item's page: which events of a custody chain or loans are
signed, and whether each signature is still the image the ledger recorded.

    {% load signature_tags %}
    {% signatures_for chain loans as signed %}
    {% with check=signed|signature_at:event.seq %}{% if check %}...{% endif %}{% endwith %}
"""

from django import template

from .. import services
from ..models import Loan

register = template.Library()


@register.simple_tag
def signatures_for(*groups) -> dict:
    """The signature checks of the events in `groups`: events (their seq) or loans (the events
    that opened and closed them), in one query for the lot."""
    seqs = set()
    for group in groups:
        for thing in group or ():
            if isinstance(thing, Loan):
                seqs.update(s for s in (thing.out_seq, thing.returned_seq) if s is not None)
            else:
                seqs.add(thing.seq)
    return services.signature_checks(seqs) if seqs else {}


@register.filter
def signature_at(checks: dict, seq):
    return checks.get(seq) if checks and seq is not None else None
