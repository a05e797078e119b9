"""Structured pruning: remove dead units from a stack of Dense layers.

A hidden unit ``j`` of layer ``l`` (column ``j`` of kernel ``W_l``, shape
``(in, out)`` as in Flax) is removable when

* its incoming group ``W_l[:, j]`` is all zero: it outputs the constant
  ``act(b_j)`` whatever the input, so that constant is folded into the next bias,
  ``b_{l+1} += act(b_j)·W_{l+1}[j, :]``, and the unit is dropped; or
* its outgoing row ``W_{l+1}[j, :]`` is all zero: it contributes nothing.

Dropping a unit removes column ``j`` of ``W_l``, entry ``j`` of ``b_l`` and row
``j`` of ``W_{l+1}``, which can leave further groups empty; the procedure repeats
until nothing changes. The pruned network computes the same function (up to the
rounding of the folded sums) for finite inputs.

This runs on the host (NumPy): shapes change, so it is not jittable.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PruneReport", "prune_dense"]


class PruneReport(NamedTuple):
    """What :func:`jaxreg.prune_dense` removed.

    Attributes:
      features_before: output size of each Dense layer before pruning.
      features_after: output size of each Dense layer after pruning (what to pass
        to the model's constructor to rebuild it).
      folded: per layer, units removed because their incoming group was zero
        (their constant output was folded into the next bias).
      dropped: per layer, units removed because their outgoing row was zero.
      params_before: number of kernel and bias entries before pruning.
      params_after: number of kernel and bias entries after pruning.
    """

    features_before: tuple[int, ...]
    features_after: tuple[int, ...]
    folded: tuple[int, ...]
    dropped: tuple[int, ...]
    params_before: int
    params_after: int


def _report(kernels, biases, new_k, new_b, folded, dropped) -> PruneReport:
    """Widths and parameter counts of the stack before and after pruning."""
    return PruneReport(
        features_before=tuple(k.shape[1] for k in kernels),
        features_after=tuple(k.shape[1] for k in new_k),
        folded=tuple(folded),
        dropped=tuple(dropped),
        params_before=_count(kernels, biases),
        params_after=_count(new_k, new_b),
    )


def _count(kernels: list[np.ndarray], biases: list[np.ndarray | None]) -> int:
    return sum(k.size for k in kernels) + sum(0 if b is None else b.size for b in biases)


def _activate(activation: Callable[[jax.Array], jax.Array], b: np.ndarray) -> np.ndarray:
    """``activation(b)`` on the host; padded to a power of two so few shapes compile."""
    n = b.shape[0]
    size = max(8, 1 << max(n - 1, 0).bit_length())
    padded = np.zeros(size, b.dtype)
    padded[:n] = b
    return np.asarray(activation(jnp.asarray(padded)))[:n]


def _prune_arrays(
    kernels: list[np.ndarray],
    biases: list[np.ndarray | None],
    activation: Callable[[jax.Array], jax.Array],
) -> tuple[list[np.ndarray], list[np.ndarray | None], list[int], list[int]]:
    """Prunes hidden units of ``x -> act(x W_0 + b_0) -> ... -> x W_L + b_L``."""
    kernels = [np.array(k) for k in kernels]
    biases = [None if b is None else np.array(b) for b in biases]
    n = len(kernels)
    folded = [0] * n
    dropped = [0] * n
    changed = True
    while changed:
        changed = False
        for l in range(n - 1):  # the output layer's units are never removed
            k, b, k_next = kernels[l], biases[l], kernels[l + 1]
            dead_in = np.all(k == 0, axis=0)
            dead_out = np.all(k_next == 0, axis=1)
            const = _activate(activation, np.zeros(k.shape[1], k.dtype) if b is None else b)
            contribution = const[:, None].astype(k_next.dtype) * k_next
            foldable = dead_in & ~dead_out
            if biases[l + 1] is None:
                # No bias to fold into: only units whose constant contributes nothing.
                foldable &= np.all(contribution == 0, axis=1)
            remove = dead_out | foldable
            if not remove.any():
                continue
            b_next = biases[l + 1]
            if foldable.any() and b_next is not None:
                extra = contribution[foldable].sum(axis=0, dtype=np.float64)
                biases[l + 1] = (b_next.astype(np.float64) + extra).astype(b_next.dtype)
            keep = ~remove
            kernels[l] = k[:, keep]
            if b is not None:
                biases[l] = b[keep]
            kernels[l + 1] = k_next[keep, :]
            folded[l] += int(foldable.sum())
            dropped[l] += int((remove & ~foldable).sum())
            changed = True
    return kernels, biases, folded, dropped


def _check_chain(kernels: list[np.ndarray], names: Sequence[Any]) -> None:
    if not kernels:
        raise ValueError("`layers`: found no Dense layer (kernel of ndim 2) to prune.")
    for name, k in zip(names, kernels, strict=True):
        if np.ndim(k) != 2:
            raise ValueError(
                f"`layers`: layer {name!r} has a kernel of shape {np.shape(k)}; every layer "
                "must be a Dense layer with an (in, out) kernel."
            )
    for (n0, k0), (n1, k1) in zip(
        zip(names, kernels, strict=True), zip(names[1:], kernels[1:], strict=True), strict=False
    ):
        if k0.shape[1] != k1.shape[0]:
            raise ValueError(
                f"`layers`: {n0!r} outputs {k0.shape[1]} features but {n1!r} takes "
                f"{k1.shape[0]}: the layers must form a chain, in order."
            )


_NUMBERED = re.compile(r"^(.*)_(\d+)$")


def _lookup(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _path_name(path: tuple[Any, ...]) -> str:
    return "/".join(map(str, path))


def _numbered_order(paths: list[tuple[Any, ...]], what: str) -> list[tuple[Any, ...]]:
    """Orders layers named ``<prefix>_<i>`` (linen's own names) or items ``i`` of one list.

    linen names a module ``Dense_<i>`` in the order its parent creates it, and a list
    or ``nnx.Sequential`` holds its layers in order; any other naming does not tell
    the call order, so it is refused rather than guessed (dict keys are sorted as
    strings by ``jax.tree.map``: ``Dense_10`` before ``Dense_2``).
    """
    keys: list[tuple[tuple[Any, ...], str, int]] = []
    ordered = True
    for path in paths:
        last = path[-1] if path else None
        if isinstance(last, int) and not isinstance(last, bool):
            keys.append((path[:-1], "", last))
            continue
        match = _NUMBERED.match(str(last)) if isinstance(last, str) else None
        if match is None:
            ordered = False
            break
        keys.append((path[:-1], match.group(1), int(match.group(2))))
    if not ordered or len({k[:2] for k in keys}) > 1:
        names = ", ".join(repr(_path_name(p)) for p in paths)
        raise ValueError(
            f"`layers`: cannot tell the call order of {what} {names} from their names (only "
            "linen's own numbering `Dense_0, Dense_1, ...` or the items of one list are "
            "ordered). Pass `example_input=` (and `module=` for linen params) to trace the "
            "order, or `layers=` in call order."
        )
    return [p for _, p in sorted(zip([k[2] for k in keys], paths, strict=True))]


def _close(a: Any, b: Any) -> bool:
    """Same shape and equal up to a few ulps of ``b``'s dtype (relative to max|b|)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    eps = float(np.finfo(b.dtype).eps) if np.issubdtype(b.dtype, np.inexact) else 1e-12
    wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
    a, b = a.astype(wide), b.astype(wide)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1.0)
    return bool(np.allclose(a, b, rtol=64 * eps, atol=64 * eps * scale))


def _check_trace(
    calls: list[tuple[tuple[Any, ...], Any, Any]], output: Any, activation: Callable, what: str
) -> list[tuple[Any, ...]]:
    """The call order of a traced forward pass, checked to be a plain chain.

    ``calls`` holds ``(path, input, output)`` for every Dense call in call order. A
    layer called twice, an input that is not ``activation`` of the previous layer's
    output (a branch, a skip connection, a normalization between layers) or a model
    output that is not the last layer's output is refused: pruning would change the
    function.
    """
    if not calls:
        raise ValueError(f"`example_input`: the forward pass called no {what} layer.")
    paths = [path for path, _, _ in calls]
    for path in paths:
        if paths.count(path) > 1:
            raise ValueError(
                f"`model`: layer {_path_name(path)!r} is called {paths.count(path)} times in "
                "one forward pass; prune_dense prunes a chain in which each layer is called "
                "once (its units cannot be removed for one call and kept for the other)."
            )
    for (p0, _, out0), (p1, in1, _) in itertools.pairwise(calls):
        if not _close(in1, activation(jnp.asarray(out0))):
            raise ValueError(
                f"`model`: the input of {_path_name(p1)!r} is not `activation` of the output "
                f"of {_path_name(p0)!r} (the previous {what} call): the layers are not a plain "
                "chain (a branch, a skip connection, a normalization or another activation in "
                "between), so pruning would change the function. Check `activation`."
            )
    if not _close(output, calls[-1][2]):
        raise ValueError(
            f"`model`: the model's output is not the output of its last {what} call "
            f"{_path_name(paths[-1])!r}; prune_dense handles an MLP that ends with that layer."
        )
    return paths


def _trace_linen(module: Any, params: Mapping, example_input: Any, activation: Callable):
    import flax.linen as nn

    if not isinstance(module, nn.Module):
        raise ValueError(
            f"`module` must be the flax.linen Module the params belong to, got "
            f"{type(module).__name__}."
        )
    calls = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
            calls.append((tuple(context.module.path), np.asarray(args[0]), np.asarray(out)))
        return out

    variables = params if set(params.keys()) == {"params"} else {"params": params}
    with nn.intercept_methods(interceptor):
        output = module.apply(variables, example_input)
    return _check_trace(calls, output, activation, "Dense")


def _prune_linen(
    params: Mapping,
    activation: Callable,
    layers: Sequence[Any] | None,
    module: Any,
    example_input: Any,
) -> tuple[Any, PruneReport]:
    wrapped = set(params.keys()) == {"params"}
    inner = params["params"] if wrapped else params
    explicit = None
    if layers is not None:
        explicit = [tuple(n) if isinstance(n, tuple | list) else (n,) for n in layers]
    if example_input is not None:
        names = _trace_linen(module, params, example_input, activation)
        if explicit is not None and explicit != names:
            raise ValueError(
                f"`layers` {[_path_name(n) for n in explicit]} disagrees with the traced call "
                f"order {[_path_name(n) for n in names]}."
            )
    elif module is not None:
        raise ValueError("`example_input` is needed with `module` (the order is traced).")
    elif explicit is not None:
        names = explicit
    else:
        names = _numbered_order([(k,) for k in inner], "the layers")
    for name in names:
        entry = _lookup(inner, name)
        if not isinstance(entry, Mapping) or "kernel" not in entry:
            raise ValueError(
                f"`layers`: {_path_name(name)!r} is not a Dense layer's params (a dict with "
                "'kernel' and optionally 'bias'); pass `layers=` with the Dense layer names "
                "in order."
            )
        extra = set(entry.keys()) - {"kernel", "bias"}
        if extra:
            raise ValueError(
                f"`layers`: {_path_name(name)!r} has entries {sorted(extra)} besides kernel/bias."
            )
    entries = [_lookup(inner, name) for name in names]
    kernels = [np.asarray(e["kernel"]) for e in entries]
    biases = [np.asarray(e["bias"]) if "bias" in e else None for e in entries]
    _check_chain(kernels, [_path_name(n) for n in names])
    new_k, new_b, folded, dropped = _prune_arrays(kernels, biases, activation)

    def rebuilt(tree: Any, prefix: tuple[Any, ...]) -> Any:
        if prefix in set(names):
            index = names.index(prefix)
            layer = {"kernel": jnp.asarray(new_k[index])}
            if new_b[index] is not None:
                layer["bias"] = jnp.asarray(new_b[index])
            return {key: layer[key] for key in tree}
        if isinstance(tree, Mapping) and any(n[: len(prefix)] == prefix for n in names):
            return {key: rebuilt(value, (*prefix, key)) for key, value in tree.items()}
        return tree

    out = rebuilt(inner, ())
    report = _report(kernels, biases, new_k, new_b, folded, dropped)
    return ({"params": out} if wrapped else out), report


def _trace_nnx(model: Any, example_input: Any, activation: Callable):
    from flax import nnx

    probe = nnx.clone(model)
    path_of = {}
    calls = []
    recorders: dict[type, type] = {}
    for path, module in nnx.iter_modules(probe):
        if not isinstance(module, nnx.Linear):
            continue
        path_of[id(module)] = tuple(path)
        cls = type(module)
        if cls not in recorders:

            def call(self, x, *args, _cls=cls, **kwargs):
                out = _cls.__call__(self, x, *args, **kwargs)
                calls.append((path_of[id(self)], np.asarray(x), np.asarray(out)))
                return out

            recorders[cls] = type(cls.__name__, (cls,), {"__call__": call})
        # The probe is a throw-away clone: its Linear layers record their calls.
        object.__setattr__(module, "__class__", recorders[cls])
    output = probe(example_input)
    return _check_trace(calls, output, activation, "nnx.Linear")


def _prune_nnx(
    model: Any, activation: Callable, layers: Sequence[Any] | None, example_input: Any
) -> Any:
    from flax import nnx

    paths = {}
    for path, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Linear):
            paths[id(module)] = tuple(path)
    explicit = None
    if layers is not None:
        explicit = []
        for layer in layers:
            if not isinstance(layer, nnx.Linear) or id(layer) not in paths:
                raise ValueError(
                    "`layers` must list the model's own nnx.Linear modules in order, got "
                    f"{type(layer).__name__}."
                )
            explicit.append(paths[id(layer)])
    if example_input is not None:
        chosen = _trace_nnx(model, example_input, activation)
        if explicit is not None and explicit != chosen:
            raise ValueError(
                f"`layers` {[_path_name(n) for n in explicit]} disagrees with the traced call "
                f"order {[_path_name(n) for n in chosen]}."
            )
    elif explicit is not None:
        chosen = explicit
    else:
        if not paths:
            raise ValueError("`layers`: found no nnx.Linear layer to prune.")
        chosen = _numbered_order(list(paths.values()), "the nnx.Linear layers")
    clone = nnx.clone(model)
    by_path = {tuple(p): m for p, m in nnx.iter_modules(clone)}
    linears: list[Any] = [by_path[p] for p in chosen]
    kernels = [np.asarray(lin.kernel.get_value()) for lin in linears]
    biases = [None if lin.bias is None else np.asarray(lin.bias.get_value()) for lin in linears]
    _check_chain(kernels, [_path_name(p) for p in chosen])
    new_k, new_b, folded, dropped = _prune_arrays(kernels, biases, activation)
    for lin, k, b in zip(linears, new_k, new_b, strict=True):
        lin.kernel.set_value(jnp.asarray(k))
        if b is not None:
            lin.bias.set_value(jnp.asarray(b))
        lin.in_features, lin.out_features = k.shape
    report = _report(kernels, biases, new_k, new_b, folded, dropped)
    return clone, report


def prune_dense(
    model: Any,
    *,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    layers: Sequence[Any] | None = None,
    module: Any = None,
    example_input: Any = None,
) -> tuple[Any, PruneReport]:
    r"""Removes dead hidden units from an MLP (a stack of Dense layers).

    The network is ``x -> act(x W_0 + b_0) -> ... -> act(· W_{L-1} + b_{L-1}) ->
    · W_L + b_L`` (no activation after the last layer), kernels ``(in, out)`` as
    in Flax. A hidden unit whose incoming group (kernel column) is zero outputs
    the constant ``act(b_j)``: it is folded into the next bias, ``b_next +=
    act(b_j)·W_next[j, :]``, and dropped; a unit whose outgoing row is zero is
    dropped. Repeats until no unit can be removed. Input and output sizes never
    change. Such groups are what :func:`jaxreg.group_lasso_prox` (``group_axis=-1``
    for incoming, ``0`` for outgoing groups) produces; :func:`jaxreg.sparsity_report`
    counts them.

    The layer order is the data flow, found in one of three ways:

    * ``example_input`` given: one forward pass is traced (linen: the ``module``
      is applied under ``flax.linen.intercept_methods``; nnx: a throw-away clone
      records its ``nnx.Linear`` calls). It is refused with a ``ValueError`` when a
      layer is called twice, when a layer's input is not ``activation`` of the
      previous layer's output (branches, skip connections, normalizations) or when
      the model's output is not the last layer's output.
    * ``layers`` given: that order (you vouch for it; the shapes must chain).
    * neither: only orders that the names fix are used: linen's own names
      ``Dense_0, Dense_1, ...`` sorted by number (not as strings), or the items of
      one ``nnx.List`` / ``nnx.Sequential`` by index. Anything else is refused.

    Args:
      model: either Flax linen params of an MLP, ``{"params": {name: {"kernel",
        "bias"}}}`` or the inner dict; or a Flax ``nnx`` module whose
        ``nnx.Linear`` layers form the MLP. It is not modified.
      activation: the elementwise hidden activation (``jax.nn.relu`` by default).
      layers: optional explicit order: linen layer names (or name tuples for
        nested modules), or the model's ``nnx.Linear`` modules.
      module: the ``flax.linen`` Module of linen params (with ``example_input``).
      example_input: an input for one forward pass (the model's single positional
        argument), used to trace the call order.

    Returns:
      ``(pruned, report)``: linen params of the same layout with smaller arrays
      (rebuild the module with ``report.features_after``), or a pruned copy of the
      nnx module (``in_features``/``out_features`` updated); and a
      :class:`PruneReport` with the parameter counts before and after.

    Example:
      >>> import jax.numpy as jnp, jaxreg
      >>> params = {"params": {
      ...     "Dense_0": {"kernel": jnp.array([[1.0, 0.0, 2.0]]),
      ...                 "bias": jnp.array([0.0, 0.5, 0.0])},
      ...     "Dense_1": {"kernel": jnp.array([[1.0], [2.0], [0.0]]),
      ...                 "bias": jnp.array([0.0])}}}
      >>> pruned, report = jaxreg.prune_dense(params)
      >>> print(report.features_after, report.params_before, report.params_after)
      (1, 1) 10 4
      >>> print(pruned["params"]["Dense_1"]["bias"])
      [1.]

    References:
      Wen et al., *Learning structured sparsity in deep neural networks*, 2016;
      Scardapane et al., *Group sparse regularization for deep neural networks*, 2017.
    """
    if not callable(activation):
        raise ValueError(f"`activation` must be a function, got {type(activation).__name__}.")
    if isinstance(model, Mapping):
        return _prune_linen(model, activation, layers, module, example_input)
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        nnx = None  # type: ignore[assignment]
    if nnx is not None and isinstance(model, nnx.Module):
        if module is not None:
            raise ValueError("`module` is for linen params; an nnx model is its own module.")
        return _prune_nnx(model, activation, layers, example_input)
    raise ValueError(
        "`model` must be Flax linen params of an MLP (a dict of Dense layer params) or an "
        f"nnx Module, got {type(model).__name__}."
    )
