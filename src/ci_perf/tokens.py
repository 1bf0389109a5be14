"""JWTs for the load tools (contract C5 in docs/architecture.md): ci-perf mints HS256 tokens with PyJWT,
one list per identity, and hands them to the tools in a private file.

The tools cannot call back for a fresh token (a k6 script reads files only at start), so every token a
run needs is minted up front: all carry `iat` = the mint time; token k of an identity is used from
`use_until[k-1]` to `use_until[k]` and expires `margin` after that, so no request ever carries a token
with less than `margin` left, and none carries one valid for more than `ttl` from when it began to be
used. margin = max(2 s, 10% of ttl).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_perf.errors import ConfigError

ALGORITHMS = ("HS256", "HS384", "HS512")
DEFAULT_SECRET_ENV = "CI_PERF_JWT_SECRET"
RESERVED_CLAIMS = ("sub", "exp", "iat")  # ci-perf sets these per token
# Subjects are stable per identity number (uuid5), so a run's identities read the same in every report.
SUBJECT_NAMESPACE = uuid.UUID("6f1c2a52-9d0e-4c1e-8a57-2f4b7c0e5d11")
_KEYS = {"secret_env", "algorithm", "ttl", "identities", "role", "email", "claims"}


@dataclass(frozen=True)
class JwtConfig:
    """`auth: {jwt: {...}}` in ci-perf.yml."""

    secret_env: str = DEFAULT_SECRET_ENV  # the env var holding the signing secret
    algorithm: str = "HS256"
    ttl_s: int = 900  # how long a token stays valid from when the tools begin to use it
    identities: int = 0  # 0: one per virtual user (the scenario's peak users)
    role: str = "developer"
    email: str = "ci-perf-{n}@example.com"  # {n}: the identity's number, from 0
    claims: dict[str, Any] = field(default_factory=lambda: {"type": "access"})  # added to every token

    @property
    def margin_s(self) -> float:
        return max(2.0, 0.1 * self.ttl_s)


def parse_jwt(value: Any) -> JwtConfig | None:
    """`jwt: true`, `jwt: {ttl: 10m, identities: 5, role: admin, claims: {...}}`, or false/None."""
    from ci_perf.config import parse_duration  # config imports this module for the type

    if isinstance(value, JwtConfig) or value is None:
        return value
    if isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return JwtConfig() if str(value).lower() in ("true", "1", "yes", "on") else None
    if not isinstance(value, Mapping):
        raise ConfigError("auth.jwt must be true or a mapping such as {ttl: 15m, role: developer}")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise ConfigError(f"auth.jwt has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_KEYS))}")
    base = JwtConfig()
    algorithm = str(value.get("algorithm") or base.algorithm).upper()
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"auth.jwt.algorithm {algorithm!r} is not supported; choose one of: {', '.join(ALGORITHMS)}")
    ttl = parse_duration(value.get("ttl", base.ttl_s), "auth.jwt.ttl")
    if ttl < 3:
        raise ConfigError(f"auth.jwt.ttl {value.get('ttl')!r} is too short; tokens need at least 3s")
    identities = value.get("identities", 0) or 0
    if isinstance(identities, bool) or not str(identities).isdigit():
        raise ConfigError(f"auth.jwt.identities {identities!r} must be a whole number (0: one per virtual user)")
    claims = value.get("claims")
    if claims is not None and not isinstance(claims, Mapping):
        raise ConfigError("auth.jwt.claims must be a mapping of claim: value")
    taken = sorted(set(claims or {}) & set(RESERVED_CLAIMS))
    if taken:
        raise ConfigError(f"auth.jwt.claims may not set {taken[0]!r}; ci-perf sets sub, exp and iat per token")
    secret_env = str(value.get("secret_env") or base.secret_env)
    return JwtConfig(
        secret_env=secret_env,
        algorithm=algorithm,
        ttl_s=ttl,
        identities=int(identities),
        role=str(value.get("role") or base.role),
        email=str(value.get("email") or base.email),
        claims={**base.claims, **{str(k): v for k, v in (claims or {}).items()}},
    )


def subject(n: int) -> str:
    return str(uuid.uuid5(SUBJECT_NAMESPACE, f"ci-perf identity {n}"))


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def schedule(config: JwtConfig, horizon_s: float, now: float) -> list[tuple[float, float]]:
    """(use_until, exp) per token of one identity, covering now .. now + horizon_s."""
    step, margin = config.ttl_s - config.margin_s, config.margin_s
    count = math.ceil(horizon_s / step) + 1  # +1: whole-second exps may fall short of the horizon
    exps = [math.floor(now + (k + 1) * step + margin) for k in range(count)]  # JWT exp is whole seconds
    return [(exp - margin, float(exp)) for exp in exps]


@dataclass(frozen=True)
class Tokens:
    """The tokens file's content (C5): subjects and, per identity, [use_until, jwt] sorted by use_until."""

    subjects: list[str]
    tokens: list[list[tuple[float, str]]]

    def all(self) -> list[str]:
        return [t for per in self.tokens for _, t in per]

    def to_json(self) -> str:
        return json.dumps({"subjects": self.subjects, "tokens": [[[u, t] for u, t in per] for per in self.tokens]})


def mint(config: JwtConfig, secret: str, identities: int, horizon_s: float, now: float | None = None) -> Tokens:
    import jwt  # here: config (through presets) imports this module, and the action's input check has no PyJWT

    if not secret:
        raise ConfigError(f"no JWT signing secret: set {config.secret_env} to the API's JWT secret")
    now = time.time() if now is None else now
    plan = schedule(config, horizon_s, now)
    subjects = [subject(n) for n in range(identities)]
    tokens = []
    for n, sub in enumerate(subjects):
        claims = {**config.claims, "sub": sub, "email": config.email.replace("{n}", str(n)), "role": config.role}
        tokens.append([(use_until, jwt.encode({**claims, "iat": int(now), "exp": int(exp)}, secret,
                                              algorithm=config.algorithm)) for use_until, exp in plan])  # fmt: skip
    return Tokens(subjects, tokens)


def horizon_for(duration_s: float) -> float:
    """How far ahead to mint: the run plus start-up and ramp-down grace."""
    return duration_s + max(60.0, 0.1 * duration_s)


@contextlib.contextmanager
def tokens_file(tokens: Tokens, run_id: str) -> Iterator[Path]:
    """The tokens in a 0600 file in a private 0700 folder (never the report folder), registered in the
    run's state so that `ci-perf down` removes it after a SIGKILL; removed when the block ends."""
    from ci_perf.services.procs import RunState

    folder = Path(tempfile.mkdtemp(prefix=f"ci-perf-{run_id}-tokens-"))
    state = RunState(f"{run_id}.tokens")
    try:
        state.add_dir(folder)
        path = folder / "tokens.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tokens.to_json())
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        state.forget()
