"""Spectral solvers against float64 numpy.linalg.eigvalsh of the assembled matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from assljax.kernels import (argmax_min_eigenvalue, batch_min_eigenvalues,
                             bordered_min_eigenvalues, feature_min_eigenvalues, min_eigenvalues)
from assljax.kernels.spectral import choose_method, default_rtol

L, G, M = 12, 4, 6          # labeled rows, group size, candidates (one compile per solver)
RTOL32 = default_rtol(jnp.float32)
KINDS = ("psd", "rank_deficient", "duplicate", "near_degenerate", "badly_scaled")


# ------------------------------------------------------------------------------------------
# cases and the float64 reference


def features_case(kind, seed=0, *, l=L, g=G, m=M):
  """Float64 features ``phi_L (l, d)``, ``phi_G (m, g, d)`` whose Gram is the test matrix."""
  rng = np.random.default_rng(seed)
  if kind == "rank_deficient":      # d < l + g and d < l: K_LL itself singular
    d = 8
    return rng.normal(size=(l, d)), rng.normal(size=(m, g, d))
  d = 40
  if kind == "near_degenerate":     # orthonormal rows scaled by 1 + 1e-4 noise: Gram ~ I
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rows = q[:l + m * g] * (1 + 1e-4 * rng.normal(size=(l + m * g, 1)))
    return rows[:l], rows[l:].reshape(m, g, d)
  phi_l, phi_g = rng.normal(size=(l, d)), rng.normal(size=(m, g, d))
  if kind == "duplicate":
    phi_l[1] = phi_l[0]             # duplicate labeled rows: K_LL singular
    phi_g[0, 2] = phi_l[5]          # a candidate that copies a labeled sample
    phi_g[1, 3] = phi_g[1, 0]       # a candidate holding two copies of one sample
  if kind == "badly_scaled":        # rows over a decade, overall scale 1e15 (Gram 1e30)
    phi_l *= 1e15 * 10.0 ** rng.uniform(-0.5, 0.5, size=(l, 1))
    phi_g *= 1e15 * 10.0 ** rng.uniform(-0.5, 0.5, size=(m, g, 1))
  return phi_l, phi_g


def blocks_of(phi_l, phi_g):
  k_ll = phi_l @ phi_l.T
  k_lg = np.einsum("ld,mgd->mlg", phi_l, phi_g)
  k_gg = np.einsum("mgd,mhd->mgh", phi_g, phi_g)
  return k_ll, k_lg, k_gg


def assembled(k_ll, k_lg, k_gg):
  return np.stack([np.block([[k_ll, b], [b.T, d]]) for b, d in zip(k_lg, k_gg)])


def reference(mats, *, positive_only, rtol=RTOL32):
  """float64 eigvalsh: smallest eigenvalue, or smallest above rtol * ||M||_F (0 if none)."""
  out, lmax = [], []
  for a in mats:
    ev = np.linalg.eigvalsh(np.asarray(a, np.float64))
    lmax.append(np.max(np.abs(ev)))
    if positive_only:
      pos = ev[ev > rtol * np.linalg.norm(a)]
      out.append(pos[0] if pos.size else 0.0)
    else:
      out.append(ev[0])
  return np.array(out), np.array(lmax)


def f32(a):
  return jnp.asarray(np.asarray(a, np.float32))


def assert_close(out, ref, lmax, tol=1e-5):
  out = np.asarray(out, np.float64)
  assert out.shape == ref.shape
  err = np.abs(out - ref) / lmax
  assert np.all(err <= tol), f"max error {err.max():.3g} x lambda_max; got {out}, want {ref}"


SOLVERS = {
    "bordered": lambda pl, pg, kb, **kw: bordered_min_eigenvalues(*map(f32, kb), **kw),
    "dense": lambda pl, pg, kb, **kw: batch_min_eigenvalues(*map(f32, kb), method="dense",
                                                            **kw),
    "features": lambda pl, pg, kb, **kw: feature_min_eigenvalues(f32(pl), f32(pg), **kw),
    "auto": lambda pl, pg, kb, **kw: batch_min_eigenvalues(phi_L=f32(pl), phi_G=f32(pg), **kw),
    "min_eigenvalues": lambda pl, pg, kb, **kw: min_eigenvalues(f32(assembled(*kb)), **kw),
}


# ------------------------------------------------------------------------------------------
# accuracy


@pytest.mark.parametrize("positive_only", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_solvers_match_float64_eigvalsh(solver, kind, positive_only):
  phi_l, phi_g = features_case(kind)
  kb = blocks_of(phi_l, phi_g)
  ref, lmax = reference(assembled(*kb), positive_only=positive_only)
  out = SOLVERS[solver](phi_l, phi_g, kb, positive_only=positive_only)
  assert out.dtype == jnp.float32
  assert_close(out, ref, lmax)
  if kind in ("rank_deficient", "duplicate") and not positive_only:
    assert np.all(np.abs(ref) / lmax < 1e-12)    # the cases really are singular
  for a in assembled(*kb):  # ... and no eigenvalue is within rounding of the threshold
    ev = np.linalg.eigvalsh(a)
    assert not np.any(np.abs(ev - RTOL32 * np.linalg.norm(a)) < 1e-6 * np.abs(ev).max())


@pytest.mark.parametrize("kind", ["psd", "rank_deficient"])
def test_plain_bordered_solve_on_the_batched_path_matches_the_per_candidate_loop(
    monkeypatch, kind):
  """GPU/TPU run the smallest-eigenvalue steps batched (``jax.vmap``: both branches of
  every ``cond``, masked), CPU one candidate at a time; forced here on CPU, the batched
  path gives the same values (one candidate per chunk: no batched LAPACK call can
  split, see tests/parallel/test_parallel_lapack.py)."""
  from assljax import parallel

  phi_l, phi_g = features_case(kind, seed=4)
  kb = [f32(a) for a in blocks_of(phi_l, phi_g)]
  ref, lmax = reference(assembled(*kb), positive_only=False)
  solve = lambda: np.asarray(bordered_min_eigenvalues(*kb, positive_only=False, chunk_size=1))
  looped = solve()
  monkeypatch.setattr(parallel, "one_matrix_per_lapack_call", lambda: False)
  jax.clear_caches()
  batched = solve()
  jax.clear_caches()
  assert_close(looped, ref, lmax)
  assert_close(batched, ref, lmax)
  np.testing.assert_allclose(batched, looped, rtol=0,
                             atol=8 * np.finfo(np.float32).eps * lmax.max())


def test_scale_invariance_at_extreme_magnitudes():
  phi_l, phi_g = features_case("psd", seed=8)
  kb = [np.asarray(a, np.float32) for a in blocks_of(phi_l, phi_g)]
  for positive_only in (False, True):
    base = np.asarray(bordered_min_eigenvalues(*kb, positive_only=positive_only), np.float64)
    for c in (1e-30, 1e30):
      out = bordered_min_eigenvalues(*[a * np.float32(c) for a in kb],
                                     positive_only=positive_only)
      assert np.all(np.isfinite(np.asarray(out)))
      np.testing.assert_allclose(np.asarray(out, np.float64) / c, base, rtol=1e-4)
      out = min_eigenvalues(f32(assembled(*kb)) * np.float32(c), positive_only=positive_only)
      np.testing.assert_allclose(np.asarray(out, np.float64) / c, base, rtol=1e-4)


def test_float64_under_x64():
  with jax.enable_x64(True):
    phi_l, phi_g = features_case("duplicate", seed=3)   # singular K_LL and candidates
    phi_g[3] *= 1e-3                                     # and a badly scaled candidate
    kb = blocks_of(phi_l, phi_g)
    for positive_only in (False, True):
      ref, lmax = reference(assembled(*kb), positive_only=positive_only,
                            rtol=default_rtol(jnp.float64))
      if positive_only:
        out = feature_min_eigenvalues(jnp.asarray(phi_l), jnp.asarray(phi_g))
      else:
        out = bordered_min_eigenvalues(*map(jnp.asarray, kb), positive_only=False)
      assert out.dtype == jnp.float64
      assert_close(out, ref, lmax, tol=1e-11)


@settings(max_examples=3, deadline=None, derandomize=True)
@given(l=st.integers(0, 9), g=st.integers(1, 4), d=st.integers(1, 16),
       seed=st.integers(0, 2**16), positive_only=st.booleans())
def test_random_shapes_property(l, g, d, seed, positive_only):
  m = 2
  rng = np.random.default_rng(seed)
  # a spread-out spectrum: features with column scales over two decades
  scale = 10.0 ** rng.uniform(-1, 1, size=d)
  phi_l, phi_g = rng.normal(size=(l, d)) * scale, rng.normal(size=(m, g, d)) * scale
  kb = blocks_of(phi_l, phi_g)
  ref, lmax = reference(assembled(*kb), positive_only=positive_only)
  if positive_only:  # skip draws with an eigenvalue within noise of the threshold
    ev = np.concatenate([np.linalg.eigvalsh(a) for a in assembled(*kb)])
    fro = max(np.linalg.norm(a) for a in assembled(*kb))
    edge = np.abs(ev - RTOL32 * fro) < 1e-3 * fro
    if edge.any():
      return
  out = batch_min_eigenvalues(*map(f32, kb), method="bordered", positive_only=positive_only)
  assert_close(out, ref, lmax)
  out = feature_min_eigenvalues(f32(phi_l), f32(phi_g), positive_only=positive_only)
  assert_close(out, ref, lmax)


@pytest.mark.parametrize("method", ["features", "bordered"])
def test_interior_eigenvalue_next_to_a_pole(method):
  # NPC's regime with l + g > d: the smallest positive eigenvalue is an interior one of
  # the Gram, and for some candidates it lies 3e-4 (relative) below an eigenvalue of the
  # labeled block, a pole of the Schur complement. A float32 count evaluated right next
  # to that pole came out wrong and the solver returned the pole (before the
  # pole-deflated recount): 4 of these 10 candidates, 1-3 of the next 256.
  rng = np.random.default_rng(0)
  phi_l, pool = rng.normal(size=(100, 32)), rng.normal(size=(4096, 32))
  index = rng.integers(0, 4096, size=(2048, 20))
  for rows in ([284, 1483, 464, 587, 1183, 204, 1964, 419, 613, 759], range(256)):
    phi_g = pool[index[list(rows)]]                                  # (m, 20, 32)
    gram = phi_l.T @ phi_l + np.einsum("mgd,mge->mde", phi_g, phi_g)  # same nonzero spectrum
    ev = np.linalg.eigvalsh(gram)
    out = batch_min_eigenvalues(phi_L=f32(phi_l), phi_G=f32(phi_g), method=method,
                                positive_only=True, chunk_size=None)
    np.testing.assert_array_less(np.abs(np.asarray(out, np.float64) - ev[:, 0]),
                                 1e-5 * ev[:, -1])


# ------------------------------------------------------------------------------------------
# structure: interlacing, duplicates, chunking, class blocks, index sets, l = 0


def test_cauchy_interlacing_on_outputs():
  phi_l, phi_g = features_case("psd", seed=1)
  k_ll, k_lg, k_gg = map(f32, blocks_of(phi_l, phi_g))
  full = bordered_min_eigenvalues(k_ll, k_lg, k_gg, positive_only=False)
  fewer = bordered_min_eigenvalues(k_ll, k_lg[:, :, :-1], k_gg[:, :-1, :-1],
                                   positive_only=False)
  labeled_only = np.linalg.eigvalsh(np.asarray(k_ll, np.float64))[0]
  groups_only = np.linalg.eigvalsh(np.asarray(k_gg, np.float64))[:, 0]
  slack = 1e-6 * float(jnp.max(jnp.abs(k_gg)) + jnp.max(jnp.abs(k_ll)))
  # a principal submatrix's smallest eigenvalue is never below the whole matrix's
  assert np.all(np.asarray(full) <= np.asarray(fewer) + slack)
  assert np.all(np.asarray(fewer) <= float(labeled_only) + slack)
  assert np.all(np.asarray(full) <= np.asarray(groups_only) + slack)
  assert np.all(np.asarray(full) < np.asarray(fewer))   # strictly, for generic data


def test_duplicate_rows_give_zero():
  phi_l, phi_g = features_case("duplicate")
  kb = blocks_of(phi_l, phi_g)
  lmax = reference(assembled(*kb), positive_only=False)[1]
  for name, solver in SOLVERS.items():
    out = np.asarray(solver(phi_l, phi_g, kb, positive_only=False))
    # K_LL has duplicate rows, so every candidate's matrix is singular
    assert np.all(np.abs(out) <= 1e-5 * lmax), name
  # with distinct labeled rows only the candidates holding a duplicate are singular
  phi_l[1] += 1.0
  kb = blocks_of(phi_l, phi_g)
  out = np.asarray(bordered_min_eigenvalues(*map(f32, kb), positive_only=False))
  lmax = reference(assembled(*kb), positive_only=False)[1]
  assert np.all(np.abs(out[:2]) <= 1e-5 * lmax[:2])
  assert np.all(out[2:] > 1e-2 * lmax[2:])


def test_chunked_equals_unchunked():
  phi_l, phi_g = features_case("duplicate", seed=2)
  kb = tuple(map(f32, blocks_of(phi_l, phi_g)))
  # M = 6 candidates: one chunk vs chunks of 4 (the last one padded)
  a = bordered_min_eigenvalues(*kb)
  b = bordered_min_eigenvalues(*kb, chunk_size=4)
  np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5)


def test_full_class_block_grams():
  # C = 2 classes, 6 labeled, groups of 2: assembled (l C) x (l C) = 12 x 12 blocks and
  # 4-row groups, the shapes of the tests above (their compiled solvers are reused)
  rng = np.random.default_rng(4)
  l, g, c, d = 6, 2, 2, 40
  phi_l, phi_g = rng.normal(size=(l, c, d)), rng.normal(size=(M, g, c, d))
  k_ll = np.einsum("iad,jbd->ijab", phi_l, phi_l)
  k_lg = np.einsum("iad,mjbd->mijab", phi_l, phi_g)
  k_gg = np.einsum("miad,mjbd->mijab", phi_g, phi_g)
  # reference on the assembled (l C + g C) matrices, row i * C + a
  flat = assembled(*blocks_of(phi_l.reshape(l * c, d), phi_g.reshape(M, g * c, d)))
  for positive_only in (False, True):
    ref, lmax = reference(flat, positive_only=positive_only)
    assert_close(bordered_min_eigenvalues(f32(k_ll), f32(k_lg), f32(k_gg),
                                          positive_only=positive_only), ref, lmax)
    assert_close(feature_min_eigenvalues(f32(phi_l), f32(phi_g), positive_only=positive_only),
                 ref, lmax)
  k_full = np.stack([np.einsum("iad,jbd->ijab", np.concatenate([phi_l, pg]),
                               np.concatenate([phi_l, pg])) for pg in phi_g])
  ref, lmax = reference(flat, positive_only=False)
  assert_close(min_eigenvalues(f32(k_full), class_blocks=True, positive_only=False), ref, lmax)


def test_traced_kronecker_blocks_match_traced_gram():
  """A Gram whose class blocks are K_ij I_C (last-layer NTK) has the spectrum of K."""
  phi_l, phi_g = features_case("psd", seed=5, l=6, g=2)
  k_ll, k_lg, k_gg = blocks_of(phi_l, phi_g)
  kron = lambda k: k[..., None, None] * np.eye(2)
  for positive_only in (False, True):
    ref, lmax = reference(assembled(k_ll, k_lg, k_gg), positive_only=positive_only,
                          rtol=RTOL32 * np.sqrt(2))   # ||K ⊗ I_2||_F = sqrt(2) ||K||_F
    blocks = bordered_min_eigenvalues(f32(kron(k_ll)), f32(kron(k_lg)), f32(kron(k_gg)),
                                      positive_only=positive_only)
    assert_close(blocks, ref, lmax)


def test_index_sets_into_a_pool():
  rng = np.random.default_rng(6)
  n_pool, d = 15, 40
  phi_l, phi_u = rng.normal(size=(L, d)), rng.normal(size=(n_pool, d))
  index = np.stack([rng.choice(n_pool, G, replace=False) for _ in range(M)])
  phi_g = phi_u[index]
  k_ll, k_lg, k_gg = blocks_of(phi_l, phi_g)
  ref, lmax = reference(assembled(k_ll, k_lg, k_gg), positive_only=True)
  # 15 pool rows: projected once for all candidates; with 30 unused rows more than the
  # 24 that the candidates gather: projected per candidate (the feature method's
  # projection once is covered by the argmax tests)
  for unused in (0, 30):
    pool = np.concatenate([phi_u, rng.normal(size=(unused, d))])
    for method in ("bordered", "features")[:1 + bool(unused)]:
      assert_close(batch_min_eigenvalues(phi_L=f32(phi_l), phi_G=f32(pool), index=index,
                                         method=method), ref, lmax)
    assert_close(batch_min_eigenvalues(f32(k_ll), f32(phi_l @ pool.T), f32(k_gg), index=index),
                 ref, lmax)

  with pytest.raises(ValueError, match="index entries"):
    batch_min_eigenvalues(phi_L=f32(phi_l), phi_G=f32(phi_u), index=index + n_pool)


def test_empty_labeled_set_is_lambda_min_of_candidate_block():
  phi_l, phi_g = features_case("psd", seed=7)
  k_gg = f32(blocks_of(phi_l, phi_g)[2])
  want = np.linalg.eigvalsh(np.asarray(k_gg, np.float64))[:, 0]
  got = bordered_min_eigenvalues(jnp.zeros((0, 0)), jnp.zeros((M, 0, G)), k_gg,
                                 positive_only=False)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
  got = feature_min_eigenvalues(jnp.zeros((0, 40)), f32(phi_g))   # positive-only, full rank
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4)


# ------------------------------------------------------------------------------------------
# bad input, dispatch


def test_non_finite_entries_raise():
  phi_l, phi_g = features_case("psd")
  kb = [np.asarray(a, np.float32) for a in blocks_of(phi_l, phi_g)]
  for i, name in enumerate(("K_LL", "K_LG", "K_GG")):
    bad = [a.copy() for a in kb]
    bad[i].flat[3] = np.nan if i != 1 else np.inf
    with pytest.raises(ValueError, match=f"{name} contains NaN or infinity"):
      bordered_min_eigenvalues(*bad)
  bad_g = np.asarray(phi_g, np.float32).copy()
  bad_g[2, 1, 0] = np.nan
  with pytest.raises(ValueError, match="phi_G contains NaN"):
    feature_min_eigenvalues(f32(phi_l), bad_g)
  with pytest.raises(ValueError, match="K contains NaN"):
    min_eigenvalues(np.full((2, 3, 3), np.inf, np.float32))


def test_non_finite_candidate_scores_nan_when_traced():
  phi_l, phi_g = features_case("psd")
  k_ll, k_lg, k_gg = (np.asarray(a, np.float32) for a in blocks_of(phi_l, phi_g))
  k_gg = k_gg.copy()
  k_gg[1, 0, 0] = np.nan
  out = np.asarray(jax.jit(bordered_min_eigenvalues)(k_ll, k_lg, k_gg))
  assert np.isnan(out[1]) and np.all(np.isfinite(np.delete(out, 1)))
  ref, lmax = reference(assembled(*blocks_of(phi_l, phi_g)), positive_only=True)
  assert_close(np.delete(out, 1), np.delete(ref, 1), np.delete(lmax, 1))


def test_bad_shapes_and_options_raise():
  k = jnp.eye(4)
  with pytest.raises(ValueError, match="K_LG must be"):
    bordered_min_eigenvalues(k, jnp.zeros((2, 3, 2)), jnp.zeros((2, 2, 2)))
  with pytest.raises(ValueError, match="K_GG must be"):
    bordered_min_eigenvalues(k, jnp.zeros((2, 4, 2)), jnp.zeros((2, 3, 2)))
  with pytest.raises(ValueError, match="phi_G must be"):
    feature_min_eigenvalues(jnp.zeros((3, 5)), jnp.zeros((2, 2, 4)))
  with pytest.raises(ValueError, match="square"):
    min_eigenvalues(jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match="either Gram blocks"):
    batch_min_eigenvalues(k, jnp.zeros((1, 4, 1)), jnp.ones((1, 1, 1)),
                          phi_L=jnp.zeros((4, 2)), phi_G=jnp.zeros((1, 1, 2)))
  with pytest.raises(ValueError, match="needs features"):
    batch_min_eigenvalues(k, jnp.zeros((1, 4, 1)), jnp.ones((1, 1, 1)), method="features")
  with pytest.raises(ValueError, match="rtol"):
    min_eigenvalues(k, rtol=-1.0)
  with pytest.raises(ValueError, match="overflows float32"):
    feature_min_eigenvalues(jnp.full((3, 2), 1e30), jnp.ones((1, 1, 2)))
  with pytest.raises(ValueError, match="method"):
    batch_min_eigenvalues(k, jnp.zeros((1, 4, 1)), jnp.ones((1, 1, 1)), method="lobpcg")


def test_dispatcher_choices():
  assert choose_method(l=1000, g=10) == "bordered"
  assert choose_method(l=100, g=20, d=128) == "bordered"   # d >= l + g: not low rank
  assert choose_method(l=100, g=20, d=64) == "features"
  assert choose_method(l=0, g=5) == "dense"
  assert choose_method(l=3, g=10) == "dense"
  assert choose_method(l=0, g=5, d=3) == "features"


@pytest.mark.parametrize("method,positive_only,d,steps", [("bordered", False, 40, 1),
                                                          ("features", True, 10, 2)])
def test_bound_steps_give_upper_bounds_never_below_the_solve(method, positive_only, d, steps):
  rng = np.random.default_rng(11)
  phi_l = rng.normal(size=(L, d)).astype(np.float32)
  pool = rng.normal(size=(30, d)).astype(np.float32)
  index = np.stack([rng.choice(30, G, replace=False) for _ in range(16)]).astype(np.int32)
  opts = dict(phi_L=phi_l, phi_G=pool, index=index, method=method,
              positive_only=positive_only, chunk_size=8)
  exact = np.asarray(batch_min_eigenvalues(**opts))
  ref = reference(assembled(*blocks_of(phi_l.astype(np.float64), pool[index].astype(np.float64))),
                  positive_only=positive_only)[0]
  bounds = np.asarray(batch_min_eigenvalues(**opts, bound_steps=steps))
  # certified by the inertia count, and the plain value's also by a Rayleigh quotient
  # (>= the exact eigenvalue), and never below the full solve
  assert np.all(bounds >= exact)
  assert np.all(bounds >= ref - 1e-5 * np.abs(ref).max())
  assert np.any(bounds > exact)   # a step or two do not finish every candidate here
  with pytest.raises(ValueError, match="bound_steps"):
    batch_min_eigenvalues(**opts, bound_steps=0)


def test_rayleigh_bound_is_an_upper_bound_tight_at_the_eigenvector():
  """The plain bound's certificate: for any point and vector the quotient (plus its
  rounding margin) is at or above the float64 λ_min of ``[[diag(Λ), Z], [Zᵀ, D]]``, and at
  ``λ_min`` with the eigenvector's own border part it is ``λ_min`` up to that margin."""
  from assljax.kernels.spectral._roots import _rayleigh_bound

  rng = np.random.default_rng(14)
  c, l, g = 6, 9, 3
  lam = np.sort(rng.uniform(0.5, 3.0, size=l))
  Z = rng.normal(size=(c, l, g))
  D = rng.normal(size=(c, g, g))
  D = D @ np.swapaxes(D, 1, 2) + np.eye(g)
  mats = np.stack([np.block([[np.diag(lam), z], [z.T, d]]) for z, d in zip(Z, D)])
  ev, vec = np.linalg.eigh(mats)
  lmin, lmax = ev[:, 0], np.abs(ev).max(axis=1)
  Zt = np.swapaxes(Z, 1, 2)   # the plain solve's layout
  bound = lambda y, v: np.asarray(_rayleigh_bound(*map(f32, (lam, Zt, D, y, v))), np.float64)
  for _ in range(5):   # any point below the first pole and any unit vector
    v = rng.normal(size=(c, g))
    y = rng.uniform(-1.0, 0.49, size=c)
    assert np.all(bound(y, v / np.linalg.norm(v, axis=1, keepdims=True)) >= lmin)
  v_min = vec[:, l:, 0]       # the eigenvector's last g entries: u = [a; v] at y = λ_min
  tight = bound(lmin, v_min / np.linalg.norm(v_min, axis=1, keepdims=True))
  assert np.all(tight >= lmin)
  np.testing.assert_array_less(tight - lmin, 2 * (l + g) * 4e-7 * lmax)


@pytest.mark.parametrize("method,positive_only", [("bordered", False), ("features", True),
                                                  ("dense", False)])
def test_argmax_search_returns_the_argmax_of_every_exact_value(method, positive_only):
  """Bounds first, exact blocks of 8 by decreasing bound: the winner of all 48 candidates
  with fewer of them solved (the dense solver has no bounds and solves all). In the
  feature case 31 candidates can still win after the first exact block, so they are
  bounded again first. Bounds and exact blocks share one copy of the solver loop: the
  search's program makes as many LAPACK calls as the exact solve's."""
  rng = np.random.default_rng(12)
  phi_l = rng.normal(size=(L, 40 if method == "bordered" else 20)).astype(np.float32)
  pool = rng.normal(size=(60, phi_l.shape[1])).astype(np.float32)
  index = np.stack([rng.choice(60, G, replace=False) for _ in range(48)]).astype(np.int32)
  opts = dict(method=method, positive_only=positive_only, chunk_size=8)

  def compiled(fn):
    program = jax.jit(lambda *a: fn(phi_L=a[0], phi_G=a[1], index=a[2], **opts)).lower(
        phi_l, pool, index).compile()
    return (program(phi_l, pool, index),
            program.as_text().count('custom_call_target="lapack_'))

  exact, exact_calls = compiled(batch_min_eigenvalues)
  exact = np.asarray(exact)
  found, search_calls = compiled(argmax_min_eigenvalue)
  assert int(found.index) == int(np.argmax(exact))
  assert search_calls == exact_calls
  # solved in another position of another block: equal up to the solver's rounding
  lmax = reference(assembled(*blocks_of(phi_l.astype(np.float64),
                                        pool[index].astype(np.float64))),
                   positive_only=positive_only)[1].max()
  np.testing.assert_allclose(float(found.value), exact.max(), rtol=0,
                             atol=8 * np.finfo(np.float32).eps * lmax)
  if method == "dense":
    assert int(found.num_solved) == len(index)
  else:
    assert 8 <= int(found.num_solved) < len(index)


def test_argmax_search_breaks_ties_by_the_first_candidate():
  """Features of rank 10 < l + g = 16: every value is exactly 0, a 48-way tie. The first
  candidate wins, and one exact block settles it (every later one could only tie)."""
  rng = np.random.default_rng(13)
  phi_l = rng.normal(size=(L, 10)).astype(np.float32)
  pool = rng.normal(size=(60, 10)).astype(np.float32)
  index = np.stack([rng.choice(60, G, replace=False) for _ in range(48)]).astype(np.int32)
  found = argmax_min_eigenvalue(phi_L=phi_l, phi_G=pool, index=index, positive_only=False,
                                method="features", chunk_size=8)
  assert (int(found.index), float(found.value), int(found.num_solved)) == (0, 0.0, 8)
  for bad in ({"bound_steps": 0}, {"refine_steps": 0}):
    with pytest.raises(ValueError, match=next(iter(bad))):
      argmax_min_eigenvalue(phi_L=phi_l, phi_G=pool, index=index, **bad)
  with pytest.raises(ValueError, match="at least one candidate"):
    argmax_min_eigenvalue(phi_L=phi_l, phi_G=pool, index=index[:0])


@pytest.mark.parametrize("bound_steps", [None, 3])
def test_compacted_iteration_equals_one_loop_over_the_chunk(monkeypatch, bound_steps):
  """The last unfinished quarter of a chunk of 40 runs on 10 gathered rows and follows the
  iterations of one loop over all 40: the same values up to the rounding of batched
  products of another size (an ulp). Bounds (a few steps) never compact, and neither
  does the plain solve, whose steps skip finished candidates themselves."""
  from assljax.kernels.spectral import _driver

  monkeypatch.setattr(_driver, "COMPACT_MIN_CANDIDATES", 40)   # compact from 40 candidates

  rng = np.random.default_rng(5)
  # clustered low spectrum (Gaussian kernel of 8-d points): candidates finish unevenly
  x = rng.normal(size=(L + 40 * G, 8))
  gram = np.exp(-0.5 * np.sum((x[:, None] - x[None]) ** 2, axis=-1) / 8.0)
  k_ll = gram[:L, :L]
  k_lg = gram[:L, L:].reshape(L, 40, G).transpose(1, 0, 2)
  k_gg = np.stack([gram[L + i * G:L + (i + 1) * G, L + i * G:L + (i + 1) * G]
                   for i in range(40)])
  blocks = tuple(map(f32, (k_ll, k_lg, k_gg)))

  def run(positive_only):
    jax.clear_caches()   # COMPACT_MIN_CANDIDATES is read when tracing
    solve = lambda *blocks: batch_min_eigenvalues(*blocks, method="bordered", chunk_size=None,
                                                  positive_only=positive_only,
                                                  bound_steps=bound_steps)
    # the loop bodies decompose S: LAPACK calls per copy of a body in the program
    program = jax.jit(solve).lower(*blocks).compile()
    calls = lambda name: program.as_text().count(f'custom_call_target="lapack_{name}')
    return np.asarray(program(*blocks)), calls("ssyevd"), calls("spotrf")

  (out, compacted, _), (plain, _, plain_calls) = run(True), run(False)
  monkeypatch.setattr(_driver, "COMPACT_MIN_CANDIDATES", 41)
  (one_loop, single, _), (plain_one_loop, _, plain_single) = run(True), run(False)
  assert compacted > single if bound_steps is None else compacted == single
  assert plain_calls == plain_single
  np.testing.assert_array_equal(plain, plain_one_loop)
  for positive_only, values in ((True, out), (False, plain)):
    ref, lmax = reference(assembled(k_ll, k_lg, k_gg), positive_only=positive_only)
    if positive_only:
      np.testing.assert_allclose(out, one_loop, rtol=0,
                                 atol=4 * np.finfo(np.float32).eps * lmax.max())
    if bound_steps is None:
      assert_close(values, ref, lmax)
    else:
      assert np.all(values >= ref - 1e-5 * lmax)
