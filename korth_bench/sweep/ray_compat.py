"""Every use of Ray's private internals, in one place, with the Ray versions it was checked against.

Ray Tune offers no public switch for the two behaviours below. Each function reaches one private
attribute; when a Ray release renames it, the function fails with an error that names the attribute
and the versions checked, instead of an ``AttributeError`` deep inside a sweep.
``pyproject.toml`` bounds Ray to ``CHECKED_RAY_VERSIONS``.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Iterable


CHECKED_RAY_VERSIONS = "2.60"
"""The Ray releases (major.minor) these internals were read in and tested against."""


def _private(module: str, attribute: str) -> Any:
    """``module.attribute`` of Ray, or a clear error naming both and the checked versions."""
    import ray

    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise RuntimeError(
            f"Ray {ray.__version__} has no {module}.{attribute}, which korth-bench uses (checked "
            f"against Ray {CHECKED_RAY_VERSIONS}); install a Ray version in that range "
            "(pyproject.toml bounds it) or update korth_bench/sweep/ray_compat.py") from None


def drop_propagated_env(names: Iterable[str]) -> None:
    """Stop Tune from copying these driver environment variables into each trainable's runtime
    environment (``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE``): Ray's runtime-env
    agent writes that environment to its log in clear text."""
    from ray.tune.execution import class_cache

    current = _private("ray.tune.execution.class_cache", "ENV_VARS_TO_PROPAGATE")
    class_cache.ENV_VARS_TO_PROPAGATE = frozenset(current) - set(names)


def resolve_auto_address() -> str:
    """The GCS address ``--address auto`` means: the cluster ``ray start`` last recorded on this
    machine, or ``RAY_ADDRESS`` (``ray._private.services.canonicalize_bootstrap_address_or_die``).
    Raises ``ConnectionError`` when there is none."""
    return _private("ray._private.services", "canonicalize_bootstrap_address_or_die")("auto")


LOOPBACK = "127.0.0.1"
NODE_IP_PROBE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``, read at import) that, when
off, makes ``ray._private.services.get_node_ip_address`` answer 127.0.0.1 instead of probing
8.8.8.8:53 for the machine's address (``node_ip_address_from_perspective``, which logs "Failed to
determine local IP via external connectivity to: 8.8.8.8:53" where that is unreachable)."""


def local_loopback_env() -> dict:
    """What a private local Ray (no ``--address``) needs to run on 127.0.0.1 only, quietly: the
    node-IP probe off (``NODE_IP_PROBE_ENV``, also set in this process's Ray constants) and, when
    ``RAY_AUTH_MODE`` is not set, token authentication off (Ray 2.5x turns it on for a new local
    cluster, generates ``~/.ray/auth_token`` and says so): nothing outside this machine reaches a
    node bound to 127.0.0.1. Returns the environment variables it set, for ``restore_env``."""
    from ray._private import ray_constants

    _private("ray._private.ray_constants", "ENABLE_RAY_CLUSTER")
    ray_constants.ENABLE_RAY_CLUSTER = False
    changed = {NODE_IP_PROBE_ENV: os.environ.get(NODE_IP_PROBE_ENV)}
    os.environ[NODE_IP_PROBE_ENV] = "0"
    if "RAY_AUTH_MODE" not in os.environ:
        changed["RAY_AUTH_MODE"] = None
        os.environ["RAY_AUTH_MODE"] = "disabled"
        _private("ray._raylet", "Config").initialize("")  # Ray's C++ config re-reads the mode
    return changed


def restore_env(changed: dict) -> None:
    """Undo ``local_loopback_env`` once the local Ray has stopped."""
    from ray._private import ray_constants

    for key, value in changed.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    ray_constants.ENABLE_RAY_CLUSTER = os.environ.get(NODE_IP_PROBE_ENV, "1").lower() not in (
        "0", "false")
