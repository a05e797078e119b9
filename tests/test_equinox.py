"""Masks by path on real equinox modules, end to end (issue 3).

Equinox names every parameter ``weight``/``bias`` and models are callable
pytrees, which optax can mistake for mask functions (optax 913, equinox 771).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

eqx = pytest.importorskip("equinox")

import jaxreg  # noqa: E402

ETA = 0.05


def np_soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def flat(t):
    return dict(zip(jaxreg.param_paths(t), jax.tree.leaves(t), strict=True))


def fill(tree, seed=0):
    """Random values for abstract arrays (NumPy, so no jax.random compiles)."""
    rng = np.random.default_rng(seed)

    def leaf(x):
        if not isinstance(x, jax.ShapeDtypeStruct):
            return x
        return jnp.asarray(0.5 * rng.normal(size=x.shape), x.dtype)

    return jax.tree.map(leaf, tree)


class Full(eqx.Module):
    """Every equinox layer the ready-made masks know about."""

    layers: list
    conv: eqx.nn.Conv1d
    conv2: eqx.nn.Conv2d
    ln: eqx.nn.LayerNorm
    rms: eqx.nn.RMSNorm
    gn: eqx.nn.GroupNorm
    emb: eqx.nn.Embedding
    attn: eqx.nn.MultiheadAttention
    scalar_in: eqx.nn.Linear

    def __init__(self, key):
        k = jax.random.split(key, 7)
        self.layers = [eqx.nn.Linear(3, 4, key=k[0]), eqx.nn.Linear(4, 2, key=k[1])]
        self.conv = eqx.nn.Conv1d(2, 3, 3, key=k[2])
        self.conv2 = eqx.nn.Conv2d(2, 3, 3, use_bias=False, key=k[3])
        self.ln = eqx.nn.LayerNorm(4)
        self.rms = eqx.nn.RMSNorm(4)
        self.gn = eqx.nn.GroupNorm(2, 4)
        self.emb = eqx.nn.Embedding(5, 4, key=k[4])
        self.attn = eqx.nn.MultiheadAttention(2, 4, key=k[5])
        self.scalar_in = eqx.nn.Linear("scalar", 2, key=k[6])  # a 1-D weight that is a kernel


FULL_PATHS = {
    "layers/0/weight": "kernel",
    "layers/0/bias": "bias",
    "layers/1/weight": "kernel",
    "layers/1/bias": "bias",
    "conv/weight": "kernel",
    "conv/bias": "bias",
    "conv2/weight": "kernel",
    "ln/weight": "norm",
    "ln/bias": "bias",
    "rms/weight": "norm",
    "rms/bias": "bias",
    "gn/weight": "norm",
    "gn/bias": "bias",
    "emb/weight": "embedding",
    "attn/query_proj/weight": "kernel",
    "attn/key_proj/weight": "kernel",
    "attn/value_proj/weight": "kernel",
    "attn/output_proj/weight": "kernel",
    "scalar_in/weight": "kernel",
    "scalar_in/bias": "bias",
}

READY = {
    "kernels_only": (jaxreg.kernels_only, {"kernel"}),
    "no_bias_no_norm": (jaxreg.no_bias_no_norm, {"kernel", "embedding"}),
    "no_bias_no_norm_no_embedding": (lambda: jaxreg.no_bias_no_norm(embeddings=False), {"kernel"}),
}


@pytest.fixture(scope="module")
def full_params():
    abstract = eqx.filter_eval_shape(Full, jax.random.key(0))
    return eqx.filter(abstract, lambda x: isinstance(x, jax.ShapeDtypeStruct))


@pytest.mark.parametrize("name", sorted(READY))
def test_ready_made_masks_on_equinox_layers(full_params, name):
    assert jaxreg.param_paths(full_params) == list(FULL_PATHS)
    make, kinds = READY[name]
    expect = {p: kind in kinds for p, kind in FULL_PATHS.items()}
    mask = make()(full_params)
    assert isinstance(mask, Full)  # same structure as the params
    assert flat(mask) == expect


def test_path_mask_on_equinox_paths(full_params):
    m = jaxreg.path_mask(include=r"^layers/\d+/weight$")(full_params)
    assert [p for p, keep in flat(m).items() if keep] == ["layers/0/weight", "layers/1/weight"]
    with pytest.raises(ValueError, match="'layers/0/kernel' matches no"):
        jaxreg.path_mask(include="layers/0/kernel")(full_params)


# ----------------------------------------------------------------------------- small model


class Small(eqx.Module):
    emb: eqx.nn.Embedding
    layers: list
    ln: eqx.nn.LayerNorm
    act: callable = eqx.field(static=True)

    def __init__(self, key):
        k = jax.random.split(key, 3)
        self.emb = eqx.nn.Embedding(6, 8, key=k[0])
        self.layers = [eqx.nn.Linear(3, 8, key=k[1]), eqx.nn.Linear(8, 2, key=k[2])]
        self.ln = eqx.nn.LayerNorm(8)
        self.act = jax.nn.relu

    def __call__(self, x, i):
        h = self.ln(self.layers[0](x) + self.emb(i))
        return self.layers[1](self.act(h))


def small_model():
    return fill(eqx.filter_eval_shape(Small, jax.random.key(0)))


def data():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 6, size=(8,)), jnp.int32)
    y = jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)
    return x, ids, y


def loss_fn(static):
    def loss(params, batch):
        model = eqx.combine(params, static)
        x, ids, y = batch
        return jnp.mean((jax.vmap(model)(x, ids) - y) ** 2)

    return loss


def test_mask_tree_that_is_a_callable_module_is_not_taken_for_a_function():
    params, _ = eqx.partition(small_model(), eqx.is_array)
    mask_tree = jaxreg.kernels_only()(params)
    assert callable(mask_tree)  # an equinox Module of bools: callable, but a pytree
    g = jax.tree.map(jnp.zeros_like, params)
    via_tree = jaxreg.l1_prox(2.0, learning_rate=ETA, mask=mask_tree)
    via_fn = jaxreg.l1_prox(2.0, learning_rate=ETA, mask=jaxreg.kernels_only())
    a, _ = jax.jit(via_tree.update)(g, via_tree.init(params), params)
    b, _ = jax.jit(via_fn.update)(g, via_fn.init(params), params)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    w = np.asarray(params.layers[0].weight)
    np.testing.assert_allclose(a.layers[0].weight + w, np_soft(w, ETA * 2.0), rtol=1e-6)
    np.testing.assert_array_equal(a.layers[0].bias, 0.0)
    np.testing.assert_array_equal(a.emb.weight, 0.0)


# ----------------------------------------------------------------------------- group lasso


def np_group_prox(w, t, group_axis):
    red = tuple(i for i in range(w.ndim) if i != group_axis % w.ndim)
    size = int(np.prod([w.shape[i] for i in red]))
    norm = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=red, keepdims=True))
    return w * np.maximum(0, 1 - t * np.sqrt(size) / norm), norm.squeeze(), size


def test_group_lasso_on_equinox_weights_groups_output_units(full_params):
    params = fill(full_params)
    mask = jaxreg.path_mask(include=r"^(layers/0|conv)/weight$")
    w = np.asarray(params.layers[0].weight)  # (out=4, in=3)
    c = np.asarray(params.conv.weight)  # (out=3, in=2, k=3)
    _, w_norms, w_size = np_group_prox(w, 0.0, 0)
    _, c_norms, c_size = np_group_prox(c, 0.0, 0)
    assert w_size == 3 and c_size == 6  # one group per output unit / filter
    expect = np.sqrt(w_size) * w_norms.sum() + np.sqrt(c_size) * c_norms.sum()
    pen = jax.jit(lambda p: jaxreg.group_lasso_penalty(p, 1.0, mask=mask, group_axis=0))
    np.testing.assert_allclose(pen(params), expect, rtol=1e-5)
    t = float(np.median(w_norms) / np.sqrt(w_size))  # prunes about half the units
    tx = optax.chain(
        optax.sgd(1.0), jaxreg.group_lasso_prox(t, learning_rate=1.0, mask=mask, group_axis=0)
    )
    g = jax.tree.map(jnp.zeros_like, params)
    new = optax.apply_updates(params, jax.jit(tx.update)(g, tx.init(params), params)[0])
    np.testing.assert_allclose(new.layers[0].weight, np_group_prox(w, t, 0)[0], rtol=1e-5)
    np.testing.assert_allclose(new.conv.weight, np_group_prox(c, t, 0)[0], rtol=1e-5)
    rows = np.all(np.asarray(new.layers[0].weight) == 0, axis=1)
    assert 1 <= rows.sum() < 4  # whole output units (rows of an (out, in) weight) removed
    np.testing.assert_array_equal(new.ln.weight, params.ln.weight)


# ----------------------------------------------------------------------------- worked examples


LAM_WD, LAM_L1 = 0.5, 3.0
EXAMPLES = {
    "adamw_no_bias_no_norm": (
        lambda: jaxreg.no_bias_no_norm(),
        lambda m: jaxreg.weight_decay(LAM_WD, learning_rate=ETA, mask=m),
        lambda old, inner: inner - ETA * LAM_WD * old,
    ),
    "l1_kernels_only": (
        lambda: jaxreg.kernels_only(),
        lambda m: jaxreg.l1_prox(LAM_L1, learning_rate=ETA, mask=m),
        lambda old, inner: np_soft(inner, ETA * LAM_L1),
    ),
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_worked_example_equinox(example):
    params, static = eqx.partition(small_model(), eqx.is_array)
    loss = loss_fn(static)
    make_mask, make_reg, formula = EXAMPLES[example]
    mask = make_mask()
    inner = optax.adam(ETA)
    tx = optax.chain(inner, make_reg(mask))

    @jax.jit
    def step(p, s, batch):
        g = jax.grad(loss)(p, batch)
        u, s_new = tx.update(g, s, p)
        u_in, _ = inner.update(g, s[0], p)
        return optax.apply_updates(p, u), optax.apply_updates(p, u_in), s_new

    p, s = params, tx.init(params)
    m = flat(mask(params))
    assert m == {
        "emb/weight": example == "adamw_no_bias_no_norm",
        "layers/0/weight": True,
        "layers/0/bias": False,
        "layers/1/weight": True,
        "layers/1/bias": False,
        "ln/weight": False,
        "ln/bias": False,
    }
    for _ in range(4):
        p_new, p_inner, s = step(p, s, data())
        for path, keep in m.items():
            new, inner_, old = (np.asarray(flat(t)[path]) for t in (p_new, p_inner, p))
            if keep:
                np.testing.assert_allclose(new, formula(old, inner_), rtol=2e-5, atol=1e-7)
            else:
                np.testing.assert_array_equal(new, inner_)  # bitwise the inner optimizer
        p = p_new
    kernels = [np.asarray(p.layers[0].weight), np.asarray(p.layers[1].weight)]
    if example == "l1_kernels_only":
        zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
        assert zeros > 0.5
    else:
        init = [np.asarray(params.layers[0].weight), np.asarray(params.layers[1].weight)]
        assert sum((k**2).sum() for k in kernels) < sum((k**2).sum() for k in init)
