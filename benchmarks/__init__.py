"""The side-by-side benchmark (`python -m benchmarks.run`), its report (`python -m benchmarks.report`) and the
one-off probes (`benchmarks.probes`). Run from the repository root; the folder is not installed."""
