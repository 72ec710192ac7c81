"""Signatures drawn at check-out and return (being built)."""
from __future__ import annotations

__all__: list[str] = []
