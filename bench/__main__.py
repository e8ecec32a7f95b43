"""``make bench``: run the benchmarks, print each figure beside its baseline, rewrite RESULTS.md.

Usage: python -m bench [NAME ...]   (names: see SUITES; default all)
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import audit, authority, instances, killswitch, oauth, policy, registry, workload
from bench import dlp as dlp_bench
from bench.harness import Figure

SUITES: dict[str, Callable[[], list[Figure]]] = {
    "authority": authority.run,
    "workload": workload.run,
    "instances": instances.run,
    "registry": registry.run,
    "oauth": oauth.run,
    "policy": policy.run,
    "dlp": dlp_bench.run,
    "audit": audit.run,
    "killswitch": killswitch.run,
}
RESULTS = Path(__file__).with_name("RESULTS.md")


def _fmt(value: float, unit: str) -> str:
    if unit == "ops/s":
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}"


def _verdict(fig: Figure) -> str:
    return {True: "met", False: "MISSED", None: "-"}[fig.met]


def write_results(figures: list[Figure], suites: list[str]) -> None:
    lines = [
        "# tabard benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `make bench` "
        f"(`python -m bench {' '.join(suites)}`) on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "Every figure is measured beside its baseline in the same run; the ratio is what the "
        "budgets in ARCHITECTURE.md §8 are about, not the absolute numbers.",
        "",
        "| figure | value | baseline | baseline value | ratio | goal | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {_fmt(f.value, f.unit)} | {f.baseline_name} | "
            f"{_fmt(f.baseline, f.unit)} | {f.ratio:.2f}× | {f.goal} | {_verdict(f)} |"
        )
    notes = [f"- {f.name}: {n}" for f in figures for n in f.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    RESULTS.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}",
              file=sys.stderr)
        return 2
    console = Console()
    figures: list[Figure] = []
    for name in names:
        console.print(f"[bold]running {name}[/bold]")
        figures.extend(SUITES[name]())
    table = Table(title="tabard benchmarks (ratios against same-run baselines)")
    for col in ("figure", "value", "baseline", "ratio", "goal", "verdict"):
        table.add_column(col)
    for f in figures:
        table.add_row(f.name, _fmt(f.value, f.unit),
                      f"{f.baseline_name}: {_fmt(f.baseline, f.unit)}",
                      f"{f.ratio:.2f}×", f.goal, _verdict(f))
    console.print(table)
    if set(names) == set(SUITES):
        write_results(figures, names)
        console.print(f"wrote {RESULTS}")
    else:
        console.print("(partial run: RESULTS.md left as it was)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
