"""How API lists are cut into pages (DRF's DEFAULT_PAGINATION_CLASS; a module of its own, since
DRF imports it while the API modules are still loading)."""
from rest_framework.pagination import LimitOffsetPagination


class Pages(LimitOffsetPagination):
    """limit/offset pages of at most 1 000 rows. A limit above that is taken as 1 000, and an
    offset past any ledger's end as the end, instead of reaching the database as a number it
    cannot hold (SQLite refuses integers past 2^63 as a "datatype mismatch")."""

    max_limit = 1000
    max_offset = 2**62

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), self.max_offset)
