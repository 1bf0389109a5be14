"""Reading JSON that ci-perf did not just write (tool outputs, results.json, baselines, digests):
every problem is a ResultError naming the file and the field, never another exception.

`parse_json` refuses what Python's json module lets through: NaN, Infinity and numbers too large for
a float (1e999). `decode` turns a document into one of our frozen dataclasses by its type hints,
checking every value (figures finite, counts whole and not negative, enums and literals known).
`check_fields` checks a tool's own objects against a small spec before a parser reads them.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from ci_perf.errors import ResultError

T = TypeVar("T")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def parse_json(raw: bytes | str, where: str) -> Any:
    """A JSON document from bytes or text; `where` starts each message (e.g. "k6 summary PATH")."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ResultError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise ResultError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ResultError(f"{where}: nested too deeply to be valid") from None


def load_json(path: Path, where: str | None = None, missing: str = "does not exist") -> Any:
    """The JSON document in `path`; a missing or unreadable file is a ResultError too."""
    where = where or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ResultError(f"{where}: {missing}") from None
    except OSError as exc:
        raise ResultError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    return parse_json(raw, where)


# --- values --------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_number(value: Any) -> bool:
    """A finite JSON number (not true/false, which Python counts as ints)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_KINDS: dict[str, tuple[str, typing.Callable[[Any], bool]]] = {
    "str": ("text", lambda v: isinstance(v, str)),
    "count": ("a whole number >= 0", is_count),
    "number": ("a finite number", is_number),
    "list": ("a list", lambda v: isinstance(v, list)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
}


def check_fields(where: str, obj: Any, spec: Mapping[str, str]) -> dict[str, Any]:
    """`obj` is an object whose fields have the spec's kinds ("count", "number", "str", "list",
    "object", "bool"; a trailing "?" when the field may be missing or null). Returns it."""
    if not isinstance(obj, dict):
        raise ResultError(f"{where} is {shown(obj)}, expected an object")
    for name, kind in spec.items():
        value = obj.get(name)
        if value is None:
            if kind.endswith("?"):
                continue
            raise ResultError(f"{where} lacks {name!r}")
        expected, accepts = _KINDS[kind.rstrip("?")]
        if not accepts(value):
            raise ResultError(f"{where}: {name} is {shown(value)}, expected {expected}")
    return obj


def check_value(where: str, value: Any, kind: str) -> Any:
    """One value of a spec kind (see check_fields)."""
    expected, accepts = _KINDS[kind]
    if not accepts(value):
        raise ResultError(f"{where} is {shown(value)}, expected {expected}")
    return value


# --- documents -> dataclasses --------------------------------------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(cls: type[T], data: Any, where: str) -> T:
    """`data` as a `cls` (a frozen dataclass of ours), every field checked against its type hint.
    A missing field takes its default; unknown keys are left alone (they are not read). A class with
    JSON_AS stores the one field of that name as the whole value (LatencyHistogram: a list of pairs)."""
    return _value(cls, data, where)  # type: ignore[no-any-return]


def _value(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None and len(inner) < len(args):
            return None
        assert len(inner) == 1, f"{hint}: one type or None"
        return _value(inner[0], value, where)
    if origin is typing.Literal:
        if not isinstance(value, str) or value not in args:
            raise ResultError(f"{where} is {shown(value)}, expected one of: {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        return _tuple(args, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultError(f"{where} is {shown(value)}, expected an object")
        return {str(k): _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float:  # an int stays an int: a re-written results.json stays byte-identical
        return check_value(where, value, "number")
    if hint is int:
        return check_value(where, value, "count")
    if hint is str:
        return check_value(where, value, "str")
    if hint is bool:
        return check_value(where, value, "bool")
    if isinstance(hint, type) and issubclass(hint, Enum):
        if not isinstance(value, str) or value not in {m.value for m in hint}:
            raise ResultError(f"{where} is {shown(value)}, expected one of: {', '.join(m.value for m in hint)}")
        return hint(value)
    if isinstance(hint, type) and is_dataclass(hint):
        return _dataclass(hint, value, where)
    raise TypeError(f"no JSON decoding for {hint!r}")  # a programming error: a new type in the model


def _tuple(args: tuple[Any, ...], value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ResultError(f"{where} is {shown(value)}, expected a list")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ResultError(f"{where} has {len(value)} items, expected {len(args)}")
    return tuple(_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _dataclass(cls: type, value: Any, where: str) -> Any:
    hints = _hints(cls)
    as_field = getattr(cls, "JSON_AS", None)
    if as_field:
        return cls(**{as_field: _value(hints[as_field], value, where)})
    if not isinstance(value, dict):
        raise ResultError(f"{where or 'the document'} is {shown(value)}, expected an object")
    kwargs = {}
    for f in fields(cls):
        if not f.init:
            continue
        if f.name in value:
            kwargs[f.name] = _value(hints[f.name], value[f.name], f"{where}.{f.name}" if where else f.name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ResultError(f"{where or 'the document'} lacks {f.name!r}")
    return cls(**kwargs)
