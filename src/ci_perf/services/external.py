"""The `external` backend: the API already runs somewhere; we only wait until it answers healthy."""

from __future__ import annotations

import requests

from ci_perf.errors import ConfigError, ServiceError
from ci_perf.services.base import StackConfig, StackInfo, register, wait_until


@register("external")
class ExternalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.last = "no answer yet"  # the last response or connection error, for the failure message

    def up(self) -> StackInfo:
        cfg = self.config
        base = cfg.host.strip().rstrip("/")
        if not base:
            raise ConfigError("the external backend needs the API's base URL (--host http://127.0.0.1:8000)")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"host {cfg.host!r} must be a URL starting with http:// or https://")
        url = base + "/" + cfg.health_path.lstrip("/")
        try:
            wait_until(url, lambda: self._healthy(url), cfg.health_timeout_s, interval_s=0.5)
        except ServiceError:
            raise ServiceError(
                f"{url} did not answer 200 within {cfg.health_timeout_s:.0f}s; last answer: {self.last}"
            ) from None
        return StackInfo(base_url=base, run_id=cfg.run_id)

    def down(self) -> None:
        """Nothing to stop: we did not start it."""

    def gone(self) -> list[str]:
        return []  # not ours to watch: its going away shows as failed requests

    def _healthy(self, url: str) -> bool:
        try:
            r = requests.get(url, timeout=5)
        except requests.RequestException as exc:
            self.last = f"{type(exc).__name__}: {_short(str(exc))}"
            return False
        self.last = f"HTTP {r.status_code} {_short(r.text)}"
        return r.status_code == 200


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
