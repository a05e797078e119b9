"""Proves from the traced computation that a transform may run on flat buffers.

``jaxreg.flat(tx, layout)`` runs an optimizer on one 1-D buffer per dtype (and
label) instead of on the parameter pytree. For an opaque optax transform this
is exact only when the transform is *leafwise elementwise* and treats every leaf
of a buffer identically. Nothing about the transform is read from closures or
optax internals: :func:`prove_elementwise` traces ``tx.init`` and ``tx.update``
with :func:`jax.make_jaxpr` (public API) and checks the jaxprs.

How the proof works. Every value of the traced program gets

* a *kind*: ``L`` (depends on exactly one leaf's parameter-shaped data: the
  updates, the params, or a params-shaped subtree of the state), ``S`` (does not
  depend on parameter data and is a scalar, or a scalar broadcast to a shape),
  or ``O`` (any other array that does not depend on parameter data);
* a *signature*: the expression that computes it, with the leaf index replaced
  by a placeholder (primitive name, its shape-free parameters, the output dtype,
  the operands' signatures; literals by value). Signatures are hash-consed to
  integers, so equal integers mean structurally equal expressions.

Allowed on ``L`` values: elementwise primitives whose array operands are the
same leaf's data of the output's shape or ``S`` values, a no-op
broadcast/reshape, calls (``jit``, ``custom_jvp_call``, ``custom_vjp_call``,
``checkpoint``) that are walked into, and ``cond`` on an ``S`` index whose
branches pass. Anything else touching ``L`` data (reductions, reshapes, slices,
gathers, dots, sorts, scans, loops, a ``cond`` on a parameter-dependent
predicate, a combination of two leaves, an ``O`` array such as a non-uniform
constant or a state array outside a params-shaped subtree) refuses the proof.
So does any value derived from parameter data that reaches the non-params
state (a global norm, a per-leaf scale): conservative by design.

One exception, because it is exact in any grouping: a boolean ``and``/``or``
reduction over whole leaves (``jnp.all(jnp.isfinite(u))`` per leaf, combined
over the tree, as in ``optax.apply_if_finite``). It is kind ``A`` while it is
combined, and becomes a global ``S`` value once used, provided it covers every
leaf of each buffer it touches with one expression: then it equals the same
reduction over the buffers. A ``cond`` on such a value, or on a step counter
(``optax.MultiSteps``), is allowed when its branches pass.

Then (1) each output leaf (new updates, params-shaped state) depends only on its
own leaf, (2) every leaf of one buffer has the same signature, and (3) tracing
the same transform on the flat dict of buffers gives, for each buffer, that
same signature, and identical signatures for the rest of the state. (3) is what
catches a transform that looks at the tree it is given (a mask function, an
``ndim`` test): it is judged on the flat dict, as ``flat`` will run it.

What it proves is jaxpr-level: the flat step evaluates, per element, the very
expression (primitives, constants, dtypes) the per-leaf step evaluates. XLA then
compiles one elementwise expression for both; tests/test_elementwise.py checks
that every proven transform is bitwise equal on the CPU.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

__all__ = ["prove_elementwise"]

# Primitives that map elements to elements, given operands of one shape (or
# rank-0 operands broadcast by the primitive itself).
_ELEMENTWISE = frozenset(
    """
    abs acos acosh add and asin asinh atan atan2 atanh bessel_i0e bessel_i1e cbrt
    ceil clamp clz complex conj convert_element_type copy copy_p cos cosh digamma
    div eq erf erf_inv erfc exp exp2 expm1 floor ge gt igamma igammac imag
    integer_pow is_finite le lgamma log log1p logistic lt max min mul ne neg
    nextafter not or polygamma population_count pow real reduce_precision rem
    round rsqrt select_n shift_left shift_right_arithmetic shift_right_logical
    sign sin sinh sqrt square sub tan tanh xor zeta random_gamma_grad
    """.split()
)
# Primitives that only reshape or broadcast; transparent when nothing moves.
_SHAPING = frozenset(["broadcast_in_dim", "reshape", "squeeze", "expand_dims"])
# Call-like primitives whose body is walked with the caller's operands.
_CALLS = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
}
# Boolean all-reductions: exact in any order and grouping, so "all leaves
# finite" equals "all buffers finite" (optax.apply_if_finite).
_REDUCE_OP = {"reduce_and": "and", "reduce_or": "or"}
_BINARY_OP = {"and": "and", "or": "or"}
# Identity-like primitives (sharding annotations) that keep values as they are.
_IDENTITY = frozenset(["sharding_constraint", "mesh_cast", "optimization_barrier"])
# Parameters that depend on the shape of the operand, not on what is computed.
_SHAPE_PARAMS = frozenset(
    ["shape", "broadcast_dimensions", "sharding", "out_sharding", "dimensions", "new_sizes"]
)


def _axes(eqn: Any) -> tuple:
    return tuple(eqn.params.get("axes", ()))


def _same_structure(tree: Any, treedef: Any) -> bool:
    return bool(jax.tree.structure(tree) == treedef)


def _transposes(eqn: Any) -> bool:
    """Whether a ``reshape`` permutes its operand first (``dimensions=``)."""
    dims = eqn.params.get("dimensions") if eqn.primitive.name == "reshape" else None
    return dims is not None and tuple(dims) != tuple(range(len(dims)))


class _Refuse(Exception):
    """Internal: the proof fails; the message is the reason."""


class _Info(NamedTuple):
    # "L" (one leaf's data), "S" (scalar or splat), "O" (other global array),
    # "A" (a boolean and/or over whole leaves, see _Walker._reduce)
    kind: str
    leaf: int | None  # the leaf index for kind "L"
    sig: int  # hash-consed signature


def _closed(j: Any) -> tuple[Any, list]:
    """(jaxpr, consts) of a ClosedJaxpr or an open Jaxpr."""
    if hasattr(j, "consts") and hasattr(j, "jaxpr"):
        return j.jaxpr, list(j.consts)
    return j, []


class _Walker:
    """Abstract interpreter over jaxprs computing an :class:`_Info` per value."""

    def __init__(self, leaf_names: list[str]) -> None:
        self.table: dict[Any, int] = {}
        self.leaf_names = leaf_names
        self.buffer_of_leaf: list = []
        # sig of an "A" value -> (op, frozenset of (leaf, sig of the reduced data), uniform)
        self.reductions: dict[int, tuple[str, frozenset, bool]] = {}

    def intern(self, key: Any) -> int:
        sig = self.table.get(key)
        if sig is None:
            sig = self.table[key] = len(self.table)
        return sig

    def name(self, leaf: int | None) -> str:
        if leaf is None:
            return "?"
        return self.leaf_names[leaf] if leaf < len(self.leaf_names) else str(leaf)

    def scalar(self, dtype: Any, value: Any) -> _Info:
        """A scalar constant, by its dtype and exact bits (so -0.0 and NaN are exact)."""
        bits = np.asarray(value).astype(dtype).tobytes()
        return _Info("S", None, self.intern(("lit", dtype, bits)))

    def const(self, val: Any) -> _Info:
        arr = np.asarray(val)
        if arr.ndim == 0:
            return self.scalar(arr.dtype, arr)
        flat = arr.reshape(-1)
        if flat.size and np.array_equal(arr, np.full_like(arr, flat[0]), equal_nan=True):
            return self.scalar(arr.dtype, flat[0])  # a uniform array is a splat
        key = ("const", arr.dtype, arr.shape, hash(arr.tobytes()))
        return _Info("O", None, self.intern(key))

    def literal(self, v: Any) -> _Info:
        """A jaxpr literal (a scalar of the literal's aval dtype)."""
        return self.scalar(v.aval.dtype, v.val)

    def run(self, jaxpr: Any, consts: list, inputs: list[_Info]) -> list[_Info]:
        env: dict[Any, _Info] = {}
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            env[v] = c if isinstance(c, _Info) else self.const(c)
        for v, info in zip(jaxpr.invars, inputs, strict=True):
            env[v] = info

        def read(v: Any) -> _Info:
            if isinstance(v, jcore.Literal):
                return self.literal(v)
            return env[v]

        for eqn in jaxpr.eqns:
            outs = self.eqn(eqn, [read(v) for v in eqn.invars])
            for v, info in zip(eqn.outvars, outs, strict=True):
                env[v] = info
        return [read(v) for v in jaxpr.outvars]

    def _leaf_of(self, prim: str, ins: list[_Info]) -> int | None:
        leaves = {i.leaf for i in ins if i.kind == "L" and i.leaf is not None}
        if len(leaves) > 1:
            a, b = sorted(leaves)[:2]
            raise _Refuse(f"`{prim}` combines leaves {self.name(a)} and {self.name(b)}")
        return leaves.pop() if leaves else None

    def eqn(self, eqn: Any, ins: list[_Info]) -> list[_Info]:
        prim = eqn.primitive.name
        params = eqn.params
        outs = eqn.outvars

        if prim in _CALLS and _CALLS[prim] in params:
            jaxpr, consts = _closed(params[_CALLS[prim]])
            if len(jaxpr.invars) == len(ins) and len(jaxpr.outvars) == len(outs):
                return self.run(jaxpr, consts, ins)

        if prim == "cond":
            return self._cond(eqn, ins)

        if prim in _IDENTITY and len(ins) == len(outs):
            return list(ins)

        reduced = self._reduce(eqn, prim, ins)
        if reduced is not None:
            return reduced
        ins = [self.finalize(i) if i.kind == "A" else i for i in ins]

        leaf = self._leaf_of(prim, ins)

        shape = outs[0].aval.shape if len(outs) == 1 and hasattr(outs[0].aval, "shape") else None

        if prim in _SHAPING and len(ins) >= 1 and shape is not None:
            x = ins[0]
            in_shape = getattr(eqn.invars[0].aval, "shape", ())
            if tuple(in_shape) == tuple(shape) and not _transposes(eqn):
                return [x]  # nothing moves
            if x.kind == "S" and all(i.kind == "S" for i in ins):
                return [x]  # a scalar broadcast or reshaped is the same splat
            if x.kind == "L":
                raise _Refuse(f"`{prim}` reshapes or permutes leaf {self.name(leaf)}'s data")
            # global data: fall through to the generic global rule

        if prim in _ELEMENTWISE and shape is not None:
            if leaf is not None:
                for v, i in zip(eqn.invars, ins, strict=True):
                    vshape = tuple(getattr(v.aval, "shape", ()))
                    if i.kind == "L" and vshape != tuple(shape):
                        raise _Refuse(f"`{prim}` broadcasts leaf {self.name(leaf)}'s data")
                    if i.kind == "O":
                        raise _Refuse(
                            f"`{prim}` combines leaf {self.name(leaf)} with an array that is not "
                            "tied to a leaf (a non-uniform constant, or a state array outside "
                            "a params-shaped subtree)"
                        )
                kind = "L"
            elif all(i.kind == "S" for i in ins) or len(shape) == 0:
                kind = "S"
            else:
                kind = "O"
            key = (
                prim,
                self._params_key(params),
                outs[0].aval.dtype,
                tuple(i.sig for i in ins),
            )
            return [_Info(kind, leaf, self.intern(key))]

        if leaf is not None:
            raise _Refuse(f"`{prim}` is applied to leaf {self.name(leaf)}'s data (not elementwise)")
        # Global computation (schedules, counters, keys): any primitive. The key
        # keeps every parameter and the operands' shapes: a reduction over a
        # broadcast constant (jnp.sum(jnp.ones_like(x))) depends on the shape.
        base = (
            prim,
            self._params_key(params, keep_shape=True),
            tuple(i.sig for i in ins),
            tuple(str(getattr(v, "aval", v)) for v in eqn.invars),
        )
        result = []
        for k, v in enumerate(outs):
            aval = v.aval
            nd = len(getattr(aval, "shape", ()))
            kind = "S" if nd == 0 else "O"
            result.append(_Info(kind, None, self.intern((base, k, str(aval)))))
        return result

    def _reduction(self, op: str, parts: frozenset, uniform: bool) -> _Info:
        sig = self.intern(("A", op, parts, uniform))
        self.reductions[sig] = (op, parts, uniform)
        return _Info("A", None, sig)

    def _reduce(self, eqn: Any, prim: str, ins: list[_Info]) -> list[_Info] | None:
        """Tracks boolean and/or reductions over whole leaves; None if ``eqn`` is not one."""
        if len(eqn.outvars) != 1 or not ins:
            return None
        first = ins[0]
        aval: Any = eqn.invars[0].aval
        in_shape = tuple(getattr(aval, "shape", ()))
        if prim in _REDUCE_OP and first.kind in ("L", "A"):
            op = _REDUCE_OP[prim]
            whole = _axes(eqn) == tuple(range(len(in_shape)))
            if first.kind == "L" and whole and aval.dtype == np.bool_:
                return [self._reduction(op, frozenset([(first.leaf, first.sig)]), True)]
            if first.kind == "A":
                a_op, parts, uniform = self.reductions[first.sig]
                if a_op == op and (whole or uniform):
                    return [self._reduction(op, parts, True)]
            return None
        if not any(i.kind == "A" for i in ins):
            return None
        if prim in _SHAPING and first.kind == "A":
            uniform = self.reductions[first.sig][2]
            out_shape = tuple(eqn.outvars[0].aval.shape)
            if uniform or (in_shape == out_shape and not _transposes(eqn)):
                return [first]  # a broadcast (or no-op reshape) of an and/or
            return None
        if not all(i.kind == "A" for i in ins):
            return None
        infos = [self.reductions[i.sig] for i in ins]
        ops = {i[0] for i in infos}
        if len(ops) != 1:
            return None
        op = ops.pop()
        parts = frozenset().union(*(i[1] for i in infos))
        if prim == "concatenate":
            return [self._reduction(op, parts, False)]
        if _BINARY_OP.get(prim) == op and all(i[2] for i in infos):
            return [self._reduction(op, parts, True)]
        return None

    def finalize(self, info: _Info) -> _Info:
        """An "A" value used as a global: checks that it covers whole buffers.

        A reduction over every leaf of a buffer, each reducing the same
        expression, equals the reduction over the buffer; anything else (some
        leaves of a buffer, or leaves reducing different expressions) refuses.
        """
        op, parts, uniform = self.reductions[info.sig]
        if not uniform:  # a vector of per-leaf flags: its layout is the tree's
            return _Info("O", None, self.intern(("A-vector", object())))
        by_expr: dict[int, set] = {}
        for leaf, expr in parts:
            by_expr.setdefault(expr, set()).add(leaf)
        canonical = set()
        for expr, leaves in by_expr.items():
            for buf in {self.buffer_of_leaf[i] for i in leaves}:
                members = {i for i, b in enumerate(self.buffer_of_leaf) if b == buf}
                if not members <= leaves:
                    missing = min(members - leaves)
                    raise _Refuse(
                        f"`reduce_{op}` covers some leaves of buffer {buf!r} but not "
                        f"leaf {self.name(missing)} (or reduces it differently)"
                    )
                canonical.add((buf, expr))
        return _Info("S", None, self.intern(("all", op, frozenset(canonical))))

    def _cond(self, eqn: Any, ins: list[_Info]) -> list[_Info]:
        ins = [ins[0] if ins[0].kind != "A" else self.finalize(ins[0]), *ins[1:]]
        index, ops = ins[0], ins[1:]
        if index.kind == "L":
            raise _Refuse(f"`cond` chooses a branch from leaf {self.name(index.leaf)}'s data")
        branch_outs = []
        for branch in eqn.params["branches"]:
            jaxpr, consts = _closed(branch)
            branch_outs.append(self.run(jaxpr, consts, ops))
        result = []
        for k, v in enumerate(eqn.outvars):
            alts = [b[k] for b in branch_outs]
            kind_leaf = self._leaf_of("cond", alts)
            if kind_leaf is not None:
                kind = "L"
            elif all(a.kind == "S" for a in alts):
                kind = "S"
            else:
                kind = "O" if getattr(v.aval, "shape", ()) else "S"
            if kind == "L" and any(a.kind == "O" for a in alts):
                raise _Refuse(
                    f"`cond` mixes leaf {self.name(kind_leaf)} with an array not tied to a leaf"
                )
            key = ("cond", index.sig, v.aval.dtype, tuple(a.sig for a in alts))
            result.append(_Info(kind, kind_leaf, self.intern(key)))
        return result

    @staticmethod
    def _params_key(params: dict, keep_shape: bool = False) -> str:
        drop = () if keep_shape else _SHAPE_PARAMS
        return repr(sorted((k, repr(v)) for k, v in params.items() if k not in drop))


# ---------------------------------------------------------------------------
# Trees: params-shaped subtrees of the state
# ---------------------------------------------------------------------------


def _matches(a: Any, b: Any) -> bool:
    if tuple(a.shape) != tuple(b.shape):
        return False
    if a.dtype == b.dtype:
        return True
    return bool(jnp.issubdtype(a.dtype, jnp.inexact) and jnp.issubdtype(b.dtype, jnp.inexact))


def _params_shaped(node: Any, treedef: Any, skel_leaves: list) -> bool:
    leaves, nodedef = jax.tree.flatten(node)
    if nodedef != treedef or len(leaves) != len(skel_leaves):
        return False
    return all(
        hasattr(x, "shape") and _matches(x, s) for x, s in zip(leaves, skel_leaves, strict=True)
    )


def _classify_state(state: Any, treedef: Any, skel_leaves: list) -> list[tuple[str, str, int]]:
    """Per state leaf, in flatten order: (role, kind, leaf index or -1).

    A leaf inside a params-shaped subtree gets role ``"state" + path`` of the
    subtree and kind ``"P"``; any other leaf gets role ``"global" + path`` and
    kind ``"G"``.
    """
    out: list[tuple[str, str, int]] = []

    def visit(node: Any, path: str) -> None:
        if node is None:
            return
        if _params_shaped(node, treedef, skel_leaves):
            out.extend((f"state{path}", "P", i) for i in range(len(skel_leaves)))
            return
        children = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]
        if (len(children) == 1 and children[0][1] is node) or not children:
            # A leaf (or a node with no children).
            if jax.tree.leaves(node):
                out.append((f"global{path}", "G", -1))
            return
        for key, child in children:
            visit(child, path + jax.tree_util.keystr((key,)))

    visit(state, "")
    return out


class _Trace(NamedTuple):
    updates: list[_Info]
    state: list[_Info]
    roles: list[tuple[str, str, int]]  # classification of the state leaves
    layout: tuple  # the state's layout: params-shaped subtrees and the other leaves


def _state_inputs(walker: _Walker, state: Any, roles: list) -> list[_Info]:
    infos = []
    for leaf, (role, kind, i) in zip(jax.tree.leaves(state), roles, strict=True):
        if kind == "P":
            infos.append(_Info("L", i, walker.intern(("in", role, leaf.dtype))))
        else:
            nd = len(leaf.shape)
            sig = walker.intern(("in", role, leaf.dtype, tuple(leaf.shape)))
            infos.append(_Info("S" if nd == 0 else "O", None, sig))
    return infos


def _global_inputs(walker: _Walker, tree: Any, prefix: str) -> list[_Info]:
    infos = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = tuple(np.shape(leaf))
        key = ("in", prefix + jax.tree_util.keystr(path), jnp.result_type(leaf), shape)
        infos.append(_Info("S" if not shape else "O", None, walker.intern(key)))
    return infos


def _layout(state: Any, roles: list) -> tuple:
    out: list = []
    for leaf, (role, kind, _) in zip(jax.tree.leaves(state), roles, strict=True):
        if kind == "P":
            if not out or out[-1] != (role, "P"):
                out.append((role, "P"))
        else:
            out.append((role, tuple(leaf.shape), leaf.dtype))
    return tuple(out)


def _trace(walker: _Walker, tx: Any, skeleton: Any, extra_args: dict) -> tuple[_Trace, _Trace]:
    """Walks ``tx.init`` and ``tx.update`` on ``skeleton``; raises _Refuse."""
    skel_leaves, treedef = jax.tree.flatten(skeleton)
    param_in = [
        _Info("L", i, walker.intern(("in", "params", x.dtype))) for i, x in enumerate(skel_leaves)
    ]
    update_in = [
        _Info("L", i, walker.intern(("in", "updates", x.dtype))) for i, x in enumerate(skel_leaves)
    ]

    init_jaxpr, state = jax.make_jaxpr(tx.init, return_shape=True)(skeleton)
    roles = _classify_state(state, treedef, skel_leaves)
    layout = _layout(state, roles)
    jaxpr, consts = _closed(init_jaxpr)
    try:
        init_out = walker.run(jaxpr, consts, param_in)
    except _Refuse as e:
        raise _Refuse(f"init: {e}") from None
    init = _Trace([], init_out, roles, layout)

    def update(u, s, p, e):
        return tx.update(u, s, p, **e)

    upd_jaxpr, (new_updates, new_state) = jax.make_jaxpr(update, return_shape=True)(
        skeleton, state, skeleton, extra_args
    )
    if not _same_structure(new_updates, treedef):
        raise _Refuse("update: the updates it returns do not have the structure of the params")
    if not _same_structure(new_state, jax.tree.structure(state)):
        raise _Refuse("update: the state it returns does not have the structure of its input state")
    jaxpr, consts = _closed(upd_jaxpr)
    try:
        ins = update_in + _state_inputs(walker, state, roles) + param_in
        outs = walker.run(jaxpr, consts, ins + _global_inputs(walker, extra_args, "extra"))
    except _Refuse as e:
        raise _Refuse(f"update: {e}") from None
    n = len(skel_leaves)
    return init, _Trace(outs[:n], outs[n:], roles, layout)


def _check_outputs(walker: _Walker, trace: _Trace, what: str, buffer_of_leaf: list) -> dict:
    """Checks locality and per-buffer identity; returns {(role, buffer): sig}."""
    sigs: dict[tuple[str, Any], tuple[int, int]] = {}
    globals_: list[int] = []

    def check(role: str, info: _Info, i: int) -> None:
        if info.kind in ("O", "A"):
            raise _Refuse(
                f"{what}: {role} of leaf {walker.name(i)} is not computed elementwise "
                "from that leaf"
            )
        if info.kind == "L" and info.leaf != i:
            raise _Refuse(
                f"{what}: {role} of leaf {walker.name(i)} depends on leaf {walker.name(info.leaf)}"
            )
        key = (role, buffer_of_leaf[i])
        if key in sigs and sigs[key][0] != info.sig:
            j = sigs[key][1]
            raise _Refuse(
                f"{what}: leaves {walker.name(j)} and {walker.name(i)} share buffer "
                f"{buffer_of_leaf[i]!r} but their {role} is computed differently"
            )
        sigs.setdefault(key, (info.sig, i))

    for i, info in enumerate(trace.updates):
        check("update", info, i)
    for info, (role, kind, i) in zip(trace.state, trace.roles, strict=True):
        if kind == "P":
            check(role, info, i)
        else:
            if info.kind == "L":
                raise _Refuse(
                    f"{what}: state {role[len('global') :] or '(root)'} depends on the data of "
                    f"leaf {walker.name(info.leaf)} (a norm, a reduction or a flag over parameters)"
                )
            if info.kind == "A":
                info = walker.finalize(info)
            globals_.append(info.sig)
    return {"buffers": {k: v[0] for k, v in sigs.items()}, "globals": globals_}


def prove_elementwise(
    tx: Any, skeleton: Any, buffer_of_leaf: list[str], *, extra_args: dict | None = None
) -> str | None:
    """Proves that ``tx`` run on the per-buffer flat dict equals ``tx`` run per leaf.

    Traces ``tx.init`` and ``tx.update`` (with :func:`jax.make_jaxpr`, public
    API only) on the params ``skeleton`` and on the flat dict
    ``{key: ShapeDtypeStruct((size,), dtype)}`` built from ``buffer_of_leaf``,
    and checks that (1) every new update and every params-shaped part of the
    state is computed elementwise from its own leaf alone, (2) every leaf of
    one buffer is computed by the same expression (same primitives, constants
    and dtypes), and (3) the flat trace computes each buffer with exactly that
    expression, and the rest of the state identically. Conservative: any
    reduction (except a boolean and/or over whole buffers, as in
    ``optax.apply_if_finite``), reshape, cross-leaf value, control flow on
    parameter data or a global value derived from parameters (a global norm)
    refuses.

    Args:
      tx: an ``optax.GradientTransformation`` (or ``...ExtraArgs``, traced with
        ``extra_args``).
      skeleton: the params pytree, leaves :class:`jax.ShapeDtypeStruct` (or arrays).
      buffer_of_leaf: the buffer key of each leaf of ``jax.tree.leaves(skeleton)``.
      extra_args: keyword arguments for ``tx.update`` of a
        ``GradientTransformationExtraArgs`` (e.g. ``{"value": loss}``), as arrays or
        :class:`jax.ShapeDtypeStruct`; treated as global inputs.

    Returns:
      ``None`` when the flat run gives every leaf exactly its per-leaf result;
      otherwise a short reason naming the leaf and the primitive. Errors raised
      while tracing the per-leaf step propagate (the per-leaf step fails too).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> skel = {"w": jax.ShapeDtypeStruct((3, 2), jnp.float32),
      ...         "b": jax.ShapeDtypeStruct((2,), jnp.float32)}
      >>> print(prove_elementwise(optax.adam(1e-3), skel, ["float32", "float32"]))
      None
      >>> print(prove_elementwise(optax.clip_by_global_norm(1.0), skel, ["float32", "float32"]))
      update: `reduce_sum` is applied to leaf ['b']'s data (not elementwise)
    """
    skel_leaves, treedef = jax.tree.flatten(skeleton)
    skel_leaves = [jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)) for x in skel_leaves]
    extra_args = dict(extra_args or {})
    skeleton = jax.tree.unflatten(treedef, skel_leaves)
    buffer_of_leaf = list(buffer_of_leaf)
    if len(buffer_of_leaf) != len(skel_leaves):
        raise ValueError(
            f"`buffer_of_leaf` must give one buffer key per leaf of `skeleton` "
            f"({len(skel_leaves)} leaves), got {len(buffer_of_leaf)}."
        )
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(skeleton)[0]]

    sizes: dict[str, int] = {}
    dtypes: dict[str, Any] = {}
    for x, key, name in zip(skel_leaves, buffer_of_leaf, names, strict=True):
        if key in dtypes and dtypes[key] != x.dtype:
            raise ValueError(
                f"`buffer_of_leaf` must put leaves of one dtype in a buffer; buffer {key!r} holds "
                f"{dtypes[key]} and {x.dtype} (leaf {name})."
            )
        dtypes[key] = x.dtype
        sizes[key] = sizes.get(key, 0) + int(np.prod(x.shape, dtype=np.int64))
    flat_skel = {k: jax.ShapeDtypeStruct((sizes[k],), dtypes[k]) for k in sizes}
    flat_keys = sorted(flat_skel)  # the order jax flattens a dict in

    walker = _Walker(names)
    walker.buffer_of_leaf = buffer_of_leaf
    try:
        leaf_init, leaf_update = _trace(walker, tx, skeleton, extra_args)
        got_init = _check_outputs(walker, leaf_init, "init", buffer_of_leaf)
        got_update = _check_outputs(walker, leaf_update, "update", buffer_of_leaf)
    except _Refuse as e:
        return str(e)

    walker.leaf_names = [f"buffer {k!r}" for k in flat_keys]
    walker.buffer_of_leaf = flat_keys
    try:
        flat_init, flat_update = _trace(walker, tx, flat_skel, extra_args)
    except _Refuse as e:
        return f"on the flat buffers: {e}"
    except Exception as e:
        return f"on the flat buffers, tracing raised {type(e).__name__}: {e}"
    if flat_update.layout != leaf_update.layout:
        return "the state on the flat buffers has a different structure from the per-leaf state"
    try:
        want_init = _check_outputs(walker, flat_init, "init", flat_keys)
        want_update = _check_outputs(walker, flat_update, "update", flat_keys)
    except _Refuse as e:
        return f"on the flat buffers: {e}"

    for what, leafwise, flat in (
        ("init", got_init, want_init),
        ("update", got_update, want_update),
    ):
        if leafwise["buffers"] != flat["buffers"]:
            for key in sorted(set(leafwise["buffers"]) | set(flat["buffers"]), key=repr):
                if leafwise["buffers"].get(key) != flat["buffers"].get(key):
                    role, buf = key
                    return (
                        f"{what}: on buffer {buf!r} the transform computes {role} differently "
                        "from the per-leaf step (it looks at the tree it is given, e.g. a mask "
                        "function or an ndim test)"
                    )
        if leafwise["globals"] != flat["globals"]:
            return f"{what}: the non-parameter state is computed differently on the flat buffers"
    return None
