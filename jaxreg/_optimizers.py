"""Proximal optimizers: Adam with the prox in Adam's metric, SGD, Adagrad, FTRL.

Each optimizer here is one :class:`optax.GradientTransformationExtraArgs` whose
update makes ``optax.apply_updates(p, u)`` equal the optimizer's new parameters;
coordinates the prox sets to zero are exactly ``0.0`` (``p + (0 − p) == 0``).

In every optimizer ``mask`` selects what is *regularized*: a masked-out leaf is
still trained by the underlying method (plain Adam, SGD, Adagrad or FTRL), only
without the penalty. This is why the mask is applied to the regularizing part
alone and not with :func:`optax.masked` around the whole optimizer (which would
freeze masked-out leaves).

Complex parameters follow the modulus rule ``z·max(0, 1 − t/|z|)``; second
moments and accumulators hold ``|g|²``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import _kernels, _penalties, _prox, _transforms
from jaxreg import _validation as v

__all__ = [
    "FtrlState",
    "ProximalAdagradState",
    "ftrl",
    "proximal_adagrad",
    "proximal_adam",
    "proximal_sgd",
]


# --------------------------------------------------------------------------- checks


def _check_real(name: str, value: Any, rule: str, ok: Callable[[float], bool]) -> None:
    """Checks a plain (non-schedule) real hyper-parameter; tracers are skipped."""
    if isinstance(value, jax.core.Tracer):
        return
    if callable(value):
        raise ValueError(f"`{name}` must be a number here, not a schedule; it must be {rule}.")
    if isinstance(value, bool | np.bool_) or isinstance(value, complex):
        raise ValueError(f"`{name}` must be a real number ({rule}), got {value!r}.")
    if not isinstance(value, numbers.Number | jax.Array | np.ndarray | np.generic):
        raise ValueError(f"`{name}` must be a real number ({rule}), got {type(value).__name__}.")
    arr = np.asarray(value)
    if arr.ndim != 0 or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"`{name}` must be a real scalar ({rule}), got {value!r}.")
    x = float(arr)
    if not math.isfinite(x) or not ok(x):
        raise ValueError(f"`{name}` must be {rule}, got {value!r}.")


def _check_schedule_positive(name: str, value: Any) -> None:
    """Finite and ``> 0`` (a schedule: checked at step 0 when it can be evaluated)."""
    v.check_scalar_or_schedule(name, value, "finite and > 0")
    first = value
    if v.is_schedule(value):
        try:
            first = value(0)
        except Exception:
            return
    _check_real(name, first, "finite and > 0", lambda x: x > 0)


def _check_decay_rate(name: str, value: Any) -> None:
    _check_real(name, value, "in [0, 1)", lambda x: 0.0 <= x < 1.0)


def _wide_dtypes(dtype: Any) -> tuple[Any, Any]:
    """(real accumulation dtype, value dtype) for a leaf: at least float32."""
    rd = v.accumulation_dtype(dtype)
    return rd, v.promote(dtype, rd)


def _real(x: jax.Array) -> jax.Array:
    return jnp.real(x) if jnp.iscomplexobj(x) else x


def _plain_step(direction: jax.Array, eta: Any) -> jax.Array:
    """``−η·direction`` exactly as optax's ``scale_by_learning_rate`` computes it."""
    return v.scalar_as(-eta, direction.dtype) * direction


# --------------------------------------------------------------------- proximal adam


def proximal_adam(
    learning_rate: Any,
    *,
    l1: Any = 0.0,
    weight_decay: Any = 0.0,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam with the L1 prox taken in Adam's own metric (ProxGen).

    Per coordinate, with ``η = learning_rate(count)`` (``count`` = earlier updates),
    Adam's moments bias-corrected with ``t = count + 1`` and ``d = √v̂ + ε``::

        z     = p − η·m̂/d − η·weight_decay·p
        p_new = sign(z)·max(|z| − η·l1/d, 0)

    Chaining :func:`jaxreg.l1_prox` after ``optax.adam`` thresholds every
    coordinate by the same ``η·l1`` although Adam moves each coordinate by
    ``η/d``; here the threshold is ``η·l1/d``, the prox of ``l1·‖·‖₁`` in the metric
    ``diag(d)/η`` Adam's step is taken in. The state is exactly Adam's
    (:class:`optax.ScaleByAdamState`: ``count``, ``mu``, ``nu``), so memory equals
    ``optax.adam``'s. With ``l1 = weight_decay = 0.0`` (literal) the updates are
    bitwise those of ``optax.adam(learning_rate, b1, b2, eps)``; masked-out leaves
    get ``optax.adam``'s update too (same arithmetic, to the last bit up to XLA's
    rounding choices): they are trained by plain Adam, without decay or prox.
    Coordinates set to zero are exactly ``0.0`` after ``optax.apply_updates``.

    No group-lasso variant is offered: a block threshold in Adam's diagonal metric
    has no closed form (the prox of ``‖·‖₂`` in a non-uniform metric needs a
    1-D root find per group); use ``chain(optax.adam(η), jaxreg.group_lasso_prox(λ,
    learning_rate=η))`` for structured sparsity.

    Args:
      learning_rate: ``η >= 0``: a float or an optax schedule.
      l1: L1 strength ``>= 0``: a float or an optax schedule.
      weight_decay: decoupled decay strength ``>= 0`` (AdamW's form, multiplied by
        ``η``): a float or an optax schedule.
      b1: Adam's first-moment decay, in ``[0, 1)``.
      b2: Adam's second-moment decay, in ``[0, 1)``.
      eps: ``ε >= 0`` added to ``√v̂``.
      mask: which leaves are regularized: ``None`` (all), a pytree of Python bools
        (prefix of the params is fine) or a function ``params -> such a pytree``.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` (``params`` required when
      ``l1`` or ``weight_decay`` is non-zero); updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = jaxreg.proximal_adam(0.1, l1=1.0)
      >>> p = jnp.array([0.05, 1.0])
      >>> u, state = tx.update(jnp.array([0.1, 1.0]), tx.init(p), p)
      >>> new = optax.apply_updates(p, u)
      >>> print(new == 0, f"{float(new[1]):.4f}")
      [ True False] 0.8000

    References:
      Yun, Lozano & Yang, *Adaptive proximal gradient methods for structured neural
      networks*, NeurIPS 2021 (ProxGen). Kingma & Ba, *Adam*, ICLR 2015.
    """
    v.check_scalar_or_schedule("learning_rate", learning_rate)
    v.check_scalar_or_schedule("l1", l1)
    v.check_scalar_or_schedule("weight_decay", weight_decay)
    _check_decay_rate("b1", b1)
    _check_decay_rate("b2", b2)
    _check_real("eps", eps, "finite and >= 0", lambda x: x >= 0)
    v.check_mask_spec(mask)
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
    regularize = not (v.is_literal_zero(l1) and v.is_literal_zero(weight_decay))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        directions, new_state = adam.update(updates, state)
        eta = v.evaluate(learning_rate, state.count)
        if not regularize:
            return jax.tree.map(lambda d: _plain_step(d, eta), directions), new_state
        v.require_params(params)
        l1_t = v.evaluate(l1, state.count)
        wd_t = v.evaluate(weight_decay, state.count)
        masks = v.mask_tree(mask, params)

        def leaf(d, mu, nu, p, m):
            if not m or not v.is_float_leaf(p):
                return _plain_step(d, eta)
            rd, wd = _wide_dtypes(p.dtype)
            eta_w = v.scalar_as(eta, rd)
            # Bias corrections computed as optax computes them (``1 − b**count``).
            bc1 = jnp.asarray(1 - b1**new_state.count).astype(rd)
            bc2 = jnp.asarray(1 - b2**new_state.count).astype(rd)
            m_hat = mu.astype(wd) / bc1.astype(wd)
            nu_hat = _real(nu).astype(rd) / bc2
            # One reciprocal serves the step and the threshold (optax's own direction d
            # is then dead code for this leaf).
            inv_d = 1 / (jnp.sqrt(nu_hat) + v.scalar_as(eps, rd))
            pw = p.astype(wd)
            z = pw - (eta_w * inv_d).astype(wd) * m_hat
            if not v.is_literal_zero(weight_decay):
                z = z - (eta_w * v.scalar_as(wd_t, rd)).astype(wd) * pw
            if not v.is_literal_zero(l1):
                z = _prox.soft_threshold(z, eta_w * v.scalar_as(l1_t, rd) * inv_d)
            return z.astype(p.dtype) - p

        new_updates = jax.tree.map(leaf, directions, new_state.mu, new_state.nu, params, masks)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(adam.init, update_fn)


# ---------------------------------------------------------------------- proximal sgd


def _elastic_prox(l1: Any, l2: Any, learning_rate: Any, mask: Any) -> optax.GradientTransformation:
    """Parameter-side ``p_new = S_{η·l1}(p + u) / (1 + η·l2)`` (masked by ``mask``)."""
    stateful = v.needs_count(l1, l2, learning_rate)

    def init_fn(params):
        del params
        if stateful:
            return _transforms.ScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        v.require_params(params)
        count = state.count if stateful else None
        eta = v.evaluate(learning_rate, count)
        l1_t, l2_t = v.evaluate(l1, count), v.evaluate(l2, count)

        def leaf(u, p):
            if not v.is_float_leaf(p):
                return u
            rd = v.accumulation_dtype(p.dtype)
            real = v.real_dtype(p.dtype)
            eta_w = v.scalar_as(eta, rd)
            x = _transforms._next_params(u, p)
            if not v.is_literal_zero(l1):
                x = _prox.soft_threshold(x, (eta_w * v.scalar_as(l1_t, rd)).astype(real))
            if not v.is_literal_zero(l2):
                x = _prox.shrink(x, (eta_w * v.scalar_as(l2_t, rd)).astype(real))
            return x - p

        new_updates = jax.tree.map(leaf, updates, params)
        if stateful:
            return new_updates, _transforms.ScheduleState(count=optax.safe_increment(count))
        return new_updates, state

    tx = optax.GradientTransformation(init_fn, update_fn)
    if mask is None:
        return tx
    return optax.masked(tx, lambda tree: v.resolve_mask(mask, tree))


def proximal_sgd(
    learning_rate: Any,
    *,
    l1: Any = 0.0,
    l2: Any = 0.0,
    momentum: Any = None,
    nesterov: bool = False,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``optax.sgd``'s step, then the elastic-net prox on ``v = p + u``.

    ``p_new = sign(v)·max(|v| − η·l1, 0) / (1 + η·l2)`` with ``η = learning_rate(count)``
    and ``u`` the update of ``optax.sgd(learning_rate, momentum, nesterov)``. Without
    momentum this is ISTA for ``f + l1·‖·‖₁ + (l2/2)·‖·‖²``. Built as
    ``optax.chain(optax.sgd(...), prox)`` where the prox is masked by ``mask``:
    masked-out leaves get plain SGD updates. ``l1 = l2 = 0.0`` (literal) returns
    ``optax.sgd`` itself.

    Args:
      learning_rate: ``η >= 0``: a float or an optax schedule.
      l1: L1 strength ``>= 0`` (float or schedule).
      l2: L2 strength ``>= 0`` (float or schedule), penalty ``(l2/2)·‖w‖²``.
      momentum: ``None`` or the momentum decay in ``[0, 1)`` (as ``optax.sgd``).
      nesterov: Nesterov momentum (as ``optax.sgd``).
      mask: which leaves are regularized (``None``, bool pytree or function).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs`.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = jaxreg.proximal_sgd(0.5, l1=1.0, l2=2.0)
      >>> p = jnp.array([0.3, -4.0])
      >>> u, _ = tx.update(jnp.array([0.0, 1.0]), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [ 0. -2.]

    References:
      Beck & Teboulle, 2009 (ISTA); Zou & Hastie, 2005 (elastic net).
    """
    v.check_scalar_or_schedule("learning_rate", learning_rate)
    v.check_scalar_or_schedule("l1", l1)
    v.check_scalar_or_schedule("l2", l2)
    if momentum is not None:
        _check_decay_rate("momentum", momentum)
    if not isinstance(nesterov, bool | np.bool_):
        raise ValueError(f"`nesterov` must be a bool, got {nesterov!r}.")
    v.check_mask_spec(mask)
    sgd = optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)
    if v.is_literal_zero(l1) and v.is_literal_zero(l2):
        return sgd
    return optax.chain(sgd, _elastic_prox(l1, l2, learning_rate, mask))


# ------------------------------------------------------------------ proximal adagrad


class ProximalAdagradState(NamedTuple):
    """State of :func:`jaxreg.proximal_adagrad`."""

    count: jax.Array  # int32 scalar: number of earlier updates
    accum: Any  # Σ g² (+ initial value), real dtype of each leaf


def proximal_adagrad(
    learning_rate: Any,
    *,
    l1: Any = 0.0,
    l2: Any = 0.0,
    initial_accumulator_value: Any = 0.1,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Proximal Adagrad with TensorFlow's ``ApplyProximalAdagrad`` kernel semantics.

    Per coordinate, with ``η = learning_rate(count)``::

        accum += g²            (|g|² for complex g)
        a      = η / √accum
        v      = w − a·g
        w_new  = sign(v)·max(|v| − a·l1, 0) / (1 + a·l2)

    The threshold and the shrink use the same per-coordinate ``a`` as the step.
    Masked-out leaves are trained by plain Adagrad (``w − a·g``).

    Args:
      learning_rate: ``η >= 0``: a float or an optax schedule.
      l1: L1 strength ``>= 0`` (float or schedule).
      l2: L2 strength ``>= 0`` (float or schedule), penalty ``(l2/2)·‖w‖²``.
      initial_accumulator_value: starting value of ``accum``, finite and ``> 0``
        (TensorFlow's rule: ``1/√0`` would make the first step NaN).
      mask: which leaves are regularized (``None``, bool pytree or function).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`ProximalAdagradState`; updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = jaxreg.proximal_adagrad(1.0, l1=0.5, initial_accumulator_value=3.0)
      >>> p = jnp.array([0.6, 3.0])
      >>> u, _ = tx.update(jnp.array([1.0, 1.0]), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [0.   2.25]

    References:
      Duchi, Hazan & Singer, 2011; Duchi & Singer, *Efficient online and batch
      learning using forward backward splitting*, 2009; TensorFlow
      ``tf.raw_ops.ApplyProximalAdagrad``.
    """
    v.check_scalar_or_schedule("learning_rate", learning_rate)
    v.check_scalar_or_schedule("l1", l1)
    v.check_scalar_or_schedule("l2", l2)
    _check_real(
        "initial_accumulator_value", initial_accumulator_value, "finite and > 0", lambda x: x > 0
    )
    v.check_mask_spec(mask)
    regularize = not (v.is_literal_zero(l1) and v.is_literal_zero(l2))

    def init_fn(params):
        accum = jax.tree.map(
            lambda p: jnp.full(
                jnp.shape(p), initial_accumulator_value, v.real_dtype(jnp.result_type(p))
            ),
            params,
        )
        return ProximalAdagradState(count=jnp.zeros([], jnp.int32), accum=accum)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        count = state.count
        eta = v.evaluate(learning_rate, count)
        if regularize:
            v.require_params(params)
            masks = v.mask_tree(mask, params)
            l1_t, l2_t = v.evaluate(l1, count), v.evaluate(l2, count)

        def leaf(g, acc, p=None, m=False):
            if not v.is_float_leaf(g):
                return g, acc
            rd, wd = _wide_dtypes(g.dtype)
            gw = g.astype(wd)
            acc_new = acc.astype(rd) + _penalties.squared_modulus(gw).astype(rd)
            a = v.scalar_as(eta, rd) * jax.lax.rsqrt(acc_new)
            if not m or not v.is_float_leaf(p):
                return (-(a.astype(wd) * gw)).astype(g.dtype), acc_new.astype(acc.dtype)
            x = p.astype(wd) - a.astype(wd) * gw
            if not v.is_literal_zero(l1):
                x = _prox.soft_threshold(x, a * v.scalar_as(l1_t, rd))
            if not v.is_literal_zero(l2):
                x = _prox.shrink(x, a * v.scalar_as(l2_t, rd))
            return x.astype(p.dtype) - p, acc_new.astype(acc.dtype)

        if regularize:
            pairs = jax.tree.map(leaf, updates, state.accum, params, masks)
        else:
            pairs = jax.tree.map(leaf, updates, state.accum)
        new_updates, new_accum = _unzip(pairs, jax.tree.structure(updates), 2)
        return new_updates, ProximalAdagradState(count=optax.safe_increment(count), accum=new_accum)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _unzip(tuples: Any, treedef: Any, n: int) -> tuple[Any, ...]:
    """Splits a tree (shaped like ``treedef``) of ``n``-tuples into ``n`` trees."""
    leaves = treedef.flatten_up_to(tuples)
    if not leaves:
        return tuple(treedef.unflatten([]) for _ in range(n))
    return tuple(treedef.unflatten(list(col)) for col in zip(*leaves, strict=True))


# ----------------------------------------------------------------------------- ftrl


class FtrlState(NamedTuple):
    """State of :func:`jaxreg.ftrl` (Keras names: ``accumulators``, ``linears``)."""

    count: jax.Array  # int32 scalar: number of earlier updates
    accum: Any  # n: Σ g² (+ initial value), real dtype of each leaf
    linear: Any  # z: the linear term, dtype of each leaf


def ftrl(
    learning_rate: Any,
    *,
    l1: Any = 0.0,
    l2: Any = 0.0,
    l2_shrinkage: Any = 0.0,
    beta: Any = 0.0,
    lr_power: Any = -0.5,
    initial_accumulator_value: Any = 0.1,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""FTRL-Proximal with Keras 3 ``Ftrl`` semantics.

    Per coordinate, with ``lr = learning_rate(count)``, ``q = −lr_power``, ``n``
    the accumulator (starts at ``initial_accumulator_value``) and ``z`` the linear
    term (starts at 0)::

        g_s   = g + 2·l2_shrinkage·w
        n'    = n + g²                                   (|g|² for complex g)
        σ     = (n'^q − n^q) / lr
        z     = z + g_s − σ·w
        quad  = n'^q / lr + 2·(l2 + beta/(2·lr))
        w_new = (clip(z, −l1, l1) − z) / quad  =  −S_{l1}(z) / quad

    ``w_new`` is exactly zero where ``|z| <= l1`` and NaN where ``z`` is NaN (as in
    Keras). Masked-out leaves are trained by unregularized FTRL (``l1 = l2 =
    l2_shrinkage = 0``; ``beta`` is kept). TensorFlow's ``ApplyFtrlV2`` kernel
    differs from Keras when ``l2_shrinkage > 0``. Keras's ``l2`` enters ``quad`` as
    ``2·l2``: it is Keras's ``L2`` convention ``l2·Σw²``, not jaxreg's ``(λ/2)·Σw²``.
    With ``initial_accumulator_value = 0``, a zero gradient and ``l2 = beta = 0``
    the first step divides ``0/0`` (NaN), as Keras does.

    Args:
      learning_rate: ``lr > 0``: a float or an optax schedule.
      l1: L1 strength ``>= 0`` (float or schedule).
      l2: L2 strength ``>= 0`` (float or schedule), Keras convention.
      l2_shrinkage: L2 shrinkage strength ``>= 0`` (float or schedule).
      beta: ``>= 0``, Keras's ``beta`` (McMahan's β).
      lr_power: ``<= 0`` (finite); ``-0.5`` is the usual FTRL-Proximal.
      initial_accumulator_value: finite and ``>= 0``.
      mask: which leaves are regularized (``None``, bool pytree or function).

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` with state
      :class:`FtrlState`; ``params`` are required; updates have the params' dtype.

    Example:
      >>> import jax.numpy as jnp, optax, jaxreg
      >>> tx = jaxreg.ftrl(1.0, l1=0.5, initial_accumulator_value=0.0)
      >>> p = jnp.zeros(2)
      >>> u, _ = tx.update(jnp.array([0.3, -2.0]), tx.init(p), p)
      >>> print(optax.apply_updates(p, u))
      [0.   0.75]

    References:
      McMahan et al., *Ad click prediction: a view from the trenches*, KDD 2013;
      Keras 3 ``keras.optimizers.Ftrl``.
    """
    _check_schedule_positive("learning_rate", learning_rate)
    for name, value in (("l1", l1), ("l2", l2), ("l2_shrinkage", l2_shrinkage)):
        v.check_scalar_or_schedule(name, value)
    _check_real("beta", beta, "finite and >= 0", lambda x: x >= 0)
    _check_real("lr_power", lr_power, "finite and <= 0", lambda x: x <= 0)
    _check_real(
        "initial_accumulator_value", initial_accumulator_value, "finite and >= 0", lambda x: x >= 0
    )
    v.check_mask_spec(mask)

    def init_fn(params):
        accum = jax.tree.map(
            lambda p: jnp.full(
                jnp.shape(p), initial_accumulator_value, v.real_dtype(jnp.result_type(p))
            ),
            params,
        )
        linear = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
        return FtrlState(count=jnp.zeros([], jnp.int32), accum=accum, linear=linear)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        v.require_params(params)
        count = state.count
        lr = v.evaluate(learning_rate, count)
        l1_t, l2_t, sh_t = (v.evaluate(x, count) for x in (l1, l2, l2_shrinkage))
        masks = v.mask_tree(mask, params)
        # lr_power = -0.5 (the default) is a square root: much cheaper than pow.
        sqrt_power = isinstance(lr_power, numbers.Real) and float(lr_power) == -0.5

        def power(x):
            return jnp.sqrt(x) if sqrt_power else x ** (-v.scalar_as(lr_power, x.dtype))

        def leaf(g, n, z, p, m):
            if not v.is_float_leaf(p):
                return g, n, z
            rd, wd = _wide_dtypes(p.dtype)
            lr_w = v.scalar_as(lr, rd)
            gw, pw, nw = g.astype(wd), p.astype(wd), n.astype(rd)
            zero = jnp.zeros((), rd)
            l1_w = v.scalar_as(l1_t, rd) if m else zero
            l2_w = v.scalar_as(l2_t, rd) if m else zero
            g_s = gw
            if m and not v.is_literal_zero(l2_shrinkage):
                g_s = gw + (2 * v.scalar_as(sh_t, rd)).astype(wd) * pw
            # z' from the old n first, then n' in place (no copy of n; see _kernels).
            z_new, n_new = _kernels.ftrl_accumulators(gw, nw, z.astype(wd), g_s, pw, lr_w, power)
            quad = power(n_new) / lr_w + 2 * (l2_w + v.scalar_as(beta, rd) / (2 * lr_w))
            w_new = -_prox.soft_threshold(z_new, l1_w) / quad.astype(wd)
            return w_new.astype(p.dtype) - p, n_new.astype(n.dtype), z_new.astype(z.dtype)

        triples = jax.tree.map(leaf, updates, state.accum, state.linear, params, masks)
        new_updates, new_accum, new_linear = _unzip(triples, jax.tree.structure(updates), 3)
        return new_updates, FtrlState(
            count=optax.safe_increment(count), accum=new_accum, linear=new_linear
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
