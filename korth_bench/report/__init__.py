"""Leaderboards (Markdown, HTML, JSON, figures) from result directories: ``build_report``."""
from korth_bench.report.documents import build_report, build_report_from_frames

__all__ = ["build_report", "build_report_from_frames"]
