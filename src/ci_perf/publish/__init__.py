"""Publishers: GitHub (sticky PR comment, job summary, outputs, annotations) and GitLab (MR note).

publish_outcome is what the pipeline calls after the reports are written; it picks the rendered
markdown from the written files and never raises for a missing permission (see github.py).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ci_perf.model import Change, Outcome
from ci_perf.publish.api import PublishStatus
from ci_perf.workflow_commands import Annotation

if TYPE_CHECKING:
    from ci_perf.config import Settings

COMMENT_FILES = ("comment.md", "report.md", "summary.md")  # first found is the comment body


def publish_outcome(
    target: str,
    outcome: Outcome,
    settings: Settings,
    written: Mapping[str, Path],
    env: Mapping[str, str],
    comment_only: bool = False,
) -> PublishStatus:
    from ci_perf.digest import encode_digest

    body = _markdown(outcome, written)
    meta = outcome.result.meta
    digest = encode_digest(outcome.result)
    if target == "gitlab":
        from ci_perf.publish.gitlab import publish_gitlab

        if not settings.comment:
            return PublishStatus(False, "skipped", "comment turned off")
        status = publish_gitlab(
            body, scenario=meta.scenario, tool=meta.tool, report_dir=settings.report_dir, env=env, digest=digest
        )
    elif env.get("GITHUB_EVENT_NAME") == "workflow_run" and (settings.report_dir / "publish-request.json").is_file():
        from ci_perf.publish.github import publish_pending

        status = publish_pending(settings.report_dir, env)  # the fork-safe publisher's side
    else:
        from ci_perf.publish.github import publish_github

        status = publish_github(
            body,
            scenario=meta.scenario,
            tool=meta.tool,
            report_dir=settings.report_dir,
            env=env,
            summary="" if comment_only else None,
            digest=digest,
            outputs=None if comment_only else outputs_for(outcome, written),
            annotations=() if comment_only else annotations_for(outcome),
            comment=settings.comment,
        )
    if not status.warned:
        print(f"ci-perf: {target}: {status.detail}", file=sys.stderr, flush=True)
    return status


def outputs_for(outcome: Outcome, written: Mapping[str, Path]) -> dict[str, str]:
    """The step outputs action.yml declares: verdict, headline numbers, report paths."""
    total = outcome.result.total
    regressions = outcome.comparison.regressions if outcome.comparison else ()
    out = {
        "status": outcome.verdict.status,
        "p95": f"{total.p95_ms:g}",
        "error-rate": f"{total.error_rate:.6g}",
        "rps": f"{total.rps:.6g}",
        "regressions": str(len(regressions)),
    }
    files = {"results": "results.json", "junit": "junit.xml", "summary": "summary.md", "html": "report.html"}
    for key, name in files.items():
        if name in written:
            out[key] = str(written[name])
    return out


def annotations_for(outcome: Outcome) -> list[Annotation]:
    """One annotation per item of the verdict: failures as errors, warnings as warnings."""
    titles = {"threshold": "ci-perf threshold", "finding": "ci-perf finding", "regression": "ci-perf regression",
              "infra": "ci-perf run"}  # fmt: skip
    return [
        Annotation("error" if i.level == "fail" else "warning", i.text, titles[i.kind]) for i in outcome.verdict.items
    ]


def _markdown(outcome: Outcome, written: Mapping[str, Path]) -> str:
    for name in COMMENT_FILES:
        if name in written and written[name].is_file():
            return written[name].read_text(encoding="utf-8")
    return _fallback_markdown(outcome)


def _fallback_markdown(outcome: Outcome) -> str:
    """Used only when no markdown report was rendered: the verdicts, plainly."""
    m = outcome.result.meta
    lines = [f"### ci-perf: {m.scenario} ({m.tool}): {outcome.verdict.status}: {outcome.verdict.headline}"]
    if outcome.comparison:
        bad = [d for d in outcome.comparison.deltas if d.change in (Change.DEGRADED, Change.IMPROVED)]
        lines += [f"- {d.endpoint} {d.metric}: {d.change.value} ({d.delta_pct or 0:+.1f}%)" for d in bad]
    return "\n".join(lines) + "\n"
