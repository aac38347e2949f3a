"""Every use of Ray's private internals, in one place, with the Ray versions it was checked against.

Ray Tune offers no public switch for the two behaviours below. Each function reaches one private
attribute; when a Ray release renames it, the function fails with an error that names the attribute
and the versions checked, instead of an ``AttributeError`` deep inside a sweep.
``pyproject.toml`` bounds Ray to ``CHECKED_RAY_VERSIONS``.
"""
from __future__ import annotations

import importlib
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
