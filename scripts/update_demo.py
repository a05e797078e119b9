"""Regenerates the demo's figure and numbers in the docs from ONE run of the demo.

    python scripts/update_demo.py            # runs `python -m jaxreg demo` (defaults)
    python scripts/update_demo.py --from DIR # reuses a finished run's output folder

Copies ``demo.png`` to ``docs/demo.png`` and ``results.json`` to
``docs/demo_results.json``, and rewrites the block between the markers
``<!-- demo-table:start -->`` and ``<!-- demo-table:end -->`` in README.md and
docs/demo.md with the Markdown table and the measured run time. Nothing is typed
by hand: ``tests/test_docs.py`` checks that the README block equals what the
committed ``docs/demo_results.json`` gives.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxreg.demo import FIGURE, RESULTS, format_markdown, rows_from_results  # noqa: E402

START = "<!-- demo-table:start -->"
END = "<!-- demo-table:end -->"
PAGES = (ROOT / "README.md", ROOT / "docs" / "demo.md")


def demo_block(results: dict) -> str:
    """The generated Markdown between the markers, from a ``results.json``."""
    rows = [r for r in rows_from_results(results) if r.chosen]
    return (
        f"{START}\n"
        f"{format_markdown(rows)}\n\n"
        f"Measured: `python -m jaxreg demo` (seed {results['seed']}, {results['steps']} steps) "
        f"took {results['seconds']:.0f} s, compilation included, on {results['machine']} "
        f"(jax {results['versions']['jax']}, flax {results['versions']['flax']}, "
        f"optax {results['versions']['optax']})"
        + (f"; {results['note']}" if results.get("note") else "")
        + ".\n"
        f"{END}"
    )


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers (markers included) replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"expected one {START} and one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return head + block + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="output folder of a finished demo run")
    parser.add_argument(
        "--note", help="a word on the machine's state, stored and shown (e.g. 'machine shared')"
    )
    args = parser.parse_args()
    if args.source is None:
        source = Path(tempfile.mkdtemp(prefix="jaxreg_demo_"))
        subprocess.run(
            [sys.executable, "-m", "jaxreg", "demo", "--out", str(source)],
            check=True,
            cwd=ROOT,
        )
    else:
        source = Path(args.source)
    results = json.loads((source / RESULTS).read_text())
    if args.note:
        results["note"] = args.note
    shutil.copyfile(source / FIGURE, ROOT / "docs" / "demo.png")
    (ROOT / "docs" / "demo_results.json").write_text(json.dumps(results, indent=1) + "\n")
    block = demo_block(results)
    for page in PAGES:
        page.write_text(replace_block(page.read_text(), block))
        print(f"updated {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
