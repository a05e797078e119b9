"""Command line: ``python -m jaxreg demo [--out DIR] [--steps N] [--seed S]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import jaxreg

_DESCRIPTION = """\
jaxreg command line.

  demo   train a small Flax MLP on scikit-learn's digits four ways (no
         regularization, AdamW decay, L1 with proximal_adam, group lasso with
         unit pruning), print a table and write a figure. Needs the demo
         extra: pip install "jaxreg[demo]".
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, 2**32), got {text!r}"
        ) from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m jaxreg`` argument parser (subcommand ``demo``).

    Returns:
      An :class:`argparse.ArgumentParser`.

    Example:
      >>> args = build_parser().parse_args(["demo", "--steps", "50"])
      >>> args.command, args.steps, args.seed, args.out
      ('demo', 50, 0, 'jaxreg_demo')
    """
    from jaxreg import demo as _demo

    parser = argparse.ArgumentParser(
        prog="python -m jaxreg",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jaxreg {jaxreg.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="L1 vs L2 on scikit-learn's digits: table + figure",
        description=(
            "Train a small Flax MLP (64-128-64-10) on scikit-learn's digits (no download) "
            "four ways: no regularization, AdamW-style decoupled weight decay, L1 with "
            "jaxreg.proximal_adam, and group lasso followed by jaxreg.prune_dense. Each "
            "regularized method is trained at a few strengths at once (jax.vmap). Prints a "
            "table (test accuracy, fraction of exactly-zero weights, dead units, parameter "
            "count after pruning) and writes demo.png (weight histograms; accuracy against "
            "sparsity), results.json and table.md into the output folder, and prints how "
            "long the run took (README.md shows a measured run)."
        ),
    )
    demo.add_argument(
        "--out",
        default=_demo.DEFAULT_OUT,
        metavar="DIR",
        help="output folder for demo.png and results.json, created if missing "
        f"(default: {_demo.DEFAULT_OUT}/)",
    )
    demo.add_argument(
        "--steps",
        type=_positive_int,
        default=_demo.DEFAULT_STEPS,
        metavar="N",
        help="Adam steps per model, minibatches of 128 (default: %(default)s; "
        "fewer is faster and sparsifies less)",
    )
    demo.add_argument(
        "--seed",
        type=_seed,
        default=_demo.DEFAULT_SEED,
        metavar="S",
        help="seed of the train/test split, the initialization and the batch order "
        "(default: %(default)s)",
    )
    demo.set_defaults(parser=demo)
    demo.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show the progress bar",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (argparse exits 2 on bad flags).

    Args:
      argv: the arguments after ``python -m jaxreg`` (default: ``sys.argv[1:]``).

    Returns:
      0 on success, 1 if a dependency of the demo is missing or the output folder
      cannot be written.
    """
    parser = build_parser()
    # Sub-command flags are parsed by the sub-parser; report unknown ones with ITS usage.
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "demo":
        import os

        if os.path.exists(args.out) and not os.path.isdir(args.out):
            args.parser.error(f"argument --out: {args.out!r} exists and is not a folder")
        missing = [m for m in ("sklearn", "matplotlib") if not _importable(m)]
        if missing:
            names = " and ".join("scikit-learn" if m == "sklearn" else m for m in missing)
            print(
                f"python -m jaxreg demo: error: the demo needs {names}; "
                'install them with: pip install "jaxreg[demo]"',
                file=sys.stderr,
            )
            return 1
        try:
            from jaxreg import demo as _demo

            _demo.run_demo(args.out, args.steps, args.seed, progress=args.progress)
        except OSError as err:
            print(
                f"python -m jaxreg demo: error: cannot write to {args.out!r}: {err}",
                file=sys.stderr,
            )
            return 1
    return 0


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    raise SystemExit(main())
