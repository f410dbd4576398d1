"""``python -m bench NAME [NAME ...]``: the benchmarks behind bench/RESULTS.md (``--help`` lists them)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

# Name -> what it measures. The end-to-end ones need `streamnlp services up`; all write bench/out/.
BENCHMARKS: dict[str, str] = {
    "e2e": "saturated end-to-end seq/s vs the model ceiling, then the worker and the echo peer at 25-90% "
    "of saturation, latency by stage",
    "cache": "saturated seq/s with 0%, 50% and 90% repeated texts (the label cache's effect)",
    "scaling": "one vs two workers on an 8-partition topic",
    "guarantee": "at-least-once vs exactly-once saturated seq/s",
    "sweep": "latency at half load and saturated seq/s over batches in flight, producer linger, batch size",
    "padding": "plain vs length-bucketed batches through the model alone",
    "model": "the model alone: seq/s at batch 1/8/32 against the other exports (bench.model_ceiling)",
}
ALL = ["e2e", "cache", "scaling", "guarantee", "sweep", "padding"]


def parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10} {what}" for name, what in BENCHMARKS.items())
    result = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run streamnlp's benchmarks and print their tables (figures: bench/RESULTS.md).",
        epilog=f"benchmarks:\n{listing}\n  {'all':<10} every one above but model\n\n"
        "Run from the repository root with `streamnlp services up` (and pip install -e '.[bench]').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("names", nargs="*", metavar="NAME", default=["all"], help="benchmarks to run")
    result.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run them this many times back to back; every figure is then reported as the median of the "
        "runs with all of them (bench/out/NAME-summary.json)",
    )
    result.add_argument(
        "--summarize",
        action="store_true",
        help="run nothing: print the summary of the runs saved in bench/out/NAME-run*.json",
    )
    return result


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS and n != "all"]
    if unknown:
        parser().error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}, all")
    names = ALL if args.names == ["all"] else args.names
    if "model" in names:
        from bench.model_ceiling import main as model_main

        model_main([])
        names = [n for n in names if n != "model"]
    if not names:
        return 0
    from bench import e2e
    from bench.harness import OUT, save
    from bench.summary import median_tree, print_summary

    if args.summarize:
        for name in names:
            saved = sorted(OUT.glob(f"{name}-run*.json"))
            print_summary(name, median_tree([json.loads(path.read_text()) for path in saved]))
        return 0

    texts = e2e.load_texts()
    payloads: dict[str, list[dict]] = {name: [] for name in names}
    for index in range(1, args.runs + 1):
        for name in names:
            print(f"\n=== {name}" + (f", run {index} of {args.runs}" if args.runs > 1 else ""))
            run: Callable[[list[str]], dict] = getattr(e2e, name)
            payloads[name].append(run(texts))
            if args.runs > 1:
                save(f"{name}-run{index}", payloads[name][-1])
    if args.runs > 1:
        for name, runs in payloads.items():
            summary = median_tree(runs)
            save(f"{name}-summary", summary)
            print_summary(name, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
