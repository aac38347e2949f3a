"""Sweeps on Ray Tune: ``run(space, ...)``, the only Ray code of korth-bench."""
from korth_bench.sweep.tuner import run

__all__ = ["run"]
