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
            if foldable.any() and biases[l + 1] is not None:
                b_next = biases[l + 1]
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


def _prune_linen(
    params: Mapping, activation: Callable, layers: Sequence[str] | None
) -> tuple[Any, PruneReport]:
    wrapped = set(params.keys()) == {"params"}
    inner = params["params"] if wrapped else params
    names = list(inner.keys()) if layers is None else list(layers)
    for name in names:
        entry = inner.get(name) if isinstance(inner, Mapping) else None
        if not isinstance(entry, Mapping) or "kernel" not in entry:
            raise ValueError(
                f"`layers`: {name!r} is not a Dense layer's params (a dict with 'kernel' "
                "and optionally 'bias'); pass `layers=` with the Dense layer names in order."
            )
        extra = set(entry.keys()) - {"kernel", "bias"}
        if extra:
            raise ValueError(f"`layers`: {name!r} has entries {sorted(extra)} besides kernel/bias.")
    kernels = [np.asarray(inner[name]["kernel"]) for name in names]
    biases = [np.asarray(inner[name]["bias"]) if "bias" in inner[name] else None for name in names]
    _check_chain(kernels, names)
    new_k, new_b, folded, dropped = _prune_arrays(kernels, biases, activation)
    out = {key: value for key, value in inner.items()}
    for name, k, b in zip(names, new_k, new_b, strict=True):
        layer = {"kernel": jnp.asarray(k)}
        if b is not None:
            layer["bias"] = jnp.asarray(b)
        out[name] = {key: layer[key] for key in inner[name]}
    report = _report(kernels, biases, new_k, new_b, folded, dropped)
    return ({"params": out} if wrapped else out), report


def _prune_nnx(model: Any, activation: Callable, layers: Sequence[Any] | None) -> Any:
    from flax import nnx

    paths = {}
    for path, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Linear):
            paths[id(module)] = path
    if layers is None:
        chosen = [
            path for path, module in nnx.iter_modules(model) if isinstance(module, nnx.Linear)
        ]
    else:
        chosen = []
        for layer in layers:
            if not isinstance(layer, nnx.Linear) or id(layer) not in paths:
                raise ValueError(
                    "`layers` must list the model's own nnx.Linear modules in order, got "
                    f"{type(layer).__name__}."
                )
            chosen.append(paths[id(layer)])
    clone = nnx.clone(model)
    by_path = dict(nnx.iter_modules(clone))
    linears = [by_path[p] for p in chosen]
    kernels = [np.asarray(lin.kernel.get_value()) for lin in linears]
    biases = [None if lin.bias is None else np.asarray(lin.bias.get_value()) for lin in linears]
    _check_chain(kernels, ["/".join(map(str, p)) for p in chosen])
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

    Args:
      model: either Flax linen params of an MLP, ``{"params": {name: {"kernel",
        "bias"}}}`` or the inner dict, layers in call order; or a Flax ``nnx``
        module whose ``nnx.Linear`` layers form the MLP (found in attribute order,
        e.g. a ``nnx.List`` of layers). It is not modified.
      activation: the elementwise hidden activation (``jax.nn.relu`` by default).
      layers: optional explicit order: linen layer names, or the model's
        ``nnx.Linear`` modules.

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
        return _prune_linen(model, activation, layers)
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        nnx = None
    if nnx is not None and isinstance(model, nnx.Module):
        return _prune_nnx(model, activation, layers)
    raise ValueError(
        "`model` must be Flax linen params of an MLP (a dict of Dense layer params) or an "
        f"nnx Module, got {type(model).__name__}."
    )
