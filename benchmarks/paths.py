"""Where the benchmarks find the repository: its root (the working directory of every `python -m benchmarks...`
command and of the training subprocesses), the vendored corpus and the committed results."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWN = ROOT / "data" / "brown.txt.gz"  # vendored copy of ../shared/data/brown.txt
RESULTS = ROOT / "benchmarks" / "results"
