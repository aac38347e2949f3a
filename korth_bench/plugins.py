"""Regularizers from outside the package: entry points and ``--plugin``.

* An installed distribution declares the entry-point group ``korth_bench.regularizers``; each entry
  point names a module (importing it registers its regularizers with ``@regularizers.register``)
  or a ``Regularizer`` subclass (registered under the entry point's name). The group is loaded
  once, lazily, the first time the regularizer registry is looked up, in every process: the CLI,
  the benchmarks and Ray workers alike.
* ``--plugin MODULE_OR_FILE`` (``train``, ``run``, ``list``, ``report``) imports a module by name
  or a ``.py`` file by path. ``use`` also appends it to ``$KORTH_BENCH_PLUGINS`` (entries
  separated by ``os.pathsep``, as ``PYTHONPATH``), which the registry's lazy load reads too: a
  local Ray's workers inherit the variable and import the same plugins before building a trial.
  On a cluster the sweep's driver hands the workers ``cluster_runtime_env()``: the files as
  ``py_modules`` and the variable naming their modules (never a credential).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib import metadata
from types import ModuleType
from typing import Dict, Iterable, List

from korth_bench.errors import ConfigError

GROUP = "korth_bench.regularizers"
ENV = "KORTH_BENCH_PLUGINS"


def _is_file(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or (os.altsep or "\0") in spec


def _module_name(spec: str) -> str:
    return os.path.splitext(os.path.basename(spec))[0] if _is_file(spec) else spec


def load(spec: str) -> ModuleType:
    """Import plugin ``spec``: a ``.py`` file (a path), else a module name; a name that is not
    importable but names ``NAME.py`` in the current directory imports that file (as ``python -m``
    would find it). Importing it registers its regularizers; importing it again does nothing.

    Raises ``ConfigError`` naming the plugin when the file or module does not exist; an error
    raised by the plugin's own code keeps its traceback."""
    if not _is_file(spec):
        try:
            found = importlib.util.find_spec(spec)
        except (ImportError, ValueError):
            found = None
        if found is not None:
            return importlib.import_module(spec)
        if os.path.isfile(spec.replace(".", os.sep) + ".py"):
            return load(spec.replace(".", os.sep) + ".py")
        raise ConfigError(f"--plugin {spec}: no such module or .py file; allowed: an importable "
                          "module name or the path of a .py file")
    path = os.path.abspath(spec)
    if not os.path.isfile(path):
        raise ConfigError(f"--plugin {spec}: no such file; allowed: an importable module name or "
                          "the path of a .py file")
    name = _module_name(path)
    loaded = sys.modules.get(name)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") == path:
        return loaded
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # so its classes pickle by name, as an imported module's
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def from_env() -> List[str]:
    """The plugins ``$KORTH_BENCH_PLUGINS`` names."""
    return [entry for entry in os.environ.get(ENV, "").split(os.pathsep) if entry]


def use(specs: Iterable[str]) -> None:
    """Import each ``--plugin`` and name it in ``$KORTH_BENCH_PLUGINS`` for the processes this one
    starts (a local Ray's workers); a relative path is made absolute first."""
    specs = list(specs)
    for spec in specs:
        load(spec)  # a refusal names the plugin as given
    specs = [os.path.abspath(s) if _is_file(s) else s for s in specs]
    named = from_env()
    named += [spec for spec in specs if spec not in named]
    if named:
        os.environ[ENV] = os.pathsep.join(named)


def cluster_runtime_env() -> Dict[str, object]:
    """What a cluster's workers need to import this process's plugins: the files as Ray
    ``py_modules`` and ``$KORTH_BENCH_PLUGINS`` naming the modules ({} when there are none)."""
    named = from_env()
    if not named:
        return {}
    files = [spec for spec in named if _is_file(spec)]
    env = {"env_vars": {ENV: os.pathsep.join(_module_name(spec) for spec in named)}}
    if files:
        env["py_modules"] = files
    return env


def load_all(registered, register) -> None:
    """The registry's lazy load: the entry points of ``GROUP`` (a class not yet in
    ``registered()`` is passed to ``register(name)``), then the plugins of
    ``$KORTH_BENCH_PLUGINS``."""
    for entry_point in metadata.entry_points(group=GROUP):
        try:
            loaded = entry_point.load()
        except Exception as err:  # the plugin's bug: its traceback, and which plugin it is
            dist = getattr(entry_point.dist, "name", "?")
            err.add_note(f"korth-bench: loading entry point {entry_point.name} = "
                         f"{entry_point.value} of group {GROUP} (distribution {dist})")
            raise
        if isinstance(loaded, type) and loaded not in registered():
            register(entry_point.name)(loaded)
    for spec in from_env():
        load(spec)
