"""GitHub Actions workflow commands (`::error title=...::message`), stdlib only: the action's input
check prints them before ci-perf is installed (ci_perf.inputcheck), the publisher after the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Annotation:
    level: Literal["error", "warning", "notice"]
    message: str
    title: str = ""


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_line(a: Annotation) -> str:
    props = f" title={escape_property(a.title)}" if a.title else ""
    return f"::{a.level}{props}::{escape_data(a.message)}"
