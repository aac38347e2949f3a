"""The statistics behind the leaderboard: ``analyze(frames, ...)`` on the four result tables."""
from korth_bench.analysis.claims import analyze

__all__ = ["analyze"]
