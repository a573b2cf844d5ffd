"""Benchmarks: bench/bench_<name>.py modules, each with `main() -> list[str]`; run by `python -m bench`."""
