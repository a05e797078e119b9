"""Flat execution mode: parameters and optimizer state in one buffer per dtype.

With many leaves, XLA runs an optimizer step as one small kernel per leaf (or per
few leaves), far from the memory-bandwidth floor (REFERENCE §4: ``optax.adam`` at
256M params takes 2.2 ms with 8 leaves and 44–84 ms with 1000 on an H200). The flat
mode keeps every parameter of one dtype (and optional label) in one 1-D buffer:

* :class:`FlatLayout` records where each leaf lives (buffer, offset, shape);
  ``layout.flatten(tree)`` packs a pytree into a dict ``{key: 1-D array}`` and
  ``layout.unflatten(flat)`` gives the usual pytree back (bitwise; slices and
  reshapes that XLA fuses into their consumers inside a jitted step; its gradient is
  one concatenation, not a sum of padded slices).
* :func:`flat` runs a transform on those buffers, so the whole update is a few
  fused kernels whatever the leaf count. jaxreg's transforms (also inside
  ``optax.chain`` and :func:`jaxreg.regularized`) keep their per-leaf meaning:
  masks, per-leaf strengths and schedules become per-buffer scalars, or, when a
  buffer mixes leaves that are treated differently, a per-element class id built
  once from the layout and kept in the state (1 byte per parameter). Group lasso
  (not elementwise) runs leaf by leaf on views of the buffer and writes the
  results back into it: exact, but with the per-leaf cost. Any other transform
  is run on the buffers as if each buffer were one leaf: exact for elementwise
  transforms (``adam``, ``sgd``, ``adamw`` without a mask...) and for global
  reductions (``clip_by_global_norm``, up to summation order), wrong for
  per-leaf reductions or per-leaf options of non-jaxreg transforms: give those a
  mask or values per buffer with :meth:`FlatLayout.lift` on a layout built with
  ``labels=``.

A flat training step::

    flat_params, layout = jaxreg.flatten_params(params)
    tx = jaxreg.flat(jaxreg.regularized(optax.adam, 1e-3, l1=1e-5), layout)
    opt_state = tx.init(flat_params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(flat_params, opt_state, batch):
        loss, g = jax.value_and_grad(
            lambda fp: loss_fn(layout.unflatten(fp), batch))(flat_params)
        u, opt_state = tx.update(g, opt_state, flat_params)
        return optax.apply_updates(flat_params, u), opt_state

Parameters that are sharded differently must not share a buffer: give them
different ``labels`` (for example the sharding's spec). Laying a sharded flat buffer
out shard by shard (so that each device updates its own contiguous piece) is not
done here.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import _transforms
from jaxreg import _validation as v

__all__ = ["FlatLayout", "FlatRegState", "flat", "flatten_params"]


class _Slot(NamedTuple):
    key: str
    offset: int
    size: int
    shape: tuple[int, ...]
    dtype: Any


class FlatLayout:
    r"""Where each leaf of a parameter pytree lives in one flat buffer per dtype.

    Leaves are grouped by dtype (and by ``labels``, if given) into 1-D buffers, in
    the pytree's leaf order; a flat pytree is a plain ``dict`` ``{key: buffer}``
    with keys such as ``"float32"`` or ``"float32/decay"``, which any checkpointer
    handles. ``unflatten(flatten(tree))`` is ``tree`` bitwise.

    Args:
      params: a pytree of arrays (or :class:`jax.ShapeDtypeStruct`).
      labels: ``None``, a pytree of hashable labels that is a prefix of ``params``,
        or a function ``params -> such a pytree``. Leaves with different labels go
        into different buffers: use it to keep differently sharded parameters
        apart, or to make each buffer homogeneous for a mask (pass the mask itself)
        so that no per-element ids are needed.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"b": jnp.ones(2), "w": jnp.arange(6.0).reshape(2, 3)}
      >>> layout = jaxreg.FlatLayout(params)
      >>> flat = layout.flatten(params)
      >>> print(flat["float32"])
      [1. 1. 0. 1. 2. 3. 4. 5.]
      >>> print(layout.unflatten(flat)["w"])
      [[0. 1. 2.]
       [3. 4. 5.]]
    """

    def __init__(self, params: Any, *, labels: Any = None) -> None:
        leaves, self.treedef = jax.tree.flatten(params)
        structs = []
        for leaf in leaves:
            if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
                leaf = jnp.asarray(leaf)
            structs.append(jax.ShapeDtypeStruct(tuple(leaf.shape), jnp.dtype(leaf.dtype)))
        self.skeleton = jax.tree.unflatten(self.treedef, structs)
        if labels is None:
            label_leaves = [None] * len(structs)
        else:
            tree = labels(self.skeleton) if v.is_schedule(labels) else labels
            label_leaves = self.treedef.flatten_up_to(
                v.broadcast_prefix("labels", tree, self.skeleton, lambda x: False)
            )
        sizes: dict[str, int] = {}
        dtypes: dict[str, Any] = {}
        slots = []
        for s, label in zip(structs, label_leaves, strict=True):
            key = s.dtype.name if label is None else f"{s.dtype.name}/{label}"
            offset = sizes.get(key, 0)
            size = math.prod(s.shape)
            slots.append(_Slot(key, offset, size, s.shape, s.dtype))
            sizes[key] = offset + size
            dtypes[key] = s.dtype
        self.slots: tuple[_Slot, ...] = tuple(slots)
        self.keys: tuple[str, ...] = tuple(sorted(sizes))
        self.sizes: dict[str, int] = {k: sizes[k] for k in self.keys}
        self.dtypes: dict[str, Any] = {k: dtypes[k] for k in self.keys}
        self.unflatten = self._make_unflatten()

    @property
    def num_params(self) -> int:
        """Total number of entries over all buffers."""
        return sum(self.sizes.values())

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}: {n}" for k, n in self.sizes.items())
        return f"FlatLayout({len(self.slots)} leaves -> {{{groups}}})"

    # -- packing ---------------------------------------------------------------

    def flatten(self, tree: Any) -> dict[str, jax.Array]:
        """Packs a pytree shaped like the params into ``{key: 1-D buffer}``.

        Leaves of one buffer must share a dtype (it may differ from the params',
        e.g. a bfloat16 Adam moment).
        """
        leaves, treedef = jax.tree.flatten(tree)
        if treedef != self.treedef:
            raise ValueError(
                "`tree` must have the structure of the params the layout was built "
                f"from.\ntree: {treedef}\nlayout: {self.treedef}"
            )
        parts: dict[str, list] = {k: [] for k in self.keys}
        for leaf, slot in zip(leaves, self.slots, strict=True):
            leaf = jnp.asarray(leaf)
            if tuple(leaf.shape) != slot.shape:
                raise ValueError(
                    f"`tree` has a leaf of shape {tuple(leaf.shape)} where the layout "
                    f"has shape {slot.shape}."
                )
            parts[slot.key].append(leaf.reshape(-1))
        out = {}
        for key, pieces in parts.items():
            if len({p.dtype for p in pieces}) > 1:
                raise ValueError(
                    f"`tree` mixes dtypes {sorted({p.dtype.name for p in pieces})} in the "
                    f"buffer {key!r}; cast them to one dtype first."
                )
            out[key] = _pack(pieces)
        return out

    def _check_flat(self, flat: Any, name: str) -> None:
        if not isinstance(flat, dict) or set(flat) != set(self.keys):
            got = sorted(flat) if isinstance(flat, dict) else type(flat).__name__
            raise ValueError(
                f"`{name}` must be a flat dict with the layout's keys {list(self.keys)} "
                f"(use `layout.flatten`), got {got}."
            )
        for key in self.keys:
            shape = tuple(np.shape(flat[key]))
            if shape != (self.sizes[key],):
                raise ValueError(
                    f"`{name}[{key!r}]` must have shape ({self.sizes[key]},), got {shape}."
                )

    def _slices(self, flat: dict[str, jax.Array]) -> list[jax.Array]:
        return [
            jax.lax.slice(flat[s.key], (s.offset,), (s.offset + s.size,)).reshape(s.shape)
            for s in self.slots
        ]

    def _make_unflatten(self):
        @jax.custom_vjp
        def unflatten(flat):
            return jax.tree.unflatten(self.treedef, self._slices(flat))

        def fwd(flat):
            return unflatten(flat), None

        def bwd(_, cotangent):
            out = {}
            leaves = jax.tree.leaves(cotangent)
            for key in self.keys:
                dtype = self.dtypes[key]
                if not jnp.issubdtype(dtype, jnp.inexact):
                    out[key] = np.zeros((self.sizes[key],), jax.dtypes.float0)
                    continue
                pieces = [
                    jnp.asarray(ct, dtype).reshape(-1)
                    for ct, s in zip(leaves, self.slots, strict=True)
                    if s.key == key
                ]
                out[key] = _pack(pieces)
            return (out,)

        unflatten.defvjp(fwd, bwd)

        def call(flat: dict[str, jax.Array]) -> Any:
            """The params pytree of ``flat`` (views: slices and reshapes)."""
            self._check_flat(flat, "flat")
            return unflatten({k: flat[k] for k in self.keys})

        return call

    # -- optimizer state --------------------------------------------------------

    def _is_param_tree(self, x: Any) -> bool:
        if isinstance(x, dict) and not x:
            return False
        try:
            leaves, treedef = jax.tree.flatten(x)
        except Exception:
            return False
        return treedef == self.treedef and all(
            hasattr(a, "shape") and tuple(a.shape) == s.shape
            for a, s in zip(leaves, self.slots, strict=True)
        )

    def _is_flat_tree(self, x: Any) -> bool:
        return (
            isinstance(x, dict)
            and set(x) == set(self.keys)
            and all(tuple(np.shape(x[k])) == (self.sizes[k],) for k in self.keys)
        )

    def flatten_state(self, state: Any) -> Any:
        """Packs every params-shaped subtree of ``state`` (Adam's moments...)."""
        return jax.tree.map(
            lambda x: self.flatten(x) if self._is_param_tree(x) else x,
            state,
            is_leaf=self._is_param_tree,
        )

    def unflatten_state(self, state: Any) -> Any:
        """Turns every flat-buffer subtree of ``state`` back into a params pytree."""
        return jax.tree.map(
            lambda x: self.unflatten(x) if self._is_flat_tree(x) else x,
            state,
            is_leaf=self._is_flat_tree,
        )

    def lift(self, value: Any, name: str = "value") -> dict[str, Any]:
        """Per-leaf values (a prefix pytree or a function of params) as one per buffer.

        Use it to hand a mask or per-leaf hyper-parameters to a non-jaxreg
        transform run by :func:`flat` (``optax.adamw(..., mask=layout.lift(m))``).
        Every buffer must hold leaves with one value: build the layout with
        ``labels=`` (e.g. the mask itself) so that it does.
        """
        tree = value(self.skeleton) if v.is_schedule(value) else value
        per_leaf = self.treedef.flatten_up_to(
            v.broadcast_prefix(name, tree, self.skeleton, lambda x: False)
        )
        out: dict[str, Any] = {}
        for val, slot in zip(per_leaf, self.slots, strict=True):
            if slot.key in out and not _same(out[slot.key], val):
                raise ValueError(
                    f"`{name}` differs between leaves of the buffer {slot.key!r}; build the "
                    f"layout with `labels=` that separates them (e.g. labels={name})."
                )
            out.setdefault(slot.key, val)
        return out


def _pack(pieces: list[jax.Array]) -> jax.Array:
    """Concatenates 1-D pieces of one dtype.

    Inside a trace on the CPU it writes each piece into a zero buffer with
    ``dynamic_update_slice`` (done in place), because XLA:CPU's concatenate fusion
    picks the operand per element and runs several times slower than a copy.
    """
    if len(pieces) == 1:
        return pieces[0]
    traced = any(isinstance(x, jax.core.Tracer) for x in pieces)
    if not traced or jax.default_backend() != "cpu":
        return jnp.concatenate(pieces)
    size = sum(x.shape[0] for x in pieces)
    out = jnp.zeros((size,), pieces[0].dtype)
    offset = 0
    for x in pieces:
        out = jax.lax.dynamic_update_slice(out, x, (offset,))
        offset += x.shape[0]
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool | np.bool_) or isinstance(b, bool | np.bool_):
        both = isinstance(a, bool | np.bool_) and isinstance(b, bool | np.bool_)
        return bool(both and a == b)
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
        return a == b
    return a is b


def flatten_params(params: Any, *, labels: Any = None) -> tuple[dict[str, jax.Array], FlatLayout]:
    """Packs ``params`` into flat buffers: returns ``(flat_params, layout)``.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> flat, layout = jaxreg.flatten_params({"a": jnp.zeros(3), "b": jnp.ones((2, 2))})
      >>> print(layout, flat["float32"].shape)
      FlatLayout(2 leaves -> {float32: 7}) (7,)
    """
    layout = FlatLayout(params, labels=labels)
    return layout.flatten(params), layout


class FlatRegState(NamedTuple):
    """State of a jaxreg transform run by :func:`flat` on mixed buffers.

    ``count`` counts earlier updates (used only with schedules); ``ids`` holds, per
    buffer that mixes leaves treated differently, a per-element class id (0 =
    unchanged, k = the k-th distinct strength).
    """

    count: jax.Array
    ids: dict[str, jax.Array]


def _class_key(s: Any) -> Any:
    if isinstance(s, numbers.Number) and not isinstance(s, bool):
        return ("number", float(s))
    return ("object", id(s))


class _FlatReg:
    """A jaxreg ``make_transform`` transform run on flat buffers."""

    def __init__(self, spec: _transforms.FlatSpec, layout: FlatLayout) -> None:
        self.spec = spec
        self.layout = layout
        skel = layout.skeleton
        strengths = layout.treedef.flatten_up_to(v.strength_tree(spec.strength, skel))
        masks = layout.treedef.flatten_up_to(v.mask_tree(spec.mask, skel))
        # Per leaf: None (unchanged) or (class index >= 1, strength).
        classes: dict[Any, int] = {}
        self.class_strength: list[Any] = [None]
        leaf_class = []
        for s, m, slot in zip(strengths, masks, layout.slots, strict=True):
            active = m and not v.is_literal_zero(s) and jnp.issubdtype(slot.dtype, jnp.inexact)
            if not active:
                leaf_class.append(0)
                continue
            key = _class_key(s)
            if key not in classes:
                classes[key] = len(self.class_strength)
                self.class_strength.append(s)
            leaf_class.append(classes[key])
        self.leaf_class = leaf_class
        self.plan: dict[str, Any] = {}
        for key in layout.keys:
            cls = {c for c, s in zip(leaf_class, layout.slots, strict=True) if s.key == key}
            if len(cls) == 1:
                self.plan[key] = ("scalar", cls.pop())
            elif spec.group_axis is None:
                self.plan[key] = ("ids", None)
            else:
                self.plan[key] = ("views", None)
        if spec.group_axis is not None:
            # Not elementwise: every buffer with a regularized leaf runs leaf by leaf.
            for key, (kind, cls) in self.plan.items():
                if kind == "scalar" and cls != 0:
                    self.plan[key] = ("views", None)
        self.needs_ids = any(kind == "ids" for kind, _ in self.plan.values())

    # -- ids --------------------------------------------------------------------

    def _ids(self) -> dict[str, jax.Array]:
        layout, out = self.layout, {}
        for key in layout.keys:
            if self.plan[key][0] != "ids":
                continue
            dtype = jnp.uint8 if len(self.class_strength) <= 256 else jnp.int32
            pieces = [
                jnp.full((slot.size,), c, dtype)
                for c, slot in zip(self.leaf_class, layout.slots, strict=True)
                if slot.key == key
            ]
            out[key] = pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)
        return out

    # -- transform ----------------------------------------------------------------

    def init(self, params: Any) -> Any:
        del params
        if self.needs_ids:
            return FlatRegState(count=jnp.zeros([], jnp.int32), ids=self._ids())
        if self.spec.stateful:
            return _transforms.ScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def _threshold(self, cls: int, dtype: Any, count: Any, eta: Any) -> jax.Array:
        acc = v.accumulation_dtype(dtype)
        t = v.scalar_as(v.evaluate(self.class_strength[cls], count), acc)
        if self.spec.parameter_side:
            t = t * v.scalar_as(eta, acc)
        return t.astype(v.real_dtype(dtype))

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        del extra
        v.require_params(params)
        spec = self.spec
        count = state.count if (spec.stateful or self.needs_ids) else None
        eta = v.evaluate(spec.learning_rate, count) if spec.parameter_side else None
        out = {}
        for key in self.layout.keys:
            u, p = updates[key], params[key]
            kind, arg = self.plan[key]
            if kind == "scalar":
                if arg == 0:
                    out[key] = u
                else:
                    out[key] = spec.leaf_update(u, p, self._threshold(arg, p.dtype, count, eta))
            elif kind == "ids":
                ids = state.ids[key]
                table = jnp.stack(
                    [jnp.zeros([], v.real_dtype(p.dtype))]
                    + [
                        self._threshold(c, p.dtype, count, eta)
                        for c in range(1, len(self.class_strength))
                    ]
                )
                new = spec.leaf_update(u, p, table[ids])
                out[key] = jnp.where(ids == 0, u.astype(new.dtype), new)
            else:
                out[key] = self._views_update(key, u, p, count, eta)
        if self.needs_ids:
            return out, FlatRegState(count=optax.safe_increment(state.count), ids=state.ids)
        if spec.stateful:
            return out, _transforms.ScheduleState(count=optax.safe_increment(count))
        return out, state

    def _views_update(self, key, u, p, count, eta):
        """``leaf_update`` leaf by leaf on views of the buffer (group lasso)."""
        pieces = []
        for c, slot in zip(self.leaf_class, self.layout.slots, strict=True):
            if slot.key != key:
                continue
            lo, hi = (slot.offset,), (slot.offset + slot.size,)
            ui = jax.lax.slice(u, lo, hi)
            if c == 0:
                pieces.append(ui)
                continue
            pi = jax.lax.slice(p, lo, hi).reshape(slot.shape)
            t = self._threshold(c, p.dtype, count, eta)
            pieces.append(self.spec.leaf_update(ui.reshape(slot.shape), pi, t).reshape(-1))
        return _pack(pieces)


class _Generic:
    """Any other transform, run on the flat buffers as if each were one leaf."""

    def __init__(self, tx: Any) -> None:
        self.tx = optax.with_extra_args_support(tx)

    def init(self, params: Any) -> Any:
        return self.tx.init(params)

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        return self.tx.update(updates, state, params, **extra)


def _chain_parts(tx: Any) -> list | None:
    """The transforms inside an ``optax.chain`` (None for anything else)."""
    update = getattr(tx, "update", None)
    init = getattr(tx, "init", None)
    if getattr(update, "__qualname__", "") != "chain.<locals>.update_fn":
        return None
    if not getattr(update, "__module__", "").startswith("optax"):
        return None
    try:
        updates = inspect.getclosurevars(update).nonlocals["update_fns"]
        inits = inspect.getclosurevars(init).nonlocals["init_fns"]
    except (KeyError, TypeError, ValueError):
        return None
    parts = []
    for i, u in zip(inits, updates, strict=True):
        inner = None
        if getattr(u, "__qualname__", "") == "with_extra_args_support.<locals>.update":
            inner = inspect.getclosurevars(u).nonlocals.get("tx")
        parts.append(inner if inner is not None else optax.GradientTransformationExtraArgs(i, u))
    return parts


class _Chain:
    """Pieces applied in order; the state is a tuple, as ``optax.chain``'s."""

    def __init__(self, pieces: list) -> None:
        self.pieces = pieces

    def init(self, params: Any) -> Any:
        return tuple(piece.init(params) for piece in self.pieces)

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        if not isinstance(state, tuple) or len(state) != len(self.pieces):
            raise ValueError(
                f"`state` must be the tuple of {len(self.pieces)} states made by this "
                "transform's `init`."
            )
        new_state = []
        for piece, s in zip(self.pieces, state, strict=True):
            updates, s = piece.update(updates, s, params, **extra)
            new_state.append(s)
        return updates, tuple(new_state)


def _piece(tx: Any, layout: FlatLayout) -> Any:
    if isinstance(tx, list | tuple) and not hasattr(tx, "update"):
        return _Chain([_piece(part, layout) for part in tx])
    spec = _transforms.flat_spec(tx)
    if spec is not None:
        return _FlatReg(spec, layout)
    parts = _chain_parts(tx)
    if parts is not None:
        return _Chain([_piece(part, layout) for part in parts])
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise ValueError(
            f"`tx` must be an optax GradientTransformation or a list of them, got "
            f"{type(tx).__name__}."
        )
    return _Generic(tx)


def flat(tx: Any, layout: FlatLayout) -> optax.GradientTransformationExtraArgs:
    r"""Runs ``tx`` on flat buffers: the same step as on the pytree, in a few kernels.

    ``tx`` is a transform written for the params pytree: an ``optax.chain`` (also
    nested, or a Python list of transforms), :func:`jaxreg.regularized`, any jaxreg
    transform or optimizer, or any optax transform. The returned transform takes
    and returns flat dicts (``layout.flatten(grads)``, flat params) and gives, for
    every leaf, the update the pytree step gives:

    * jaxreg's transforms keep masks, per-leaf strengths, schedules and groups (a
      per-element class id is kept in the state only for buffers that mix
      differently treated leaves; none for a uniform strength without mask, or
      with a layout built with ``labels=mask``; group lasso runs leaf by leaf on
      views of the buffers);
    * other transforms see each buffer as one leaf: exact for elementwise ones and
      global norms (up to summation order); per-leaf reductions and per-leaf
      options of non-jaxreg transforms are not translated (see
      :meth:`FlatLayout.lift`).

    Args:
      tx: the transform (or list of transforms, applied in order).
      layout: the :class:`FlatLayout` of the params.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` on flat dicts. Its state
      has the structure of ``tx``'s (a tuple per chain) with flat buffers for the
      parameter-shaped parts; a jaxreg transform's state is ``EmptyState``,
      :class:`jaxreg.ScheduleState` or :class:`FlatRegState`.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> params = {"w": jnp.array([[0.3, -2.0]]), "b": jnp.array([0.3])}
      >>> flat_p, layout = jaxreg.flatten_params(params)
      >>> tx = jaxreg.flat(optax.chain(optax.sgd(0.5), jaxreg.l1_prox(
      ...     1.0, learning_rate=0.5, mask={"w": True, "b": False})), layout)
      >>> g = layout.flatten({"w": jnp.zeros((1, 2)), "b": jnp.zeros(1)})
      >>> u, _ = tx.update(g, tx.init(flat_p), flat_p)
      >>> print(layout.unflatten(optax.apply_updates(flat_p, u)))
      {'b': Array([0.3], dtype=float32), 'w': Array([[ 0. , -1.5]], dtype=float32)}
    """
    if not isinstance(layout, FlatLayout):
        raise ValueError(f"`layout` must be a jaxreg.FlatLayout, got {type(layout).__name__}.")
    piece = _piece(tx, layout)

    def init_fn(params):
        layout._check_flat(params, "params")
        return piece.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        layout._check_flat(updates, "updates")
        if params is not None:
            layout._check_flat(params, "params")
        return piece.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
