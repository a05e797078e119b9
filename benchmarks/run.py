"""Entry point of the jaxreg benchmark suite.

    python benchmarks/run.py --quick --out results.json   # default, ~3 min on 2 CPU cores
    python benchmarks/run.py --full --out results.json    # more rounds, every variant
    python benchmarks/run.py --only transforms flat       # a subset

Runs, in one process where possible:

* ``bench_transforms``: every jaxreg transform and ``regularized`` vs its optax
  baseline at 1M/10, 10M/10 and 10M/500 params/leaves (step, compile time, XLA
  memory, state bytes, the L1-in-the-loss recipe, flat-mode rows);
* ``bench_flat``: flat mode vs per-leaf, optimizer alone and full training steps;
* ``bench_optimizers`` and ``bench_path`` (other issues' scripts), run as
  subprocesses when they exist; skipped with a note otherwise.

Timings are medians of interleaved rounds in a donated loop. On a shared 2-core
machine they move ±30% from run to run: compare rows of one run, not across runs.
The GPU figures come from ``benchmarks/gpu.py`` (not run here).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

IN_PROCESS = ("transforms", "flat")
SCRIPTS = {
    "optimizers": ("bench_optimizers.py", {"quick": ["--rounds", "7", "1000000:10"], "full": []}),
    "path": ("bench_path.py", {"quick": ["--reps", "3", "--problems", "diabetes"], "full": []}),
}


def run_script(name: str, quick: bool) -> dict:
    script, args = SCRIPTS[name]
    path = os.path.join(HERE, script)
    if not os.path.exists(path):
        print(f"\n[{name}] {script} not found: skipped")
        return {"skipped": f"{script} not found"}
    print(f"\n[{name}] python {script}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, path, *args["quick" if quick else "full"]],
        capture_output=True,
        text=True,
        check=False,
    )
    print(proc.stdout, end="")
    if proc.returncode:
        print(proc.stderr[-2000:], end="")
    return {
        "returncode": proc.returncode,
        "stdout": proc.stdout,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="jaxreg benchmark suite")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--out", default=None, help="JSON file for all results")
    parser.add_argument(
        "--only", nargs="+", choices=[*IN_PROCESS, *SCRIPTS], default=None, help="a subset"
    )
    args = parser.parse_args()
    quick = not args.full
    chosen = args.only or [*IN_PROCESS, *SCRIPTS]
    results = {"mode": "quick" if quick else "full", "started": time.strftime("%Y-%m-%d %H:%M")}
    t_all = time.perf_counter()
    for name in chosen:
        t0 = time.perf_counter()
        if name in IN_PROCESS:
            print(f"\n[{name}] bench_{name}.run(quick={quick})", flush=True)
            module = importlib.import_module(f"bench_{name}")
            results[name] = module.run(quick=quick)
        else:
            results[name] = run_script(name, quick)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", flush=True)
    results["seconds"] = time.perf_counter() - t_all
    print(f"\nsuite: {results['seconds']:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
