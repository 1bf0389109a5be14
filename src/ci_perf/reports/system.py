"""The system under test in the reports: CPU and memory per service, PostgreSQL and Redis figures
(the seed's "Monitoring During Tests"), as markdown tables, SVG charts on the load's time axis, and
one-line summaries for Key Findings and Recommendations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from ci_perf.model import RunMeta
from ci_perf.observe.model import DatabaseMetrics, RedisMetrics, ServiceSeries, SystemMetrics
from ci_perf.reports.common import escape_md, md_table
from ci_perf.reports.svg import Series, line_chart
from ci_perf.stats import median

COLORS = {"api": "#0969da", "postgres": "#1a7f37", "redis": "#cf222e"}
OTHER_COLORS = ("#8250df", "#9a6700", "#57606a")
HIGH_CPU_PCT = 90.0  # one core nearly saturated: the seed's "High CPU usage" bottleneck


def _num(value: float | None, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f} {unit}".strip()


def service_row(s: ServiceSeries) -> list[str]:
    cpu, mem = [c for _, c in s.cpu()], [m for _, m in s.rss()]
    if not cpu and not mem:
        return [s.service, "—", "—", "—", "—", s.note or "not measured"]
    return [
        s.service,
        _num(sum(cpu) / len(cpu), "%") if cpu else "—",
        _num(max(cpu, default=None), "%"),
        f"{mem[0]:,.1f} → {mem[-1]:,.1f} MB" if mem else "—",
        _num(max(mem, default=None), "MB"),
        s.note,
    ]


def database_lines(db: DatabaseMetrics | None) -> list[str]:
    if db is None:
        return ["PostgreSQL: not measured"]
    if db.note.startswith("not measured"):
        return [f"PostgreSQL: {db.note}"]
    lines = []
    if db.query_mean_ms is not None:
        lines.append(f"PostgreSQL: {db.calls:,} queries, mean {db.query_mean_ms:.2f} ms per query (calls-weighted)")
    busiest = db.busiest
    if busiest is not None:  # one sample's own figures, so that its parts add up
        peak = db.peak_connections
        parts = ", ".join(f"{n} {state}" for state, n in sorted(busiest.by_state.items()))
        lines.append(f"PostgreSQL connections: at most {peak} open; at the busiest sample {parts}")
    if db.servers_before is not None and db.servers_after is not None:
        lines.append(f"Servers table: {db.servers_before:,} → {db.servers_after:,} rows")
    if db.note:
        lines.append(f"PostgreSQL: {db.note}")
    return lines or ["PostgreSQL: no figures"]


def redis_lines(redis: RedisMetrics | None) -> list[str]:
    if redis is None or not redis.samples:
        return [f"Redis: {redis.note if redis and redis.note else 'not measured'}"]
    ops = [s.ops_per_sec for s in redis.samples if s.ops_per_sec is not None]
    pings = [s.ping_ms for s in redis.samples if s.ping_ms is not None]
    clients = max((s.clients or 0 for s in redis.samples), default=0)
    memory = redis.samples[-1].used_memory_mb
    text = (f"Redis: {median(ops) if ops else 0:,.0f} ops/s median, {max(ops, default=0):,.0f} peak; "
            f"{clients} clients peak; {_num(memory, 'MB')} used; PING median {median(pings) if pings else 0:.2f} ms, "
            f"max {max(pings, default=0):.2f} ms")  # fmt: skip
    return [text + (f" ({redis.note})" if redis.note else "")]


def summary_lines(system: SystemMetrics | None) -> list[str]:
    """For Key Findings: one line per source."""
    if system is None:
        return []
    parts = []
    for s in system.services:
        cpu, mem = [c for _, c in s.cpu()], [m for _, m in s.rss()]
        if cpu or mem:
            parts.append(
                f"{s.service} CPU peak {max(cpu, default=0):.0f}%, memory {mem[0]:.0f} → {mem[-1]:.0f} MB"
                if mem
                else f"{s.service} CPU peak {max(cpu):.0f}%"
            )
        else:
            parts.append(f"{s.service} {s.note or 'not measured'}")
    lines = ["Resources: " + "; ".join(parts)] if parts else []
    return lines + database_lines(system.database)[:2] + redis_lines(system.redis)


def advice(system: SystemMetrics | None) -> list[str]:
    """For Recommendations: the seed's Bottleneck Analysis applied to what was measured."""
    if system is None:
        return []
    out = []
    busy = [s.service for s in system.services if max((c for _, c in s.cpu()), default=0) >= HIGH_CPU_PCT]
    if busy:
        out.append(
            f"CPU: {', '.join(busy)} reached {HIGH_CPU_PCT:.0f}% of a core or more; profile the hot paths "
            "(py-spy), add workers or replicas, cache frequently read data"
        )
    db = system.database
    if db and db.statements and db.statements[0].mean_ms >= 20:
        out.append(
            f"Database: the slowest statement takes {db.statements[0].mean_ms:.0f} ms on average "
            f"({db.statements[0].query[:60]}…); EXPLAIN ANALYZE it and index its filters"
        )
    return out


def render_markdown(system: SystemMetrics | None) -> str:
    if system is None:
        return ""
    header = ("Service", "CPU mean", "CPU peak", "Memory start → end", "Memory peak", "Note")
    rows = [[escape_md(c) for c in service_row(s)] for s in system.services]
    parts = [
        "## System Under Test",
        md_table(header, rows) if rows else "No service was observed.",
        "\n".join(f"- {escape_md(line)}" for line in database_lines(system.database) + redis_lines(system.redis)),
    ]
    db = system.database
    if db and db.statements:
        stmt_rows = [[escape_md(s.query[:80]), f"{s.calls:,}", f"{s.mean_ms:.2f} ms",
                      _num(s.p95_ms, "ms", 2), f"{s.total_ms:,.0f} ms"] for s in db.statements[:5]]  # fmt: skip
        parts.append(
            "Slowest statements (pg_stat_statements, mean; ≈p95 = mean + 1.645 σ):\n\n"
            + md_table(("Statement", "Calls", "Mean", "≈p95", "Total"), stmt_rows)
        )
    return "\n\n".join(parts)


def offset_s(system: SystemMetrics, meta: RunMeta) -> float:
    """Seconds to add to sample times to put them on the load tool's axis (its windows start at 0)."""
    try:
        start = datetime.fromisoformat(meta.started_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    shift = system.started_at - start
    # Clocks of another machine (a re-rendered result, a remote tool) make no sense here: align at 0.
    return shift if abs(shift) <= max(60.0, meta.duration_s) else 0.0


def _shifted(points: Sequence[tuple[float, float]], shift: float) -> list[tuple[float, float]]:
    return [(t + shift, v) for t, v in points if t + shift >= 0]


def render_charts(system: SystemMetrics | None, meta: RunMeta, x_max: float | None) -> str:
    """CPU and memory per service, database connections and Redis ops/s, on the windows' time axis."""
    if system is None:
        return ""
    shift = offset_s(system, meta)
    colors = {s.service: COLORS.get(s.service, OTHER_COLORS[i % 3]) for i, s in enumerate(system.services)}
    cpu = [Series(s.service, colors[s.service], _shifted(s.cpu(), shift)) for s in system.services]
    mem = [Series(s.service, colors[s.service], _shifted(s.rss(), shift)) for s in system.services]
    charts = [
        line_chart("CPU per service", "% of a core", cpu, x_max),
        line_chart("Memory per service (anonymous RSS)", "MB", mem, x_max),
    ]
    if system.database and system.database.connections:
        conns = [(c.t_s, float(c.total)) for c in system.database.connections]
        active = [(c.t_s, float(c.by_state.get("active", 0))) for c in system.database.connections]
        charts.append(line_chart("PostgreSQL connections", "connections",
                                 [Series("all", "#1a7f37", _shifted(conns, shift)),
                                  Series("active", "#9a6700", _shifted(active, shift))], x_max))  # fmt: skip
    if system.redis and system.redis.samples:
        ops = [(s.t_s, s.ops_per_sec) for s in system.redis.samples if s.ops_per_sec is not None]
        charts.append(line_chart("Redis", "ops/s", [Series("ops/s", "#cf222e", _shifted(ops, shift))], x_max))
    return '<div class="charts">' + "".join(charts) + "</div>"


def render_html_tables(system: SystemMetrics | None) -> str:
    if system is None:
        return ""
    header = ("Service", "CPU mean", "CPU peak", "Memory start → end", "Memory peak", "Note")
    names = {0, len(header) - 1}  # text columns align left, as in the report's other tables
    head = "".join(f'<th class="{"name" if i in names else ""}">{escape(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"name" if i in names else ""}">{escape(c)}</td>' for i, c in enumerate(service_row(s)))
        + "</tr>"
        for s in system.services
    )
    items = "".join(f"<li>{escape(line)}</li>" for line in database_lines(system.database) + redis_lines(system.redis))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><ul>{items}</ul>"
