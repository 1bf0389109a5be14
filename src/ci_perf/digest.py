"""The digest: a run's RunResult, gzipped and base64-encoded in a hidden HTML comment at the end of the
pull-request comment, so the next push can compare with it (baseline `comment`). Its own module: the
publishers write it and the baseline reads it, and neither imports the other for it."""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from dataclasses import replace

from ci_perf.errors import ResultError
from ci_perf.jsonread import parse_json
from ci_perf.model import RunResult

DIGEST_PREFIX = "<!-- ci-perf-digest:"
_DIGEST_RE = re.compile(r"<!-- ci-perf-digest:([A-Za-z0-9+/=]+) -->")
_STRIP_RE = re.compile(r"\n?<!-- ci-perf-digest:[A-Za-z0-9+/=]* -->")
MAX_DIGEST_CHARS = 30_000  # a GitHub comment holds 65536 characters; leave room for the report


def encode_digest(result: RunResult, max_chars: int = MAX_DIGEST_CHARS) -> str:
    """A hidden HTML comment carrying what compare() needs: totals and windows, no histograms.

    If too big, endpoint windows go first (the aggregate keeps its own), then the endpoints."""
    slim = replace(
        result,
        total=replace(result.total, histogram=None, errors=()),
        endpoints=tuple(replace(e, histogram=None, errors=()) for e in result.endpoints),
    )
    candidates = (
        slim,
        replace(slim, endpoints=tuple(replace(e, windows=()) for e in slim.endpoints)),
        replace(slim, endpoints=()),
    )
    for candidate in candidates:
        raw = json.dumps(candidate.to_dict(), separators=(",", ":")).encode()
        text = f"{DIGEST_PREFIX}{base64.b64encode(gzip.compress(raw, 9, mtime=0)).decode()} -->"
        if len(text) <= max_chars:
            break
    return text


def strip_digest(text: str) -> str:
    """`text` without any digest (and the line break before it): a comment.md left by an earlier
    publish carries one, and the comment must carry exactly one, the newest."""
    return _STRIP_RE.sub("", text)


def decode_digest(comment_body: str) -> RunResult | None:
    """The RunResult in a comment's digest, or None if there is none or it is unreadable."""
    found = _DIGEST_RE.search(comment_body)
    if not found:
        return None
    try:
        raw = gzip.decompress(base64.b64decode(found.group(1)))
    except (ValueError, OSError, EOFError, zlib.error):
        return None
    try:
        return RunResult.from_dict(parse_json(raw, "the digest"))
    except ResultError:
        return None
