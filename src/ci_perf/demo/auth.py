"""Who is calling: SARK's bearer JWT (HS256, verified with SECRET_KEY), its CSRF double-submit rule on
writes, and the demo's older modes (CI_PERF_DEMO_AUTH=api-key: X-API-Key = SARK_API_KEY; none).

Failures answer as SARK's route dependency and middleware do: 401 `{"detail": ...}` with
`WWW-Authenticate: Bearer`, and 403 for a missing or wrong CSRF token.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ci_perf.demo.policy import Caller

ALGORITHM = "HS256"
WRITERS = ("admin", "developer")  # may register servers and evaluate policies; others only read
CSRF_MIN_LENGTH = 32
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CACHE_MAX = 10_000
_ANON_NS = uuid.UUID("6d1e2a7c-0c4b-4c5e-9a57-3f3b2f6c1d10")  # stable user ids for api-key/none callers


class AuthError(Exception):
    def __init__(self, status: int, body: dict[str, str]) -> None:
        super().__init__(body)
        self.status, self.body = status, body

    def response(self) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def unauthorized(detail: str) -> AuthError:
    return AuthError(401, {"detail": detail})


CSRF_FAILED = AuthError(403, {"error": "CSRF token invalid", "message": "CSRF token missing or invalid"})


@dataclass
class TokenVerifier:
    """Verifies bearer tokens; a verified token is remembered (until its exp) so that a load test's
    repeated token costs one HMAC, not one per request."""

    secret_key: str

    def __post_init__(self) -> None:
        self._seen: dict[str, tuple[Caller, float]] = {}

    def caller(self, authorization: str) -> Caller:
        parts = authorization.split()
        if not parts:
            raise unauthorized("Not authenticated")
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise unauthorized("Invalid authorization header format. Expected 'Bearer <token>'")
        token = parts[1]
        hit = self._seen.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        caller, exp = self._verify(token)
        if len(self._seen) >= _CACHE_MAX:
            self._seen.clear()
        self._seen[token] = (caller, exp)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            claims = jwt.decode(token, self.secret_key, algorithms=[ALGORITHM], options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise unauthorized("Token has expired") from None
        except jwt.InvalidTokenError:
            raise unauthorized("Could not validate credentials") from None
        if claims.get("type") != "access":
            raise unauthorized("Invalid token type")
        try:
            user_id = str(uuid.UUID(str(claims["sub"])))
            email, role = claims["email"], claims["role"]
        except (KeyError, ValueError):
            raise unauthorized("Invalid token claims") from None
        if not isinstance(email, str) or not isinstance(role, str):
            raise unauthorized("Invalid token claims")
        teams = claims.get("teams") or []
        caller = Caller(user_id, email, role, tuple(str(t) for t in teams) if isinstance(teams, list) else ())
        return caller, float(claims["exp"])


def check_csrf(request: Request) -> None:
    """SARK's double-submit rule: header X-CSRF-Token equal to cookie csrf_token, both >= 32 characters."""
    header = request.headers.get("x-csrf-token", "")
    cookie = request.cookies.get("csrf_token", "")
    if len(header) < CSRF_MIN_LENGTH or len(cookie) < CSRF_MIN_LENGTH:
        raise CSRF_FAILED
    if not hmac.compare_digest(header.encode(), cookie.encode()):
        raise CSRF_FAILED


def anonymous(actor: str) -> Caller:
    """The identity of an api-key or none caller: SARK's evaluate route assumes role developer."""
    return Caller(str(uuid.uuid5(_ANON_NS, actor)), "", "developer")


def check_role(caller: Caller, method: str) -> None:
    if method in WRITE_METHODS and caller.role not in WRITERS:
        raise AuthError(403, {"detail": f"role {caller.role} may only read"})
