"""Availability: the health endpoint probed on its own schedule while the load runs.

A daemon thread, one GET per interval, off the load tool's request path; the seed's availability
target (99.9% / 99.5%) is judged from what it counts.
"""

from __future__ import annotations

import threading

import requests

from ci_perf.model import Availability


class HealthProbe:
    def __init__(self, url: str, interval_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._probes = 0
        self._ok = 0
        self._thread = threading.Thread(target=self._loop, name="ci-perf-health-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 1)

    def _loop(self) -> None:
        with requests.Session() as session:
            while not self._stop.wait(self.interval_s):
                try:
                    ok = session.get(self.url, timeout=self.timeout_s).status_code < 400
                except requests.RequestException:
                    ok = False
                self._probes += 1
                self._ok += ok

    @property
    def availability(self) -> Availability | None:
        return Availability(self._probes, self._ok) if self._probes else None


def wait_for_health(url: str, timeout_s: float) -> None:
    """The wait before the load starts, on every backend: the health URL answers 200 within the timeout."""
    from ci_perf.services.base import wait_until

    last: list[str] = []

    def check() -> bool:
        try:
            r = requests.get(url, timeout=2)
        except requests.RequestException as exc:
            last[:] = [f"{type(exc).__name__}: {exc}"]
            raise
        last[:] = [f"HTTP {r.status_code}: {r.text[:200]}"]
        return r.status_code == 200

    wait_until(f"the API at {url}", check, timeout_s, logs=lambda: "\n".join(last))
