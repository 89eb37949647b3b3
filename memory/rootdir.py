"""The rootdir pytest would have chosen had it known testmem's options.

pytest settles the rootdir and the ini file (`Config.parse` calls
``determine_setup``) from a first parse of the command line, made before
plugins from entry points are loaded: ``--memory-dir DIR`` is then an unknown
flag followed by a positional, and an existing ``DIR`` counts as a test path
(pytest-dev/pytest#8846). The common ancestor of the tests and the store
becomes the rootdir, node ids change, conftests above the suite load, and an
ini file may be missed. ``--memory-dir=DIR`` is one token and is not affected.

`correct_setup` runs first in ``pytest_load_initial_conftests``, when the
arguments are known for what they are and before any conftest is loaded: it
settles the setup again from the real test paths and, where it differs,
installs what pytest would have set (and, when the ini file differs, that
file's ``addopts`` and ``pythonpath`` instead of the wrong one's).
"""

from __future__ import annotations

import copy

import pytest
from _pytest.config.findpaths import determine_setup


def correct_setup(config: pytest.Config, args: list[str], flags: frozenset[str]) -> None:
    """Settle rootdir and ini file again when one of ``flags`` (options that
    take a value) was given its value as a separate argument."""
    ns = config.known_args_namespace
    if ns.rootdir or not any(a in flags for a in args[:-1]):
        return
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=ns.inifilename,
        override_ini=ns.override_ini,
        args=ns.file_or_dir,
        rootdir_cmd_arg=None,
        invocation_dir=config.invocation_params.dir,
    )
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    defaulted_cutdir = ns.confcutdir == str(
        config.inipath.parent if config.inipath else config.rootpath
    )
    ini_changed = inipath != config.inipath
    old_addopts = list(config.getini("addopts")) if ini_changed else []
    if ini_changed:
        config._unconfigure_python_path()
    config._rootpath, config._inipath = rootpath, inipath
    config._inicfg, config._ignored_config_files = inicfg, ignored
    config._inicache.clear()
    config._parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    if ini_changed:
        _swap_addopts(config, args, old_addopts)
        config._configure_python_path()
    if defaulted_cutdir:
        config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)


def _swap_addopts(config: pytest.Config, args: list[str], old: list[str]) -> None:
    """Replace the wrong ini file's ``addopts`` (pytest put them first) with
    the right one's, and parse the arguments again."""
    if old and args[: len(old)] == old:
        del args[: len(old)]
    new = list(config.getini("addopts"))
    args[:0] = new
    if new:
        config.pluginmanager.consider_preparse(new, exclude_only=False)
    config.known_args_namespace = config._parser.parse_known_args(
        args, namespace=copy.copy(config.option)
    )
