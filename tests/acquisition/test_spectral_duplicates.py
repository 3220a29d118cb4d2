"""CRC and NPC on a repeated pool (every input three times): CRC (G = 1) takes copies.

CRC with G = 1 scores each sample alone against the labeled set by the smallest
*positive* eigenvalue: a copy of a labeled input only adds a zero eigenvalue, which that
score ignores, and leaves the positive spectrum at or above K_LL's (Weyl), while a new
input can only lower the smallest eigenvalue (Cauchy interlacing) -- so copies of
labeled inputs rank first, and the copies of one unlabeled input tie. NPC's λ_min of a
batch with a copy is 0, so it never takes one (Proposition 1).
"""

import jax
import jax.numpy as jnp
import numpy as np

from assljax.acquisition import Context, get
from assljax.kernels.spectral import default_rtol

C, D, BASE, COPIES = 2, 8, 10, 3


def _repeated_ctx(seed=0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(BASE, D)).astype(np.float32)
  x = np.tile(base, (COPIES, 1))                       # row i is a copy of base[i % BASE]
  mask = np.zeros(len(x), bool)
  mask[[0, BASE + 4]] = True                           # base inputs 0 and 4 are labeled
  w = rng.normal(size=(D, C)).astype(np.float32)
  params = {"head": {"kernel": jnp.asarray(w), "bias": jnp.zeros(C)}}
  return Context(apply_fn=lambda p, v: v @ p["head"]["kernel"] + p["head"]["bias"][None, :],
                 params=params, x=jnp.asarray(x), labeled_mask=jnp.asarray(mask),
                 labels=jnp.asarray(np.arange(len(x)) % C, jnp.int32), num_classes=C,
                 embed_fn=lambda p, v: v)


def _positive_min(phi, rows):
  """float64 smallest eigenvalue above CRC's relative tolerance of the Gram over rows."""
  gram = phi[rows] @ phi[rows].T
  ev = np.linalg.eigvalsh(gram)
  return ev[ev > default_rtol(np.float32) * np.linalg.norm(gram)][0]


def test_crc_with_unit_groups_picks_copies_npc_never_does():
  ctx = _repeated_ctx()
  n = ctx.pool_size
  labeled = ctx.labeled_indices()
  unlabeled = ctx.unlabeled_indices()
  base_of = np.arange(n) % BASE
  labeled_base = set(base_of[labeled])
  budget = 6                                           # G = max(1, 6 // 10) = 1
  phi = np.sqrt(C) * np.concatenate([np.asarray(ctx.x, np.float64), np.ones((n, 1))], axis=1)
  assert len(labeled) + budget <= D + 1                # a batch of distinct inputs is nonsingular

  # brute force: every copy of a labeled input scores at least as high as any new input
  scores = {int(i): _positive_min(phi, np.append(labeled, i)) for i in unlabeled}
  copy_rows = [i for i in unlabeled if base_of[i] in labeled_base]
  new_rows = [i for i in unlabeled if base_of[i] not in labeled_base]
  assert len(copy_rows) == 4
  assert min(scores[i] for i in copy_rows) > max(scores[i] for i in new_rows)

  crc = get("crc")
  for seed in range(3):
    key = jax.random.key(seed)
    assert crc.groups(key, ctx, budget)[0].shape[1] == 1
    idx = np.asarray(crc(key, ctx, budget))
    assert len(np.unique(idx)) == budget and not np.asarray(ctx.labeled_mask)[idx].any()
    # all four copies of the two labeled inputs, then copies of one unlabeled input
    assert set(copy_rows) <= set(idx.tolist())
    rest = base_of[np.setdiff1d(idx, copy_rows)]
    assert len(rest) == 2 and rest[0] == rest[1]

  npc = get("npc", num_candidates=200)
  for seed in range(3):
    key = jax.random.key(seed)
    cands = npc.candidates(key, ctx, budget)
    assert any(len(set(base_of[c])) < budget for c in cands)      # duplicates were offered
    idx = np.asarray(npc(key, ctx, budget))
    assert len(set(base_of[idx])) == budget                       # no two copies
    assert not set(base_of[idx]) & labeled_base                   # no copy of a labeled input
