"""Masks and per-leaf strengths chosen by parameter path.

A parameter's *path* is the chain of keys that leads to it, joined by ``/``:
dict keys by their key, attributes by their name, sequence indices as integers.
Flax's boxes are looked through: an ``nnx.Variable`` (what ``nnx.Optimizer`` hands
to ``tx.init``) and a linen ``nn.Partitioned`` have the path of the array they
hold, without a trailing ``value``. So the same pattern sees the same path on

* linen params: ``Dense_0/kernel``, ``MultiHeadDotProductAttention_0/query/kernel``;
* an ``nnx.State`` (wrapped in Variables or pure): ``layers/0/kernel``;
* an equinox model filtered to its arrays (``eqx.filter(model, eqx.is_array)``):
  ``layers/0/weight``.

Patterns are regular expressions searched (``re.search``) in the path; anchor
them (``r"(^|/)bias$"``) when a bare substring could match too much. A pattern
that matches no parameter is an error that lists the paths, so a typo can never
silently regularize a LayerNorm.

Every mask returned here is a plain callable ``params -> pytree of bools`` (True =
regularize) and every path-strength object has ``__jaxreg_strength__``: both are
accepted by every jaxreg penalty, prox and transform, and by
``optax.inject_hyperparams`` when ``mask`` is listed in ``static_args``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np

from jaxreg import _checks

__all__ = [
    "kernels_only",
    "no_bias_no_norm",
    "param_paths",
    "path_mask",
    "path_strengths",
]

Pattern = str | re.Pattern

_STATIC_ARGS_HINT = (
    "`mask` was called with a step count, not with the params: "
    "`optax.inject_hyperparams` treats every callable argument as a schedule. "
    "Mark the mask static: `optax.inject_hyperparams(factory, "
    "static_args=('mask',))(..., mask=mask)`."
)


# ----------------------------------------------------------------------------
# paths


def _is_box(x: Any) -> bool:
    """An ``nnx.Variable`` or a linen ``AxisMetadata`` box (looked through by paths)."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(x, nnx.Variable):
        return True
    meta = sys.modules.get("flax.core.meta")
    return meta is not None and isinstance(x, meta.AxisMetadata)


def _unbox(x: Any) -> Any:
    """The content of an ``nnx.Variable`` or linen metadata box (``x`` otherwise)."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(x, nnx.Variable):
        return x.get_value()
    return x.unbox() if _is_box(x) else x


def _is_module(x: Any) -> bool:
    eqx = sys.modules.get("equinox")
    return eqx is not None and isinstance(x, eqx.Module)


def _key_name(key: Any) -> str:
    tu = jax.tree_util
    if isinstance(key, tu.DictKey):
        return str(key.key)
    if isinstance(key, tu.GetAttrKey):
        return key.name
    if isinstance(key, tu.SequenceKey):
        return str(key.idx)
    if isinstance(key, tu.FlattenedIndexKey):
        return str(key.key)
    return str(key).strip(".[]'\"")


def _join(path: tuple) -> str:
    return "/".join(_key_name(k) for k in path)


class _Entry:
    """One parameter: its path string, the leaf (or box) and its equinox owner."""

    __slots__ = ("leaf", "owner", "path")

    def __init__(self, path: str, leaf: Any, owner: type | None):
        self.path = path
        self.leaf = leaf
        self.owner = owner

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def ndim(self) -> int:
        leaf = _unbox(self.leaf)
        return int(np.ndim(leaf)) if not hasattr(leaf, "ndim") else int(leaf.ndim)


def _entries(tree: Any) -> tuple[list[_Entry], Any]:
    """Parameters of ``tree`` in flatten order, and the treedef with boxes as leaves."""
    leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=_is_box)
    out: list[_Entry] = []

    def walk(node: Any, prefix: tuple, owner: type | None) -> None:
        def stop(x):
            return x is not node and (_is_box(x) or _is_module(x))

        for path, leaf in jax.tree_util.tree_flatten_with_path(node, is_leaf=stop)[0]:
            full = prefix + tuple(path)
            if _is_module(leaf) and not _is_box(leaf):
                walk(leaf, full, type(leaf))
            else:
                out.append(_Entry(_join(full), leaf, owner))

    walk(tree, (), type(tree) if _is_module(tree) else None)
    if len(out) != len(leaves):  # pragma: no cover - defensive
        raise AssertionError("jaxreg: parameter walk disagrees with tree_flatten")
    return out, treedef


def param_paths(tree: Any) -> list[str]:
    """The path of every parameter in ``tree``, as :func:`path_mask` matches them.

    Keys are joined by ``/`` (dict keys, attribute names, sequence indices);
    ``nnx.Variable`` and linen ``Partitioned`` boxes are looked through. Use it to
    write patterns.

    Args:
      tree: linen params, an ``nnx.State``, an equinox model filtered to arrays, or
        any pytree.

    Returns:
      A list of strings in ``jax.tree.leaves`` order.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "blocks": [{"scale": jnp.ones(3)}]}
      >>> jaxreg.param_paths(params)
      ['Dense_0/bias', 'Dense_0/kernel', 'blocks/0/scale']
    """
    return [e.path for e in _entries(tree)[0]]


# ----------------------------------------------------------------------------
# pattern checks


def _compile(name: str, patterns: Any) -> tuple[re.Pattern, ...]:
    if isinstance(patterns, str | re.Pattern):
        patterns = (patterns,)
    if not isinstance(patterns, Iterable) or isinstance(patterns, Mapping):
        raise ValueError(
            f"`{name}` must be a regular expression (str) or a sequence of them, got "
            f"{type(patterns).__name__}."
        )
    out = []
    for p in patterns:
        if isinstance(p, re.Pattern):
            out.append(p)
            continue
        if not isinstance(p, str):
            raise ValueError(
                f"`{name}` must hold regular expressions (str or re.Pattern), got "
                f"{type(p).__name__} ({p!r:.60})."
            )
        try:
            out.append(re.compile(p))
        except re.error as err:
            raise ValueError(
                f"`{name}`: {p!r} is not a valid regular expression ({err})."
            ) from None
    return tuple(out)


def _format_paths(paths: list[str]) -> str:
    if not paths:
        return "  (the tree has no parameters)"
    shown = paths if len(paths) <= 60 else [*paths[:60], f"... and {len(paths) - 60} more"]
    return "\n".join(f"  {p}" for p in shown)


def _check_used(name: str, pattern: re.Pattern, paths: list[str]) -> None:
    if not any(pattern.search(p) for p in paths):
        raise ValueError(
            f"`{name}` pattern {pattern.pattern!r} matches no parameter (a typo would "
            "silently change what is regularized). Patterns are searched with re.search "
            "in these paths (masked-out leaves of an enclosing optax.masked are not "
            f"seen):\n{_format_paths(paths)}"
        )


def _looks_like_count(entries: list[_Entry]) -> bool:
    """Called by ``inject_hyperparams`` with its int32 step count instead of params."""
    if len(entries) != 1 or entries[0].path != "":
        return False
    leaf = entries[0].leaf
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        return isinstance(leaf, int) and not isinstance(leaf, bool)
    return np.ndim(leaf) == 0 and np.issubdtype(np.dtype(dtype), np.integer)


def _state_entries(tree: Any, entries: list[_Entry]) -> list[bool]:
    """Which entries are model state rather than trainable parameters (never regularized).

    An ``nnx.Variable`` that is not an ``nnx.Param`` (``BatchStat``: BatchNorm's
    ``mean``/``var``; caches, RNG state) and, in a linen variables dict
    ``{"params": ..., "batch_stats": ...}``, everything outside ``"params"``.
    """
    nnx = sys.modules.get("flax.nnx")
    linen_vars = isinstance(tree, Mapping) and "params" in tree and len(tree) > 1
    out = []
    for e in entries:
        boxed = nnx is not None and isinstance(e.leaf, nnx.Variable)
        state = boxed and nnx is not None and not isinstance(e.leaf, nnx.Param)
        if linen_vars and e.path.split("/", 1)[0] != "params":
            state = True
        out.append(state)
    return out


def match_by_path(mask_tree: Any, tree: Any) -> Any | None:
    """A mask of another container type matched to ``tree`` by parameter path, or None.

    ``nnx.Optimizer`` calls ``tx.init`` on an ``nnx.State`` of ``Variable`` boxes and
    ``tx.update`` on plain arrays, so a bool mask made with
    ``jax.tree.map(pred, nnx.state(model, nnx.Param))`` (bools in ``Param`` boxes)
    or written as a plain dict has the right paths but not the treedef. Each mask
    leaf covers the parameters whose path equals its path or lies under it; the
    match is accepted only when every parameter is covered exactly once and every
    mask leaf covers at least one parameter.
    """
    try:
        mask_entries, _ = _entries(mask_tree)
        param_entries, treedef = _entries(tree)
    except Exception:  # pragma: no cover - exotic trees: no match
        return None
    masks = []
    for e in mask_entries:
        leaf = _unbox(e.leaf)
        if not isinstance(leaf, bool | np.bool_):
            return None
        masks.append((tuple(e.path.split("/")) if e.path else (), bool(leaf)))
    used = [False] * len(masks)
    flags = []
    for e in param_entries:
        parts = tuple(e.path.split("/")) if e.path else ()
        hits = [i for i, (m, _) in enumerate(masks) if parts[: len(m)] == m]
        if len(hits) != 1:
            return None
        used[hits[0]] = True
        flags.append(masks[hits[0]][1])
    if not all(used):
        return None
    return jax.tree_util.tree_unflatten(treedef, flags)


# ----------------------------------------------------------------------------
# masks


class PathMask:
    """A mask function ``params -> pytree of bools`` built from a per-leaf rule.

    Not a pytree (so jaxreg, optax and equinox all take it for a function). Model
    state (``nnx.Variable`` s that are not ``nnx.Param``, linen collections other
    than ``"params"``) is never selected. The result has the structure of the
    params, with one Python bool per array (per ``nnx.Variable`` box at
    ``nnx.Optimizer``'s init, which is a prefix of the params and so also accepted).
    """

    def __init__(self, rule: Callable[[list[_Entry]], list[bool]], description: str):
        self._rule = rule
        self._description = description

    def __call__(self, params: Any) -> Any:
        entries, treedef = _entries(params)
        if _looks_like_count(entries):
            raise ValueError(_STATIC_ARGS_HINT)
        flags = self._rule(entries)
        state = _state_entries(params, entries)
        flags = [bool(f) and not st for f, st in zip(flags, state, strict=True)]
        return jax.tree_util.tree_unflatten(treedef, flags)

    def __repr__(self) -> str:
        return self._description


def path_mask(include: Any = (), exclude: Any = ()) -> PathMask:
    r"""A mask that regularizes the parameters whose path matches ``include``, minus ``exclude``.

    Rule per parameter with path ``s`` (see :func:`param_paths`):
    ``regularize(s) = (include == () or any(re.search(p, s) for p in include))
    and not any(re.search(q, s) for q in exclude)``.

    Paths: ``Dense_0/kernel`` (linen), ``layers/0/kernel`` (``nnx.State``, at both
    ``nnx.Optimizer``'s init on Variables and its update on plain arrays),
    ``layers/0/weight`` (``eqx.filter(model, eqx.is_array)``). When the mask is
    applied, every pattern must match at least one parameter, otherwise a
    ``ValueError`` lists the paths it could have matched.

    Under :func:`optax.inject_hyperparams` list the mask in ``static_args``
    (``static_args=("mask",)``): otherwise it is taken for a schedule and called
    with the step count, which raises a ``ValueError`` saying so.

    Args:
      include: regular expression(s) (``str`` or compiled); empty = every leaf.
      exclude: regular expression(s); a matching leaf is not regularized.

    Returns:
      A callable :class:`PathMask` accepted as ``mask=`` by every jaxreg penalty and
      transform (and by ``optax.masked`` / ``optax.adamw``).

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> params = {"Dense_0": {"kernel": jnp.array([[0.3, -2.0]]), "bias": jnp.array([0.3])}}
      >>> mask = jaxreg.path_mask(include=r"kernel$")
      >>> mask(params)
      {'Dense_0': {'bias': False, 'kernel': True}}
      >>> tx = optax.chain(optax.sgd(0.5), jaxreg.l1_prox(1.0, learning_rate=0.5, mask=mask))
      >>> zeros = {"Dense_0": {"kernel": jnp.zeros((1, 2)), "bias": jnp.zeros(1)}}
      >>> u, _ = tx.update(zeros, tx.init(params), params)
      >>> new = optax.apply_updates(params, u)
      >>> print(new["Dense_0"]["kernel"], new["Dense_0"]["bias"])
      [[ 0.  -1.5]] [0.3]
    """
    inc = _compile("include", include)
    exc = _compile("exclude", exclude)

    def rule(entries: list[_Entry]) -> list[bool]:
        paths = [e.path for e in entries]
        for p in inc:
            _check_used("include", p, paths)
        for q in exc:
            _check_used("exclude", q, paths)
        return [
            (not inc or any(p.search(s) for p in inc)) and not any(q.search(s) for q in exc)
            for s in paths
        ]

    desc = (
        f"path_mask(include={tuple(p.pattern for p in inc)!r}, "
        f"exclude={tuple(q.pattern for q in exc)!r})"
    )
    return PathMask(rule, desc)


# Names the ready-made masks rely on. Flax (linen and nnx) names parameters by
# role; equinox names everything ``weight``/``bias`` and is told apart by the
# module that holds the array.
_FLAX_KERNEL = "kernel"
# Norm parameters and statistics: Flax ``scale`` (and BatchNorm's ``mean``/``var``
# statistics in a pure state dict), Haiku ``scale``/``offset``.
_NORM_NAMES = frozenset({"scale", "offset", "mean", "var"})
_EMBEDDING_NAMES = frozenset({"embedding", "embeddings"})  # Flax Embed, Haiku Embed
# Biases: ``bias`` (every framework), ``bias_*`` / ``*_bias`` (equinox GRUCell.bias_n,
# torch ``in_proj_bias``, ``bias_hh_l0``), Haiku's ``b``.
_BIAS = re.compile(r"^(b|bias|bias_.*|.*_bias(_.*)?)$")
# Weight matrices: equinox/torch ``weight`` and ``weight_*`` (GRUCell/LSTMCell
# ``weight_ih``/``weight_hh``), Haiku's ``w``.
_WEIGHT = re.compile(r"^(w|weight|weight_.*)$")


def _is_bias(e: _Entry) -> bool:
    return bool(_BIAS.match(e.name))


def _eqx_classes(*names: str) -> tuple[type, ...]:
    eqx = sys.modules.get("equinox")
    if eqx is None:
        return ()
    return tuple(getattr(eqx.nn, n) for n in names if hasattr(eqx.nn, n))


def _is_norm(e: _Entry) -> bool:
    if e.name in _NORM_NAMES:
        return True
    norms = _eqx_classes("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm")
    if e.owner is not None and norms and issubclass(e.owner, norms):
        return True
    # A 1-D ``weight`` outside a known equinox layer is a norm scale (torch layout).
    return e.name == "weight" and e.ndim <= 1 and not _is_eqx_layer(e)


def _is_eqx_layer(e: _Entry) -> bool:
    layers = _eqx_classes("Linear", "Conv", "ConvTranspose", "Embedding", "GRUCell", "LSTMCell")
    return e.owner is not None and bool(layers) and issubclass(e.owner, layers)


def _is_embedding(e: _Entry) -> bool:
    if e.name in _EMBEDDING_NAMES:
        return True
    emb = _eqx_classes("Embedding")
    return e.owner is not None and bool(emb) and issubclass(e.owner, emb)


def _is_kernel(e: _Entry) -> bool:
    if e.name == _FLAX_KERNEL:
        return True
    if not _WEIGHT.match(e.name) or _is_norm(e) or _is_embedding(e):
        return False
    return e.ndim >= 2 or (e.name == "weight" and _is_eqx_layer(e))


def _nothing_selected(name: str, entries: list[_Entry], what: str) -> ValueError:
    return ValueError(
        f"`mask` {name}() selects no parameter: it regularizes {what}. Use "
        f"jaxreg.path_mask for other names. The paths are:\n"
        f"{_format_paths([e.path for e in entries])}"
    )


def kernels_only(exclude: Any = ()) -> PathMask:
    r"""A mask that regularizes weight matrices and convolution kernels only.

    Selected: leaves named ``kernel`` (Flax ``Dense``, ``DenseGeneral``, ``Conv``,
    ``ConvTranspose``, ``Einsum``, the ``query/key/value/out`` kernels of
    ``MultiHeadAttention``, linen and nnx), and leaves named ``weight`` with
    ``ndim >= 2`` that are not held by an ``eqx.nn.Embedding`` or a normalization
    layer (equinox ``Linear``, ``Conv*``, ``ConvTranspose*``, the projections of
    ``MultiheadAttention``; torch-layout dicts), ``weight_*`` with ``ndim >= 2``
    (equinox ``GRUCell``/``LSTMCell`` ``weight_ih``/``weight_hh``) and Haiku's
    ``w``. Not selected: biases (``bias``, ``bias_*``, ``*_bias``, Haiku's ``b``),
    norm parameters (``scale``, ``offset``; equinox
    ``LayerNorm/RMSNorm/GroupNorm/BatchNorm.weight``), embeddings (``embedding``,
    ``embeddings``; ``eqx.nn.Embedding.weight``) and anything else. Model state is
    never selected: ``nnx.Variable`` s that are not ``nnx.Param`` (BatchNorm's
    ``mean``/``var``) and linen collections other than ``"params"``.

    Args:
      exclude: extra regular expression(s) of paths to leave out (e.g. the output
        head ``r"^head/"``). Each must match some parameter.

    Returns:
      A callable mask. It raises ``ValueError`` (listing the paths) if it would
      select nothing.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "LayerNorm_0": {"scale": jnp.ones(3), "bias": jnp.zeros(3)},
      ...           "Embed_0": {"embedding": jnp.ones((5, 2))}}
      >>> jaxreg.kernels_only()(params)  # doctest: +NORMALIZE_WHITESPACE
      {'Dense_0': {'bias': False, 'kernel': True}, 'Embed_0': {'embedding': False},
       'LayerNorm_0': {'bias': False, 'scale': False}}
    """
    exc = _compile("exclude", exclude)
    rule = _ready_made_rule("kernels_only", _is_kernel, exc, "leaves named kernel or weight")
    return PathMask(rule, f"kernels_only(exclude={tuple(q.pattern for q in exc)!r})")


def _ready_made_rule(
    name: str, select: Callable[[_Entry], bool], exc: tuple[re.Pattern, ...], what: str
) -> Callable[[list[_Entry]], list[bool]]:
    """The rule of a ready-made mask: ``select`` minus ``exclude``; never empty."""

    def rule(entries: list[_Entry]) -> list[bool]:
        paths = [e.path for e in entries]
        for q in exc:
            _check_used("exclude", q, paths)
        flags = [select(e) and not any(q.search(e.path) for q in exc) for e in entries]
        if entries and not any(flags):
            raise _nothing_selected(name, entries, what)
        return flags

    return rule


def no_bias_no_norm(*, embeddings: bool = True, exclude: Any = ()) -> PathMask:
    r"""A mask that skips biases and normalization parameters (AdamW's usual recipe).

    Skipped: biases (``bias`` in every framework, ``bias_*`` and ``*_bias`` such as
    equinox ``GRUCell.bias_n`` or torch ``in_proj_bias``, Haiku's ``b``),
    normalization parameters (``scale``: Flax ``LayerNorm``, ``BatchNorm``,
    ``RMSNorm``, ``GroupNorm``; Haiku ``scale``/``offset``; in equinox every array of
    ``LayerNorm``, ``RMSNorm``, ``GroupNorm``, ``BatchNorm``; a 1-D ``weight`` outside
    an equinox layer) and model state (``nnx.Variable`` s that are not ``nnx.Param``,
    e.g. BatchNorm ``mean``/``var``, also by name in a pure state dict; linen
    collections other than ``"params"``). With ``embeddings=False`` the embedding
    tables are skipped too (``embedding``/``embeddings``: Flax/Haiku ``Embed``;
    ``eqx.nn.Embedding.weight``). Everything else is regularized.

    Args:
      embeddings: whether embedding tables are regularized.
      exclude: extra regular expression(s) of paths to leave out.

    Returns:
      A callable mask. It raises ``ValueError`` (listing the paths) if it would
      select nothing.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "LayerNorm_0": {"scale": jnp.ones(3), "bias": jnp.zeros(3)},
      ...           "Embed_0": {"embedding": jnp.ones((5, 2))}}
      >>> jaxreg.no_bias_no_norm(embeddings=False)(params)  # doctest: +NORMALIZE_WHITESPACE
      {'Dense_0': {'bias': False, 'kernel': True}, 'Embed_0': {'embedding': False},
       'LayerNorm_0': {'bias': False, 'scale': False}}
    """
    if not isinstance(embeddings, bool):
        raise ValueError(f"`embeddings` must be True or False, got {embeddings!r}.")
    exc = _compile("exclude", exclude)

    def keep(e: _Entry) -> bool:
        if _is_bias(e) or _is_norm(e):
            return False
        return embeddings or not _is_embedding(e)

    rule = _ready_made_rule("no_bias_no_norm", keep, exc, "everything but biases and norms")

    desc = f"no_bias_no_norm(embeddings={embeddings!r}, exclude={tuple(q.pattern for q in exc)!r})"
    return PathMask(rule, desc)


# ----------------------------------------------------------------------------
# strengths


class PathStrengths:
    """Per-leaf strengths chosen by path; see :func:`path_strengths`.

    Not callable and not a pytree, so it is never taken for a schedule or a mask.
    ``values`` holds every strength (patterns' and default), so transforms can
    tell whether a step count is needed.
    """

    def __init__(self, patterns: tuple[re.Pattern, ...], strengths: tuple, default: Any):
        self._patterns = patterns
        self._strengths = strengths
        self.default = default
        self.values = (*strengths, default)

    def __jaxreg_strength__(self, params: Any) -> Any:
        entries, treedef = _entries(params)
        paths = [e.path for e in entries]
        for p in self._patterns:
            _check_used("strength", p, paths)
        out = []
        for s in paths:
            hits = [i for i, p in enumerate(self._patterns) if p.search(s)]
            if len(hits) > 1:
                pats = ", ".join(repr(self._patterns[i].pattern) for i in hits)
                raise ValueError(
                    f"`strength`: the parameter {s!r} is matched by several patterns of "
                    f"path_strengths ({pats}); make them exclusive (anchor them, e.g. "
                    r"r'(^|/)kernel$')."
                )
            out.append(self._strengths[hits[0]] if hits else self.default)
        return jax.tree_util.tree_unflatten(treedef, out)

    def __repr__(self) -> str:
        items = ", ".join(
            f"{p.pattern!r}: {s!r}" for p, s in zip(self._patterns, self._strengths, strict=True)
        )
        return f"path_strengths({{{items}}}, default={self.default!r})"


def path_strengths(mapping: Mapping[Pattern, Any], default: Any = 0.0) -> PathStrengths:
    r"""Per-leaf strengths by parameter path: ``λ_leaf = mapping[p]`` for the pattern it matches.

    Each parameter path (see :func:`param_paths`) is searched (``re.search``) with
    every pattern; a leaf matched by none gets ``default`` (``0.0``: not
    regularized, its update passes through bitwise), a leaf matched by two patterns
    is a ``ValueError``, and so is a pattern that matches no parameter.

    Strengths are checked now: numbers must be finite and ``>= 0``; optax schedules
    are accepted by transforms (not by penalties, which have no step count).

    Args:
      mapping: ``{regex: strength}``; strengths are numbers or optax schedules.
      default: strength of the leaves no pattern matches.

    Returns:
      A :class:`PathStrengths`, accepted as ``strength=`` by every jaxreg penalty
      and transform and by :func:`jaxreg.regularized`.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"Embed_0": {"embedding": jnp.array([[1.0, -1.0]])},
      ...           "Dense_0": {"kernel": jnp.array([[2.0, -2.0]]), "bias": jnp.ones(2)}}
      >>> s = jaxreg.path_strengths({"kernel$": 0.5, "embedding$": 0.1})
      >>> print(jaxreg.l1_penalty(params, s))  # 0.5·4 + 0.1·2
      2.2
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(
            "`mapping` of path_strengths must be a dict {regex: strength}, got "
            f"{type(mapping).__name__}."
        )
    patterns = []
    strengths = []
    for key, value in mapping.items():
        (pattern,) = _compile("mapping", (key,))
        try:
            _checks.check_number("strength", value)
        except ValueError as err:
            raise ValueError(
                f"{err} (for the pattern {pattern.pattern!r} in path_strengths)"
            ) from None
        patterns.append(pattern)
        strengths.append(value)
    try:
        _checks.check_number("strength", default)
    except ValueError as err:
        raise ValueError(f"{err} (the `default` of path_strengths)") from None
    return PathStrengths(tuple(patterns), tuple(strengths), default)
