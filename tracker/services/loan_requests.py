"""Loan requests and holds, renewals: clinicians ask, the file room decides, items queue."""
from __future__ import annotations

__all__: list[str] = []
