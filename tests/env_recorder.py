"""An API stand-in for the wiring tests, run as `python -c CODE {host} {port}` (it must also run inside
the demo image, which has python and asyncpg but not the tests): it prints the SARK settings it was
given (secrets as sha256), proves the audit database exists and the opa service answers, then serves
/health/."""

from __future__ import annotations

import hashlib
import json

CODE = """
import asyncio, hashlib, json, os, sys, urllib.request, http.server, asyncpg
SECRET = ('PASSWORD', 'SECRET')
env = {k: (hashlib.sha256(v.encode()).hexdigest() if any(s in k for s in SECRET) else v)
       for k, v in os.environ.items()
       if k.startswith(('POSTGRES_', 'TIMESCALE_', 'REDIS_', 'OPA_', 'JWT_', 'SECRET_', 'RATE_', 'DATABASE_', 'X_'))}
print('ENV-RECORD ' + json.dumps(env), flush=True)
async def audit():
    e = os.environ
    c = await asyncpg.connect(host=e['TIMESCALE_HOST'], port=int(e['TIMESCALE_PORT']), user=e['TIMESCALE_USER'],
                              password=e['TIMESCALE_PASSWORD'], database=e['TIMESCALE_DB'])
    print('AUDIT-DB ' + await c.fetchval('select current_database()'), flush=True)
    await c.close()
asyncio.run(audit())
print('OPA-STATUS ' + str(urllib.request.urlopen(os.environ['OPA_URL'] + '/', timeout=5).status), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == '/health/' else 404)
        self.end_headers()
        self.wfile.write(b'{}')
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


def command() -> str:
    """The api_command (shell-quoted for the local backend's sh -c and the docker backend's shlex)."""
    return 'python -c "' + CODE.replace('"', '\\"') + '" {host} {port}'


def recorded(log: str) -> tuple[dict[str, str], str, str]:
    """(the env it printed, the audit database it reached, the opa service's HTTP status)."""
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in log.splitlines() if " " in line}
    return json.loads(lines["ENV-RECORD"]), lines.get("AUDIT-DB", ""), lines.get("OPA-STATUS", "")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
