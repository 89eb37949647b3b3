"""The report's scans on a Ray cluster (``testmem report --engine ray``).

Every task opens the same version of the log, takes its slice of the
snapshot's files, and runs the same DuckDB SQL over it as the default engine
(`testmem.memory.report.figures.SCANS`); the driver merges the partial rows with the
scans' merge SQL and computes the report as usual. Scans that need what
earlier ones found in any file (the runs a decision explained, the incidents'
tests after their last sighting) go out the same way, with the driver's small
tables (``explained_runs``, ``watched``) shipped once through Ray's object
store. Counts add up exactly, and latency quantiles come from merged
histograms, so both engines give the same report. The cluster is
``$RAY_ADDRESS``; the tasks read the store with the driver's ``AWS_*``
variables and import testmem from where the driver did.
Needs the ``ray`` extra: ``pip install 'testmem[ray]'``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from testmem.memory.report.model import Period, ReportError
from testmem.memory.store import Store

ENV_ADDRESS = "RAY_ADDRESS"
_FORWARDED = ("AWS_", "TESTMEM_", "RAY_USAGE_STATS_ENABLED")


def ray_engine(store: Store, period: Period, slices: int | None = None) -> Any:
    """Scan ``store`` on the cluster; an engine for `build_report`."""
    ray = _connect()
    version = store.events.version()
    count = slices or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1)(scan_slice)

    def run(names: list[str], given: dict[str, Any]) -> dict[str, Any]:
        shared = ray.put(given)  # once in the object store, not once per task
        slices = [task.remote(store.location, version, i, count, period, names, shared)
                  for i in range(count)]  # fmt: skip
        return merged(ray.get(slices))

    return run


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The partial rows of every slice, scan by scan, in one table each."""
    import pyarrow as pa

    return {name: pa.concat_tables([p[name] for p in parts]) for name in parts[0]}


def scan_slice(
    location: str,
    version: int | None,
    index: int,
    count: int,
    period: Period,
    names: list[str],
    given: dict[str, Any],
) -> dict[str, Any]:
    """One task: the partial rows of the named scans over slice ``index`` of
    ``count``, with the driver's ``given`` tables present."""
    from testmem.memory.query import History
    from testmem.memory.report.figures import SCANS, set_period

    history = History(Store(location), part=(index, count, version))
    set_period(history, period)
    for name, table in given.items():
        history.db.register(name, table)
    return {name: history.db.sql(SCANS[name][0]).to_arrow_table() for name in names}


def _connect() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ReportError("--engine ray needs Ray: pip install 'testmem[ray]'") from exc
    address = os.environ.get(ENV_ADDRESS)
    if not address:
        raise ReportError(f"--engine ray needs ${ENV_ADDRESS} (the cluster's head, HOST:PORT)")
    if not ray.is_initialized():
        ray.init(
            address=address,
            runtime_env={"env_vars": _task_env()},
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    return ray


def _task_env() -> dict[str, str]:
    """What a task needs of the driver's environment: the store's credentials
    and endpoint, and where testmem is imported from."""
    import testmem.memory

    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED)}
    package_root = str(Path(testmem.memory.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return env
