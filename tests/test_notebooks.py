"""The notebooks: committed without outputs (no stale results), and they run.

Each notebook is executed top to bottom with nbclient (kernel ``python3``); any
cell error fails the test.
"""

import pathlib

import nbformat
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NAMES = [
    "01_quickstart.ipynb",
    "02_geometry.ipynb",
    "03_l2_vs_weight_decay.ipynb",
    "04_regularization_paths.ipynb",
    "05_structured_sparsity.ipynb",
    "06_claims_checked.ipynb",
]


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [], f"{name}: stale outputs in cell {cell.id}"
        assert cell.execution_count is None, f"{name}: execution count in cell {cell.id}"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_runs_top_to_bottom(name):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    streams = "".join(
        o.text
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )
    assert streams, f"{name} printed nothing"
    if name == "06_claims_checked.ipynb":
        # Every claim gets a computed verdict.
        assert streams.count("TRUE ") + streams.count("FALSE") >= 5
