"""One-off measurements beside the side-by-side harness: prompt conditioning, generation speed of one checkpoint,
where generate()'s time goes, the paper-scale size and speed check, and the data pipeline's throughput. Each runs
as a module from the repository root, e.g. `python -m benchmarks.probes.scale_check --count_only`."""
