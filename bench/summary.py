"""Several runs of one benchmark in one session: every figure as the median of the runs, with all of them.

A ratio is taken within each run first (both sides measured side by side) and its median over the runs is
reported, never a ratio of medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.harness import table


def median_tree(runs: Sequence[Any]) -> Any:
    """The runs' common structure with each number replaced by ``{"median": m, "runs": [...]}`` and each
    yes/no by ``{"all": ..., "runs": [...]}``; lists of rows are matched by position."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: median_tree([run.get(key) for run in runs]) for key in first}
    if isinstance(first, list) and all(isinstance(run, list) and len(run) == len(first) for run in runs):
        if first and all(isinstance(item, (dict, list)) for item in first):
            return [median_tree([run[i] for run in runs]) for i in range(len(first))]
        return list(runs)
    if isinstance(first, bool):
        return {"all": all(bool(run) for run in runs), "runs": list(runs)}
    if isinstance(first, (int, float)) and all(isinstance(run, (int, float)) for run in runs):
        return {"median": round(statistics.median(runs), 3), "runs": list(runs)}
    return first if all(run == first for run in runs) else list(runs)


def _show(value: Any) -> str:
    """``median (run1, run2, run3)``."""
    if isinstance(value, dict) and "median" in value:
        return f"{value['median']:g} ({', '.join(f'{r:g}' for r in value['runs'])})"
    if isinstance(value, dict) and "all" in value:
        return f"{value['all']} ({', '.join(str(r) for r in value['runs'])})"
    return str(value)


def print_summary(name: str, summary: dict[str, Any]) -> None:
    print(f"\n=== {name}: median (each run) over {_runs(summary)} runs")
    if name == "e2e":
        for key in ("model_ceiling_seq_s", "full_batch_ms", "sustained_seq_s", "e2e_over_ceiling"):
            print(f"{key}: {_show(summary[key])}")
        rows = [
            {
                "peer": row["peer"],
                "fraction": row["fraction"]["median"],
                "offered": _show(row["offered_rate"]),
                "p50_ms": _show(row["p50_ms"]),
                "p99_ms": _show(row["p99_ms"]),
            }
            for row in summary["open_loop"]
        ]
        print(table(rows, list(rows[0])))
        for key, value in summary["targets"].items():
            print(f"{key}: {_show(value)}")
    elif name == "cache":
        rows = [{k: _show(v) for k, v in row.items()} for row in summary["rows"]]
        print(table(rows, list(rows[0])))
    else:
        print({k: v for k, v in summary.items() if k != "machine"})


def _runs(summary: dict[str, Any]) -> int:
    for value in summary.values():
        if isinstance(value, dict) and "runs" in value:
            return len(value["runs"])
    return 1
