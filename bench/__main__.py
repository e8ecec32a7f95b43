"""``make bench``: run the benchmarks, print each figure beside its baseline, and write each
suite's section of RESULTS.md (the sections of suites that did not run are kept).

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
from bench import gateway as gateway_bench
from bench import gatewayauth as gatewayauth_bench
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
    "gateway": gateway_bench.run,
    "gatewayauth": gatewayauth_bench.run,
}
RESULTS = Path(__file__).with_name("RESULTS.md")


def _fmt(value: float, unit: str) -> str:
    if unit == "ops/s":
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}"


def _verdict(fig: Figure) -> str:
    return {True: "met", False: "MISSED", None: "-"}[fig.met]


_HEADER = """# tabard benchmark results

Each suite's figures come from one run of `python -m bench SUITE` (`make bench` runs them
all); the suite's heading says when and where. Every figure is measured beside its baseline in
the same run; the ratio is what the budgets in ARCHITECTURE.md §8 are about, not the absolute
numbers.
"""
_SUITE = "## suite "


def _section(name: str, figures: list[Figure]) -> str:
    lines = [
        f"{_SUITE}`{name}`",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`python -m bench {name}`) on "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}.",
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
    return "\n".join(lines) + "\n"


def _sections(text: str) -> dict[str, str]:
    """The suite sections of an existing RESULTS.md, by suite name."""
    out: dict[str, str] = {}
    for chunk in text.split("\n" + _SUITE)[1:]:
        name = chunk.split("`", 2)[1]
        out[name] = _SUITE + chunk.rstrip("\n") + "\n"
    return out


def write_results(by_suite: dict[str, list[Figure]]) -> None:
    """Replace the sections of the suites that ran; keep the others as they were."""
    sections = _sections(RESULTS.read_text()) if RESULTS.exists() else {}
    for name, figures in by_suite.items():
        sections[name] = _section(name, figures)
    ordered = [sections[n] for n in SUITES if n in sections]
    ordered += [text for n, text in sections.items() if n not in SUITES]
    RESULTS.write_text(_HEADER + "\n" + "\n".join(ordered))


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}",
              file=sys.stderr)
        return 2
    console = Console()
    by_suite: dict[str, list[Figure]] = {}
    for name in names:
        console.print(f"[bold]running {name}[/bold]")
        by_suite[name] = SUITES[name]()
    figures = [f for fs in by_suite.values() for f in fs]
    table = Table(title="tabard benchmarks (ratios against same-run baselines)")
    for col in ("figure", "value", "baseline", "ratio", "goal", "verdict"):
        table.add_column(col)
    for f in figures:
        table.add_row(f.name, _fmt(f.value, f.unit),
                      f"{f.baseline_name}: {_fmt(f.baseline, f.unit)}",
                      f"{f.ratio:.2f}×", f.goal, _verdict(f))
    console.print(table)
    write_results(by_suite)
    console.print(f"wrote the sections of {', '.join(names)} in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
