"""`python -m ci_perf.demo [--host H] [--port N] [--workers N]` serves the API; `... migrate` creates the schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ci_perf.errors import CiPerfError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ci_perf.demo", description=__doc__)
    p.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="info", help="uvicorn log level (access logs are always off)")
    return p


async def _migrate() -> list[str]:
    from ci_perf.demo import db
    from ci_perf.demo.settings import Settings

    settings = Settings.from_env()
    pool = await db.connect_pool(settings.database_url, 1, settings.connect_timeout_s)
    try:
        async with pool.acquire() as conn:
            return await db.migrate(conn)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from ci_perf.demo.settings import Settings

        Settings.from_env()  # a bad knob fails here, with one line, not in every worker
        if args.command == "migrate":
            extras = asyncio.run(_migrate())
            print(f"schema ready (extras: {', '.join(extras) or 'none'})", flush=True)
            return 0
    except CiPerfError as exc:
        print(f"ci_perf.demo: {exc}", file=sys.stderr)
        return exc.exit_code
    import uvicorn

    uvicorn.run(
        "ci_perf.demo.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
        log_level=args.log_level, access_log=False, lifespan="on",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
