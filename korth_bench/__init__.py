"""korth-bench: kernel-orthogonality regularization benchmarks for CNNs."""
__version__ = "0.1.0"
