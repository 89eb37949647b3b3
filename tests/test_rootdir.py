"""``--memory-dir DIR`` and ``--memory-dir=DIR`` run a suite identically.

pytest settles its rootdir before it knows plugins' options, so an existing
DIR given as a separate argument used to count as a test path
(pytest-dev/pytest#8846): see `testmem.memory.rootdir`.
"""

from __future__ import annotations

import pytest

from testmem.memory.query import History
from testmem.memory.store import Store

pytest_plugins = ["pytester"]

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage")

# An autouse fixture above the suite, as a project's top-level conftest has.
PROJECT_CONFTEST = """
import pytest

@pytest.fixture(autouse=True)
def project_root(request):
    assert request.config.rootpath.name == "project", request.config.rootpath
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """``project/suite/test_ids.py`` under a conftest, and an existing store beside it."""
    (pytester.path / "project" / "suite").mkdir(parents=True)
    (pytester.path / "project" / "conftest.py").write_text(PROJECT_CONFTEST)
    (pytester.path / "project" / "suite" / "test_ids.py").write_text(
        "def test_one(): pass\ndef test_two(): pass\n"
    )
    (pytester.path / "store").mkdir()
    pytester.chdir()
    return pytester


def _recorded_nodeids(store: str) -> set[str]:
    rows = History(Store.open(store)).sql("SELECT DISTINCT nodeid FROM results").rows
    return {nodeid for (nodeid,) in rows}


@pytest.mark.parametrize("form", ["space", "equals"])
def test_an_existing_store_given_either_way_leaves_rootdir_and_node_ids(project, form, monkeypatch):
    monkeypatch.chdir(project.path / "project")
    store = str(project.path / "store")
    given = ["--memory-dir", store] if form == "space" else [f"--memory-dir={store}"]
    result = project.runpytest("suite", *MEMORY, *given)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"rootdir: {project.path / 'project'}"])
    assert _recorded_nodeids(store) == {
        "suite/test_ids.py::test_one",
        "suite/test_ids.py::test_two",
    }


def test_a_store_outside_the_project_does_not_hide_its_ini_file(project, monkeypatch):
    """With no test path, the store alone once decided where pytest looked for
    its ini file: the project's ``addopts`` and ``testpaths`` were lost."""
    ini = project.path / "project" / "pytest.ini"
    ini.write_text("[pytest]\ntestpaths = suite\naddopts = -p no:cacheprovider -rA\n")
    monkeypatch.chdir(project.path / "project")
    result = project.runpytest(*MEMORY, "--memory-dir", str(project.path / "store"))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["configfile: pytest.ini", "PASSED suite/test_ids.py::test_one"])
    assert not (project.path / "project" / ".pytest_cache").exists()
