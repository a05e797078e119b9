"""Masks by path on real Flax modules, linen and nnx, end to end (issue 3).

Expected masks are written out by hand from the parameter names Flax documents;
group norms and prox results come from NumPy; "excluded leaves are untouched"
is checked bitwise against the inner optimizer alone.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxreg

ETA = 0.05


def np_soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def flat(t):
    return dict(zip(jaxreg.param_paths(t), jax.tree.leaves(t), strict=True))


# ----------------------------------------------------------------------------- models


class Linen(nn.Module):
    @nn.compact
    def __call__(self, x, ids):
        h = nn.Dense(4)(x) + nn.Embed(6, 4)(ids)
        h = nn.LayerNorm()(h)
        h = nn.Conv(4, (2,), padding="SAME")(h[:, None, :])  # (batch, len=1, 4)
        h = nn.BatchNorm(use_running_average=True)(h)
        h = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4)(h)
        h = nn.RMSNorm()(h[:, 0, :])
        return nn.Dense(2)(h)


class Nnx(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(3, 4, rngs=rngs)
        self.embed = nnx.Embed(6, 4, rngs=rngs)
        self.ln = nnx.LayerNorm(4, rngs=rngs)
        self.conv = nnx.Conv(4, 4, (2,), padding="SAME", rngs=rngs)
        self.bn = nnx.BatchNorm(4, use_running_average=True, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=2, in_features=4, qkv_features=4, decode=False, rngs=rngs
        )
        self.rms = nnx.RMSNorm(4, rngs=rngs)
        self.blocks = nnx.List([nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])

    def __call__(self, x, ids):
        h = self.dense(x) + self.embed(ids)
        h = self.conv(self.ln(h)[:, None, :])
        h = self.attn(self.bn(h))
        h = self.rms(h[:, 0, :])
        return self.blocks[1](jax.nn.relu(self.blocks[0](h)))


class SmallLinen(nn.Module):
    """What the training tests use: Embed, Dense, LayerNorm, Dense."""

    @nn.compact
    def __call__(self, x, ids):
        h = nn.LayerNorm()(nn.Dense(8)(x) + nn.Embed(6, 8)(ids))
        return nn.Dense(2)(jax.nn.relu(h))


class SmallNnx(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Embed(6, 8, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(3, 8, rngs=rngs), nnx.Linear(8, 2, rngs=rngs)])
        self.ln = nnx.LayerNorm(8, rngs=rngs)

    def __call__(self, x, ids):
        h = self.ln(self.layers[0](x) + self.embed(ids))
        return self.layers[1](jax.nn.relu(h))


def fill(tree, seed=0):
    """Random values for abstract params (NumPy, so no jax.random compiles)."""
    rng = np.random.default_rng(seed)

    def leaf(x):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.zeros(x.shape, x.dtype)
        return jnp.asarray(0.5 * rng.normal(size=x.shape), x.dtype)

    return jax.tree.map(leaf, tree)


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 6, size=(8,)), jnp.int32)
    y = jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)
    return x, ids, y


@pytest.fixture(scope="module")
def linen_shapes():
    """Abstract params of the full linen model (structure and shapes only: cheap)."""
    x, ids, _ = data()
    return jax.eval_shape(Linen().init, jax.random.key(0), x, ids)["params"]


def nnx_shapes():
    return nnx.state(nnx.eval_shape(lambda: Nnx(nnx.Rngs(0))), nnx.Param)


@pytest.fixture(scope="module")
def linen_setup():
    x, ids, y = data()
    model = SmallLinen()
    params = fill(jax.eval_shape(model.init, jax.random.key(0), x, ids)["params"])

    def loss(params, batch):
        x, ids, y = batch
        return jnp.mean((model.apply({"params": params}, x, ids) - y) ** 2)

    return params, loss, (x, ids, y)


def nnx_model(seed=0):
    model = nnx.eval_shape(lambda: SmallNnx(nnx.Rngs(0)))
    nnx.update(model, fill(nnx.state(model), seed))
    return model


def nnx_loss(model, batch):
    x, ids, y = batch
    return jnp.mean((model(x, ids) - y) ** 2)


SMALL_NNX_PATHS = {
    "embed/embedding": "embedding",
    "layers/0/bias": "bias",
    "layers/0/kernel": "kernel",
    "layers/1/bias": "bias",
    "layers/1/kernel": "kernel",
    "ln/bias": "bias",
    "ln/scale": "norm",
}


LINEN_PATHS = {
    "BatchNorm_0/bias": "bias",
    "BatchNorm_0/scale": "norm",
    "Conv_0/bias": "bias",
    "Conv_0/kernel": "kernel",
    "Dense_0/bias": "bias",
    "Dense_0/kernel": "kernel",
    "Dense_1/bias": "bias",
    "Dense_1/kernel": "kernel",
    "Embed_0/embedding": "embedding",
    "LayerNorm_0/bias": "bias",
    "LayerNorm_0/scale": "norm",
    **{
        f"MultiHeadDotProductAttention_0/{p}/{k}": k
        for p in ("key", "out", "query", "value")
        for k in ("bias", "kernel")
    },
    "RMSNorm_0/scale": "norm",
}

NNX_PATHS = {
    **{f"attn/{p}/{k}": k for p in ("key", "out", "query", "value") for k in ("bias", "kernel")},
    "blocks/0/bias": "bias",
    "blocks/0/kernel": "kernel",
    "blocks/1/bias": "bias",
    "blocks/1/kernel": "kernel",
    "bn/bias": "bias",
    "bn/scale": "norm",
    "conv/bias": "bias",
    "conv/kernel": "kernel",
    "dense/bias": "bias",
    "dense/kernel": "kernel",
    "embed/embedding": "embedding",
    "ln/bias": "bias",
    "ln/scale": "norm",
    "rms/scale": "norm",
}

READY = {
    "kernels_only": (jaxreg.kernels_only, {"kernel"}),
    "no_bias_no_norm": (jaxreg.no_bias_no_norm, {"kernel", "embedding"}),
    "no_bias_no_norm_no_embedding": (
        lambda: jaxreg.no_bias_no_norm(embeddings=False),
        {"kernel"},
    ),
}


@pytest.mark.parametrize("name", sorted(READY))
def test_ready_made_masks_on_linen_params(linen_shapes, name):
    params = linen_shapes
    assert jaxreg.param_paths(params) == sorted(LINEN_PATHS)
    make, kinds = READY[name]
    expect = {p: kind in kinds for p, kind in LINEN_PATHS.items()}
    assert flat(make()(params)) == expect


@pytest.mark.parametrize("name", sorted(READY))
def test_ready_made_masks_on_nnx_state_wrapped_and_pure(name):
    state = nnx_shapes()
    pure = nnx.as_pure(state)
    assert jaxreg.param_paths(state) == jaxreg.param_paths(pure) == sorted(NNX_PATHS)
    make, kinds = READY[name]
    expect = [NNX_PATHS[p] in kinds for p in sorted(NNX_PATHS)]
    assert jax.tree.leaves(make()(state)) == expect  # Variables (nnx.Optimizer's init)
    assert jax.tree.leaves(make()(pure)) == expect  # plain arrays (its update)


def test_linen_partitioned_params_paths_drop_value():
    class P(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
            return nn.Dense(2, kernel_init=init)(x)

    params = fill(jax.eval_shape(P().init, jax.random.key(0), jnp.ones((1, 3)))["params"])
    assert isinstance(params["Dense_0"]["kernel"], nn.Partitioned)
    assert jaxreg.param_paths(params) == ["Dense_0/bias", "Dense_0/kernel"]
    mask = jaxreg.path_mask(include=r"kernel$")
    tx = optax.chain(optax.sgd(ETA), jaxreg.l1_prox(1.0, learning_rate=ETA, mask=mask))
    g = jax.tree.map(jnp.zeros_like, params)
    u, _ = tx.update(g, tx.init(params), params)
    new = optax.apply_updates(params, u)
    k = np.asarray(params["Dense_0"]["kernel"].value)
    np.testing.assert_allclose(new["Dense_0"]["kernel"].value, np_soft(k, ETA), rtol=1e-6)
    np.testing.assert_array_equal(new["Dense_0"]["bias"], params["Dense_0"]["bias"])


def test_nnx_optimizer_init_and_update_see_the_same_mask():
    model = nnx_model()
    seen = []
    base = jaxreg.path_mask(include=r"kernel$", exclude=r"^layers/1/")

    def spy(tree):
        result = base(tree)
        seen.append((jaxreg.param_paths(tree), jax.tree.leaves(result)))
        return result

    tx = optax.chain(optax.adam(ETA), jaxreg.weight_decay(0.5, learning_rate=ETA, mask=spy))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        opt.update(model, nnx.grad(nnx_loss)(model, data()))

    step(model, opt)
    assert len(seen) == 2  # init (Variables) and update (plain arrays)
    (paths_init, mask_init), (paths_upd, mask_upd) = seen
    assert paths_init == paths_upd == sorted(SMALL_NNX_PATHS)
    expect = [p == "layers/0/kernel" for p in paths_init]
    assert mask_init == mask_upd == expect


def test_nnx_optimizer_with_path_mask_equals_pure_optax_bitwise():
    batch = data()
    model = nnx_model()
    graphdef, params0, rest = nnx.split(model, nnx.Param, ...)
    params0 = nnx.as_pure(params0)
    tx = optax.chain(
        optax.adam(ETA), jaxreg.l1_prox(0.5, learning_rate=ETA, mask=jaxreg.kernels_only())
    )
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, opt):
        opt.update(model, nnx.grad(nnx_loss)(model, batch))

    @jax.jit
    def pure_step(p, s):
        g = jax.grad(lambda p: nnx_loss(nnx.merge(graphdef, p, rest), batch))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    p, s = params0, tx.init(params0)
    for _ in range(3):
        nnx_step(model, opt)
        p, s = pure_step(p, s)
    jax.tree.map(np.testing.assert_array_equal, nnx.as_pure(nnx.state(model, nnx.Param)), p)


# ----------------------------------------------------------------------------- group lasso


def np_group_prox(w, t, group_axis):
    """Block soft threshold with groups indexed by ``group_axis`` (NumPy)."""
    axes = (group_axis,) if isinstance(group_axis, int) else group_axis
    axes = tuple(a % w.ndim for a in axes)
    red = tuple(i for i in range(w.ndim) if i not in axes)
    size = int(np.prod([w.shape[i] for i in red]))
    norm = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=red, keepdims=True))
    return w * np.maximum(0, 1 - t * np.sqrt(size) / norm), norm.squeeze(), size


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_group_lasso_on_attention_kernels_groups_heads(framework):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 3, 4)), jnp.float32)
    if framework == "linen":
        mha = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4)
        params = fill(jax.eval_shape(mha.init, jax.random.key(0), x)["params"])
    else:
        mha = nnx.eval_shape(
            lambda: nnx.MultiHeadAttention(
                num_heads=2, in_features=4, qkv_features=4, decode=False, rngs=nnx.Rngs(0)
            )
        )
        params = fill(nnx.as_pure(nnx.state(mha, nnx.Param)))
    q = np.asarray(params["query"]["kernel"])
    o = np.asarray(params["out"]["kernel"])
    assert q.shape == (4, 2, 2) and o.shape == (2, 2, 4)  # (in, heads, dim), (heads, dim, out)
    # Whole heads: axis 1 of query/key/value, axis 0 of out.
    qkv = jaxreg.path_mask(include=r"(query|key|value)/kernel$")
    out = jaxreg.path_mask(include=r"out/kernel$")
    t = 0.3
    _, q_norms, q_size = np_group_prox(q, t, 1)
    _, o_norms, o_size = np_group_prox(o, t, 0)
    lam = float(np.median(q_norms) / np.sqrt(q_size))  # prunes one of the two heads
    expect = lam * (np.sqrt(q_size) * q_norms.sum())
    pen = jax.jit(
        lambda p: jaxreg.group_lasso_penalty(
            p, jaxreg.path_strengths({r"query/kernel$": lam}), group_axis=1
        )
    )(params)
    np.testing.assert_allclose(pen, expect, rtol=1e-5)
    expect_o = np.sqrt(o_size) * o_norms.sum()
    np.testing.assert_allclose(
        jaxreg.group_lasso_penalty(params, 1.0, mask=out, group_axis=0), expect_o, rtol=1e-5
    )
    tx = optax.chain(
        optax.sgd(1.0),
        jaxreg.group_lasso_prox(t, learning_rate=1.0, mask=qkv, group_axis=1),
        jaxreg.group_lasso_prox(t, learning_rate=1.0, mask=out, group_axis=0),
    )
    zeros = jax.tree.map(jnp.zeros_like, params)
    new = optax.apply_updates(params, jax.jit(tx.update)(zeros, tx.init(params), params)[0])
    np.testing.assert_allclose(new["query"]["kernel"], np_group_prox(q, t, 1)[0], rtol=1e-5)
    np.testing.assert_allclose(new["out"]["kernel"], np_group_prox(o, t, 0)[0], rtol=1e-5)
    np.testing.assert_array_equal(new["query"]["bias"], params["query"]["bias"])
    # Per output feature (head, dim) of query: group_axis=(1, 2).
    tx = jaxreg.group_lasso_prox(t, learning_rate=1.0, mask=qkv, group_axis=(1, 2))
    u, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
    np.testing.assert_allclose(
        optax.apply_updates(params, u)["query"]["kernel"],
        np_group_prox(q, t, (1, 2))[0],
        rtol=1e-5,
    )


# ----------------------------------------------------------------------------- worked examples


def reference_step(tx, inner, loss):
    """One jitted step: the regularized params and what ``inner`` alone would give."""

    @jax.jit
    def step(p, s, batch):
        g = jax.grad(loss)(p, batch)
        u, s_new = tx.update(g, s, p)
        u_in, _ = inner.update(g, s[0], p)
        return optax.apply_updates(p, u), optax.apply_updates(p, u_in), s_new

    return step


def check_step(p_old, p_new, p_inner, mask, regularized):
    """Excluded leaves bitwise equal the inner optimizer; included follow ``regularized``."""
    for path, keep in flat(mask).items():
        new, inner, old = (np.asarray(flat(t)[path]) for t in (p_new, p_inner, p_old))
        if keep:
            np.testing.assert_allclose(new, regularized(old, inner), rtol=2e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(new, inner)


LAM_WD, LAM_L1 = 0.5, 3.0


def assert_sparse_or_decayed(example, kernels, initial):
    """L1: most kernel entries exactly zero. Decay: kernels shrank overall."""
    if not isinstance(initial, dict):
        initial = nnx.as_pure(nnx.state(initial, nnx.Param))
    init = [np.asarray(x) for path, x in flat(initial).items() if path.endswith("kernel")]
    if example == "l1_kernels_only":
        zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
        assert zeros > 0.5
    else:
        assert sum((k**2).sum() for k in kernels) < sum((k**2).sum() for k in init)


EXAMPLES = {
    # (a) AdamW-style decoupled decay that skips biases and norms.
    "adamw_no_bias_no_norm": (
        lambda: jaxreg.no_bias_no_norm(),
        lambda m: jaxreg.weight_decay(LAM_WD, learning_rate=ETA, mask=m),
        lambda old, inner: inner - ETA * LAM_WD * old,
    ),
    # (b) L1 prox on kernels only.
    "l1_kernels_only": (
        lambda: jaxreg.kernels_only(),
        lambda m: jaxreg.l1_prox(LAM_L1, learning_rate=ETA, mask=m),
        lambda old, inner: np_soft(inner, ETA * LAM_L1),
    ),
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_worked_example_linen(linen_setup, example):
    params, loss, batch = linen_setup
    make_mask, make_reg, formula = EXAMPLES[example]
    mask = make_mask()
    inner = optax.adam(ETA)
    tx = optax.chain(inner, make_reg(mask))
    step = reference_step(tx, inner, loss)
    p, s = params, tx.init(params)
    m = mask(params)
    for _ in range(4):
        p_new, p_inner, s = step(p, s, batch)
        check_step(p, p_new, p_inner, m, formula)
        p = p_new
    kernels = [np.asarray(x) for path, x in flat(p).items() if path.endswith("kernel")]
    assert_sparse_or_decayed(example, kernels, params)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_worked_example_nnx(example):
    batch = data()
    model = nnx_model()
    make_mask, make_reg, formula = EXAMPLES[example]
    mask = make_mask()
    inner = optax.adam(ETA)
    opt = nnx.Optimizer(model, optax.chain(inner, make_reg(mask)), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, shadow):
        grads = nnx.grad(nnx_loss)(model, batch)
        p = nnx.as_pure(nnx.state(model, nnx.Param))
        g = nnx.as_pure(nnx.state(grads, nnx.Param))
        u_in, shadow = inner.update(g, shadow, p)  # inner alone, same gradients
        opt.update(model, grads)
        return p, optax.apply_updates(p, u_in), shadow

    shadow = inner.init(nnx.as_pure(nnx.state(model, nnx.Param)))
    m = mask(nnx.state(model, nnx.Param))
    for _ in range(4):
        p, p_inner, shadow = step(model, opt, shadow)
        check_step(p, nnx.as_pure(nnx.state(model, nnx.Param)), p_inner, m, formula)
    p = nnx.as_pure(nnx.state(model, nnx.Param))
    kernels = [np.asarray(x) for path, x in flat(p).items() if path.endswith("kernel")]
    assert_sparse_or_decayed(example, kernels, nnx_model())
