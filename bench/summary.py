"""Several runs of one benchmark in one session: every figure as the median of the runs, with all of them.

A ratio is taken within each run first (both sides measured side by side) and its median over the runs is
reported, never a ratio of medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


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


def _show(value: Any, digits: int = 1) -> str:
    """``median (run1, run2, run3)``."""
    if isinstance(value, dict) and "median" in value:
        runs = ", ".join(f"{r:,.{digits}f}" for r in value["runs"])
        return f"{value['median']:,.{digits}f} ({runs})"
    if isinstance(value, dict) and "all" in value:
        return f"{'yes' if value['all'] else 'no'} ({', '.join('yes' if r else 'no' for r in value['runs'])})"
    return str(value)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def print_summary(name: str, summary: dict[str, Any]) -> None:
    """Markdown tables of the medians, each followed by the runs in brackets (for bench/RESULTS.md)."""
    print(f"\n=== {name}: median (each run) over {_runs(summary)} runs\n")
    if name == "e2e":
        print(e2e_markdown(summary))
    elif name == "cache":
        print(markdown([{k: _show(v, 2) for k, v in row.items()} for row in summary["rows"]]))
    else:
        print({k: v for k, v in summary.items() if k != "machine"})


def e2e_markdown(summary: dict[str, Any]) -> str:
    from bench.harness import STAGES

    parts = [
        markdown(
            [
                {"figure": key, "median (runs)": _show(summary[key], 3 if "over" in key else 1)}
                for key in (
                    "model_ceiling_seq_s",
                    "full_batch_ms",
                    "sustained_seq_s",
                    "echo_sustained_seq_s",
                    "e2e_over_ceiling",
                    "thread_sustained_seq_s",
                    "thread_e2e_over_ceiling",
                    "worker_rss_mb",
                )
            ]
        )
    ]
    rows = summary["open_loop"]

    def of(peer: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["peer"] == peer]

    latency = []
    for ours, echo in zip(of("streamnlp"), of("echo"), strict=True):
        latency.append(
            {
                "fraction": ours["fraction"]["median"],
                "offered msg/s": _show(ours["offered_rate"], 0),
                "p50 ms": _show(ours["p50_ms"]),
                "p99 ms": _show(ours["p99_ms"]),
                "echo p50 ms": _show(echo["p50_ms"]),
                "echo p99 ms": _show(echo["p99_ms"]),
                "mean batch": _show(ours["extra"]["mean_batch"]),
                "mean model call": _show(ours["extra"]["mean_model_call"]),
            }
        )
    parts.append(markdown(latency))
    for peer in ("streamnlp", "echo"):
        stages = []
        for stage in STAGES:
            line: dict[str, Any] = {"stage": stage}
            for row in of(peer):
                fraction = row["fraction"]["median"]
                value = row["stages"][stage]
                line[f"{fraction:.0%} mean"] = _show(value["mean"])
                line[f"{fraction:.0%} slowest 1%"] = _show(value["tail"])
            stages.append(line)
        parts.append(
            f"{peer}: ms per stage, mean and mean over the slowest 1% of records\n\n" + markdown(stages)
        )
    cpu = []
    for row in rows:
        line = {"peer": row["peer"], "fraction": row["fraction"]["median"]}
        line |= {name: _show(value, 2) for name, value in row["cpu"].items()}
        cpu.append(line)
    parts.append("cores used while sending\n\n" + markdown(cpu))
    parts.append(
        markdown([{"target": k, "median (runs)": _show(v, 3)} for k, v in summary["targets"].items()])
    )
    return "\n\n".join(parts)


def _runs(summary: Any) -> int:
    """How many runs a summary holds (the length of its first list of runs)."""
    if isinstance(summary, dict):
        if "runs" in summary and isinstance(summary["runs"], list):
            return len(summary["runs"])
        values: list[Any] = list(summary.values())
    elif isinstance(summary, list):
        values = summary
    else:
        return 0
    return next((n for n in map(_runs, values) if n), 0)
