"""Faults around a run: the store's disk fills up or turns read-only mid-run,
Chroma is down during triage, the defect tracker answers 500 or times out,
the API under test hangs.

Each fault is made for real around a real ``pytest --memory`` process against
a real loopback API, and every test asserts the same three things:

- the exit code is the suite's own (the same suite with ``-p no:testmem``);
- exactly one line of the output mentions a warning, and it names the fault
  (for the hanging API none: the test's own timeout failure is the signal);
- the fate of what could not be written: delivered later (a defect waits in
  the outbox for ``testmem defects flush``), rebuilt from the log (the Chroma
  index, by ``testmem reindex``), or reported as lost with a count that, added
  to what the log committed, gives every event of the same run on a healthy store.

Disk full and read-only need a filesystem that can fill up or be remounted:
a 16 MB tmpfs in a private mount namespace (``unshare --mount``), so nothing
outside the test sees it and it vanishes with the process. Without the
privileges for that (root or CAP_SYS_ADMIN) those two tests are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fakes import FakeJira

from testmem.memory.query import History
from testmem.memory.store import Store

PYTEST = (sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-rf")
PLUGIN_OFF = ("-p", "no:testmem", "-p", "no:testmem_agents")
TESTMEM = str(Path(sys.executable).with_name("testmem"))
RUN_TIMEOUT_S = 300

# The suite's own client: `api_client` belongs to the plugin and goes with -p no:testmem.
CLIENT = """
import os
import time
from pathlib import Path

import httpx
import pytest

from testmem.memory import RecordingTransport


@pytest.fixture
def client():
    transport = RecordingTransport()
    with httpx.Client(base_url=os.environ["FAULT_API"], transport=transport, timeout=1.0) as c:
        yield c
"""

STORE_SUITE = (
    CLIENT
    + '''

def test_before(client):
    assert client.get("/users/1").status_code == 200


def test_the_store_fails_here():
    """Waits for the recorder's first batch in the spool, then breaks the store's filesystem."""
    spool = os.environ.get("FAULT_WAIT_FOR_BATCH")
    deadline = time.monotonic() + 30
    while spool and not list(Path(spool).glob("*.jsonl")):
        assert time.monotonic() < deadline, "the recorder never wrote a batch"
        time.sleep(0.02)
    mount = Path(os.environ["FAULT_MOUNT"])
    if os.environ["FAULT"] == "disk-full":
        fill(mount / "filler")
    elif os.environ["FAULT"] == "read-only":
        remount_read_only(mount)


@pytest.mark.parametrize("n", range(6))
def test_after(client, n):
    assert client.get(f"/users/{n}").status_code == 200


def fill(path):
    """Write until the filesystem has not one byte left."""
    import errno

    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def remount_read_only(mount):
    import subprocess

    for _ in range(100):  # EBUSY while the recorder has a file open for writing
        done = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(done.stderr)
'''
)

FAILING_SUITE = (
    CLIENT
    + """

def test_health(client):
    assert client.get("/health").status_code == 200


def test_order(client):
    assert client.get("/orders/7").status_code == 200
"""
)

HANGING_SUITE = (
    CLIENT
    + """

def test_health(client):
    assert client.get("/health").status_code == 200


def test_hangs():
    with httpx.Client(transport=RecordingTransport(), timeout=1.0) as hanging:
        hanging.get(os.environ["FAULT_HANGING_API"] + "/slow")
"""
)

# A private mount namespace with a small tmpfs at $FAULT_MOUNT; the store is copied
# out to $FAULT_KEEP before the namespace, and the tmpfs with it, goes away.
SMALL_FILESYSTEM = r"""
mount -t tmpfs -o size=16m testmem-fault "$FAULT_MOUNT" || exit 97
"$@"; code=$?
rm -f "$FAULT_MOUNT/filler" 2>/dev/null
if [ -d "$FAULT_MOUNT/store" ]; then cp -a "$FAULT_MOUNT/store" "$FAULT_KEEP"; fi
exit $code
"""


@dataclass
class Run:
    code: int
    output: str  # stdout and stderr

    def warnings(self) -> list[str]:
        """Every line that mentions a warning (pytest's warnings summary included)."""
        return [line for line in self.output.splitlines() if "warning" in line.lower()]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> Run:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    output = done.stdout + done.stderr
    assert not any(w in output for w in ("INTERNALERROR", "Traceback", "panicked")), output
    return Run(done.returncode, output)


def environment(**extra: str) -> dict[str, str]:
    """The outer environment without testmem settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTMEM_")}
    return env | {"HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"} | extra


def memory(store: Path) -> tuple[str, ...]:
    # Flush every 50 ms, so the first batch is spooled before the fault.
    return ("--memory", f"--memory-dir={store}", "-o", "memory_flush_seconds=0.05")


def events(store: Path) -> dict[str, int]:
    rows = History(Store.open(store)).sql("SELECT type, count(*) FROM events GROUP BY 1").rows
    return dict(rows)


# -- loopback servers ---------------------------------------------------------


class SilentApi:
    """Accepts connections on 127.0.0.1 and never answers: an API that hangs."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            self._held.append(connection)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._socket.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def silent_api() -> Iterator[SilentApi]:
    server = SilentApi()
    yield server
    server.stop()


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    tracker = FakeJira()
    yield tracker
    tracker.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_chroma_server(port: int, path: Path) -> subprocess.Popen[bytes]:
    """A real Chroma server (the ``chroma run`` of the chromadb package) on loopback."""
    chroma = Path(sys.executable).with_name("chroma")
    server = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        env=environment(ANONYMIZED_TELEMETRY="False"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise AssertionError("the Chroma server did not start")


# -- a small filesystem in a private mount namespace --------------------------


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless this process may mount a tmpfs in a private namespace."""
    target = tmp_path_factory.mktemp("probe")
    probe = ["unshare", "--mount", "--propagation", "private"]
    probe += ["mount", "-t", "tmpfs", "-o", "size=1m", "testmem-probe", str(target)]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        pytest.skip(f"no unshare here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private namespace: {done.stderr.strip()}")


def in_small_filesystem(*command: str) -> list[str]:
    namespace = ["unshare", "--mount", "--propagation", "private"]
    return [*namespace, "sh", "-c", SMALL_FILESYSTEM, "sh", *command]


# -- the faults ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, reason",
    [("disk-full", "No space left on device"), ("read-only", "Read-only file system")],
)
def test_a_store_failing_mid_run_reports_the_lost_events_with_a_count(
    can_mount: None, tmp_path: Path, stub_api, fault: str, reason: str
) -> None:
    (tmp_path / "test_suite.py").write_text(STORE_SUITE)
    mount, kept, healthy = tmp_path / "mnt", tmp_path / "kept", tmp_path / "healthy"
    mount.mkdir()
    env = environment(FAULT_API=stub_api.url, FAULT_MOUNT=str(mount), FAULT_KEEP=str(kept))

    own = run(in_small_filesystem(*PYTEST, *PLUGIN_OFF), tmp_path, env | {"FAULT": fault})
    spool = str(mount / "store" / "spool")
    faulty = run(
        in_small_filesystem(*PYTEST, *memory(mount / "store")),
        tmp_path,
        env | {"FAULT": fault, "FAULT_WAIT_FOR_BATCH": spool},
    )
    assert own.code == faulty.code == pytest.ExitCode.OK, own.output + faulty.output

    [warning] = faulty.warnings()
    found = re.fullmatch(
        r"testmem: WARNING (\d+) of (\d+) events could not be written to (.+) and are lost "
        r"\(post-run triage skipped\): (.+)",
        warning,
    )
    assert found, warning
    lost, total = int(found[1]), int(found[2])
    assert found[3] == str(mount / "store") and reason in found[4]

    # What the log kept plus what was reported lost is every event of a healthy run.
    healthy_env = env | {
        "FAULT": "none",
        "FAULT_WAIT_FOR_BATCH": str(healthy / "spool"),
    }
    baseline = run([*PYTEST, *memory(healthy)], tmp_path, healthy_env)
    assert baseline.code == pytest.ExitCode.OK and not baseline.warnings(), baseline.output
    committed = events(kept)
    assert 0 < lost < total == sum(events(healthy).values())
    assert sum(committed.values()) + lost == total
    assert "RunFinished" not in committed  # the run is known to be incomplete
    doctor = run([TESTMEM, "--dir", str(kept), "doctor"], tmp_path, env)
    assert doctor.code == 0, doctor.output  # the store survived: the log opens whole


def test_chroma_down_during_triage_falls_back_to_signatures_and_reindex_restores_it(
    tmp_path: Path, stub_api
) -> None:
    chroma_port = free_port()
    stub_api.answer("/orders/7", 500, b'{"error": "boom"}', content_type="application/json")
    (tmp_path / "test_suite.py").write_text(FAILING_SUITE)
    store = tmp_path / "store"
    env = environment(FAULT_API=stub_api.url, TESTMEM_CHROMA_URL=f"http://127.0.0.1:{chroma_port}")
    own = run([*PYTEST, *PLUGIN_OFF], tmp_path, env)
    faulty = run([*PYTEST, *memory(store)], tmp_path, env)
    assert own.code == faulty.code == pytest.ExitCode.TESTS_FAILED, own.output + faulty.output

    [warning] = faulty.warnings()
    assert "Chroma index" in warning and "Could not connect to a Chroma server" in warning
    assert "matching by signature only until `testmem reindex`" in warning
    assert "escalate regression test_suite.py::test_order" in " ".join(faulty.output.split())

    # Nothing is lost: every failure is linked in the log; only the projection lags.
    history = History(Store.open(store))
    unlinked = history.sql(
        """SELECT count(*) FROM failures WHERE failure_id NOT IN
           (SELECT failure_id FROM facts WHERE type = 'FailureLinked')"""
    ).rows
    assert unlinked == [(0,)]
    assert run([TESTMEM, "--dir", str(store), "doctor"], tmp_path, env).code == 1

    server = start_chroma_server(chroma_port, tmp_path / "chroma-server")
    try:
        reindex = run([TESTMEM, "--dir", str(store), "reindex"], tmp_path, env)
        doctor = run([TESTMEM, "--dir", str(store), "doctor", "--json"], tmp_path, env)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert reindex.code == 0 and "indexed 1 signatures" in reindex.output, reindex.output
    checks = {c["check"]: c["problems"] for c in json.loads(doctor.output)["checks"]}
    assert doctor.code == 0 and checks["index"] == [], doctor.output


@pytest.mark.parametrize("fault", ["answers 500", "times out"])
def test_a_failing_defect_sink_keeps_the_defect_in_the_outbox_until_flush_delivers_it_once(
    tmp_path: Path, stub_api, jira: FakeJira, fault: str
) -> None:
    stub_api.answer("/orders/7", 500, b'{"error": "boom"}', content_type="application/json")
    (tmp_path / "test_suite.py").write_text(FAILING_SUITE)
    store = tmp_path / "store"
    env = environment(
        FAULT_API=stub_api.url,
        TESTMEM_DEFECT_SINK="jira",
        TESTMEM_JIRA_URL=jira.url,
        TESTMEM_JIRA_PROJECT=jira.project,
        TESTMEM_JIRA_USER=jira.user,
        TESTMEM_JIRA_TOKEN=jira.token,
        TESTMEM_SINK_TIMEOUT="1",
    )
    if fault == "answers 500":
        jira.fail_with = 500  # refuses without acting
    else:
        jira.hang_s = 3  # acts, then answers after the client gave up
    own = run([*PYTEST, *PLUGIN_OFF], tmp_path, env)
    faulty = run([*PYTEST, *memory(store)], tmp_path, env)
    assert own.code == faulty.code == pytest.ExitCode.TESTS_FAILED, own.output + faulty.output

    [warning] = faulty.warnings()
    expected = "HTTP 500" if fault == "answers 500" else "ReadTimeout"
    assert "waits in the outbox for `testmem defects flush`" in warning and expected in warning
    assert "(waits in the outbox)" in faulty.output  # the decision says so too
    outbox = store / "defects" / "outbox"
    [pending] = list(outbox.glob("create-def-*.json"))
    assert len(jira.issues) == (0 if fault == "answers 500" else 1)

    jira.fail_with, jira.hang_s = None, 0.0
    flush = run([TESTMEM, "--dir", str(store), "defects", "flush", "--json"], tmp_path, env)
    again = run([TESTMEM, "--dir", str(store), "defects", "flush", "--json"], tmp_path, env)
    listed = run([TESTMEM, "--dir", str(store), "defects", "--json"], tmp_path, env)
    defect_id = pending.name.removeprefix("create-").removesuffix(".json")
    assert json.loads(flush.output) == {"delivered": [defect_id], "pending": 0, "errors": []}
    assert json.loads(again.output) == {"delivered": [], "pending": 0, "errors": []}
    assert list(jira.issues) == ["SHOP-1"] and not list(outbox.glob("*.json"))
    [row] = json.loads(listed.output)
    assert (row["defect_id"], row["status"], row["reference"]) == (defect_id, "filed", "SHOP-1")


def test_a_hanging_api_fails_its_test_by_timeout_and_the_exchange_keeps_the_error(
    tmp_path: Path, stub_api, silent_api: SilentApi
) -> None:
    (tmp_path / "test_suite.py").write_text(HANGING_SUITE)
    store = tmp_path / "store"
    env = environment(FAULT_API=stub_api.url, FAULT_HANGING_API=silent_api.url)
    own = run([*PYTEST, *PLUGIN_OFF], tmp_path, env)
    started = time.monotonic()
    faulty = run([*PYTEST, *memory(store)], tmp_path, env)
    elapsed = time.monotonic() - started
    assert own.code == faulty.code == pytest.ExitCode.TESTS_FAILED, own.output + faulty.output

    # The failure itself is the one clear line; testmem adds no warning of its own.
    assert faulty.warnings() == []
    assert "FAILED test_suite.py::test_hangs - httpx.ReadTimeout: timed out" in faulty.output
    assert "recorded run" in faulty.output and elapsed < RUN_TIMEOUT_S

    history = History(Store.open(store))
    exchanges = history.sql(
        "SELECT attempt, status, error, duration_s FROM exchanges "
        "WHERE nodeid = 'test_suite.py::test_hangs' ORDER BY attempt"
    ).dicts()
    failures = history.sql(
        "SELECT attempt, exception_type FROM failures "
        "WHERE nodeid = 'test_suite.py::test_hangs' ORDER BY attempt"
    ).dicts()
    assert exchanges and len(exchanges) == len(failures)  # every attempt, retries included
    for exchange, failure in zip(exchanges, failures, strict=True):
        assert exchange["attempt"] == failure["attempt"]
        assert exchange["status"] is None and exchange["error"] == "ReadTimeout: timed out"
        assert 0.9 <= exchange["duration_s"] < 5
        assert failure["exception_type"] == "httpx.ReadTimeout"
    finished = history.sql("SELECT failed, passed FROM runs").rows
    assert finished == [(1, 1)]
