"""REST API v1 (`/api/v1/`): thin views that validate input, call one service or selector, and
answer. Every error has the shape {"error": {"code", "message"}}.

shapes.py: error body, serializers, input fields, the role-checked base view;
custody.py: media, locations, tags, loans, transfers, ledger verification, the schema;
stations.py: the scan ingest endpoint for reader stations (API-key authenticated).
"""
from .custody import (
    LedgerVerifyApi,
    LoanDetailApi,
    LoanListApi,
    LoanReturnApi,
    LocationDetailApi,
    LocationListApi,
    MediaChainApi,
    MediaDetailApi,
    MediaListApi,
    MediaRetireApi,
    MediaSeenApi,
    SchemaApi,
    TagBindApi,
    TagListApi,
    TagUnbindApi,
    TransferListApi,
    not_found,
)
from .stations import ScanIngestApi

__all__ = [
    "LedgerVerifyApi",
    "LoanDetailApi",
    "LoanListApi",
    "LoanReturnApi",
    "LocationDetailApi",
    "LocationListApi",
    "MediaChainApi",
    "MediaDetailApi",
    "MediaListApi",
    "MediaRetireApi",
    "MediaSeenApi",
    "ScanIngestApi",
    "SchemaApi",
    "TagBindApi",
    "TagListApi",
    "TagUnbindApi",
    "TransferListApi",
    "not_found",
]
