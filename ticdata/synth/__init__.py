"""Synthetic data for demos, tests and benchmarks: a CommonCrawl-style pool with planted bad rows."""

from ticdata.synth.pool import REASONS, BadRowRates, make_pool

__all__ = ["REASONS", "BadRowRates", "make_pool"]
