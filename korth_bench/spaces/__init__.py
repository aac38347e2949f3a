"""Search spaces: a YAML file -> validated, expanded trial configurations (no Ray here).

``load(name_or_path) -> Space``; ``names()`` lists the shipped spaces; ``dry_run_text(space)`` is
what ``korth-bench run --dry-run`` prints.
"""
from korth_bench.spaces.dryrun import dry_run_text
from korth_bench.spaces.space import Space, find, load, names, parse

__all__ = ["Space", "dry_run_text", "find", "load", "names", "parse"]
