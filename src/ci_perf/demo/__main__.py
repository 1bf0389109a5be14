"""`python -m ci_perf.demo [--host H] [--port N] [--workers N]` serves the API; `... migrate` creates the schemas."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ci_perf.errors import EXIT_INFRA, CiPerfError

log = logging.getLogger("ci_perf.demo")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ci_perf.demo", description=__doc__)
    p.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="info", help="uvicorn log level (access logs are always off)")
    return p


async def _prepare() -> list[str]:
    """Both databases reachable and their schemas created, before any worker starts."""
    from ci_perf.demo.app import open_databases
    from ci_perf.demo.settings import Settings

    main, audit, extras = await open_databases(Settings.from_env(), 1, 1)
    await main.close()
    await audit.close()
    return extras


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ci_perf.demo.app import StartupError
    from ci_perf.demo.settings import Settings

    try:
        Settings.from_env()  # a bad knob fails here, with one line, not in every worker
        extras = asyncio.run(_prepare())
    except CiPerfError as exc:
        print(f"ci_perf.demo: {exc}", file=sys.stderr)
        return exc.exit_code
    except StartupError as exc:
        log.error("refusing to start: %s", exc)
        return EXIT_INFRA
    if args.command == "migrate":
        print(f"schema ready (extras: {', '.join(extras) or 'none'})", flush=True)
        return 0
    import uvicorn

    uvicorn.run(
        "ci_perf.demo.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
        log_level=args.log_level, access_log=False, lifespan="on",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
