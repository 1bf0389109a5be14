"""Who a virtual user is: its policy `user_id` and, with a tokens file, its bearer token (contract C5).

The k6 script restates these rules in JavaScript (k6_script.js: `userId`, `Identity`); the recording
test in tests/test_payloads.py checks that both tools send the same identities and tokens.

A tokens file (Auth.tokens_file) is JSON: {"subjects": [uuid, ...], "tokens": [[[use_until, jwt], ...],
...]}, one token list per identity, sorted by use_until (epoch seconds). Virtual user n (0-based, global
over processes) is identity n % len(subjects); a request uses that identity's first token whose
use_until lies in the future, else its last one. Without a file, user_id is a UUID derived from n.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# uuid5(USER_NAMESPACE, "ci-perf-user-<n>"): stable per virtual user, the same in both tools.
USER_NAMESPACE = uuid.UUID("6f1c2d3e-8a4b-5c6d-9e0f-a1b2c3d4e5f6")


def default_user_id(number: int) -> str:
    return str(uuid.uuid5(USER_NAMESPACE, f"ci-perf-user-{number}"))


Token = tuple[float, str]  # (use_until epoch s, jwt)


@dataclass(frozen=True)
class TokensFile:
    subjects: tuple[str, ...]
    tokens: tuple[tuple[Token, ...], ...]

    @classmethod
    def read(cls, path: str) -> TokensFile:
        doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        subjects = tuple(str(s) for s in doc["subjects"])
        tokens = tuple(tuple((float(u), str(t)) for u, t in per) for per in doc["tokens"])
        if not subjects or len(tokens) != len(subjects) or not all(tokens):
            raise ValueError(f"{path}: needs one non-empty token list per subject")
        return cls(subjects, tokens)


class Identity:
    """One virtual user's subject and its token schedule; `token()` is called for every request."""

    def __init__(self, number: int, tokens_file: TokensFile | None) -> None:
        self.number = number
        if tokens_file is None:
            self.user_id = default_user_id(number)
            self._tokens: tuple[Token, ...] = ()
        else:
            index = number % len(tokens_file.subjects)
            self.user_id = tokens_file.subjects[index]
            self._tokens = tokens_file.tokens[index]
        self._at = 0

    @property
    def has_tokens(self) -> bool:
        return bool(self._tokens)

    def token(self, now: float | None = None) -> str:
        """The first token still usable at `now`, else the last; time only moves on, so the cursor
        only moves forward (no search per request)."""
        now = time.time() if now is None else now
        last = len(self._tokens) - 1
        while self._at < last and self._tokens[self._at][0] <= now:
            self._at += 1
        return self._tokens[self._at][1]
