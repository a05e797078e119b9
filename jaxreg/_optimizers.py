"""Proximal optimizers: Adam with the prox in Adam's metric, SGD, Adagrad, FTRL.

Each optimizer resolves its mask with the engine (:mod:`jaxreg._leafwise`) and
follows its run-time rule: a learning rate or strength that is negative or NaN
at run time gives NaN in the affected leaves; a learning rate of 0 is "no step".
Each is a :class:`jaxreg._transforms.JaxregTransformation`, so :func:`jaxreg.flat`
runs it on flat buffers with the same per-leaf meaning.

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

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import _checks, _dtypes, _kernels, _leafwise, _penalties, _transforms, prox
from jaxreg._leafwise import Regularizer

__all__ = [
    "FtrlState",
    "ProximalAdagradState",
    "ftrl",
    "proximal_adagrad",
    "proximal_adam",
    "proximal_sgd",
]


# --------------------------------------------------------------------------- checks


def _check_decay_rate(name: str, value: Any) -> None:
    _checks.check_number(name, value, "in [0, 1)", lambda x: 0.0 <= x < 1.0, schedule=False)


def _optimizer(init_fn, update_impl, mask: Any, regularize: bool):
    """A jaxreg optimizer from ``update_impl(updates, state, params, active)``.

    ``active`` is, per leaf, whether the leaf is regularized: the engine's mask
    resolution (:func:`jaxreg._leafwise.active_tree`) in per-leaf mode, a Python
    bool or a per-element bool array per buffer under :func:`jaxreg.flat`.
    """

    def checked_init(params):
        if regularize:  # resolves the mask now, so a bad one fails at init
            _leafwise.active_tree(mask, params)
        return init_fn(params)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        active = None
        if regularize:
            _checks.require_params(params)
            active = _leafwise.active_tree(mask, params)
        return update_impl(updates, state, params, active)

    def flat(layout):
        from jaxreg import _flat

        return _flat.FlatOptimizer(init_fn, update_impl, mask, regularize, layout)

    return _transforms.jaxreg_transformation(checked_init, update_fn, flat)


def _real(x: jax.Array) -> jax.Array:
    return jnp.real(x) if jnp.iscomplexobj(x) else x


def _plain_step(direction: jax.Array, eta: Any) -> jax.Array:
    """``−η·direction`` exactly as optax's ``scale_by_learning_rate`` computes it.

    A negative or NaN run-time ``η`` gives NaN (the run-time rule).
    """
    return -_leafwise.nonneg(eta, direction.dtype) * direction


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
    _checks.check_number("learning_rate", learning_rate)
    _checks.check_number("l1", l1)
    _checks.check_number("weight_decay", weight_decay)
    _check_decay_rate("b1", b1)
    _check_decay_rate("b2", b2)
    _checks.check_number("eps", eps, schedule=False)
    _checks.check_mask_spec(mask)
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
    regularize = not (_leafwise.is_literal_zero(l1) and _leafwise.is_literal_zero(weight_decay))

    def update_impl(updates, state, params, active):
        directions, new_state = adam.update(updates, state)
        eta = _leafwise.evaluate(learning_rate, state.count)
        if not regularize:
            return jax.tree.map(lambda d: _plain_step(d, eta), directions), new_state
        l1_t = _leafwise.evaluate(l1, state.count)
        wd_t = _leafwise.evaluate(weight_decay, state.count)

        def prox_step(d, mu, nu, p):
            rd, wd = _dtypes.wide_dtypes(p.dtype)
            eta_w = _leafwise.nonneg(eta, rd)
            # Bias corrections computed as optax computes them (``1 − b**count``).
            bc1 = jnp.asarray(1 - b1**new_state.count).astype(rd)
            bc2 = jnp.asarray(1 - b2**new_state.count).astype(rd)
            m_hat = mu.astype(wd) / bc1.astype(wd)
            nu_hat = _real(nu).astype(rd) / bc2
            # One reciprocal serves the step and the threshold (optax's own direction d
            # is then dead code for this leaf).
            inv_d = 1 / (jnp.sqrt(nu_hat) + _dtypes.scalar_as(eps, rd))
            pw = p.astype(wd)
            z = pw - (eta_w * inv_d).astype(wd) * m_hat
            if not _leafwise.is_literal_zero(weight_decay):
                # η·wd >= 1 removes the whole weight (as jaxreg.weight_decay).
                decay = jnp.minimum(eta_w * _leafwise.nonneg(wd_t, rd), jnp.ones((), rd))
                z = z - decay.astype(wd) * pw
            if not _leafwise.is_literal_zero(l1):
                t = eta_w * _leafwise.nonneg(l1_t, rd) * inv_d
                z = prox.soft_threshold(z, t)
            return z.astype(p.dtype) - p

        def leaf(d, mu, nu, p, m):
            if not _leafwise.is_float_leaf(p):
                return _plain_step(d, eta)
            return _leafwise.by_mask(
                m, lambda on: prox_step(d, mu, nu, p) if on else _plain_step(d, eta)
            )

        new_updates = jax.tree.map(leaf, directions, new_state.mu, new_state.nu, params, active)
        return new_updates, new_state

    return _optimizer(adam.init, update_impl, mask, regularize)


# ---------------------------------------------------------------------- proximal sgd


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
    masked-out leaves get plain SGD updates. The state is ``(sgd state, prox
    state)`` whatever the strengths' values; with ``l1 = l2 = 0.0`` (literal) the
    updates are bitwise ``optax.sgd``'s.

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
    _checks.check_number("learning_rate", learning_rate)
    _checks.check_number("l1", l1)
    _checks.check_number("l2", l2)
    if momentum is not None:
        _check_decay_rate("momentum", momentum)
    if not isinstance(nesterov, bool | np.bool_):
        raise ValueError(f"`nesterov` must be a bool, got {nesterov!r}.")
    _checks.check_mask_spec(mask)
    pieces = [
        optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov),
        _transforms.make_transform(Regularizer("l1_l2", l1, mask, learning_rate, l2=l2)),
    ]
    chained = optax.chain(*pieces)

    def flat(layout):
        from jaxreg import _flat

        return _flat.translate(pieces, layout)

    return _transforms.jaxreg_transformation(chained.init, chained.update, flat)


# ------------------------------------------------------------------ proximal adagrad


class ProximalAdagradState(NamedTuple):
    """State of :func:`jaxreg.proximal_adagrad`."""

    count: jax.Array  # type: ignore[assignment]  # int32 scalar: number of earlier updates
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
    _checks.check_number("learning_rate", learning_rate)
    _checks.check_number("l1", l1)
    _checks.check_number("l2", l2)
    _checks.check_number(
        "initial_accumulator_value",
        initial_accumulator_value,
        "finite and > 0",
        lambda x: x > 0,
        schedule=False,
    )
    _checks.check_mask_spec(mask)
    regularize = not (_leafwise.is_literal_zero(l1) and _leafwise.is_literal_zero(l2))

    def init_fn(params):
        accum = jax.tree.map(
            lambda p: jnp.full(
                jnp.shape(p), initial_accumulator_value, _dtypes.real_dtype(jnp.result_type(p))
            ),
            params,
        )
        return ProximalAdagradState(count=jnp.zeros([], jnp.int32), accum=accum)

    def update_impl(updates, state, params, active):
        count = state.count
        eta = _leafwise.evaluate(learning_rate, count)
        l1_t, l2_t = _leafwise.evaluate(l1, count), _leafwise.evaluate(l2, count)

        def step(g, acc, p, m):
            rd, wd = _dtypes.wide_dtypes(g.dtype)
            gw = g.astype(wd)
            acc_new = acc.astype(rd) + _penalties.squared_modulus(gw).astype(rd)
            a = _leafwise.nonneg(eta, rd) * jax.lax.rsqrt(acc_new)
            if not m:
                return (-(a.astype(wd) * gw)).astype(g.dtype), acc_new.astype(acc.dtype)
            x = p.astype(wd) - a.astype(wd) * gw
            if not _leafwise.is_literal_zero(l1):
                x = prox.soft_threshold(x, a * _leafwise.nonneg(l1_t, rd))
            if not _leafwise.is_literal_zero(l2):
                x = prox._shrink(x, a * _leafwise.nonneg(l2_t, rd))
            return x.astype(p.dtype) - p, acc_new.astype(acc.dtype)

        def leaf(g, acc, p=None, m=False):
            if not _leafwise.is_float_leaf(g):
                return g, acc
            if p is None or not _leafwise.is_float_leaf(p):
                m = False
            return _leafwise.by_mask(m, lambda on: step(g, acc, p, on))

        if regularize:
            pairs = jax.tree.map(leaf, updates, state.accum, params, active)
        else:
            pairs = jax.tree.map(leaf, updates, state.accum)
        new_updates, new_accum = _unzip(pairs, jax.tree.structure(updates), 2)
        return new_updates, ProximalAdagradState(count=optax.safe_increment(count), accum=new_accum)

    return _optimizer(init_fn, update_impl, mask, regularize)


def _unzip(tuples: Any, treedef: Any, n: int) -> tuple[Any, ...]:
    """Splits a tree (shaped like ``treedef``) of ``n``-tuples into ``n`` trees."""
    leaves = treedef.flatten_up_to(tuples)
    if not leaves:
        return tuple(treedef.unflatten([]) for _ in range(n))
    return tuple(treedef.unflatten(list(col)) for col in zip(*leaves, strict=True))


# ----------------------------------------------------------------------------- ftrl


class FtrlState(NamedTuple):
    """State of :func:`jaxreg.ftrl` (Keras names: ``accumulators``, ``linears``)."""

    count: jax.Array  # type: ignore[assignment]  # int32 scalar: number of earlier updates
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
    the first step divides ``0/0`` (NaN), as Keras does. A learning rate that
    reaches 0 at run time (a schedule decaying to 0, an injected 0) is "no step":
    the update is 0 and ``n``, ``z`` are kept (the formula divides by ``lr``, so
    it is not evaluated there); a negative or NaN one gives NaN.

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
    _checks.check_number("learning_rate", learning_rate, "finite and > 0", lambda x: x > 0)
    for name, value in (("l1", l1), ("l2", l2), ("l2_shrinkage", l2_shrinkage)):
        _checks.check_number(name, value)
    _checks.check_number("beta", beta, schedule=False)
    _checks.check_number("lr_power", lr_power, "finite and <= 0", lambda x: x <= 0, schedule=False)
    _checks.check_number("initial_accumulator_value", initial_accumulator_value, schedule=False)
    _checks.check_mask_spec(mask)

    def init_fn(params):
        accum = jax.tree.map(
            lambda p: jnp.full(
                jnp.shape(p), initial_accumulator_value, _dtypes.real_dtype(jnp.result_type(p))
            ),
            params,
        )
        linear = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
        return FtrlState(count=jnp.zeros([], jnp.int32), accum=accum, linear=linear)

    def update_impl(updates, state, params, active):
        count = state.count
        # The run-time rule, asked of the engine before the formula: negative or NaN
        # hyper-parameters become NaN; a learning rate of 0 is "no step" (below), and
        # the formula then runs with lr = 1 so that nothing divides by 0.
        lr_in = _leafwise.runtime_value(_leafwise.evaluate(learning_rate, count))
        no_step = None if isinstance(lr_in, numbers.Number) else lr_in == 0
        lr = lr_in if no_step is None else jnp.where(no_step, jnp.ones_like(lr_in), lr_in)
        l1_t, l2_t, sh_t = (
            _leafwise.runtime_value(_leafwise.evaluate(x, count)) for x in (l1, l2, l2_shrinkage)
        )
        # lr_power = -0.5 (the default) is a square root: much cheaper than pow.
        sqrt_power = isinstance(lr_power, numbers.Real) and float(lr_power) == -0.5

        def power(x):
            return jnp.sqrt(x) if sqrt_power else x ** (-_dtypes.scalar_as(lr_power, x.dtype))

        def formula(g, n, z, p, m):
            rd, wd = _dtypes.wide_dtypes(p.dtype)
            lr_w = _dtypes.scalar_as(lr, rd)
            gw, pw, nw = g.astype(wd), p.astype(wd), n.astype(rd)
            zero = jnp.zeros((), rd)
            l1_w = _dtypes.scalar_as(l1_t, rd) if m else zero
            l2_w = _dtypes.scalar_as(l2_t, rd) if m else zero
            g_s = gw
            if m and not _leafwise.is_literal_zero(l2_shrinkage):
                g_s = gw + (2 * _dtypes.scalar_as(sh_t, rd)).astype(wd) * pw
            # z' from the old n first, then n' in place (no copy of n; see _kernels).
            z_new, n_new = _kernels.ftrl_accumulators(gw, nw, z.astype(wd), g_s, pw, lr_w, power)
            quad = power(n_new) / lr_w + 2 * (l2_w + _dtypes.scalar_as(beta, rd) / (2 * lr_w))
            w_new = -prox.soft_threshold(z_new, l1_w) / quad.astype(wd)
            return w_new.astype(p.dtype) - p, n_new.astype(n.dtype), z_new.astype(z.dtype)

        def leaf(g, n, z, p, m):
            if not _leafwise.is_float_leaf(p):
                return g, n, z
            out = _leafwise.by_mask(m, lambda on: formula(g, n, z, p, on))
            if no_step is None:
                return out
            kept = (jnp.zeros_like(out[0]), n, z)
            return tuple(jnp.where(no_step, a, b) for a, b in zip(kept, out, strict=True))

        triples = jax.tree.map(leaf, updates, state.accum, state.linear, params, active)
        new_updates, new_accum, new_linear = _unzip(triples, jax.tree.structure(updates), 3)
        return new_updates, FtrlState(
            count=optax.safe_increment(count), accum=new_accum, linear=new_linear
        )

    return _optimizer(init_fn, update_impl, mask, True)
