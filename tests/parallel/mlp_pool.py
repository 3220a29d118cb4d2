"""The small MLP and 64-sample pool that the mesh and multi-process tests score on."""

import jax
import jax.numpy as jnp
import numpy as np

import assljax
from assljax import acquisition


def mlp_context(n: int = 64, num_classes: int = 3):
  """``(model, ctx)``: an MLP at init and a pool of ``n`` 5-d points, 7 of them labeled."""
  model = assljax.models.build("mlp", num_classes=num_classes, input_shape=(5,), width=12,
                               depth=1)
  variables = model.init(jax.random.key(0))
  apply_fn, embed_fn = model.bind(variables.batch_stats)
  rng = np.random.default_rng(0)
  mask = np.zeros(n, bool)
  mask[rng.choice(n, 7, replace=False)] = True
  labels = np.where(mask, rng.integers(0, num_classes, n), 0).astype(np.int32)
  ctx = acquisition.Context(apply_fn=apply_fn, params=variables.params,
                            x=jnp.asarray(rng.normal(size=(n, 5)), jnp.float32),
                            labeled_mask=jnp.asarray(mask), labels=jnp.asarray(labels),
                            num_classes=num_classes, embed_fn=embed_fn)
  return model, ctx
