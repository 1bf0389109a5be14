"""One small HTTP client for the GitHub and GitLab REST APIs (publishers and baseline fetches).

Why not bare requests calls: every call needs the same timeouts, retries with backoff on 5xx and on
rate limits (Retry-After, x-ratelimit-reset), Link pagination, and error text with tokens masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ci_perf.auth import mask
from ci_perf.errors import CiPerfError, ConfigError

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)


class ApiError(CiPerfError):
    """An API call failed for good (after retries); `status` is the last HTTP status, 0 if none."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PublishStatus:
    """What a publisher did; `posted` False is not an error (fork PR, act, not a PR)."""

    posted: bool
    action: str  # created | updated | skipped | failed
    detail: str
    url: str = ""
    files: tuple[str, ...] = ()


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
    ) -> requests.Response:
        """Send, retrying 5xx, 429, rate-limited 403 and connection errors; raise ApiError otherwise."""
        url = self.url(path)
        for attempt in range(self.retries + 1):
            try:
                resp = self.session.request(
                    method, url, params=params, json=json, timeout=TIMEOUT, headers={**self.headers, **(headers or {})}
                )
            except requests.RequestException as exc:
                if attempt == self.retries:
                    raise ApiError(self._masked(f"{method} {url} failed: {exc}")) from None
                self.sleep(self.backoff_s * 2**attempt)
                continue
            if resp.status_code < 400:
                return resp
            wait = self._retry_wait(resp, attempt)
            if wait is None or attempt == self.retries:
                raise ApiError(self._describe(method, url, resp), resp.status_code)
            self.sleep(wait)
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

    def _retry_wait(self, resp: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when retrying cannot help."""
        status, h = resp.status_code, resp.headers
        limited = status == 429 or (
            status == 403
            and ("retry-after" in h or h.get("x-ratelimit-remaining") == "0" or "rate limit" in resp.text.lower())
        )
        if not limited:
            return self.backoff_s * 2**attempt if status >= 500 else None
        if "retry-after" in h:
            wait = _number(h["retry-after"])
        elif h.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in h:
            wait = _number(h["x-ratelimit-reset"]) - time.time()
        else:  # GitHub asks for at least a minute on secondary limits without headers
            wait = 60.0 * 2**attempt
        wait = max(wait, 0.0)
        return wait if wait <= self.max_wait_s else None

    def _describe(self, method: str, url: str, resp: requests.Response) -> str:
        try:
            detail = resp.json().get("message", "")
        except (ValueError, AttributeError):
            detail = resp.text[:200]
        return self._masked(f"{method} {url} answered {resp.status_code} {resp.reason}: {detail}".rstrip(": "))

    def _masked(self, text: str) -> str:
        return mask(text, self.secrets)


def require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set; ci-perf needs it to reach the CI API")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 60.0  # an HTTP date or junk: wait the documented minimum
