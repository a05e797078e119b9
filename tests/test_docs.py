"""The documentation: every Python block runs, the demo numbers are generated, the API is covered.

Python blocks in README.md and docs/**/*.md are executed page by page, in order, in one
namespace per page (a block may use names from earlier blocks of its page). Blocks titled with
another library (the other side of a migration guide) are shown, not run. A block that
cannot run here (it needs several hosts, a file path, ...) is preceded by the line
``<!-- notest -->``; those are counted and kept few.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "notebooks" not in p.parts)]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
NOTEST = "<!-- notest -->"
MAX_NOTEST = 6
OTHER_LIBRARIES = {"jaxopt", "Keras", "PyTorch", "scikit-learn", "optax"}


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, runnable)`` for each jaxreg ```python block of a Markdown text.

    Blocks titled with another library (```python title="PyTorch"```, the left side of a
    migration guide) show that library's code and are not run here.
    """
    blocks = []
    for match in FENCE.finditer(text):
        info = match.group("info").strip()
        title = re.fullmatch(r'python title="([^"]*)"', info)
        if title and title.group(1) != "jaxreg":
            assert title.group(1) in OTHER_LIBRARIES, f"unknown library title {info!r}"
            continue
        if info not in ("python", "py") and not title:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group("body"), before != NOTEST))
    return blocks


def _load_update_demo():
    spec = importlib.util.spec_from_file_location("update_demo", ROOT / "scripts/update_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blocks_are_found():
    blocks = [b for page in PAGES for b in python_blocks(page.read_text())]
    assert len(blocks) > 30
    skipped = [b for b in blocks if not b[2]]
    assert len(skipped) <= MAX_NOTEST, "keep the blocks marked <!-- notest --> few"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = [b for b in python_blocks(page.read_text()) if b[2]]
    if not blocks:
        return  # a page without Python: nothing to run (not a skip: nothing is hidden)
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    import jax

    x64 = jax.config.jax_enable_x64  # a page may switch float64 on: restore it after the page
    try:
        for line, code, _ in blocks:
            try:
                # Users run with JAX's defaults (conftest.py makes rank promotion raise).
                with jax.numpy_rank_promotion("allow"):
                    exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(
                    f"{page.relative_to(ROOT)}, block at line {line} fails: {err!r}"
                ) from err
    finally:
        jax.config.update("jax_enable_x64", x64)
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("page", ["README.md", "docs/demo.md"])
def test_demo_table_is_generated_from_the_committed_results(page):
    update_demo = _load_update_demo()
    results = json.loads((DOCS / "demo_results.json").read_text())
    text = (ROOT / page).read_text()
    start, end = text.index(update_demo.START), text.index(update_demo.END)
    block = text[start : end + len(update_demo.END)]
    assert block == update_demo.demo_block(results), (
        f"{page}: the demo table differs from docs/demo_results.json; "
        "run `python scripts/update_demo.py`"
    )


def test_demo_figure_is_high_resolution():
    from PIL import Image

    with Image.open(DOCS / "demo.png") as image:
        dpi = image.info.get("dpi", (0, 0))
        assert min(dpi) >= 149.9, dpi
        assert image.width >= 1800
    assert (DOCS / "demo.png").stat().st_size < 300_000


def test_every_public_name_has_an_api_entry():
    import jaxreg

    api = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: (jaxreg(?:\.\w+)+)\s*$", api, re.M))
    missing = [n for n in jaxreg.__all__ if f"jaxreg.{n}" not in documented]
    assert not missing, f"not in docs/api/: {missing}"
    assert "jaxreg.prox" in documented
    import jaxreg.prox

    assert jaxreg.prox.__all__
    # the module page lists exactly jaxreg.prox.__all__ (helpers outside it stay off the site)
    page = (DOCS / "api" / "prox.md").read_text()
    members = re.findall(r"^\s+- (\w+)\s*$", page.split("members:", 1)[1], re.M)
    assert sorted(members) == sorted(jaxreg.prox.__all__), members
    for name in documented:
        obj = jaxreg
        for part in name.split(".")[1:]:
            obj = getattr(obj, part)  # every entry names something that exists


def test_relative_links_in_readme_exist():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", text)
    assert links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_ci_runs_the_readme_test_command_and_builds_the_docs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^(pip install "\.\[test\]" && python -m pytest[^\n#]*)', readme, re.M)
    assert match, "README quick start lost its test command"
    assert re.search(rf"^{re.escape(match.group(1).strip())}$", ci, re.M), "CI must run it as is"
    assert "mkdocs build --strict" in ci
    assert 'pip install -e ".[docs]" && mkdocs serve' in readme


def test_every_notebook_is_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.name}" in nav
    assert os.path.realpath(DOCS / "notebooks") == str(ROOT / "notebooks")
