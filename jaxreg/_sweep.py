"""Strength sweeps for deep nets: K models, K strengths, one vmapped training step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg import _checks, _leafwise

__all__ = ["SweepResult", "strength_sweep"]


class SweepResult(NamedTuple):
    """Outcome of :func:`jaxreg.strength_sweep` (leading axis: one entry per strength).

    Attributes:
      strengths: shape ``(K,)``.
      params: the K trained parameter pytrees, stacked (every leaf gets a leading
        axis of size K).
      loss: mean data loss (no penalty) on the evaluation data, ``(K,)``.
      accuracy: fraction of correct ``argmax`` predictions on the evaluation data,
        ``(K,)``.
      sparsity: fraction of exactly-zero entries among the float leaves selected by
        ``mask``, ``(K,)``.
      train_loss: data loss of each training batch, ``(K, steps)``.
    """

    strengths: jax.Array
    params: Any
    loss: jax.Array
    accuracy: jax.Array
    sparsity: jax.Array
    train_loss: jax.Array


def _apply_fn(model: Any) -> Callable:
    try:
        import flax.linen as nn

        if isinstance(model, nn.Module):
            return model.apply
    except ImportError:  # pragma: no cover
        pass
    if not callable(model):
        raise ValueError(
            "`model` must be a flax.linen Module or a function apply(params, inputs) -> "
            f"logits, got {type(model).__name__}."
        )
    return model


def _sparsity(params: Any, mask: Any) -> jax.Array:
    masks = _leafwise.mask_tree(mask, params)
    zeros = jnp.zeros((), jnp.float32)
    total = 0
    for leaf, m in zip(jax.tree.leaves(params), jax.tree.leaves(masks), strict=True):
        if m and _leafwise.is_float_leaf(leaf):
            zeros = zeros + jnp.sum(leaf == 0).astype(jnp.float32)
            total += leaf.size
    return zeros / max(total, 1)


def _check_eval_data(eval_data: Any, inputs: jax.Array, labels: jax.Array) -> None:
    """``eval_data`` is ``(inputs, labels)`` shaped like one batch (any batch size)."""
    if not isinstance(eval_data, tuple | list) or len(eval_data) != 2:
        raise ValueError(
            "`eval_data` must be a pair (inputs, labels) like one training batch, got "
            f"{type(eval_data).__name__}"
            + (f" of length {len(eval_data)}." if isinstance(eval_data, tuple | list) else ".")
        )
    ex, ey = (jnp.shape(b) for b in eval_data)
    if len(ex) < 1 or len(ey) < 1 or ex[0] != ey[0]:
        raise ValueError(
            "`eval_data` must be (inputs, labels) with the same leading (example) axis; got "
            f"shapes {ex} and {ey}."
        )
    if ex[1:] != inputs.shape[2:] or ey[1:] != labels.shape[2:]:
        raise ValueError(
            f"`eval_data` must be shaped like one training batch: inputs (n, "
            f"{', '.join(map(str, inputs.shape[2:]))}) and labels (n"
            f"{''.join(', ' + str(d) for d in labels.shape[2:])}); got {ex} and {ey} (the "
            "batches are stacked over steps, eval_data is not)."
        )


def _check_integer_labels(name: str, labels: jax.Array) -> None:
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"`{name}` labels must be integer class indices for the default `loss_fn` "
            f"(softmax cross-entropy with integer labels), got dtype {labels.dtype}; pass "
            "`loss_fn` for other labels."
        )


def strength_sweep(
    model: Any,
    params: Any,
    batches: tuple[jax.Array, jax.Array],
    strengths: jax.typing.ArrayLike,
    *,
    optimizer: Callable[[jax.Array], optax.GradientTransformation],
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    eval_data: tuple[jax.Array, jax.Array] | None = None,
    mask: Any = None,
) -> SweepResult:
    r"""Trains K copies of a model with K strengths at once (``jax.vmap`` over strengths).

    Every copy starts from the same ``params`` and sees the same batches; the
    training step ``p_k ← apply_updates(p_k, tx_k.update(∇ℓ(p_k; batch)))`` with
    ``tx_k = optimizer(strengths[k])`` is vmapped over ``k`` and scanned over the
    batches (``jax.lax.scan``), so the K runs form one compiled program. The
    result for strength ``k`` equals training that strength alone.

    Args:
      model: a ``flax.linen`` Module (its ``apply`` is used, ``params`` are then
        its variables, e.g. ``model.init(key, x)``) or a function
        ``apply(params, inputs) -> logits``.
      params: initial parameters shared by all copies.
      batches: ``(inputs, labels)`` stacked over steps: ``inputs`` of shape
        ``(steps, batch, ...)``, ``labels`` of shape ``(steps, batch)`` (integers).
      strengths: ``(K,)`` regularization strengths.
      optimizer: ``strength -> optax.GradientTransformation``, e.g.
        ``lambda s: optax.chain(optax.sgd(0.1), jaxreg.l1_prox(s, learning_rate=0.1))``;
        called inside the vmapped step, so ``strength`` is a traced scalar.
      loss_fn: per-example loss ``(logits, labels) -> (batch,)``; default
        ``optax.softmax_cross_entropy_with_integer_labels``.
      eval_data: ``(inputs, labels)`` for the final loss and accuracy; default: all
        training batches.
      mask: which leaves count for ``sparsity`` (jaxreg mask rules); default all
        float leaves.

    Returns:
      A :class:`SweepResult`.

    Example:
      >>> import jax, jax.numpy as jnp, optax, flax.linen as nn, jaxreg
      >>> model = nn.Dense(2)
      >>> x = jax.random.normal(jax.random.key(0), (4, 8, 3))
      >>> labels = (x[..., 0] > 0).astype(jnp.int32)
      >>> variables = model.init(jax.random.key(1), x[0])
      >>> opt = lambda s: optax.chain(optax.sgd(0.5), jaxreg.l1_prox(s, learning_rate=0.5))
      >>> res = jaxreg.strength_sweep(model, variables, (x, labels),
      ...                             jnp.array([0.0, 10.0]), optimizer=opt)
      >>> res.train_loss.shape, [float(s) for s in res.sparsity]
      ((2, 4), [0.0, 1.0])

    References:
      Bradbury et al., *JAX: composable transformations of Python+NumPy programs*
      (``vmap``), 2018.
    """
    apply = _apply_fn(model)
    if not callable(optimizer):
        raise ValueError("`optimizer` must be a function strength -> optax.GradientTransformation.")
    _checks.check_mask_spec(mask)
    strengths = jnp.asarray(strengths)
    if strengths.ndim != 1 or strengths.shape[0] < 1:
        raise ValueError(f"`strengths` must be a non-empty 1-d array, got shape {strengths.shape}.")
    if not isinstance(strengths, jax.core.Tracer):
        _checks.check_strength(strengths)
    if not isinstance(batches, tuple | list) or len(batches) != 2:
        raise ValueError("`batches` must be a pair (inputs, labels) stacked over steps.")
    inputs, labels = (jnp.asarray(b) for b in batches)
    if inputs.shape[:2] != labels.shape[:2] or labels.ndim < 2:
        raise ValueError(
            "`batches` must be (inputs, labels) with leading axes (steps, batch); got shapes "
            f"{inputs.shape} and {labels.shape}."
        )
    if eval_data is not None:
        _check_eval_data(eval_data, inputs, labels)
    if loss_fn is None:
        _check_integer_labels("batches", labels)
        if eval_data is not None:
            _check_integer_labels("eval_data", jnp.asarray(eval_data[1]))
        loss_fn = optax.softmax_cross_entropy_with_integer_labels

    def data_loss(p, x, yb):
        return jnp.mean(loss_fn(apply(p, x), yb))

    def make_tx(strength):
        tx = optimizer(strength)
        if not isinstance(tx, optax.GradientTransformation):
            raise ValueError(
                "`optimizer` must be a function strength -> optax.GradientTransformation; it "
                f"returned {type(tx).__name__}."
            )
        return tx

    def step(p, state, strength, batch):
        tx = make_tx(strength)
        loss, grads = jax.value_and_grad(data_loss)(p, *batch)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    k = strengths.shape[0]
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (k, *jnp.shape(x))), params)
    states = jax.vmap(lambda p, s: make_tx(s).init(p))(stacked, strengths)
    vstep = jax.vmap(step, in_axes=(0, 0, 0, None))

    def scan_body(carry, batch):
        p, state = carry
        p, state, loss = vstep(p, state, strengths, batch)
        return (p, state), loss

    (trained, _), losses = jax.lax.scan(scan_body, (stacked, states), (inputs, labels))

    if eval_data is None:
        ex = inputs.reshape((-1, *inputs.shape[2:]))
        ey = labels.reshape((-1, *labels.shape[2:]))
    else:
        ex, ey = (jnp.asarray(b) for b in eval_data)

    def evaluate(p):
        logits = apply(p, ex)
        loss = jnp.mean(loss_fn(logits, ey))
        acc = jnp.mean((jnp.argmax(logits, axis=-1) == ey).astype(jnp.float32))
        return loss, acc, _sparsity(p, mask)

    loss, acc, sparsity = jax.vmap(evaluate)(trained)
    return SweepResult(strengths, trained, loss, acc, sparsity, losses.T)
