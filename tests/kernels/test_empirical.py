"""Empirical NTK: brute-force jacrev contraction, neural-tangents, chunking, filters, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import models
from assljax.kernels import empirical_ntk_fn, select_params

C = 3


def _f64(tree):
  return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _build(name):
  """Tiny model, its float32 variables and float64-ready pieces."""
  if name == "mlp":
    model = models.build("mlp", num_classes=C, input_shape=(4, 4, 1), width=8, depth=2)
  elif name == "cnn":
    model = models.build("cnn", num_classes=C, input_shape=(8, 8, 1), channels=(4, 4, 4),
                         hidden=8)
  else:
    model = models.build("wrn", num_classes=C, input_shape=(8, 8, 1), depth=10,
                         widen_factor=1)
  variables = model.init(jax.random.key(0))
  stats = variables.batch_stats
  if name == "wrn":  # non-trivial running statistics so that eval-mode BatchNorm matters
    keys = iter(jax.random.split(jax.random.key(5), 1000))

    def perturb(path, a):
      if path[-1].key == "mean":
        return 0.3 * jax.random.normal(next(keys), a.shape)
      return jax.random.uniform(next(keys), a.shape, minval=0.5, maxval=2.0)

    stats = jax.tree_util.tree_map_with_path(perturb, stats)
  return model, variables.params, stats


def _inputs(model, n1=5, n2=3, seed=1):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return (jax.random.uniform(k1, (n1,) + model.input_shape),
          jax.random.uniform(k2, (n2,) + model.input_shape))


def brute_ntk(apply_fn, params, x1, x2, select=lambda p: p, put=lambda p, s: s):
  """(n1, n2, C, C) from full jax.jacrev of the batched function, one big contraction."""

  def jac(x):
    j = jax.jacrev(lambda s: apply_fn(put(params, s), x))(select(params))
    leaves = jax.tree_util.tree_leaves(j)
    return jnp.concatenate([l.reshape(x.shape[0], C, -1) for l in leaves], axis=-1)

  return jnp.einsum("icp,jdp->ijcd", jac(x1), jac(x2))


@pytest.mark.parametrize("name", ["mlp", "cnn", "wrn"])
def test_equals_brute_force_jacrev_float64(name):
  model, params, stats = _build(name)
  x1, x2 = _inputs(model)
  with jax.enable_x64(True):
    p64, s64 = _f64(params), _f64(stats)
    x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
    apply_fn, _ = model.bind(s64)
    traced_fn, full_fn = empirical_ntk_fn(apply_fn), empirical_ntk_fn(apply_fn, trace_axes=())
    # one compiled program for the reference and both of ours (ntk_fn is jittable)
    ref, traced, full = map(np.asarray, jax.jit(lambda p, a, b: (
        brute_ntk(apply_fn, p, a, b), traced_fn(p, a, b), full_fn(p, a, b)))(p64, x1, x2))
  assert full.shape == (5, 3, C, C) and traced.shape == (5, 3)
  assert full.dtype == np.float64
  scale = np.abs(ref).max()
  assert scale > 0
  np.testing.assert_allclose(full, ref, rtol=0, atol=1e-12 * scale)
  np.testing.assert_allclose(traced, np.einsum("ijcc->ij", ref), rtol=0, atol=1e-12 * scale)


def test_symmetric_call_and_float32_default():
  model, params, stats = _build("mlp")
  x1, _ = _inputs(model)
  apply_fn, _ = model.bind(stats)
  ntk = empirical_ntk_fn(apply_fn)
  k_sym = ntk(params, x1)
  k_pair = ntk(params, x1, x1)
  assert k_sym.dtype == jnp.float32 and k_sym.shape == (5, 5)
  np.testing.assert_allclose(k_sym, k_pair, rtol=1e-5)
  np.testing.assert_allclose(k_sym, k_sym.T, rtol=1e-5)
  assert np.linalg.eigvalsh(np.asarray(k_sym, np.float64)).min() > -1e-4 * float(k_sym.max())


def test_matches_neural_tangents_float64():
  from assljax.kernels._compat import import_neural_tangents
  nt = import_neural_tangents()
  model, params, stats = _build("mlp")
  x1, x2 = _inputs(model)
  jc, nvp = (nt.NtkImplementation.JACOBIAN_CONTRACTION, nt.NtkImplementation.NTK_VECTOR_PRODUCTS)
  with jax.enable_x64(True):
    p64 = _f64(params)
    x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
    apply_fn, _ = model.bind(_f64(stats))
    fns = [empirical_ntk_fn(apply_fn), empirical_ntk_fn(apply_fn, trace_axes=())]
    fns += [nt.empirical_ntk_fn(apply_fn, trace_axes=axes, vmap_axes=0, implementation=impl)
            for impl in (jc, nvp) for axes in ((-1,), ())]
    ours_traced, ours_full, jc_traced, jc_full, nvp_traced, nvp_full = map(np.asarray, jax.jit(
        lambda p, a, b: [f(p, a, b) for f in fns[:2]] + [f(a, b, p) for f in fns[2:]])(
            p64, x1, x2))
  scale = np.abs(ours_full).max()
  for theirs in (jc_full, nvp_full):
    np.testing.assert_allclose(ours_full, theirs, rtol=0, atol=1e-11 * scale)
  for theirs in (jc_traced, nvp_traced):
    # neural-tangents' trace is a MEAN over the class axis; ours is the SUM.
    np.testing.assert_allclose(ours_traced, C * theirs, rtol=0, atol=1e-11 * scale)


def test_chunked_equals_unchunked():
  model, params, stats = _build("mlp")
  x1, x2 = _inputs(model, n1=7, n2=5)
  apply_fn, _ = model.bind(stats)
  traced, full = empirical_ntk_fn(apply_fn), empirical_ntk_fn(apply_fn, trace_axes=())
  np.testing.assert_allclose(empirical_ntk_fn(apply_fn, chunk_size=2)(params, x1, x2),
                             traced(params, x1, x2), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(empirical_ntk_fn(apply_fn, chunk_size=3)(params, x1),
                             traced(params, x1), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      empirical_ntk_fn(apply_fn, trace_axes=(), chunk_size=3)(params, x1, x2),
      full(params, x1, x2), rtol=1e-5, atol=1e-5)


def test_chunked_program_never_holds_all_jacobians():
  # The compiled chunked kernel needs far less scratch memory than the unchunked one,
  # whose per-sample Jacobians of all n1 + n2 samples live at once.
  from assljax.kernels.empirical import _EmpiricalNTK
  model = models.build("mlp", num_classes=C, input_shape=(4, 4, 1), width=48, depth=2)
  variables = model.init(jax.random.key(0))
  params = variables.params
  x1, x2 = _inputs(model, n1=32, n2=32)
  apply_fn, _ = model.bind(variables.batch_stats)

  def temp_bytes(chunk_size):
    impl = _EmpiricalNTK(apply_fn, traced=True, param_filter=None, chunk_size=chunk_size)
    compiled = impl._kernel_autodiff.lower(params, x1, x2, symmetric=False).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  n_params = sum(l.size for l in jax.tree_util.tree_leaves(params))
  all_jacobians = (32 + 32) * C * n_params * 4
  unchunked, chunked = temp_bytes(None), temp_bytes(4)
  assert unchunked > all_jacobians / 2
  assert chunked < unchunked / 4


def test_jit_matches_eager():
  model, params, stats = _build("mlp")
  x1, x2 = _inputs(model)
  apply_fn, _ = model.bind(stats)
  ntk = empirical_ntk_fn(apply_fn)
  np.testing.assert_allclose(jax.jit(ntk)(params, x1, x2), ntk(params, x1, x2), rtol=1e-5)


def test_predicate_filter_equals_brute_force_on_subset():
  model, params, stats = _build("mlp")
  x1, x2 = _inputs(model)
  keep = lambda path, leaf: path[0] == "hidden" and path[-1] == "kernel"  # noqa: E731
  with jax.enable_x64(True):
    p64 = _f64(params)
    x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
    apply_fn, _ = model.bind(_f64(stats))
    selected, rebuild = select_params(p64, keep)
    assert [leaf.shape for leaf in selected] == [(16, 8), (8, 8)]
    subset_fn = empirical_ntk_fn(apply_fn, param_filter=keep, trace_axes=())
    everything_fn = empirical_ntk_fn(apply_fn, trace_axes=())
    ref, ours, everything = jax.jit(lambda p, a, b: (
        brute_ntk(apply_fn, p, a, b, select=lambda q: select_params(q, keep)[0],
                  put=lambda q, sel: select_params(q, keep)[1](sel)),
        subset_fn(p, a, b), everything_fn(p, a, b)))(p64, x1, x2)
  np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
  assert float(jnp.abs(everything - ours).max()) > 1e-3  # the filter really restricts


def test_select_params_kinds_and_rebuild():
  params = {"body": {"w": jnp.ones((2, 2))}, "head": {"kernel": jnp.ones((2, 3)),
                                                      "bias": jnp.zeros(3)}}
  sel, rebuild = select_params(params, "last_layer")
  assert sel is params["head"]
  new = rebuild({"kernel": 2 * jnp.ones((2, 3)), "bias": jnp.ones(3)})
  assert float(new["head"]["kernel"][0, 0]) == 2 and new["body"] is params["body"]
  sel, rebuild = select_params(params, None)
  assert sel is params and rebuild(5) == 5
  assert select_params(params, "all")[0] is params
  stax_like = [(jnp.ones((4, 5)), jnp.ones(5)), (), (jnp.ones((5, 2)), jnp.ones(2)), ()]
  sel, rebuild = select_params(stax_like, "last_layer")
  assert sel is stax_like[2]
  rebuilt = rebuild((jnp.zeros((5, 2)), jnp.zeros(2)))
  assert isinstance(rebuilt, list) and float(rebuilt[2][0].sum()) == 0
  assert rebuilt[0] is stax_like[0]
  sel, rebuild = select_params(params, lambda path, leaf: path[-1] == "bias")
  assert len(sel) == 1 and sel[0].shape == (3,)
  assert float(rebuild((jnp.full(3, 7.0),))["head"]["bias"][0]) == 7


@pytest.mark.parametrize("bad, match", [
    (lambda path, leaf: False, "selected no parameters"),
    ("first_layer", "param_filter must be"),
    (3, "param_filter must be"),
])
def test_bad_filters(bad, match):
  params = {"head": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}}
  with pytest.raises(ValueError, match=match):
    select_params(params, bad)


def test_last_layer_needs_a_recognizable_layout():
  with pytest.raises(ValueError, match="'head'"):
    select_params({"dense": {"kernel": jnp.ones((2, 2))}}, "last_layer")
  with pytest.raises(ValueError, match="predicate"):
    select_params(jnp.ones(3), "last_layer")
  with pytest.raises(ValueError, match="no arrays"):
    select_params({"head": {}}, "all")


def test_bad_inputs_raise_value_error():
  model, params, stats = _build("mlp")
  x1, x2 = _inputs(model)
  apply_fn, _ = model.bind(stats)
  ntk = empirical_ntk_fn(apply_fn)
  with pytest.raises(ValueError, match="per-sample shape"):
    ntk(params, x1, jnp.ones((3, 4, 4, 2)))
  with pytest.raises(ValueError, match="NaN or infinity"):
    ntk(params, x1.at[0, 0, 0, 0].set(jnp.nan), x2)
  with pytest.raises(ValueError, match="NaN or infinity"):
    ntk(params, x1, x2.at[1, 2, 0, 0].set(jnp.inf))
  with pytest.raises(ValueError, match="empty"):
    ntk(params, x1[:0], x2)
  with pytest.raises(ValueError, match="selected no parameters"):
    empirical_ntk_fn(apply_fn, param_filter=lambda p, l: False)(params, x1, x2)
  with pytest.raises(ValueError, match="trace_axes"):
    empirical_ntk_fn(apply_fn, trace_axes=(0,))
  with pytest.raises(ValueError, match="chunk_size"):
    empirical_ntk_fn(apply_fn, chunk_size=0)
  with pytest.raises(ValueError, match="shape \\(n, C\\)"):
    empirical_ntk_fn(lambda p, x: apply_fn(p, x).sum(-1))(params, x1, x2)
