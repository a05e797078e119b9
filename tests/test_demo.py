"""``python -m jaxreg demo``: runs end to end with few steps; bad flags fail clearly."""

import contextlib
import io
import itertools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxreg
from jaxreg.__main__ import main
from jaxreg.demo import _app as _demo

STEPS = 100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_TEST = 450  # 25% of the 1797 digits


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"  # does not exist yet: main creates it
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--out", str(out), "--steps", str(STEPS), "--seed", "1"])
    with open(out / "results.json") as f:
        results = json.load(f)
    return code, stdout.getvalue(), stderr.getvalue(), out, results


def chosen(results):
    return {r["method"]: r for r in results["rows"] if r["chosen"]}


def test_runs_and_writes_a_valid_png(demo_run):
    code, _, _, out, results = demo_run
    assert code == 0
    png = out / "demo.png"
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) < 300_000
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert float(np.std(image)) > 0.01  # not a blank canvas
    assert results["steps"] == STEPS and results["seed"] == 1


def test_markdown_table_is_written(demo_run):
    _, _, _, out, results = demo_run
    rows = [r for r in _demo.rows_from_results(results) if r.chosen]
    assert (out / "table.md").read_text() == _demo.format_markdown(rows) + "\n"
    assert results["seconds"] > 0 and results["versions"]["jax"] == jax.__version__


def test_figure_labels_every_point_without_overlap(demo_run, tmp_path):
    """Each point of the lower panels carries its strength; labels overlap nothing, stay inside."""
    results = demo_run[4]
    rows = _demo.rows_from_results(results)
    rng = np.random.default_rng(0)
    kernels = {r.method: rng.normal(size=500) * (r.method != "l1") for r in rows if r.chosen}
    fig = _demo._figure(rows, kernels, str(tmp_path / "fig.png"))
    renderer = fig.canvas.get_renderer()
    lower = fig.axes[-2:]
    for ax in lower:
        labels = [t for t in ax.texts if t.get_text().startswith("λ=")]
        assert len(labels) == len(rows)  # every point labelled
        assert {t.get_text() for t in labels} == {f"λ={r.strength:g}" for r in rows}
        frame = ax.get_window_extent(renderer)
        boxes = [t.get_window_extent(renderer) for t in labels]
        legend = ax.get_legend().get_window_extent(renderer)
        for i, box in enumerate(boxes):
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1, box  # not clipped
            assert frame.y0 <= box.y0 and box.y1 <= frame.y1, box
            assert not box.overlaps(legend)
            for other in boxes[i + 1 :]:
                assert not box.overlaps(other), (box, other)
        # no point touches the frame
        for line in ax.lines:
            for x, y in line.get_xydata():
                px, py = ax.transData.transform((x, y))
                assert frame.x0 + 5 < px < frame.x1 - 5 and frame.y0 + 5 < py < frame.y1 - 5
    assert fig.dpi >= 150


def test_progress_is_shown(demo_run):
    _, _, stderr, _, _ = demo_run
    assert f"{4 * STEPS}/{4 * STEPS}" in stderr  # tqdm or the fallback line, both end there


def test_table_is_printed_with_the_results(demo_run):
    _, stdout, _, _, results = demo_run
    for head in ("test acc", "zero weights", "dead units", "params after pruning"):
        assert head in stdout
    rows = chosen(results)
    assert set(rows) == {"none", "adamw", "l1", "group"}
    lines = stdout.splitlines()
    for r in rows.values():
        (line,) = [ln for ln in lines if ln.startswith(r["title"])]
        assert f"{r['test_accuracy']:.3f}" in line
        assert f"{100 * r['zero_fraction']:.1f}%" in line
        assert f"{r['params_after']} / {r['params_before']}" in line


def test_values_are_sane(demo_run):
    rows = demo_run[4]["rows"]
    assert len(rows) == sum(len(m.strengths) for m in _demo._methods())
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert 0.0 <= r["zero_fraction"] <= 1.0
        assert 0 <= r["dead_units"] <= r["hidden_units"] == sum(_demo.HIDDEN)
        # The pruned network computes the same function: same predictions up to rounding.
        assert abs(r["pruned_accuracy"] - r["test_accuracy"]) <= 2 / N_TEST
        # The count follows from the widths: 64·h0 + h0 + h0·h1 + h1 + h1·10 + 10.
        widths = (64, *r["features_after"])
        count = sum(a * b + b for a, b in itertools.pairwise(widths))
        assert r["params_after"] == count <= r["params_before"] == 17226
        assert r["dead_units"] == r["hidden_units"] - sum(r["features_after"][:-1])


def test_what_each_method_does(demo_run):
    rows = chosen(demo_run[4])
    # Ten classes: chance is 0.1; a hundred Adam steps reach well above 0.9.
    assert rows["none"]["test_accuracy"] > 0.9
    # Plain Adam and AdamW decay shrink weights but never to exactly zero.
    for key in ("none", "adamw"):
        assert rows[key]["zero_fraction"] < 1e-3
        assert rows[key]["params_after"] == rows[key]["params_before"]
    # The L1 prox produces exact zeros; group lasso kills whole units that pruning removes.
    assert rows["l1"]["zero_fraction"] > 0.3
    assert rows["group"]["dead_units"] > 0
    assert rows["group"]["params_after"] < rows["group"]["params_before"]


def test_stronger_l1_gives_more_zeros(demo_run):
    l1 = sorted(
        (r for r in demo_run[4]["rows"] if r["method"] == "l1"), key=lambda r: r["strength"]
    )
    zeros = [r["zero_fraction"] for r in l1]
    assert zeros == sorted(zeros) and zeros[-1] > zeros[0]


def test_help_explains_the_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--steps", "--seed"):
        assert flag in text
    assert "digits" in text and "jaxreg_demo" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["fly"], "invalid choice"),
        (["demo", "--steps", "0"], "--steps: must be a positive integer"),
        (["demo", "--steps", "-3"], "--steps: must be a positive integer"),
        (["demo", "--steps", "ten"], "--steps: must be a positive integer, got 'ten'"),
        (["demo", "--seed", "-1"], "--seed: must be an integer in [0, 2**32)"),
        (["demo", "--seed", "1.5"], "--seed"),
        (["demo", "--stpes", "10"], "unrecognized arguments: --stpes"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    # an error in the demo's flags prints the DEMO's usage, not the top-level one
    usage = "usage: python -m jaxreg demo" if argv[:1] == ["demo"] else "usage: python -m jaxreg ["
    assert err.startswith(usage), err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxreg {jaxreg.__version__}"


def test_out_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and err.startswith("usage: python -m jaxreg demo")


def test_missing_extra_is_reported(monkeypatch, capsys):
    import jaxreg.__main__ as cli

    monkeypatch.setattr(cli, "_importable", lambda module: module != "sklearn")
    assert main(["demo", "--steps", "1"]) == 1
    assert 'pip install "jaxreg[demo]"' in capsys.readouterr().err


def test_fallback_progress_line_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    stream = io.StringIO()
    bar = _demo._Progress(50, stream, enabled=True)
    assert bar.bar is None
    bar.describe("l1")
    bar.update(25)
    bar.update(25)
    bar.close()
    text = stream.getvalue()
    assert "25/50" in text and "50/50 steps (100%)" in text and text.endswith("\n")


def test_python_dash_m_entry_point():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxreg", "demo", "--steps", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--steps: must be a positive integer" in proc.stderr
