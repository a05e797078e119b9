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
  fused kernels whatever the leaf count, and gives every leaf the per-leaf
  step's result. jaxreg's transforms, :func:`jaxreg.regularized` and the
  proximal optimizers carry their description in their type and translate
  themselves: masks and strengths written for the pytree (mask functions,
  :func:`jaxreg.kernels_only`, :func:`jaxreg.path_mask`, bool pytrees,
  :func:`jaxreg.path_strengths`, schedules) are resolved against the layout's
  skeleton and become per-buffer scalars or, when a buffer mixes leaves that are
  treated differently, a per-element class id (1 byte per parameter, kept in the
  state and rebuilt when the description changes). Group lasso (not
  elementwise) runs leaf by leaf on views of the buffer. Any other transform runs
  directly on the buffers when :func:`jaxreg._elementwise.prove_elementwise`
  proves that equals running it per leaf, else per leaf on views (exact, at the
  per-leaf cost). ``labels=`` stays an optimisation (homogeneous buffers need no
  ids); :meth:`FlatLayout.lift` an expert tool for non-jaxreg transforms run
  directly.

A flat training step::

    flat_params, layout = jaxreg.flatten_params(params)
    tx = jaxreg.flat(jaxreg.regularized(optax.adam, 1e-3, l1=1e-5, mask=mask_fn), layout)
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

import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import _checks, _dtypes, _elementwise, _leafwise, _transforms

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
        leaves = jax.tree.leaves(params)
        treedef: Any = jax.tree.structure(params)
        self.treedef = treedef
        structs = []
        for leaf in leaves:
            if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
                leaf = jnp.asarray(leaf)
            structs.append(jax.ShapeDtypeStruct(tuple(leaf.shape), jnp.dtype(leaf.dtype)))
        self.skeleton = jax.tree.unflatten(self.treedef, structs)
        if labels is None:
            label_leaves = [None] * len(structs)
        else:
            tree = labels(self.skeleton) if _checks.is_schedule(labels) else labels
            label_leaves = treedef.flatten_up_to(
                _leafwise.broadcast_prefix("labels", tree, self.skeleton, lambda x: False)
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

    def flatten(self, tree: Any, *, promote: bool = False) -> dict[str, jax.Array]:
        """Packs a pytree shaped like the params into ``{key: 1-D buffer}``.

        Leaves of one buffer must share a dtype (it may differ from the params',
        e.g. a bfloat16 Adam moment), unless ``promote=True``: then they are cast to
        their promoted dtype (as ``optax.apply_updates`` would add them to the params).
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
            if promote and len({p.dtype for p in pieces}) > 1:
                wide = _dtypes.promote(*(p.dtype for p in pieces))
                pieces = [p.astype(wide) for p in pieces]
            if len({p.dtype for p in pieces}) > 1:
                raise ValueError(
                    f"`tree` mixes dtypes {sorted({p.dtype.name for p in pieces})} in the "
                    f"buffer {key!r}; cast them to one dtype first."
                )
            packed = _pack(pieces)
            if len(pieces) == 1 and not isinstance(packed, jax.core.Tracer):
                # Never hand back (a view of) the caller's array: a flat step donates it.
                packed = jnp.array(packed, copy=True)
            out[key] = packed
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
            out: dict[str, Any] = {}
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
                # Gradients arrive materialized (outputs of dots): one concatenate
                # copies them as fast as `_pack`'s chain of writes and compiles ~2x
                # faster (training step of a 200-leaf MLP: 13.6 s vs 24.4 s).
                out[key] = pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)
            return (out,)

        unflatten.defvjp(fwd, bwd)

        def call(flat: dict[str, jax.Array]) -> Any:
            """The params pytree of ``flat`` (views: slices and reshapes)."""
            self._check_flat(flat, "flat")
            return unflatten({k: flat[k] for k in self.keys})

        return call

    # -- optimizer state --------------------------------------------------------

    def _is_param_tree(self, x: Any) -> bool:
        """A subtree shaped like the params: same treedef and, per leaf, the slot's shape.

        When the params are one bare array (a bare-leaf treedef, which any array
        has), the leaf must also be of the slot's kind (inexact or not) and not 0-d
        integer: so the integer step count of Adam is never taken for a scalar
        parameter.
        """
        if isinstance(x, dict) and not x:
            return False
        try:
            leaves, treedef = jax.tree.flatten(x)
        except Exception:
            return False
        if treedef != self.treedef or not leaves:
            return False
        if not all(
            hasattr(a, "shape") and tuple(a.shape) == s.shape
            for a, s in zip(leaves, self.slots, strict=True)
        ):
            return False
        if jax.tree_util.treedef_is_leaf(self.treedef):
            (a,), (s,) = leaves, self.slots
            if not hasattr(a, "dtype"):
                return False
            a_inexact = bool(jnp.issubdtype(a.dtype, jnp.inexact))
            return a_inexact == bool(jnp.issubdtype(s.dtype, jnp.inexact))
        return True

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
        tree = value(self.skeleton) if _checks.is_schedule(value) else value
        per_leaf = self.treedef.flatten_up_to(
            _leafwise.broadcast_prefix(name, tree, self.skeleton, lambda x: False)
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
    picks the operand per element: with pieces computed in the same fusion (e.g.
    ``flatten`` of ``2 * x`` under ``jit``, 10M entries) it runs 1.6x slower than the
    chain of writes, though it compiles much faster (500 leaves: 1.3 s vs 24 s).
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
    """State of a jaxreg piece run by :func:`flat` on buffers that mix leaves.

    ``count`` counts earlier updates (for schedules). ``ids`` holds, per buffer that
    mixes leaves treated differently, a per-element class id (0 = unchanged, k = the
    k-th distinct strength; one byte per parameter), and ``classes`` the per-leaf
    class vector the ids were built from. Each update compares ``classes`` with the
    classes of the transform's current description (a few integers) and rebuilds
    the ids when they differ (``lax.cond``), so a state restored under a changed
    mask or strength is never used stale. A state whose structure does not match
    (other buffers mixed) is refused with a ``ValueError``.
    """

    count: jax.Array  # type: ignore[assignment]
    ids: Any
    classes: Any


class _Ids:
    """Per-element class ids of the mixed buffers, for one per-leaf class list."""

    def __init__(self, layout: FlatLayout, leaf_class: list[int], mixed: set[str]) -> None:
        self.layout = layout
        self.leaf_class = leaf_class
        self.keys = tuple(k for k in layout.keys if k in mixed)
        self.dtype = jnp.uint8 if max(leaf_class, default=0) < 256 else jnp.int32

    def _classes(self, key: str) -> np.ndarray:
        return np.asarray(
            [c for c, s in zip(self.leaf_class, self.layout.slots, strict=True) if s.key == key],
            np.int32,
        )

    def _build(self, key: str) -> jax.Array:
        pieces = [
            jnp.full((slot.size,), c, self.dtype)
            for c, slot in zip(self.leaf_class, self.layout.slots, strict=True)
            if slot.key == key
        ]
        return _pack(pieces)

    def init(self) -> tuple[dict, dict]:
        return (
            {k: self._build(k) for k in self.keys},
            {k: jnp.asarray(self._classes(k)) for k in self.keys},
        )

    def current(self, ids: Any, classes: Any) -> tuple[dict, dict]:
        """The ids for the current description (rebuilt if the state's are stale)."""
        if (
            not isinstance(ids, dict)
            or not isinstance(classes, dict)
            or set(ids) != set(self.keys)
            or set(classes) != set(self.keys)
        ):
            raise ValueError(
                "`state` was made by a flat transform whose mask or strengths mix other "
                f"buffers (ids for {sorted(ids) if isinstance(ids, dict) else ids!r}, this "
                f"transform needs {list(self.keys)}): call `init` again (or restore the "
                "state with the mask it was made with)."
            )
        new_ids, new_classes = {}, {}
        for key in self.keys:
            expected = self._classes(key)
            old = ids[key]
            if tuple(np.shape(classes[key])) != expected.shape or jnp.dtype(old.dtype) != jnp.dtype(
                self.dtype
            ):
                new_ids[key] = self._build(key)
            else:
                stale = jnp.any(classes[key] != expected)
                new_ids[key] = jax.lax.cond(stale, lambda k=key: self._build(k), lambda o=old: o)
            new_classes[key] = jnp.asarray(expected)
        return new_ids, new_classes


def _class_key(rule: Any) -> Any:
    def one(s):
        if isinstance(s, numbers.Number) and not isinstance(s, bool):
            return ("number", float(s))  # type: ignore[arg-type]
        return ("object", id(s))

    return tuple(one(s) for s in rule)


class _RegPlan:
    """One :class:`~jaxreg._leafwise.Regularizer` resolved against the layout."""

    def __init__(self, reg: _leafwise.Regularizer, layout: FlatLayout) -> None:
        self.reg = reg
        self.layout = layout
        self.leaf_update = _transforms.leaf_update(reg)
        rules = layout.treedef.flatten_up_to(_leafwise.leaf_rules(reg, layout.skeleton))
        classes: dict[Any, int] = {}
        self.class_rule: list[Any] = [None]
        leaf_class = []
        for rule in rules:
            if rule is _leafwise.PASS:
                leaf_class.append(0)
                continue
            key = _class_key(rule)
            if key not in classes:
                classes[key] = len(self.class_rule)
                self.class_rule.append(rule)
            leaf_class.append(classes[key])
        self.leaf_class = leaf_class
        self.plan: dict[str, Any] = {}
        for key in layout.keys:
            cls = {c for c, s in zip(leaf_class, layout.slots, strict=True) if s.key == key}
            if cls == {0}:
                self.plan[key] = ("scalar", 0)
            elif not reg.elementwise:
                self.plan[key] = ("views", None)
            elif len(cls) == 1:
                self.plan[key] = ("scalar", cls.pop())
            else:
                self.plan[key] = ("ids", None)
        mixed = {k for k, (kind, _) in self.plan.items() if kind == "ids"}
        self.ids = _Ids(layout, leaf_class, mixed) if mixed else None
        self.n_parts = 2 if reg.kind == "l1_l2" else 1

    def thresholds(self, cls: int, dtype: Any, count: Any, eta: Any) -> tuple[jax.Array, ...]:
        return tuple(
            _leafwise.threshold(_leafwise.evaluate(s, count), eta, dtype)
            for s in self.class_rule[cls]
        )

    def update(self, updates: dict, params: dict, count: Any, ids: dict) -> dict:
        reg = self.reg
        eta = _leafwise.evaluate(reg.learning_rate, count) if reg.parameter_side else None
        out = {}
        for key in self.layout.keys:
            u, p = updates[key], params[key]
            kind, arg = self.plan[key]
            if kind == "scalar":
                out[key] = (
                    u
                    if arg == 0
                    else self.leaf_update(u, p, *self.thresholds(arg, p.dtype, count, eta))
                )
            elif kind == "ids":
                elem = ids[key]
                real = _leafwise.threshold(0.0, None, p.dtype).dtype
                ts = _per_element(
                    elem,
                    [
                        self.thresholds(c, p.dtype, count, eta)
                        for c in range(1, len(self.class_rule))
                    ],
                    self.n_parts,
                    real,
                )
                new = self.leaf_update(u, p, *ts)
                out[key] = jnp.where(elem == 0, u.astype(new.dtype), new)
            else:
                out[key] = self._views(key, u, p, count, eta)
        return out

    def _views(self, key: str, u: jax.Array, p: jax.Array, count: Any, eta: Any) -> jax.Array:
        """The leaf update leaf by leaf on views of the buffer (group lasso)."""
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
            ts = self.thresholds(c, p.dtype, count, eta)
            pieces.append(self.leaf_update(ui.reshape(slot.shape), pi, *ts).reshape(-1))
        return _pack(pieces)


def _per_element(elem: jax.Array, per_class: list, n_parts: int, real: Any) -> list:
    """Per-element thresholds from class ids (class k >= 1 is ``per_class[k - 1]``).

    A chain of selects for a few classes (elementwise: XLA fuses it into the update
    loop), a table gather beyond that.
    """
    zero = jnp.zeros([], real)
    if len(per_class) <= 8:
        out = []
        for i in range(n_parts):
            t = zero
            for k, ts in enumerate(per_class, start=1):
                t = jnp.where(elem == k, ts[i], t)
            out.append(t)
        return out
    tables = [jnp.stack([zero] + [ts[i] for ts in per_class]) for i in range(n_parts)]
    return [table[elem] for table in tables]


class FlatRegularizers:
    """A jaxreg transform (one or more descriptions, in order) run on flat buffers."""

    def __init__(self, regs: tuple, layout: FlatLayout) -> None:
        self.layout = layout
        self.regs = regs
        self.plans = [_RegPlan(reg, layout) for reg in regs]
        self.stateful = any(reg.stateful for reg in regs)
        # Descriptions with the same per-leaf classes (one mask for decay and L1 in
        # `regularized`) share one id array.
        self.id_sets: list[_Ids] = []
        self.plan_ids: list[int | None] = []
        seen: dict[Any, int] = {}
        for plan in self.plans:
            if plan.ids is None:
                self.plan_ids.append(None)
                continue
            key = (tuple(plan.leaf_class), plan.ids.keys)
            if key not in seen:
                seen[key] = len(self.id_sets)
                self.id_sets.append(plan.ids)
            self.plan_ids.append(seen[key])
        self.needs_ids = bool(self.id_sets)

    def init(self, params: Any) -> Any:
        del params
        if self.needs_ids:
            pairs = [ids.init() for ids in self.id_sets]
            return FlatRegState(
                count=jnp.zeros([], jnp.int32),
                ids=tuple(i for i, _ in pairs),
                classes=tuple(c for _, c in pairs),
            )
        if self.stateful:
            return _transforms.ScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        del extra
        _checks.require_params(params)
        if self.needs_ids:
            if not isinstance(state, FlatRegState) or len(state.ids) != len(self.id_sets):
                raise ValueError(
                    "`state` must be the FlatRegState made by this flat transform's `init` "
                    f"(got {type(state).__name__}, or one made for other masks)."
                )
            current = [
                ids.current(i, c)
                for ids, i, c in zip(self.id_sets, state.ids, state.classes, strict=True)
            ]
            for plan, j in zip(self.plans, self.plan_ids, strict=True):
                updates = plan.update(
                    updates, params, state.count, {} if j is None else current[j][0]
                )
            return updates, FlatRegState(
                count=optax.safe_increment(state.count),
                ids=tuple(i for i, _ in current),
                classes=tuple(c for _, c in current),
            )
        count = state.count if self.stateful else None
        for plan in self.plans:
            updates = plan.update(updates, params, count, {})
        if self.stateful:
            return updates, _transforms.ScheduleState(count=optax.safe_increment(count))
        return updates, state


class FlatMaskState(NamedTuple):
    """State of a jaxreg optimizer run by :func:`flat` when a buffer mixes leaves that
    are regularized and leaves that are not: the optimizer's own state, and the
    per-element ids (see :class:`FlatRegState`)."""

    inner: Any
    ids: Any
    classes: Any


class FlatOptimizer:
    """A jaxreg optimizer (its ``update_impl``) run on flat buffers.

    Per buffer, the regularized part is active for all, none, or (per element, with
    ids kept in the state) some of its entries, exactly as per leaf.
    """

    def __init__(self, init_fn, update_impl, mask: Any, regularize: bool, layout: FlatLayout):
        self.init_fn, self.update_impl = init_fn, update_impl
        self.regularize = regularize
        self.layout = layout
        active = layout.treedef.flatten_up_to(_leafwise.active_tree(mask, layout.skeleton))
        self.leaf_class = [int(a) for a in active]
        self.uniform: dict[str, bool] = {}
        mixed = set()
        for key in layout.keys:
            cls = {c for c, s in zip(self.leaf_class, layout.slots, strict=True) if s.key == key}
            if len(cls) == 1:
                self.uniform[key] = bool(cls.pop())
            else:
                mixed.add(key)
        self.ids = _Ids(layout, self.leaf_class, mixed) if (mixed and regularize) else None

    def init(self, params: Any) -> Any:
        inner = self.init_fn(params)
        if self.ids is None:
            return inner
        ids, classes = self.ids.init()
        return FlatMaskState(inner=inner, ids=ids, classes=classes)

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        del extra
        if not self.regularize:
            return self.update_impl(updates, state, params, None)
        _checks.require_params(params)
        if self.ids is None:
            return self.update_impl(updates, state, params, dict(self.uniform))
        if not isinstance(state, FlatMaskState):
            raise ValueError(
                "`state` must be the FlatMaskState made by this flat optimizer's `init` "
                f"(got {type(state).__name__})."
            )
        ids, classes = self.ids.current(state.ids, state.classes)
        active = {k: (ids[k] != 0) if k in ids else self.uniform[k] for k in self.layout.keys}
        new_updates, inner = self.update_impl(updates, state.inner, params, active)
        return new_updates, FlatMaskState(inner=inner, ids=ids, classes=classes)


class _Direct:
    """An opaque transform proven elementwise: run on the buffers as they are."""

    def __init__(self, tx: Any) -> None:
        self.tx = optax.with_extra_args_support(tx)

    def init(self, params: Any) -> Any:
        return self.tx.init(params)

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        return self.tx.update(updates, state, params, **extra)


class _Views:
    """An opaque transform not proven elementwise: run per leaf on views.

    Updates and params are unflattened (slices and reshapes), ``tx.update`` runs on
    the params pytree with its own per-leaf state, and the new updates are packed
    back: exactly the per-leaf result, at the per-leaf cost.
    """

    def __init__(self, tx: Any, layout: FlatLayout, reason: str) -> None:
        self.tx = optax.with_extra_args_support(tx)
        self.layout = layout
        self.reason = reason

    def init(self, params: Any) -> Any:
        return self.tx.init(self.layout.unflatten(params))

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        tree_u = self.layout.unflatten(updates)
        tree_p = None if params is None else self.layout.unflatten(params)
        new_u, new_state = self.tx.update(tree_u, state, tree_p, **extra)
        # optax may widen a leaf's update (a float32 learning rate times bfloat16
        # updates): the buffer takes the promoted dtype, so apply_updates adds and
        # rounds exactly as it does per leaf.
        return self.layout.flatten(new_u, promote=True), new_state


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


def translate(tx: Any, layout: FlatLayout) -> Any:
    """The flat version of ``tx`` (an object with ``init`` and ``update`` on flat dicts).

    * a Python list/tuple of transforms: each translated, applied in order;
    * a jaxreg transform, ``regularized`` or optimizer: its own translation
      (``tx.__jaxreg_flat__(layout)``), built from the engine's description;
    * any other transform: run directly on the buffers when
      :func:`jaxreg._elementwise.prove_elementwise` proves that equals running it
      per leaf, else per leaf on views of the buffers.
    """
    if isinstance(tx, list | tuple) and not hasattr(tx, "update"):
        return _Chain([translate(part, layout) for part in tx])
    if hasattr(type(tx), "__jaxreg_flat__"):
        return tx.__jaxreg_flat__(layout)
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise ValueError(
            f"`tx` must be an optax GradientTransformation or a list of them, got "
            f"{type(tx).__name__}."
        )
    buffer_of_leaf = [slot.key for slot in layout.slots]
    reason = _elementwise.prove_elementwise(tx, layout.skeleton, buffer_of_leaf)
    if reason is None:
        return _Direct(tx)
    return _Views(tx, layout, reason)


def flat(tx: Any, layout: FlatLayout) -> optax.GradientTransformationExtraArgs:
    r"""Runs ``tx`` on flat buffers: for every leaf, the update the pytree step gives.

    ``tx`` is a transform written for the params pytree, with masks and strengths
    written as for the pytree (mask functions, :func:`jaxreg.kernels_only`,
    :func:`jaxreg.path_mask`, bool pytrees, :func:`jaxreg.path_strengths`,
    schedules): they are resolved against ``layout.skeleton``. The returned
    transform takes and returns flat dicts (``layout.flatten(grads)``, flat params):

    * a Python list of transforms runs each piece's translation in order (the
      state is a tuple, as ``optax.chain``'s);
    * jaxreg's transforms, :func:`jaxreg.regularized` and the proximal optimizers
      translate themselves from their description: per-buffer scalar thresholds,
      or a per-element class id (kept in the state, rebuilt when the description
      changes) where a buffer mixes differently treated leaves; group lasso runs
      leaf by leaf on views of the buffers;
    * any other transform (``optax.chain``, ``masked``, ``MultiSteps``,
      ``inject_hyperparams``, ``apply_if_finite``, ``adam``...) runs directly on the
      buffers when that is proven to equal running it per leaf, else per leaf on
      views of the buffers (exact, at the per-leaf cost). Pass the pieces of a
      chain as a list (or use :func:`jaxreg.regularized`) to keep the fast path.

    Args:
      tx: the transform (or list of transforms, applied in order).
      layout: the :class:`FlatLayout` of the params.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` on flat dicts.

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxreg
      >>> params = {"w": jnp.array([[0.3, -2.0]]), "b": jnp.array([0.3])}
      >>> flat_p, layout = jaxreg.flatten_params(params)
      >>> tx = jaxreg.flat([optax.sgd(0.5), jaxreg.l1_prox(
      ...     1.0, learning_rate=0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))],
      ...     layout)
      >>> g = layout.flatten({"w": jnp.zeros((1, 2)), "b": jnp.zeros(1)})
      >>> u, _ = tx.update(g, tx.init(flat_p), flat_p)
      >>> print(layout.unflatten(optax.apply_updates(flat_p, u)))
      {'b': Array([0.3], dtype=float32), 'w': Array([[ 0. , -1.5]], dtype=float32)}
    """
    if not isinstance(layout, FlatLayout):
        raise ValueError(f"`layout` must be a jaxreg.FlatLayout, got {type(layout).__name__}.")
    piece = translate(tx, layout)

    def init_fn(params):
        layout._check_flat(params, "params")
        return piece.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        layout._check_flat(updates, "updates")
        if params is not None:
            layout._check_flat(params, "params")
        return piece.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
