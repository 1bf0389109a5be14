"""Auth for the load tools, read from the environment and handed to them as JSON in CI_PERF_AUTH
(an environment variable, never argv, so secrets stay out of `ps` and logs)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from ci_perf.errors import ConfigError


@dataclass(frozen=True)
class Auth:
    api_key: str = ""
    api_key_header: str = "X-API-Key"
    bearer_token: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # sent on every request
    cookies: dict[str, str] = field(default_factory=dict)
    csrf_token: str = ""  # sent on writes only, as header and cookie (SARK's double-submit CSRF)
    csrf_header: str = "X-CSRF-Token"
    csrf_cookie: str = "csrf_token"
    # A JSON file of per-identity JWTs minted by ci-perf (contract C5, ci_perf.tokens); "" = none.
    tokens_file: str = ""
    # Values to mask that the tools never receive (the JWT signing secret, every minted token).
    masked: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Auth:
        return cls(
            api_key=env.get("CI_PERF_API_KEY") or env.get("TEST_API_KEY", ""),
            api_key_header=env.get("CI_PERF_API_KEY_HEADER", "X-API-Key"),
            bearer_token=env.get("CI_PERF_BEARER_TOKEN", ""),
            headers=_pairs(env.get("CI_PERF_HEADERS", ""), ":", "CI_PERF_HEADERS", "Name: value; Other: value"),
            cookies=_pairs(env.get("CI_PERF_COOKIES", ""), "=", "CI_PERF_COOKIES", "name=value; other=value"),
            csrf_token=env.get("CI_PERF_CSRF_TOKEN", ""),
            csrf_header=env.get("CI_PERF_CSRF_HEADER", "X-CSRF-Token"),
            csrf_cookie=env.get("CI_PERF_CSRF_COOKIE", "csrf_token"),
        )

    def request_headers(self, write: bool = False) -> dict[str, str]:
        """Headers for one request, exactly as the locustfile and the k6 script build them."""
        out = dict(self.headers)
        if self.api_key:
            out[self.api_key_header] = self.api_key
        if self.bearer_token:
            out["Authorization"] = f"Bearer {self.bearer_token}"
        if write and self.csrf_token:
            out[self.csrf_header] = self.csrf_token
        return out

    def secrets(self) -> list[str]:
        """Every value that must never appear in output, masked in every file ci-perf writes: each auth
        value, including every custom header's (ci-perf cannot tell which of them are credentials)."""
        values = [self.api_key, self.bearer_token, self.csrf_token, *self.cookies.values(), *self.masked]
        values += list(self.headers.values())
        return [v for v in values if v]

    def to_json(self) -> str:
        data = asdict(self)
        del data["masked"]  # stays in ci-perf: the tools read the tokens from tokens_file
        return json.dumps(data)


def _pairs(text: str, sep: str, var: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, item in enumerate(filter(None, (p.strip() for p in text.split(";"))), 1):
        name, found, value = item.partition(sep)
        if not found or not name.strip():  # never echo the entry: it may be a credential
            shape = f"has no {sep!r}" if not found else f"has no name before {sep!r}"
            raise ConfigError(f"{var} entry {n} ({len(item)} characters) {shape}; write it as {example!r}")
        out[name.strip()] = value.strip()
    return out


# A secret's first CUT characters mark a cut-off copy of it: failure texts keep only the start of an
# answer's body (BODY_CHARS), so a secret an API echoes can end early there (a JWT's first 50 characters).
CUT = 12


def mask(text: str, secrets: list[str]) -> str:
    """Replace every secret in text by ***, and every start of one at least CUT characters long."""
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= 4:
            text = text.replace(s, "***")
        if len(s) > CUT and s[:CUT] in text:
            text = _mask_starts(text, s)
    return text


def _mask_starts(text: str, secret: str) -> str:
    out, i = [], 0
    while (start := text.find(secret[:CUT], i)) >= 0:
        end = start + CUT
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        out += [text[i:start], "***"]
        i = end
    return "".join(out) + text[i:]


def mask_data(data: Any, secrets: list[str]) -> Any:
    """Every string in a JSON-like tree masked, keys included: applied to the results before any
    renderer escapes them (an escaped secret no longer matches the raw one)."""
    if isinstance(data, str):
        return mask(data, secrets)
    if isinstance(data, dict):
        return {mask(str(k), secrets): mask_data(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask_data(v, secrets) for v in data]
    return data


def mask_files(folder: Path, secrets: list[str]) -> None:
    """Mask every file under `folder` in place, line by line (raw tool output can be large): a file is
    read once, and rewritten only when it holds a secret."""
    if not secrets or not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        if _holds_secret(path, secrets):
            _rewrite_masked(path, secrets)


def _open_text(path: Path, mode: Literal["r", "w"]) -> TextIO:
    return open(path, mode, encoding="utf-8", errors="surrogateescape", newline="")


def _holds_secret(path: Path, secrets: list[str]) -> bool:
    with _open_text(path, "r") as src:
        return any(mask(line, secrets) != line for line in src)


def _rewrite_masked(path: Path, secrets: list[str]) -> None:
    tmp = path.with_name(path.name + ".masking")
    with _open_text(path, "r") as src, _open_text(tmp, "w") as dst:
        dst.writelines(mask(line, secrets) for line in src)
    os.replace(tmp, path)
