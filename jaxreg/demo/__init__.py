"""The ``python -m jaxreg demo`` application: four ways to regularize an MLP on digits.

An application of the library, not part of its API: it uses only public jaxreg
names. ``run_demo`` trains the models, prints the table and writes ``demo.png``,
``results.json`` and ``table.md``; ``scripts/update_demo.py`` copies a run into
``docs/`` and the README.

Needs the ``demo`` extra (scikit-learn, matplotlib; tqdm optional):
``pip install "jaxreg[demo]"``.
"""

from jaxreg.demo._app import (
    DEFAULT_OUT,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    FIGURE,
    RESULTS,
    TABLE,
    Row,
    format_markdown,
    format_table,
    rows_from_results,
    run_demo,
)

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SEED",
    "DEFAULT_STEPS",
    "FIGURE",
    "RESULTS",
    "TABLE",
    "Row",
    "format_markdown",
    "format_table",
    "rows_from_results",
    "run_demo",
]
