"""One small HTTP client for the GitHub and GitLab REST APIs (publishers and baseline fetches).

Why not bare requests calls: every call needs the same timeouts, retries with backoff on 5xx and on
rate limits (Retry-After, x-ratelimit-reset), Link pagination, and error text with tokens masked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ci_perf.auth import mask
from ci_perf.errors import CiPerfError, ConfigError

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)


class ApiError(CiPerfError):
    """An API call failed for good (after retries); `status` is the last HTTP status, 0 if none.

    `retry_after_s` is set when the API rate-limited us for longer than we would wait (the message
    then says so; it is not a permission problem). `maybe_done` is set when the request may have
    been carried out although no answer said so (a 5xx or a lost connection on a create)."""

    def __init__(
        self, message: str, status: int = 0, *, retry_after_s: float | None = None, maybe_done: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s
        self.maybe_done = maybe_done


@dataclass(frozen=True)
class PublishStatus:
    """What a publisher did; `posted` False is not an error (fork PR, act, not a PR)."""

    posted: bool
    action: str  # created | updated | skipped | failed
    detail: str
    url: str = ""
    files: tuple[str, ...] = ()
    warned: bool = False  # the publisher printed the warning already: the status line would repeat it


@dataclass
class ApiClient:
    base_url: str
    headers: dict[str, str]
    secrets: list[str] = field(default_factory=list)
    retries: int = 4
    backoff_s: float = 1.0  # first retry wait; doubles each time
    max_wait_s: float = 120.0  # give up rather than wait longer than this for a rate limit
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url.rstrip("/") + path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """Send, retrying 5xx, 429, rate-limited 403 and connection errors; raise ApiError otherwise.

        `idempotent=False` (a create): a 5xx or a lost connection is raised at once with `maybe_done`,
        since the server may have created the thing; the caller looks before creating again
        (`create_or_update`). Rate limits are still waited out: a limited request was not carried out."""
        url = self.url(path)
        for attempt in range(self.retries + 1):
            try:
                resp = self.session.request(
                    method, url, params=params, json=json, timeout=TIMEOUT, headers={**self.headers, **(headers or {})}
                )
            except requests.RequestException as exc:
                if attempt == self.retries or not idempotent:
                    raise ApiError(self._masked(f"{method} {url} failed: {exc}"), maybe_done=not idempotent) from None
                self.sleep(self.backoff_s * 2**attempt)
                continue
            if resp.status_code < 400:
                return resp
            limit = _rate_limit_wait(resp, attempt)
            if limit is not None:
                if limit > self.max_wait_s or attempt == self.retries:
                    raise ApiError(self._describe(method, url, resp, limit), resp.status_code, retry_after_s=limit)
                self.sleep(limit)
                continue
            server_error = resp.status_code >= 500
            if not server_error or not idempotent or attempt == self.retries:
                maybe_done = server_error and not idempotent
                raise ApiError(self._describe(method, url, resp), resp.status_code, maybe_done=maybe_done)
            self.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Items of a JSON-array listing, following Link rel="next" (GitHub and GitLab both send it)."""
        url: str | None = self.url(path)
        query = dict(params or {})
        while url:
            resp = self.request("GET", url, params=query or None)
            yield from resp.json()
            url = resp.links.get("next", {}).get("url")
            query = {}  # the next link already carries the query

    def create_or_update(
        self,
        find: Callable[[], Mapping[str, Any] | None],
        update: Callable[[Mapping[str, Any]], requests.Response],
        create: Callable[[], requests.Response],
    ) -> tuple[str, requests.Response]:
        """("updated" | "created", the answer): edit what `find` returns, else create it. `create`
        sends with idempotent=False; when its answer is lost (5xx after the server created it, or a
        dropped connection), look again before another create, so a retry never makes a second one."""
        for attempt in range(self.retries + 1):
            existing = find()
            if existing is not None:
                return "updated", update(existing)
            try:
                return "created", create()
            except ApiError as exc:
                if not exc.maybe_done or attempt == self.retries:
                    raise
                self.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _describe(self, method: str, url: str, resp: requests.Response, limit: float | None = None) -> str:
        detail = " ".join(_error_detail(resp).split())[:500]  # one line, whatever the API sent
        if limit is not None:
            detail = f"rate limited, retry after {math.ceil(limit)} s" + (f" ({detail})" if detail else "")
        return self._masked(f"{method} {url} answered {resp.status_code} {resp.reason}: {detail}".rstrip(": "))

    def _masked(self, text: str) -> str:
        return mask(text, self.secrets)


def require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set; ci-perf needs it to reach the CI API")
    return value


def _rate_limit_wait(resp: requests.Response, attempt: int) -> float | None:
    """Seconds the API asks us to wait before retrying, or None when this is no rate limit. As GitHub
    documents it: 429 or 403 with retry-after (seconds), or x-ratelimit-remaining 0 with
    x-ratelimit-reset (epoch seconds), or a message naming the (secondary) rate limit, which asks for
    at least a minute, doubling on each retry. A 403 without any of these is a permission problem."""
    status, h = resp.status_code, resp.headers
    limited = status == 429 or (
        status == 403
        and ("retry-after" in h or h.get("x-ratelimit-remaining") == "0" or "rate limit" in resp.text.lower())
    )
    if not limited:
        return None
    if "retry-after" in h:
        wait = _number(h["retry-after"])
    elif h.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in h:
        wait = _number(h["x-ratelimit-reset"]) - time.time()
    else:
        wait = 60.0 * 2**attempt
    return max(wait, 0.0)


def _error_detail(resp: requests.Response) -> str:
    """The API's own words: GitHub's `message` plus each `errors[]` entry (a 422 says what was invalid
    there: objects with message or resource/field/code, or plain strings); GitLab's `message` (a string,
    or {field: [problems]}) or `error`."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:200].strip()
    if not isinstance(data, dict):
        return str(data)[:200]
    parts = [_words(data.get("message")) or _words(data.get("error"))]
    errors = data.get("errors")
    for item in errors if isinstance(errors, list) else ():
        if isinstance(item, dict):
            fallback = " ".join(str(item[k]) for k in ("resource", "field", "code") if item.get(k))
            parts.append(_words(item.get("message")) or fallback)
        else:
            parts.append(_words(item))
    return "; ".join(p for p in parts if p)


def _words(value: Any) -> str:
    if isinstance(value, dict):  # GitLab: {"note": ["is too long"]}
        return "; ".join(f"{k} {_words(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_words(v) for v in value)
    return "" if value is None else str(value)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 60.0  # an HTTP date or junk: wait the documented minimum
