"""The ``python -m jaxreg demo`` experiment: four ways to regularize an MLP on digits.

A small Flax (linen) MLP, ``64 → 128 → 64 → 10`` with ReLU, is trained with Adam
on scikit-learn's handwritten digits (``load_digits``: 1797 8×8 images that ship
with scikit-learn, nothing is downloaded) four ways:

* ``none``: plain ``optax.adam``;
* ``adamw``: decoupled weight decay on the kernels,
  ``jaxreg.regularized(optax.adam, η, weight_decay=λ, mask=kernels_only())``;
* ``l1``: ``jaxreg.proximal_adam(η, l1=λ, mask=kernels_only())``, the L1 prox in
  Adam's own metric;
* ``group``: group lasso on the hidden kernels (one group per unit's incoming
  weights), ``jaxreg.regularized(optax.adam, η, group_lasso=λ, mask=...)``, then
  :func:`jaxreg.prune_dense` removes the dead units.

Each method is trained at a few strengths at once (``jax.vmap`` over the
strengths, ``jax.lax.scan`` over chunks of minibatches, one compilation per
method). The table reports one strength per method; the figure shows every
strength (accuracy against sparsity) and the weight histograms.

This module needs the ``demo`` extra (scikit-learn, matplotlib; tqdm optional):
``pip install "jaxreg[demo]"``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SEED",
    "DEFAULT_STEPS",
    "Row",
    "format_markdown",
    "format_table",
    "rows_from_results",
    "run_demo",
]

DEFAULT_OUT = "jaxreg_demo"
DEFAULT_STEPS = 400
DEFAULT_SEED = 0

HIDDEN = (128, 64)
CLASSES = 10
LAYERS = ("hidden_0", "hidden_1", "out")
BATCH = 128
LEARNING_RATE = 1e-2
CHUNK = 25  # training steps per jitted call (one progress-bar update)
FIGURE = "demo.png"
FIGURE_DPI = 150
TABLE = "table.md"
RESULTS = "results.json"


@dataclass(frozen=True)
class Method:
    """One way to train: a name, strengths to try, and ``strength -> optimizer``."""

    key: str
    title: str
    strengths: tuple[float, ...]
    chosen: float  # the strength reported in the table
    make: Callable[[Any], optax.GradientTransformation]


@dataclass
class Row:
    """Result of one (method, strength) run.

    Attributes:
      method: method key (``none``, ``adamw``, ``l1``, ``group``).
      title: human-readable method name.
      strength: the regularization strength (0 for ``none``).
      chosen: whether this strength is the one shown in the table.
      test_accuracy: accuracy on the held-out 25% of the digits.
      zero_fraction: fraction of kernel entries that are exactly ``0.0``.
      dead_units: hidden units that :func:`jaxreg.prune_dense` removes (all
        incoming or all outgoing weights exactly zero).
      hidden_units: hidden units before pruning.
      params_before: kernel and bias entries before pruning.
      params_after: kernel and bias entries after pruning.
      features_after: layer widths after pruning.
      pruned_accuracy: test accuracy of the pruned network (same function, so
        equal to ``test_accuracy`` up to rounding).
    """

    method: str
    title: str
    strength: float
    chosen: bool
    test_accuracy: float
    zero_fraction: float
    dead_units: int
    hidden_units: int
    params_before: int
    params_after: int
    features_after: tuple[int, ...]
    pruned_accuracy: float


def _methods() -> list[Method]:
    lr = LEARNING_RATE
    kernels = jaxreg.kernels_only()
    hidden = jaxreg.path_mask(include=r"(^|/)hidden_\d+/kernel$")
    return [
        Method("none", "no regularization", (0.0,), 0.0, lambda s: optax.adam(lr)),
        Method(
            "adamw",
            "AdamW decay",
            (0.01, 0.1, 1.0),
            0.1,
            lambda s: jaxreg.regularized(optax.adam, lr, weight_decay=s, mask=kernels),
        ),
        Method(
            "l1",
            "L1, proximal_adam",
            (1e-4, 3e-4, 1e-3, 3e-3),
            1e-3,
            lambda s: jaxreg.proximal_adam(lr, l1=s, mask=kernels),
        ),
        Method(
            "group",
            "group lasso + pruning",
            (0.01, 0.03, 0.1, 0.3),
            0.1,
            lambda s: jaxreg.regularized(optax.adam, lr, group_lasso=s, mask=hidden),
        ),
    ]


# ----------------------------------------------------------------------------- model


def _mlp(features: Sequence[int]) -> Any:
    import flax.linen as nn

    class MLP(nn.Module):
        """``x → relu(Dense) → ... → Dense``; layers named as in ``LAYERS``."""

        features: tuple[int, ...]

        @nn.compact
        def __call__(self, x):
            for i, f in enumerate(self.features[:-1]):
                x = nn.relu(nn.Dense(f, name=f"hidden_{i}")(x))
            return nn.Dense(self.features[-1], name="out")(x)

    return MLP(tuple(features))


def _relu_np(x: Any) -> Any:
    return np.maximum(np.asarray(x), 0)


def _forward_np(params: Any, x: np.ndarray) -> np.ndarray:
    """The MLP in NumPy: any layer widths (pruned ones included), no compilation."""
    inner = params["params"]
    for name in LAYERS[:-1]:
        x = _relu_np(x @ np.asarray(inner[name]["kernel"]) + np.asarray(inner[name]["bias"]))
    return x @ np.asarray(inner[LAYERS[-1]]["kernel"]) + np.asarray(inner[LAYERS[-1]]["bias"])


def _accuracy(logits: Any, labels: Any) -> float:
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))


def _load_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)  # pixel values 0..16
    y = y.astype(np.int32)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y))


# --------------------------------------------------------------------------- progress


class _Progress:
    """A tqdm bar when tqdm is installed, else a plain progress line on ``stream``."""

    def __init__(self, total: int, stream: TextIO, enabled: bool):
        self.total, self.done, self.stream, self.enabled = total, 0, stream, enabled
        self.bar = None
        self.desc = ""
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, unit="step", file=stream, dynamic_ncols=True)

    def describe(self, desc: str) -> None:
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            pct = 100 * self.done / max(self.total, 1)
            self.stream.write(f"\r{self.desc:<24} {self.done:>6}/{self.total} steps ({pct:3.0f}%)")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- training


def _batch_indices(n: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """``(steps, BATCH)`` minibatch indices: epochs of random permutations."""
    epochs = steps * BATCH // n + 2
    idx = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return idx[: steps * BATCH].reshape(steps, BATCH)


def _train(
    method: Method,
    model: Any,
    params: Any,
    data: tuple[jax.Array, jax.Array],
    indices: np.ndarray,
    progress: _Progress,
) -> Any:
    """Trains one copy per strength at once; returns the stacked parameters (NumPy)."""
    x_train, y_train = data
    strengths = np.asarray(method.strengths, np.float32)
    k = len(method.strengths)

    def loss_fn(p, xb, yb):
        logits = model.apply(p, xb)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yb))

    def step(p, state, strength, xb, yb):
        tx = method.make(strength)
        grads = jax.grad(loss_fn)(p, xb, yb)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    vstep = jax.vmap(step, in_axes=(0, 0, 0, None, None))

    @jax.jit
    def run_chunk(stacked, states, chunk):
        def body(carry, batch_idx):
            p, s = carry
            return vstep(p, s, strengths, x_train[batch_idx], y_train[batch_idx]), None

        (stacked, states), _ = jax.lax.scan(body, (stacked, states), chunk)
        return stacked, states

    @jax.jit
    def init(params):
        stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (k, *a.shape)), params)
        return stacked, jax.vmap(lambda p, s: method.make(s).init(p))(stacked, strengths)

    stacked, states = init(params)
    progress.describe(method.key)
    steps = indices.shape[0]
    # Equal chunks (one compilation); a shorter last chunk compiles once more.
    for start in range(0, steps, CHUNK):
        chunk = indices[start : start + CHUNK]  # NumPy: jit takes it as is
        stacked, states = run_chunk(stacked, states, chunk)
        progress.update(int(chunk.shape[0]))
    return jax.device_get(stacked)


def _metrics_fn(model: Any, test: tuple[np.ndarray, np.ndarray]) -> Callable:
    """A jitted ``params -> (test accuracy, kernel zero fraction)`` (one compilation)."""
    x_test, y_test = jax.device_put(test[0]), jax.device_put(test[1])
    kernels = jaxreg.kernels_only()

    @jax.jit
    def metrics(params):
        hits = jnp.argmax(model.apply(params, x_test), axis=-1) == y_test
        return jnp.mean(hits.astype(jnp.float32)), jaxreg.sparsity(params, mask=kernels)

    return metrics


def _evaluate(
    method: Method, stacked: Any, metrics: Callable, test: tuple[np.ndarray, np.ndarray]
) -> tuple[list[Row], list[Any]]:
    x_test, y_test = test
    rows, trained = [], []
    for i, strength in enumerate(method.strengths):
        params = jax.tree.map(lambda a, i=i: a[i], stacked)  # NumPy slices: no compilation
        accuracy, zeros = metrics(params)
        # NumPy ReLU: prune_dense runs on the host; a jnp one would compile per shape.
        pruned, report = jaxreg.prune_dense(params, activation=_relu_np, layers=LAYERS)
        rows.append(
            Row(
                method=method.key,
                title=method.title,
                strength=float(strength),
                chosen=math.isclose(strength, method.chosen),
                test_accuracy=float(accuracy),
                zero_fraction=float(zeros),
                dead_units=sum(report.features_before[:-1]) - sum(report.features_after[:-1]),
                hidden_units=sum(report.features_before[:-1]),
                params_before=report.params_before,
                params_after=report.params_after,
                features_after=tuple(report.features_after),
                pruned_accuracy=_accuracy(_forward_np(pruned, x_test), y_test),
            )
        )
        trained.append(params)
    return rows, trained


# ------------------------------------------------------------------------------ output


def format_table(rows: Sequence[Row]) -> str:
    """The summary table (one line per row) as text.

    Args:
      rows: results, typically the chosen strength of each method.

    Returns:
      A multi-line string with aligned columns.

    Example:
      >>> row = Row("l1", "L1, proximal_adam", 1e-3, True, 0.97, 0.9, 80, 192, 17226,
      ...           5000, (50, 40, 10), 0.97)
      >>> print(format_table([row]).splitlines()[2])  # doctest: +NORMALIZE_WHITESPACE
      L1, proximal_adam         0.001    0.970        90.0%     80/192
      5000 / 17226 (29.0%)        0.970
    """
    head = (
        "method",
        "strength",
        "test acc",
        "zero weights",
        "dead units",
        "params after pruning",
        "pruned acc",
    )
    lines = [
        f"{head[0]:<22} {head[1]:>8} {head[2]:>8} {head[3]:>12} {head[4]:>10}"
        f"   {head[5]:<22} {head[6]:>10}"
    ]
    lines.append("-" * len(lines[0]))
    for r in rows:
        strength = "-" if r.strength == 0 else f"{r.strength:g}"
        params = (
            f"{r.params_after} / {r.params_before} ({100 * r.params_after / r.params_before:.1f}%)"
        )
        lines.append(
            f"{r.title:<22} {strength:>8} {r.test_accuracy:>8.3f} {100 * r.zero_fraction:>11.1f}%"
            f" {f'{r.dead_units}/{r.hidden_units}':>10}   {params:<22} {r.pruned_accuracy:>10.3f}"
        )
    return "\n".join(lines)


def format_markdown(rows: Sequence[Row]) -> str:
    """The summary table as Markdown (what README.md and the docs show).

    Args:
      rows: results, typically the chosen strength of each method.

    Returns:
      A Markdown table, one line per row, no trailing newline.

    Example:
      >>> row = Row("l1", "L1, proximal_adam", 1e-3, True, 0.97, 0.9, 80, 192, 17226,
      ...           5000, (50, 40, 10), 0.97)
      >>> print(format_markdown([row]).splitlines()[2])
      | L1, proximal_adam | 0.001 | 0.970 | 90.0% | 80/192 | 5000 / 17226 (29.0%) | 0.970 |
    """
    lines = [
        "| method | strength λ | test acc | zero weights | dead units "
        "| params after pruning | pruned acc |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        strength = "-" if r.strength == 0 else f"{r.strength:g}"
        share = 100 * r.params_after / r.params_before
        lines.append(
            f"| {r.title} | {strength} | {r.test_accuracy:.3f} | {100 * r.zero_fraction:.1f}% "
            f"| {r.dead_units}/{r.hidden_units} | {r.params_after} / {r.params_before} "
            f"({share:.1f}%) | {r.pruned_accuracy:.3f} |"
        )
    return "\n".join(lines)


def rows_from_results(results: dict) -> list[Row]:
    """The :class:`Row` objects stored in a ``results.json`` (as loaded by ``json.load``)."""
    return [Row(**{**r, "features_after": tuple(r["features_after"])}) for r in results["rows"]]


_COLORS = {"none": "tab:gray", "adamw": "tab:blue", "l1": "tab:red", "group": "tab:green"}


def _overlaps(a: Any, b: Any, pad: float = 1.0) -> bool:
    return not (
        a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0 or b.y1 + pad <= a.y0
    )


# Candidate label offsets (points) around a marker, tried in order.
_OFFSETS = (
    (6, 4),
    (6, -11),
    (-6, 4),
    (-6, -11),
    (6, 13),
    (-6, 13),
    (6, -20),
    (-6, -20),
    (14, -4),
    (-14, -4),
    (6, 22),
    (-6, 22),
    (6, -29),
    (-6, -29),
    (20, 10),
    (-20, 10),
    (20, -17),
    (-20, -17),
    (6, 31),
    (-6, 31),
)


def place_labels(
    ax: Any,
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    colors: Sequence[str],
    renderer: Any,
    fontsize: float = 8,
) -> list[Any]:
    """Labels every point, greedily avoiding other labels, markers and the frame.

    Each label is tried at a list of offsets around its point; the first offset
    whose box lies inside the axes and overlaps no earlier label and no marker is
    kept (the first candidate if none fits).

    Returns:
      The :class:`matplotlib.text.Annotation` objects, in the order of ``points``.
    """
    to_display = ax.transData.transform
    frame = ax.get_window_extent(renderer)
    dpi_scale = ax.figure.dpi / 72.0
    marker_boxes = []
    from matplotlib.transforms import Bbox

    for x, y in points:
        px, py = to_display((x, y))
        r = 4 * dpi_scale
        marker_boxes.append(Bbox([[px - r, py - r], [px + r, py + r]]))
    placed: list[Any] = []
    boxes: list[Any] = []
    legend = ax.get_legend()
    if legend is not None:
        boxes.append(legend.get_window_extent(renderer))
    for (x, y), text, color in zip(points, texts, colors, strict=True):
        best = None
        for dx, dy in _OFFSETS:
            ann = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                ha="left" if dx >= 0 else "right",
                va="bottom" if dy >= 0 else "top",
                fontsize=fontsize,
                color=color,
            )
            box = ann.get_window_extent(renderer)
            inside = (
                box.x0 >= frame.x0 + 2
                and box.x1 <= frame.x1 - 2
                and box.y0 >= frame.y0 + 2
                and box.y1 <= frame.y1 - 2
            )
            clash = any(_overlaps(box, b) for b in boxes + marker_boxes)
            if inside and not clash:
                best = (ann, box)
                break
            ann.remove()
        if best is None:  # nothing fits: keep the first candidate (a test would catch it)
            dx, dy = _OFFSETS[0]
            ann = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                fontsize=fontsize,
                color=color,
            )
            best = (ann, ann.get_window_extent(renderer))
        placed.append(best[0])
        boxes.append(best[1])
    return placed


def _figure(rows: list[Row], kernels: dict[str, np.ndarray], path: str) -> Any:
    """Draws the figure and saves it (150 dpi); returns the Figure (tests inspect it)."""
    # A bare Figure renders with Agg on savefig: no pyplot, no global backend change.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chosen = [r for r in rows if r.chosen]
    fig = Figure(figsize=(13, 8), dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.25))
    lim = max(float(np.max(np.abs(w))) for w in kernels.values())
    bins = np.linspace(-lim, lim, 81)
    for col, row in enumerate(chosen):
        ax = fig.add_subplot(grid[0, col])
        w = kernels[row.method]
        zeros = int(np.sum(w == 0))
        ax.hist(
            w[w != 0],
            bins=list(bins),
            histtype="stepfilled",
            color=_COLORS[row.method],
            alpha=0.8,
            label="non-zero",
        )
        if zeros:
            ax.bar([0.0], [zeros], width=bins[1] - bins[0], color="black", label="exactly 0")
        ax.set_yscale("log")
        top = max(zeros, int(np.max(np.histogram(w[w != 0], bins=bins)[0])), 1)
        ax.set_ylim(0.8, top * 40)  # room above the bars for the text and the legend
        strength = "" if row.strength == 0 else f" (λ={row.strength:g})"
        ax.set_title(f"{row.title}{strength}", fontsize=10)
        ax.set_xlabel("kernel weight")
        ax.text(
            0.03,
            0.97,
            f"exact zeros: {100 * row.zero_fraction:.1f}%\ntest acc: {row.test_accuracy:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
        if col == 0:
            ax.set_ylabel("count (log)")
        ax.legend(loc="upper right", fontsize=8)

    ax_zero = fig.add_subplot(grid[1, :2])
    ax_size = fig.add_subplot(grid[1, 2:])
    points: dict[Any, list] = {ax_zero: [], ax_size: []}
    for key in _COLORS:
        rs = [r for r in rows if r.method == key]
        if not rs:
            continue
        style: dict[str, Any] = {"color": _COLORS[key], "marker": "o", "label": rs[0].title}
        zero_xy = [(100 * r.zero_fraction, r.test_accuracy) for r in rs]
        size_xy = [(r.params_after, r.pruned_accuracy) for r in rs]
        ax_zero.plot(*zip(*zero_xy, strict=True), **style)
        ax_size.plot(*zip(*size_xy, strict=True), **style)
        for r, zxy, sxy in zip(rs, zero_xy, size_xy, strict=True):
            label = f"λ={r.strength:g}"
            points[ax_zero].append((zxy, label, _COLORS[key]))
            points[ax_size].append((sxy, label, _COLORS[key]))
    ax_zero.set_xlabel("kernel entries exactly zero (%)")
    ax_zero.set_ylabel("test accuracy")
    ax_zero.set_title("Accuracy against sparsity (labels: strength λ)", fontsize=10)
    ax_size.set_xscale("log")
    ax_size.set_xlabel("parameters after prune_dense (log)")
    ax_size.set_ylabel("test accuracy of the pruned net")
    ax_size.set_title("Accuracy against model size after pruning (labels: λ)", fontsize=10)
    accs = [r.test_accuracy for r in rows] + [r.pruned_accuracy for r in rows]
    low, high = min(accs), max(accs)
    span = max(high - low, 0.02)
    # Room below the lowest point for the legend and above the highest for labels.
    for ax in (ax_zero, ax_size):
        ax.set_ylim(low - 0.9 * span, min(high + 0.3 * span, 1.0 + 0.3 * span))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    xs = [100 * r.zero_fraction for r in rows]
    ax_zero.set_xlim(min(xs) - 12, max(xs) + 12)
    sizes = [r.params_after for r in rows]
    ax_size.set_xlim(min(sizes) / 1.8, max(sizes) * 1.8)
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = [t for t in (1000, 2000, 5000, 10000, 20000, 50000) if min(sizes) / 1.8 < t]
    ax_size.xaxis.set_major_locator(FixedLocator(ticks))
    ax_size.xaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax_size.xaxis.set_minor_locator(NullLocator())
    ax_size.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle("jaxreg demo: an MLP on scikit-learn digits, four ways to regularize")
    fig.canvas.draw()  # fixes the layout, so label boxes are final
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax, entries in points.items():
        xy, texts, colors = zip(*entries, strict=True)
        place_labels(ax, xy, texts, colors, renderer)
    fig.savefig(path, dpi=FIGURE_DPI)
    return fig


# --------------------------------------------------------------------------------- run


def run_demo(
    out: str = DEFAULT_OUT,
    steps: int = DEFAULT_STEPS,
    seed: int = DEFAULT_SEED,
    *,
    progress: bool = True,
    stream: TextIO | None = None,
) -> list[Row]:
    """Runs the experiment, prints the table and writes the figure and results.

    Args:
      out: output folder (created if missing); receives ``demo.png`` and
        ``results.json``.
      steps: Adam steps per model (minibatches of 128).
      seed: seeds the train/test split, the initialization and the batch order.
      progress: show a progress bar (tqdm if installed, else a plain line).
      stream: where the table goes (default ``sys.stdout``); the progress bar
        goes to ``sys.stderr``.

    Returns:
      One :class:`Row` per (method, strength).
    """
    stream = sys.stdout if stream is None else stream
    start = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    x_train, x_test, y_train, y_test = _load_digits(seed)
    model = _mlp((*HIDDEN, CLASSES))
    params = jax.jit(model.init)(jax.random.key(seed), x_train[:1])
    indices = _batch_indices(len(x_train), steps, np.random.default_rng(seed))
    methods = _methods()
    bar = _Progress(steps * len(methods), sys.stderr, progress)
    rows: list[Row] = []
    kernels: dict[str, np.ndarray] = {}
    # jax.device_put, not jnp.asarray: the latter compiles a small program per shape.
    data = (jax.device_put(x_train), jax.device_put(y_train))
    metrics = _metrics_fn(model, (x_test, y_test))
    try:
        for method in methods:
            stacked = _train(method, model, params, data, indices, bar)
            method_rows, trained = _evaluate(method, stacked, metrics, (x_test, y_test))
            rows.extend(method_rows)
            best = next(i for i, r in enumerate(method_rows) if r.chosen)
            leaves = jax.tree.leaves(_masks_kernels(trained[best]))
            kernels[method.key] = np.concatenate([np.ravel(np.asarray(w)) for w in leaves])
    finally:
        bar.close()
    figure = os.path.join(out, FIGURE)
    _figure(rows, kernels, figure)
    elapsed = time.perf_counter() - start
    with open(os.path.join(out, RESULTS), "w") as f:
        json.dump(
            {
                "steps": steps,
                "seed": seed,
                "seconds": round(elapsed, 1),
                "machine": _machine(),
                "versions": _versions(),
                "rows": [asdict(r) for r in rows],
            },
            f,
            indent=1,
        )
        f.write("\n")
    with open(os.path.join(out, TABLE), "w") as f:
        f.write(format_markdown([r for r in rows if r.chosen]) + "\n")
    print(
        f"\nMLP 64-{'-'.join(map(str, HIDDEN))}-{CLASSES} on digits "
        f"({len(x_train)} train / {len(x_test)} test), Adam lr {LEARNING_RATE:g}, "
        f"{steps} steps of {BATCH}, seed {seed}:\n",
        file=stream,
    )
    print(format_table([r for r in rows if r.chosen]), file=stream)
    print(
        "\nzero weights: kernel entries exactly 0.0; dead units: hidden units with all-zero "
        "incoming or outgoing weights,\nremoved by jaxreg.prune_dense (the pruned net computes "
        "the same function, see 'pruned acc').",
        file=stream,
    )
    print(
        f"\nfigure: {figure}\nall strengths: {os.path.join(out, RESULTS)}\n"
        f"markdown table: {os.path.join(out, TABLE)}\ndone in {elapsed:.1f} s",
        file=stream,
    )
    return rows


def _machine() -> str:
    import platform

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"JAX backend {jax.default_backend()}"
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("jax", "jaxlib", "optax", "flax", "scikit-learn", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - the demo imports them all
            found[name] = "?"
    return found


def _masks_kernels(params: Any) -> Any:
    """The kernel leaves of ``params`` (others replaced by ``None``)."""
    flags = jaxreg.kernels_only()(params)
    return jax.tree.map(lambda w, m: w if m else None, params, flags)
