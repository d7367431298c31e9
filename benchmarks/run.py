"""Run the benchmarks, print the table and write ``benchmarks/results.json``.

Usage::

    python -m benchmarks.run                 # everything; writes results.json
    python -m benchmarks.run invoke guard    # only bench_invoke and bench_guard
    python -m benchmarks.run --quick         # fewer repetitions, to check it works

Every ``benchmarks/bench_*.py`` module with a ``run() -> list[dict]`` is a
benchmark, run in the order of its ``ORDER`` attribute (then its name). A
partial or quick run writes no file unless ``--output`` is given, so
``results.json`` always holds a full run.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from . import _harness as bh

RESULTS = Path(__file__).resolve().parent / "results.json"


def discover(selected: list[str]) -> list[ModuleType]:
    """The ``bench_*`` modules, filtered by name fragments when given."""
    package = Path(__file__).resolve().parent
    names = sorted(
        info.name for info in pkgutil.iter_modules([str(package)]) if info.name.startswith("bench_")
    )
    if selected:
        names = [n for n in names if any(part in n for part in selected)]
    modules = [importlib.import_module(f"{__package__}.{name}") for name in names]
    modules = [m for m in modules if callable(getattr(m, "run", None))]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 1000), m.__name__))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("only", nargs="*", help="run only bench_* modules containing these")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--output", type=Path, help=f"JSON file (default {RESULTS.name})")
    args = parser.parse_args(argv)
    bh.QUICK = args.quick

    # Byte-compile our package first: site-packages were compiled at install time,
    # and with PYTHONDONTWRITEBYTECODE set a stale .pyc would make every child
    # process compile our modules from source, which is not what a deployment does.
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "tracing"), quiet=1)
    modules = discover(args.only)
    if not modules:
        parser.error(f"no benchmark matches {args.only}")
    machine = bh.machine_info()
    started = time.time()
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    failed = False
    for module in modules:
        name = module.__name__.rsplit(".", 1)[-1]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rows.extend(module.run())
        except Exception as exc:
            failed = True
            rows.append(bh.error_row(name, exc))
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"  done in {timings[name]} s", file=sys.stderr, flush=True)

    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    print(
        f"\nmachine: {machine['nproc']} CPUs, {machine['cpu_model']}; "
        f"Python {machine['python']}; {packages}; git {machine['git']}"
    )
    if args.quick:
        print("QUICK MODE: fewer repetitions, figures are indicative only")
    print()
    print(bh.format_table(rows))
    missed = [f"{r['bench']}: {r['case']}" for r in rows if r.get("met") is False]
    print(f"\ntargets missed: {len(missed)}" + "".join(f"\n  - {m}" for m in missed))
    print(f"total {time.time() - started:.0f} s")

    output = args.output
    if output is None and not args.only and not args.quick:
        output = RESULTS
    if output is not None:
        result = {
            "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "duration_s": round(time.time() - started, 1),
            "quick": args.quick,
            "machine": machine,
            "timings_s": timings,
            "table": bh.format_table(rows).splitlines(),
            "rows": rows,
        }
        output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
