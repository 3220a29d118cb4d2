"""Kernel.feature_map and Kernel.gram_blocks: what strategies ask of a kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assljax import models
from assljax.kernels import Kernel, batch_min_eigenvalues, last_layer_features

C = 3


@pytest.fixture(scope="module")
def mlp():
  model = models.build("mlp", num_classes=C, input_shape=(4,), width=8, depth=1)
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  x = jax.random.normal(jax.random.key(1), (14, 4))
  return apply_fn, embed_fn, variables.params, x


def test_feature_map_is_the_features_or_none(mlp):
  apply_fn, embed_fn, params, x = mlp
  via_embed = Kernel.empirical(apply_fn, params, param_filter="last_layer", embed_fn=embed_fn,
                               chunk_size=4)
  phi = via_embed.feature_map()
  assert callable(phi)
  np.testing.assert_array_equal(phi(x), via_embed.features(x))
  np.testing.assert_allclose(phi(x), last_layer_features(embed_fn(params, x), C), rtol=1e-6,
                             atol=1e-7)  # chunked vs whole: float32 rounding of ~0 entries
  np.testing.assert_allclose(phi(x[:5]) @ phi(x[5:]).T, via_embed(x[:5], x[5:]), rtol=1e-5,
                             atol=1e-6)
  assert Kernel.empirical(apply_fn, params, param_filter="last_layer").feature_map() is not None
  assert Kernel.from_features(jnp.tanh).feature_map() is not None
  # no finite feature map: None, not an exception
  assert Kernel.empirical(apply_fn, params, param_filter="all").feature_map() is None
  assert Kernel.infinite("mlp", num_classes=C).feature_map() is None


# (Jacobian chunk of the kernel, gram_blocks' chunk_size): the unchunked kernel on at most
# chunk_size samples makes one symmetric call on labeled ∪ pool, forming each Jacobian
# once; otherwise K_LL, K_LU, then K_GG in calls of about chunk_size samples (3: one
# group per call, g = 2, and the remainder path)
@pytest.mark.parametrize("jacobian_chunk, blocks_chunk", [(None, 64), (None, 3), (4, 64)])
@pytest.mark.parametrize("l", [0, 3])
def test_gram_blocks_are_blocks_of_the_full_gram(mlp, l, jacobian_chunk, blocks_chunk):
  apply_fn, _, params, x = mlp
  kernel = Kernel.empirical(apply_fn, params, param_filter="all", chunk_size=jacobian_chunk)
  x_l, x_pool = x[:l], x[3:]                                       # N = 11
  index = np.array([[0, 4], [7, 1], [10, 2], [3, 5], [9, 8]])       # (m, g) = (5, 2)
  calls = []
  kernel_fn = kernel._kernel_fn
  kernel._kernel_fn = lambda a, b: calls.append((a.shape[0], b)) or kernel_fn(a, b)
  K_LL, K_LU, K_GG = kernel.gram_blocks(x_l, x_pool, index, chunk_size=blocks_chunk)
  if jacobian_chunk is None and blocks_chunk >= l + 11:
    assert calls == [(l + 11, None)]
  else:
    groups_per_call = blocks_chunk // 2
    assert len(calls) == (2 if l else 0) + -(-len(index) // groups_per_call)
  kernel._kernel_fn = kernel_fn
  full = np.asarray(kernel(jnp.concatenate([x_l, x_pool])))
  assert K_LL.shape == (l, l) and K_LU.shape == (l, 11) and K_GG.shape == (5, 2, 2)
  assert K_LL.dtype == K_LU.dtype == K_GG.dtype == jnp.float32
  np.testing.assert_allclose(K_LL, full[:l, :l], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(K_LU, full[:l, l:], rtol=1e-5, atol=1e-6)
  for i, rows in enumerate(index):
    np.testing.assert_allclose(K_GG[i], full[l + rows][:, l + rows], rtol=1e-5, atol=1e-6)
  # all groups in one kernel call give the same blocks
  np.testing.assert_allclose(kernel.gram_blocks(x_l, x_pool, index)[2], K_GG, rtol=1e-5,
                             atol=1e-6)
  # ... and they are what batch_min_eigenvalues scores with index sets
  scores = batch_min_eigenvalues(K_LL, K_LU, K_GG, index=index, positive_only=False)
  for i, rows in enumerate(index):
    sub = np.asarray(full, np.float64)[np.r_[np.arange(l), l + rows]][:, np.r_[np.arange(l),
                                                                                l + rows]]
    ev = np.linalg.eigvalsh(sub)
    assert abs(float(scores[i]) - ev[0]) <= 1e-5 * ev[-1]


def test_gram_blocks_of_a_feature_kernel_match_its_features(mlp):
  _, _, _, x = mlp
  kernel = Kernel.from_features(lambda a: jnp.concatenate([jnp.sin(a), a * a], axis=1))
  index = np.array([[1, 2, 3], [4, 0, 6]])
  K_LL, K_LU, K_GG = kernel.gram_blocks(x[:4], x[4:], index)
  phi_l, phi_u = kernel.features(x[:4]), kernel.features(x[4:])
  np.testing.assert_allclose(K_LL, phi_l @ phi_l.T, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(K_LU, phi_l @ phi_u.T, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(K_GG, jnp.einsum("mgd,mhd->mgh", phi_u[index], phi_u[index]),
                             rtol=1e-5, atol=1e-6)


def test_gram_blocks_bad_input(mlp):
  _, _, _, x = mlp
  kernel = Kernel.from_features(jnp.tanh)
  with pytest.raises(ValueError, match="index entries"):
    kernel.gram_blocks(x[:2], x[2:], np.array([[0, 12]]))
  with pytest.raises(ValueError, match=r"index must be \(m, g\)"):
    kernel.gram_blocks(x[:2], x[2:], np.array([0, 1]))
  with pytest.raises(ValueError, match="x_labeled"):
    kernel.gram_blocks(x[:2, :3], x[2:], np.array([[0, 1]]))
  with pytest.raises(ValueError, match="chunk_size"):
    kernel.gram_blocks(x[:2], x[2:], np.array([[0, 1]]), chunk_size=0)
