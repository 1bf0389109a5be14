"""GET /api/v1/servers/ as SARK pages it: an opaque cursor, limit 1..200, sort_order, SARK's filters.

The cursor is the (created_at, id) of the page's last row, so a walk sees every row exactly once
even while rows are being added; `offset` is not a parameter (SARK ignores it too).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ci_perf.demo.policy import LEVELS
from ci_perf.demo.validation import ValidationError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
STATUSES = ("registered", "active", "inactive", "unhealthy", "decommissioned")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class ListQuery:
    limit: int = DEFAULT_LIMIT
    sort_order: str = "desc"
    after: tuple[dt.datetime, uuid.UUID] | None = None
    status: list[str] | None = None
    sensitivity: list[str] | None = None
    tags: list[str] | None = None
    match_all_tags: bool = False
    team_id: str | None = None
    owner_id: str | None = None
    search: str | None = None
    include_total: bool = False

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> ListQuery:
        limit = _int(q.get("limit"), DEFAULT_LIMIT, "limit")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
        sort_order = q.get("sort_order") or "desc"
        if sort_order not in ("asc", "desc"):
            raise ValidationError("sort_order must be asc or desc")
        return cls(
            limit=limit,
            sort_order=sort_order,
            after=decode_cursor(q["cursor"]) if q.get("cursor") else None,
            status=_listed(q.get("status"), "status", STATUSES),
            sensitivity=_listed(q.get("sensitivity"), "sensitivity", LEVELS),
            tags=_listed(q.get("tags"), "tags"),
            match_all_tags=_bool(q.get("match_all_tags"), "match_all_tags"),
            team_id=q.get("team_id") or None,
            owner_id=q.get("owner_id") or None,
            search=q.get("search") or None,
            include_total=_bool(q.get("include_total"), "include_total"),
        )


def encode_cursor(created_at: str, server_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{server_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, sid = raw.partition("|")
        when = dt.datetime.fromisoformat(ts)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, uuid.UUID(sid)
    except ValueError:
        raise ValidationError("cursor is not one this API handed out") from None


def _listed(raw: str | None, name: str, allowed: tuple[str, ...] | None = None) -> list[str] | None:
    if not raw:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if allowed is not None and (bad := [v for v in values if v not in allowed]):
        raise ValidationError(f"{name}: {', '.join(bad)} not one of {', '.join(allowed)}")
    return values or None


def _int(raw: str | None, default: int, name: str) -> int:
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer") from None


def _bool(raw: str | None, name: str) -> bool:
    value = (raw or "false").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError(f"{name} must be true or false")
