"""Loan requests and renewals: request_* and loan_renewed events → LoanRequest rows, Loan due dates."""
from __future__ import annotations

HANDLERS: dict = {}


def snapshot() -> dict:
    return {}


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
