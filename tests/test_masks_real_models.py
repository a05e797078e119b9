"""Ready-made masks and plain bool masks on real Flax (linen, nnx) and equinox models
(issue 12). Expected masks are written out by hand from the frameworks' parameter names.

Rules:

* biases are ``bias``, ``bias_*``, ``*_bias`` (equinox ``GRUCell.bias_n``) and Haiku's ``b``;
  weight matrices are ``kernel``, ``weight``/``weight_*`` (equinox ``GRUCell.weight_ih``)
  and Haiku's ``w`` (ndim >= 2); norm parameters ``scale``/``offset``; ``kernels_only``
  and ``no_bias_no_norm`` agree on all of them;
* model state is never regularized: nnx Variables that are not ``nnx.Param`` (BatchNorm
  ``mean``/``var``) and linen collections other than ``"params"``;
* under ``nnx.Optimizer`` a bool mask with the params' paths is accepted whatever its
  container (``jax.tree.map(pred, nnx.state(model, nnx.Param))``, a plain dict).
"""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxreg

MASKS = {"kernels_only": jaxreg.kernels_only, "no_bias_no_norm": jaxreg.no_bias_no_norm}


def _by_path(tree, mask):
    return dict(zip(jaxreg.param_paths(tree), jax.tree.leaves(mask), strict=True))


@pytest.mark.parametrize("cell", ["GRUCell", "LSTMCell"])
@pytest.mark.parametrize("name", sorted(MASKS))
def test_equinox_recurrent_cells(cell, name):
    model = getattr(eqx.nn, cell)(3, 4, key=jax.random.key(0))
    params = eqx.filter(model, eqx.is_array)
    got = _by_path(params, MASKS[name]()(params))
    expected = {"weight_ih": True, "weight_hh": True, "bias": False}
    if cell == "GRUCell":
        expected["bias_n"] = False
    assert got == expected


HAIKU = {
    "mlp/~/linear_0": {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)},
    "mlp/~/linear_1": {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)},
    "layer_norm": {"scale": jnp.ones(4), "offset": jnp.zeros(4)},
    "conv2_d": {"w": jnp.ones((3, 3, 1, 2)), "b": jnp.zeros(2)},
    "embed": {"embeddings": jnp.ones((5, 4))},
}


def test_haiku_style_w_b_masks_agree():
    expected = {
        "conv2_d/b": False,
        "conv2_d/w": True,
        "embed/embeddings": False,
        "layer_norm/offset": False,
        "layer_norm/scale": False,
        "mlp/~/linear_0/b": False,
        "mlp/~/linear_0/w": True,
        "mlp/~/linear_1/b": False,
        "mlp/~/linear_1/w": True,
    }
    assert _by_path(HAIKU, jaxreg.kernels_only()(HAIKU)) == expected
    assert _by_path(HAIKU, jaxreg.no_bias_no_norm(embeddings=False)(HAIKU)) == expected
    with_emb = _by_path(HAIKU, jaxreg.no_bias_no_norm()(HAIKU))
    assert with_emb == {**expected, "embed/embeddings": True}
    # The penalty sees exactly the w leaves: 12 + 8 + 18 ones, (1/2)·Σw² = 19.
    assert float(jaxreg.l2_penalty(HAIKU, 1.0, mask=jaxreg.kernels_only())) == 19.0


def test_other_bias_names():
    tree = {
        "attn": {"in_proj_weight": jnp.ones((6, 2)), "in_proj_bias": jnp.zeros(6)},
        "lstm": {"weight_hh_l0": jnp.ones((4, 4)), "bias_hh_l0": jnp.zeros(4)},
    }
    got = _by_path(tree, jaxreg.no_bias_no_norm()(tree))
    assert got == {
        "attn/in_proj_bias": False,
        "attn/in_proj_weight": True,
        "lstm/bias_hh_l0": False,
        "lstm/weight_hh_l0": True,
    }
    # kernels_only does not know torch's in_proj_weight name but does know weight_*.
    assert _by_path(tree, jaxreg.kernels_only()(tree))["lstm/weight_hh_l0"] is True


class BNNet(nnx.Module):
    def __init__(self, rngs):
        self.lin = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.out = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(self.bn(self.lin(x)))


@pytest.mark.parametrize("name", sorted(MASKS))
def test_nnx_whole_state_never_marks_batch_stats(name):
    model = BNNet(nnx.Rngs(0))
    state = nnx.state(model)
    got = _by_path(state, MASKS[name]()(state))
    assert got["bn/mean"] is False and got["bn/var"] is False
    assert got["lin/kernel"] is True and got["out/kernel"] is True
    assert got["bn/scale"] is False and got["lin/bias"] is False
    # A catch-all path mask does not regularize the statistics either.
    everything = _by_path(state, jaxreg.path_mask(include=".*")(state))
    assert everything["bn/mean"] is False and everything["bn/var"] is False
    assert everything["bn/scale"] is True
    # Pure dict of the whole state: mean/var recognised by name.
    pure = nnx.to_pure_dict(state)
    got = _by_path(pure, MASKS[name]()(pure))
    assert got["bn/mean"] is False and got["bn/var"] is False
    # The penalty over the whole state counts the two kernels only.
    kernels = [np.asarray(model.lin.kernel.get_value()), np.asarray(model.out.kernel.get_value())]
    expected = 0.5 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels)
    got_pen = float(jaxreg.l2_penalty(state, 1.0, mask=MASKS[name]()))
    np.testing.assert_allclose(got_pen, expected, rtol=1e-6)


def test_linen_variables_with_batch_stats():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.Dense(4)(x)
            x = nn.BatchNorm(use_running_average=not train)(x)
            return nn.Dense(2)(x)

    variables = Net().init(jax.random.key(0), jnp.ones((2, 3)))
    assert set(variables) == {"params", "batch_stats"}
    for name, make in MASKS.items():
        got = _by_path(variables, make()(variables))
        stats = [v for p, v in got.items() if p.startswith("batch_stats/")]
        assert stats and not any(stats), name
        assert got["params/Dense_0/kernel"] is True


ETA, WD = 0.1, 0.5


def _nnx_mask_cases(model):
    params = nnx.state(model, nnx.Param)
    return {
        "tree_map_of_state": jax.tree.map(lambda x: x.ndim >= 2, params),
        "plain_dict": {
            "lin": {"kernel": True, "bias": False},
            "bn": {"scale": False, "bias": False},
            "out": {"kernel": True, "bias": False},
        },
        "plain_dict_prefix": {"lin": {"kernel": True, "bias": False}, "bn": False, "out": True},
        "pure_dict": jax.tree.map(lambda x: x.ndim >= 2, nnx.to_pure_dict(params)),
    }


@pytest.mark.parametrize(
    "case", ["tree_map_of_state", "plain_dict", "plain_dict_prefix", "pure_dict"]
)
def test_nnx_optimizer_accepts_matching_bool_masks(case):
    model = BNNet(nnx.Rngs(0))
    mask = _nnx_mask_cases(model)[case]
    before = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    tx = optax.chain(optax.sgd(ETA), jaxreg.weight_decay(WD, learning_rate=ETA, mask=mask))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    zero = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
    opt.update(model, zero)  # zero gradients: only the decay moves a parameter
    after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    decayed = {"lin/kernel", "out/kernel"} | (
        {"out/bias"} if case == "plain_dict_prefix" else set()
    )
    flat_b = dict(zip(jaxreg.param_paths(before), jax.tree.leaves(before), strict=True))
    flat_a = dict(zip(jaxreg.param_paths(after), jax.tree.leaves(after), strict=True))
    for path, old in flat_b.items():
        want = np.asarray(old) * (1 - ETA * WD) if path in decayed else np.asarray(old)
        np.testing.assert_allclose(flat_a[path], want, rtol=1e-6, err_msg=path)


def test_mismatched_mask_still_refused():
    model = BNNet(nnx.Rngs(0))
    tx = jaxreg.weight_decay(
        WD, learning_rate=ETA, mask={"lin": {"kernel": True}, "bn": False, "out": True}
    )
    with pytest.raises(ValueError, match="`mask` does not match"):
        nnx.Optimizer(model, tx, wrt=nnx.Param)
    tx = jaxreg.weight_decay(
        WD, learning_rate=ETA, mask={"lin": True, "bn": False, "out": True, "typo": True}
    )
    with pytest.raises(ValueError, match="`mask` does not match"):
        nnx.Optimizer(model, tx, wrt=nnx.Param)
