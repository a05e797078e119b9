"""The composition matrix: jaxreg with the rest of optax (issue 8; README table).

Each cell states what the combination does, checked against a NumPy formula:

* ``clip_by_global_norm`` first: it clips the data gradient only; the L2 term and the
  prox come after it.
* ``apply_if_finite``: a non-finite step is skipped whole (no prox either, state
  and schedules not advanced); finite steps are unchanged.
* ``MultiSteps``: mini-steps leave the params untouched; every k-th step applies
  the prox once, to ``p − η·mean(g)``.
* ``inject_hyperparams``: injected strength / learning rate take effect on the
  next step (mask functions must be static: see test_bad_inputs).
* ``optax.partition`` / ``multi_transform``: jaxreg transforms, masks and
  optimizers work inside a partition (``MaskedNode`` leaves of the other labels).
* ``reduce_on_plateau``: after the prox, a damped prox step ``p + s·(prox − p)``
  (same fixed points; exact zeros only where ``p`` already was 0); before the prox,
  ``prox_{ηλ}(p − s·η·g)`` (exact zeros, but the threshold does not shrink with ``s``,
  i.e. the effective strength is ``λ/s``).
* ``schedule_free``: a parameter-side piece cannot follow it (it would threshold
  the interpolation ``y`` while schedule-free's ``z`` never sees the regularizer):
  :func:`jaxreg.regularized` refuses it; gradient-side ``add_l2_gradient`` inside
  it equals optax's own ``schedule_free_sgd(weight_decay=λ)``.
* learning-rate-free optimizers (prodigy, dadapt_adamw, cocob, mechanize): the prox
  is told ``learning_rate=1.0`` and thresholds at ``strength`` per step:
  ``p_new = prox_{λ}(p + u)`` with ``u`` the optimizer's own update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

ETA, LAM = 0.1, 0.5
RNG = np.random.default_rng(0)
W = RNG.normal(size=(3, 4)).astype(np.float32)
G = RNG.normal(size=(3, 4)).astype(np.float32)


def st(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def step(tx, params, grads, state=None, **extra):
    state = tx.init(params) if state is None else state
    updates, state = tx.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state


# ---- clip_by_global_norm -------------------------------------------------------------
def test_clip_before_gradient_side_l2_clips_the_data_gradient_only():
    clip = 0.5
    g_c = G * min(1.0, clip / np.linalg.norm(G))
    expected = W - ETA * (g_c + LAM * W)
    tx = optax.chain(optax.clip_by_global_norm(clip), jaxreg.add_l2_gradient(LAM), optax.sgd(ETA))
    new, _ = step(tx, jnp.asarray(W), jnp.asarray(G))
    np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-7)
    new, _ = step(jaxreg.regularized(optax.sgd, ETA, l2=LAM, clip_norm=clip), W, G)
    np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-7)
    # the wrong order clips the L2 term too: a different step
    wrong = optax.chain(
        jaxreg.add_l2_gradient(LAM), optax.clip_by_global_norm(clip), optax.sgd(ETA)
    )
    assert not np.allclose(step(wrong, jnp.asarray(W), jnp.asarray(G))[0], expected, atol=1e-4)


def test_clip_before_prox():
    clip = 0.5
    g_c = G * min(1.0, clip / np.linalg.norm(G))
    tx = jaxreg.regularized(optax.sgd, ETA, l1=LAM * 4, clip_norm=clip)
    new, _ = step(tx, W, G)
    np.testing.assert_allclose(new, st(W - ETA * g_c, ETA * LAM * 4), rtol=1e-6, atol=1e-7)


# ---- apply_if_finite -----------------------------------------------------------------
def test_apply_if_finite_skips_the_whole_step_prox_included():
    sched = optax.linear_schedule(LAM, 2 * LAM, 4)  # a schedule: the count matters
    inner = optax.chain(optax.sgd(ETA), jaxreg.l1_prox(sched, learning_rate=ETA))
    tx = optax.apply_if_finite(inner, max_consecutive_errors=3)
    w = jnp.asarray(W)
    bad = jnp.asarray(G).at[0, 0].set(jnp.nan)
    new, state = step(tx, w, bad)
    np.testing.assert_array_equal(new, W)  # no NaN, and no thresholding either
    assert int(state.notfinite_count) == 1
    assert int(state.inner_state[1].count) == 0  # the strength schedule did not advance
    new, state = step(tx, w, jnp.asarray(G), state)
    np.testing.assert_allclose(new, st(W - ETA * G, ETA * LAM), rtol=1e-6, atol=1e-7)
    assert int(state.inner_state[1].count) == 1


# ---- MultiSteps ----------------------------------------------------------------------
def test_multisteps_applies_the_prox_once_per_k_steps():
    k = 3
    tx = optax.MultiSteps(optax.chain(optax.sgd(ETA), jaxreg.l1_prox(LAM, learning_rate=ETA)), k)
    grads = [G, 2 * G, -0.5 * G]
    w, state = jnp.asarray(W), None
    for i, g in enumerate(grads):
        w, state = step(tx, w, jnp.asarray(g), state)
        if i < k - 1:
            np.testing.assert_array_equal(w, W)  # mini-steps: untouched, not thresholded
    expected = st(W - ETA * np.mean(grads, axis=0), ETA * LAM)
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-6)


# ---- inject_hyperparams --------------------------------------------------------------
def test_inject_hyperparams_changes_take_effect_next_step():
    tx = optax.chain(
        optax.sgd(ETA), optax.inject_hyperparams(jaxreg.l1_prox)(LAM, learning_rate=ETA)
    )
    w = jnp.asarray(W)
    state = tx.init(w)
    state[1].hyperparams["strength"] = jnp.asarray(3 * LAM)
    new, _ = step(tx, w, jnp.asarray(G), state)
    np.testing.assert_allclose(new, st(W - ETA * G, 3 * ETA * LAM), rtol=1e-6, atol=1e-7)


def test_inject_hyperparams_regularized_shares_the_learning_rate():
    tx = optax.inject_hyperparams(jaxreg.regularized, static_args=("optimizer", "mask"))(
        optax.sgd, ETA, l1=LAM, mask=jaxreg.kernels_only()
    )
    params = {"kernel": jnp.asarray(W), "bias": jnp.ones(4)}
    grads = {"kernel": jnp.asarray(G), "bias": jnp.ones(4)}
    state = tx.init(params)
    state.hyperparams["learning_rate"] = jnp.asarray(4 * ETA)
    new, _ = step(tx, params, grads, state)
    np.testing.assert_allclose(
        new["kernel"], st(W - 4 * ETA * G, 4 * ETA * LAM), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(new["bias"], 1 - 4 * ETA, rtol=1e-6)


# ---- optax.partition / multi_transform (MaskedNode leaves) ---------------------------
PARTITIONED = {
    "l1_prox": lambda: optax.chain(optax.sgd(ETA), jaxreg.l1_prox(LAM, learning_rate=ETA)),
    "l1_prox_path_mask": lambda: optax.chain(
        optax.sgd(ETA),
        jaxreg.l1_prox(LAM, learning_rate=ETA, mask=jaxreg.path_mask(include=r"kernel$")),
    ),
    "l1_prox_prefix_strength": lambda: optax.chain(
        optax.sgd(ETA),
        jaxreg.l1_prox({"a": {"kernel": LAM}, "b": 0.0}, learning_rate=ETA),
    ),
    "regularized": lambda: jaxreg.regularized(optax.sgd, ETA, l1=LAM),
    "proximal_sgd": lambda: jaxreg.proximal_sgd(ETA, l1=LAM),
}


@pytest.mark.parametrize("partition", [optax.partition, optax.multi_transform])
@pytest.mark.parametrize("name", sorted(PARTITIONED))
def test_inside_partition(name, partition):
    params = {"a": {"kernel": jnp.asarray(W)}, "b": {"kernel": jnp.asarray(W)}}
    grads = {"a": {"kernel": jnp.asarray(G)}, "b": {"kernel": jnp.asarray(G)}}
    labels = {"a": {"kernel": "reg"}, "b": {"kernel": "plain"}}
    tx = partition({"reg": PARTITIONED[name](), "plain": optax.sgd(ETA)}, labels)
    new, _ = step(tx, params, grads)
    np.testing.assert_allclose(new["a"]["kernel"], st(W - ETA * G, ETA * LAM), atol=1e-6)
    np.testing.assert_allclose(new["b"]["kernel"], W - ETA * G, atol=1e-6)


@pytest.mark.parametrize("name", ["group_lasso_prox", "proximal_adam", "ftrl", "proximal_adagrad"])
def test_inside_partition_other_label_untouched(name):
    make = {
        "group_lasso_prox": lambda: optax.chain(
            optax.sgd(ETA), jaxreg.group_lasso_prox(LAM, learning_rate=ETA)
        ),
        "proximal_adam": lambda: jaxreg.proximal_adam(ETA, l1=LAM),
        "ftrl": lambda: jaxreg.ftrl(ETA, l1=LAM),
        "proximal_adagrad": lambda: jaxreg.proximal_adagrad(ETA, l1=LAM),
    }[name]
    params = {"a": jnp.asarray(W), "b": jnp.asarray(W)}
    grads = {"a": jnp.asarray(G), "b": jnp.asarray(G)}
    labels = {"a": "reg", "b": "plain"}
    tx = optax.partition({"reg": make(), "plain": optax.sgd(ETA)}, labels)
    new, _ = step(tx, params, grads)
    alone, _ = step(make(), {"a": jnp.asarray(W)}, {"a": jnp.asarray(G)})
    np.testing.assert_array_equal(new["a"], alone["a"])
    np.testing.assert_allclose(new["b"], W - ETA * G, atol=1e-6)


# ---- reduce_on_plateau ---------------------------------------------------------------
def _plateau_scale_half(tx, index):
    """Runs one step at loss 1.0, then returns (state) with the plateau scale set to 0.5."""
    state = tx.init(jnp.asarray(W))
    state = list(state)
    state[index] = state[index]._replace(scale=jnp.asarray(0.5, jnp.float32))
    return tuple(state)


def test_reduce_on_plateau_after_the_prox_is_a_damped_prox_step():
    tx = optax.chain(
        optax.sgd(ETA),
        jaxreg.l1_prox(LAM, learning_rate=ETA),
        optax.contrib.reduce_on_plateau(patience=1000),
    )
    state = _plateau_scale_half(tx, 2)
    new, _ = step(tx, jnp.asarray(W), jnp.asarray(G), state, value=jnp.asarray(1.0))
    expected = W + 0.5 * (st(W - ETA * G, ETA * LAM) - W)
    np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-7)


def test_reduce_on_plateau_before_the_prox_keeps_exact_zeros_at_threshold_eta_lambda():
    tx = optax.chain(
        optax.sgd(ETA),
        optax.contrib.reduce_on_plateau(patience=1000),
        jaxreg.l1_prox(LAM * 4, learning_rate=ETA),
    )
    state = _plateau_scale_half(tx, 1)
    new, _ = step(tx, jnp.asarray(W), jnp.asarray(G), state, value=jnp.asarray(1.0))
    expected = st(W - 0.5 * ETA * G, ETA * LAM * 4)
    np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-7)
    assert np.any(np.asarray(new) == 0)


# ---- schedule_free -------------------------------------------------------------------
def test_regularized_refuses_a_prox_after_schedule_free():
    for opt in (optax.contrib.schedule_free_adamw, optax.contrib.schedule_free_sgd):
        for key in ("l1", "weight_decay", "group_lasso"):
            with pytest.raises(ValueError, match=r"`optimizer`.*z sequence"):
                jaxreg.regularized(opt, 1e-2, **{key: 1e-3})


def test_gradient_side_l2_inside_schedule_free_is_optax_weight_decay():
    ours = optax.contrib.schedule_free(
        optax.chain(jaxreg.add_l2_gradient(LAM), optax.sgd(ETA)), learning_rate=ETA
    )
    theirs = optax.contrib.schedule_free_sgd(ETA, weight_decay=LAM)
    via_regularized = jaxreg.regularized(optax.contrib.schedule_free_sgd, ETA, l2=LAM)
    w = {"a": jnp.asarray(W)}
    states = [None, None, None]
    ws = [w, w, w]
    for k in range(3):
        g = {"a": jnp.asarray(G) * (k + 1) + ws[0]["a"]}
        for i, tx in enumerate((ours, theirs, via_regularized)):
            ws[i], states[i] = step(tx, ws[i], g, states[i])
    np.testing.assert_array_equal(ws[0]["a"], ws[1]["a"])
    np.testing.assert_array_equal(ws[0]["a"], ws[2]["a"])


def test_prox_chained_after_schedule_free_never_reaches_z():
    """Pins why a prox after schedule_free is refused: z ignores the regularizer."""
    sf = optax.contrib.schedule_free(optax.sgd(ETA), learning_rate=ETA)
    with_prox = optax.chain(sf, jaxreg.l1_prox(100.0, learning_rate=ETA))
    w = jnp.asarray(W)
    _, s_plain = step(sf, w, jnp.asarray(G))
    new_prox, s_prox = step(with_prox, w, jnp.asarray(G))
    assert np.all(np.asarray(new_prox) == 0)  # y is thresholded ...
    np.testing.assert_array_equal(s_prox[0].z, s_plain.z)  # ... z is not


# ---- learning-rate-free optimizers ---------------------------------------------------
LR_FREE = {
    "prodigy": lambda: optax.contrib.prodigy(),
    "dadapt_adamw": lambda: optax.contrib.dadapt_adamw(),
    "cocob": lambda: optax.contrib.cocob(),
    "mechanize": lambda: optax.contrib.mechanize(optax.adam(1e-2)),
}


@pytest.mark.parametrize("name", sorted(LR_FREE))
def test_learning_rate_free_optimizer_then_prox_thresholds_at_strength(name):
    opt = LR_FREE[name]
    lam = 0.05
    tx = optax.chain(opt(), jaxreg.l1_prox(lam, learning_rate=1.0))
    wd = optax.chain(opt(), jaxreg.weight_decay(lam, learning_rate=1.0))
    reg = jaxreg.regularized(lambda lr: opt(), 1.0, l1=lam)
    w = {"a": jnp.asarray(W)}
    s_opt, s_tx, s_wd, s_reg = opt().init(w), tx.init(w), wd.init(w), reg.init(w)
    w_tx = w_wd = w_reg = w
    for k in range(3):
        g = {"a": jnp.asarray(G) * (1 + k)}
        # the optimizer's own update from the same params and state, then the prox
        u, s_opt_next = opt().update(g, s_opt, w_tx)
        expected = st(np.asarray(w_tx["a"]) + np.asarray(u["a"]), lam)
        w_tx, s_tx = step(tx, w_tx, g, s_tx)
        np.testing.assert_allclose(w_tx["a"], expected, rtol=1e-6, atol=1e-7)
        s_opt = s_opt_next
        u_wd, _ = opt().update(g, s_wd[0], w_wd)
        expected_wd = np.asarray(w_wd["a"]) + np.asarray(u_wd["a"]) - lam * np.asarray(w_wd["a"])
        w_wd, s_wd = step(wd, w_wd, g, s_wd)
        np.testing.assert_allclose(w_wd["a"], expected_wd, rtol=1e-5, atol=1e-6)
        w_reg, s_reg = step(reg, w_reg, g, s_reg)
    np.testing.assert_array_equal(w_reg["a"], w_tx["a"])
    assert np.any(np.asarray(w_tx["a"]) == 0)


def test_jit_of_a_composed_step():
    """One jitted step of a deep composition still equals the NumPy formula."""
    tx = optax.apply_if_finite(
        optax.chain(
            optax.clip_by_global_norm(10.0),
            optax.sgd(ETA),
            optax.inject_hyperparams(jaxreg.l1_prox)(LAM, learning_rate=ETA),
        ),
        3,
    )
    w = jnp.asarray(W)
    fn = jax.jit(lambda w, s, g: step(tx, w, g, s))
    new, _ = fn(w, tx.init(w), jnp.asarray(G))
    g_c = G * min(1.0, 10.0 / np.linalg.norm(G))
    np.testing.assert_allclose(new, st(W - ETA * g_c, ETA * LAM), rtol=1e-6, atol=1e-7)
