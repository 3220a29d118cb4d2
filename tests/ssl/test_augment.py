"""On-device augmentation: every op against Pillow on uint8 images; weak/strong contracts.

Images are drawn as uint8, given to the ops as ``k / 255`` float32, and the results are
compared with Pillow's on the same uint8 image. Tolerances (in units of one uint8 level):
- equalize, posterize, solarize: exact;
- auto_contrast and the ImageEnhance blends (color, contrast, brightness, sharpness):
  Pillow truncates its float result to uint8 and these ops do not, so
  ``0 <= 255 * ours - pillow < 1``;
- rotate, shear_x/y, translate_x/y: nearest-neighbour like Pillow; translations are
  exact; for rotations and shears at most 1% of pixels may differ, and only where
  Pillow's float64 source coordinate lies within 1e-3 pixel of a pixel boundary (this
  code computes coordinates in float32, so such points can fall in the neighbour).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from assljax.ssl import augment as aug

# A fill value Pillow can represent exactly (the library default is 0.5 = 127.5 / 255).
GREY_U8 = 128
GREY = GREY_U8 / 255.0
SHAPES = [(10, 12, 3), (9, 7, 1)]


def _u8(seed, shape, low=0, high=256):
  return np.random.default_rng(seed).integers(low, high, shape).astype(np.uint8)


def _pil(u8):
  return Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)


def _levels(pil_image, shape):
  return np.asarray(pil_image).reshape(shape).astype(np.int64)


def _float(u8):
  return jnp.asarray(u8.astype(np.float32) / 255.0)


def _fill(shape):
  return GREY_U8 if shape[-1] == 1 else (GREY_U8,) * 3


# ------------------------------------------------------------------ point operations


def test_posterize_solarize_equal_pillow_exactly():
  posterize = jax.jit(aug.posterize)
  solarize = jax.jit(aug.solarize)
  for seed, shape in enumerate(SHAPES):
    u8 = _u8(seed, shape)
    x = _float(u8)
    for bits in range(1, 9):
      ours = np.asarray(posterize(x, bits)) * 255.0
      ref = _levels(ImageOps.posterize(_pil(u8), bits), shape)
      np.testing.assert_allclose(ours, ref, atol=1e-3, err_msg=f"bits={bits}")
    for threshold in (0, 26, 128, 231, 255, 256):
      ours = np.asarray(solarize(x, threshold / 255.0)) * 255.0
      ref = _levels(ImageOps.solarize(_pil(u8), threshold), shape)
      np.testing.assert_allclose(ours, ref, atol=1e-3, err_msg=f"threshold={threshold}")
  with pytest.raises(ValueError, match="bits"):
    aug.posterize(_float(_u8(0, (4, 4, 3))), 0)


@pytest.mark.parametrize("shape", [(20, 20, 3), (24, 24, 1), (32, 32, 3), (10, 12, 3)])
def test_equalize_equals_pillow_exactly(shape):
  # Narrow and skewed histograms exercise Pillow's `step`; 10x12 has < 256 pixels per
  # channel, where Pillow's step is 0 and the image is returned unchanged.
  rng = np.random.default_rng(sum(shape))
  u8 = np.clip(rng.normal(90, 25, shape), 0, 255).astype(np.uint8)
  ours = np.asarray(jax.jit(aug.equalize)(_float(u8))) * 255.0
  ref = _levels(ImageOps.equalize(_pil(u8)), shape)
  np.testing.assert_allclose(ours, ref, atol=1e-3)
  if shape[0] * shape[1] >= 256:
    assert np.abs(ref - u8).max() > 20  # the comparison is not between two identities


def _assert_truncation_only(ours, ref, msg=""):
  diff = np.asarray(ours, np.float64) * 255.0 - ref
  assert diff.min() >= -1e-3 and diff.max() < 1.0 + 1e-3, (msg, diff.min(), diff.max())


@pytest.mark.parametrize("shape", SHAPES)
def test_auto_contrast_matches_pillow(shape):
  u8 = _u8(1, shape, 40, 200)
  u8[..., 0] = np.minimum(u8[..., 0], 150)
  if shape[-1] == 3:
    u8[..., 2] = 77  # a flat channel is left unchanged
  ours = jax.jit(aug.auto_contrast)(_float(u8))
  ref = _levels(ImageOps.autocontrast(_pil(u8)), shape)
  _assert_truncation_only(ours, ref)
  assert ref[..., 0].max() == 255 and ref[..., 0].min() == 0


ENHANCERS = [
    (aug.color, ImageEnhance.Color),
    (aug.contrast, ImageEnhance.Contrast),
    (aug.brightness, ImageEnhance.Brightness),
    (aug.sharpness, ImageEnhance.Sharpness),
]


@pytest.mark.parametrize("ours_fn,pil_cls", ENHANCERS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("shape", SHAPES)
def test_enhancers_match_pillow(ours_fn, pil_cls, shape):
  u8 = _u8(2, shape)
  x = _float(u8)
  fn = jax.jit(ours_fn)
  # 0.28 and 1.72 are the ends of the reference range; 0 and 2.5 test both clip sides.
  for factor in (0.0, 0.28, 0.73, 1.0, 1.72, 2.5):
    ref = _levels(pil_cls(_pil(u8)).enhance(factor), shape)
    _assert_truncation_only(fn(x, factor), ref, f"factor={factor}")
  if shape[-1] == 1 and ours_fn is aug.color:
    np.testing.assert_array_equal(np.asarray(fn(x, 0.3)), np.asarray(x))


def test_identity_returns_the_image():
  x = _float(_u8(3, (5, 6, 3)))
  np.testing.assert_array_equal(np.asarray(aug.identity(x)), np.asarray(x))


# -------------------------------------------------------------- geometric operations


def _pil_rotate_coeffs(degrees, shape):
  # Image.rotate's inverse matrix (Pillow's Image.py), in float64.
  angle = -math.radians(degrees)
  a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
  d, e = -b, a
  cx, cy = shape[1] / 2.0, shape[0] / 2.0
  return (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy)


def _assert_nearest_matches(ours, ref, coeffs, shape, exact):
  ours = np.round(np.asarray(ours) * 255.0).astype(np.int64)
  bad = np.any(ours != ref, axis=-1)
  if exact:
    assert not bad.any()
    return
  assert bad.mean() <= 0.01, bad.mean()
  a, b, c, d, e, f = coeffs
  for y, x in zip(*np.nonzero(bad)):
    u = a * (x + 0.5) + b * (y + 0.5) + c
    v = d * (x + 0.5) + e * (y + 0.5) + f
    gap = min(abs(u - round(u)), abs(v - round(v)))
    assert gap < 1e-3, (y, x, u, v)


@pytest.mark.parametrize("shape", SHAPES + [(32, 32, 3)])
def test_rotate_matches_pillow(shape):
  u8 = _u8(4, shape)
  pil = _pil(u8)
  fn = jax.jit(lambda x, deg: aug.rotate(x, deg, fill=GREY))
  for degrees in (-27, -9, 3, 12, 21, 30):
    ref = _levels(pil.rotate(degrees, fillcolor=_fill(shape)), shape)
    _assert_nearest_matches(fn(_float(u8), float(degrees)), ref,
                            _pil_rotate_coeffs(degrees, shape), shape, exact=False)


@pytest.mark.parametrize("shape", SHAPES)
def test_shear_and_translate_match_pillow(shape):
  u8 = _u8(5, shape)
  pil = _pil(u8)
  x = _float(u8)
  cases = [
      (aug.shear_x, lambda s: (1, s, 0, 0, 1, 0), (-0.27, -0.06, 0.09, 0.12, 0.3), False),
      (aug.shear_y, lambda s: (1, 0, 0, s, 1, 0), (-0.27, -0.06, 0.09, 0.12, 0.3), False),
      (aug.translate_x, lambda t: (1, 0, t, 0, 1, 0), (-3, -1, 1.5, 2, 5), True),
      (aug.translate_y, lambda t: (1, 0, 0, 0, 1, t), (-3, -1, 1.5, 2, 5), True),
  ]
  for op, coeffs_of, values, exact in cases:
    fn = jax.jit(lambda img, v, op=op: op(img, v, fill=GREY))
    for value in values:
      coeffs = coeffs_of(value)
      ref = _levels(pil.transform(pil.size, Image.AFFINE, coeffs, fillcolor=_fill(shape)), shape)
      _assert_nearest_matches(fn(x, value), ref, coeffs, shape, exact=exact)


def test_geometric_default_fill_is_grey_half():
  u8 = _u8(6, (6, 8, 3))
  x = _float(u8)
  out = np.asarray(aug.translate_x(x, 3))
  np.testing.assert_array_equal(out[:, 5:], 0.5)
  np.testing.assert_array_equal(out[:, :5], np.asarray(x)[:, 3:])
  out = np.asarray(aug.translate_y(x, -2))
  np.testing.assert_array_equal(out[:2], 0.5)
  np.testing.assert_array_equal(out[2:], np.asarray(x)[:-2])


# --------------------------------------------------------------------------- cutout


def _reference_cutout_masks(h, w, size):
  """Every mask the reference's ``create_cutout_mask`` can draw (one per centre)."""
  masks = []
  for cy in range(h):
    for cx in range(w):
      mask = np.zeros((h, w), bool)
      y0, x0 = cy - size // 2, cx - size // 2
      mask[max(0, y0):min(h, y0 + size), max(0, x0):min(w, x0 + size)] = True
      masks.append(mask)
  return np.stack(masks)


@pytest.mark.parametrize("size", [0, 4, 5, 16])
def test_cutout_draws_a_reference_square_filled_with_grey(size):
  h, w = 10, 12
  x = _float(_u8(7, (h, w, 3)))  # k / 255 never equals 0.5
  keys = jax.random.split(jax.random.key(0), 64)
  out = np.asarray(jax.jit(jax.vmap(lambda k: aug.cutout(k, x, size)))(keys))
  masks = out == 0.5
  assert (masks.all(-1) == masks.any(-1)).all()  # all channels together
  masks = masks[..., 0]
  np.testing.assert_array_equal(np.where(masks[..., None], 0.5, np.asarray(x)), out)
  reference = _reference_cutout_masks(h, w, size)
  for mask in masks:
    assert (reference == mask).all(axis=(1, 2)).any()
  if size == 4:
    assert masks.sum(axis=(1, 2)).max() == 16
  if size == 0:
    assert not masks.any()


def test_cutout_centre_is_uniform():
  h = w = 8
  size = 4
  x = _float(_u8(8, (h, w, 1)))
  keys = jax.random.split(jax.random.key(1), 4000)
  out = np.asarray(jax.jit(jax.vmap(lambda k: aug.cutout(k, x, size)))(keys))
  # the batch path draws its centres from one batch of random words instead of a key each
  batch = np.asarray(aug.strong_augment(jax.random.key(1), jnp.broadcast_to(x, (4000, h, w, 1)),
                                        flip=False, pad=0, num_ops=0, cutout_fraction=0.5))
  expected = _reference_cutout_masks(h, w, size).mean(0)
  for drawn in (out, batch):
    frequency = (drawn[..., 0] == 0.5).mean(0)
    # Binomial standard deviation <= 0.008 for 4000 draws: 0.04 is five of them.
    np.testing.assert_allclose(frequency, expected, atol=0.04)


def test_strong_policy_draws_follow_the_reference_distribution():
  # RandAugment's policy per op slot: op uniform over the 14 (Identity when skipped, with
  # probability 1 - APPLY_PROBABILITY), level uniform over 1..9, sign +-1 with 1/2 each;
  # the slots independent.
  n, num_ops = 40_000, 2
  words = jax.random.bits(jax.random.key(8), (n, 4 * num_ops))
  branch, level, sign = (np.asarray(a) for a in jax.vmap(lambda w: aug._policy(w, num_ops))(
      words))
  assert branch.shape == level.shape == sign.shape == (n, num_ops)
  k = len(aug.RANDAUGMENT_OPS)
  p_op = aug.APPLY_PROBABILITY / k
  expected = np.full(k, p_op)
  expected[0] += 1 - aug.APPLY_PROBABILITY
  for slot in range(num_ops):
    # 5 binomial standard deviations of each frequency
    frequency = np.bincount(branch[:, slot], minlength=k) / n
    assert (np.abs(frequency - expected) <= 5 * np.sqrt(expected * (1 - expected) / n)).all(), \
        frequency
    levels = np.bincount(level[:, slot], minlength=aug.MAX_LEVEL) / n
    assert levels[0] == 0 and levels.size == aug.MAX_LEVEL
    np.testing.assert_allclose(levels[1:], 1 / 9, atol=5 * np.sqrt(1 / 9 * 8 / 9 / n))
    assert set(np.unique(sign[:, slot])) == {-1.0, 1.0}
    assert abs((sign[:, slot] > 0).mean() - 0.5) <= 5 * np.sqrt(0.25 / n)
  both_skipped = (branch == 0).all(axis=1).mean()
  p0 = expected[0]
  assert abs(both_skipped - p0 ** 2) <= 5 * np.sqrt(p0 ** 2 * (1 - p0 ** 2) / n)


# ------------------------------------------------------------------------------ weak


def _crops(padded, h, w):
  return [padded[i:i + h, j:j + w] for i in range(padded.shape[0] - h + 1)
          for j in range(padded.shape[1] - w + 1)]


def test_weak_augment_contract():
  x = _float(_u8(9, (6, 10, 12, 3)))
  weak = aug.weak_augment(jax.random.key(0), x)
  assert weak.shape == x.shape and weak.dtype == jnp.float32
  assert float(weak.min()) >= 0.0 and float(weak.max()) <= 1.0
  np.testing.assert_array_equal(np.asarray(aug.weak_augment(jax.random.key(0), x)),
                                np.asarray(weak))
  assert not np.array_equal(np.asarray(aug.weak_augment(jax.random.key(1), x)),
                            np.asarray(weak))
  inside = jax.jit(lambda k, images: aug.weak_augment(k, images, pad=2))
  np.testing.assert_array_equal(np.asarray(inside(jax.random.key(3), x)),
                                np.asarray(aug.weak_augment(jax.random.key(3), x, pad=2)))


def test_weak_augment_flip_false_never_flips():
  asym = np.zeros((7, 9, 1), np.float32)
  asym[:, :3] = 1.0  # left-heavy: a flip would be visible
  asym[2, 7] = 0.25
  x = jnp.asarray(np.repeat(asym[None], 32, 0))
  for seed in range(3):
    out = aug.weak_augment(jax.random.key(seed), x, flip=False, pad=0)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))


def test_weak_augment_flip_only_mirrors_half():
  image = np.asarray(_float(_u8(10, (7, 9, 3))))
  x = jnp.asarray(np.repeat(image[None], 64, 0))
  out = np.asarray(aug.weak_augment(jax.random.key(2), x, flip=True, pad=0))
  same = (out == image).all(axis=(1, 2, 3))
  mirrored = (out == image[:, ::-1]).all(axis=(1, 2, 3))
  assert (same ^ mirrored).all()
  assert 16 <= mirrored.sum() <= 48


@pytest.mark.parametrize("flip", [False, True])
def test_weak_augment_is_a_reflect_padded_crop(flip):
  pad, (h, w) = 2, (7, 9)
  image = np.asarray(_float(_u8(11, (h, w, 3))))
  x = jnp.asarray(np.repeat(image[None], 400, 0))
  out = np.asarray(aug.weak_augment(jax.random.key(4), x, flip=flip, pad=pad))
  widths = ((pad, pad), (pad, pad), (0, 0))
  candidates = _crops(np.pad(image, widths, mode="reflect"), h, w)
  if flip:
    candidates += _crops(np.pad(image[:, ::-1], widths, mode="reflect"), h, w)
  candidates = np.stack(candidates)
  hits = (out[:, None] == candidates[None]).all(axis=(2, 3, 4))
  assert hits.any(axis=1).all()
  # All (2 pad + 1)^2 offsets (times two orientations) occur in 400 draws.
  assert hits.any(axis=0).all()


def test_batch_input_validation():
  key = jax.random.key(0)
  good = jnp.zeros((2, 8, 8, 3), jnp.float32)
  with pytest.raises(ValueError, match="shape"):
    aug.weak_augment(key, good[0])
  with pytest.raises(ValueError, match="shape"):
    aug.strong_augment(key, jnp.zeros((2, 8, 8, 2), jnp.float32))
  with pytest.raises(ValueError, match="floating"):
    aug.weak_augment(key, jnp.zeros((2, 8, 8, 3), jnp.uint8))
  with pytest.raises(ValueError, match="pad"):
    aug.weak_augment(key, good, pad=8)
  with pytest.raises(ValueError, match="num_ops"):
    aug.strong_augment(key, good, num_ops=-1)
  with pytest.raises(ValueError, match="cutout_fraction"):
    aug.strong_augment(key, good, cutout_fraction=1.5)
  with pytest.raises(ValueError, match="shape"):
    aug.rotate(jnp.zeros((8, 8), jnp.float32), 3.0)


# ---------------------------------------------------------------------------- strong


@pytest.mark.parametrize("shape", [(8, 16, 16, 3), (8, 8, 8, 1)])
def test_strong_augment_contract(shape):
  x = _float(_u8(12, shape))
  out = aug.strong_augment(jax.random.key(0), x)
  assert out.shape == shape and out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  np.testing.assert_array_equal(np.asarray(aug.strong_augment(jax.random.key(0), x)),
                                np.asarray(out))
  other = np.asarray(aug.strong_augment(jax.random.key(1), x))
  assert (other != np.asarray(out)).any(axis=(1, 2, 3)).all()
  # Cutout of side H / 2: at least (H / 4)^2 grey pixels even when clipped at a corner.
  assert ((np.asarray(out) == 0.5).all(-1).sum(axis=(1, 2)) >= (shape[1] // 4) ** 2).all()
  assert jax.eval_shape(aug.strong_augment, jax.random.key(0), x).shape == shape


def test_strong_augment_loop_and_vmap_layouts_agree():
  # CPU runs a lax.map loop; accelerators vmap (every branch computed, then selected).
  x = _float(_u8(13, (8, 8, 8, 1)))
  key = jax.random.key(5)
  size = 4
  loop = aug._strong(key, x, True, 4, 2, size, True)
  vmapped = aug._strong(key, x, True, 4, 2, size, False)
  np.testing.assert_allclose(np.asarray(loop), np.asarray(vmapped), atol=1e-6)


def test_strong_augment_cutout_only():
  h = w = 8
  x = _float(_u8(14, (64, h, w, 1)))
  run = jax.jit(lambda k, images: aug.strong_augment(k, images, flip=False, pad=0,
                                                     num_ops=0, cutout_fraction=0.5))
  out = np.asarray(run(jax.random.key(6), x))
  reference = _reference_cutout_masks(h, w, 4)
  for image, result in zip(np.asarray(x), out):
    mask = result[..., 0] == 0.5
    np.testing.assert_array_equal(np.where(mask[..., None], 0.5, image), result)
    assert (reference == mask).all(axis=(1, 2)).any()


def _reference_candidates(image):
  """Every output of one applied RandAugment op, with the reference's magnitudes.

  google-research/fixmatch third_party/auto_augment/augmentations.py, levels 1..9,
  random sign for Rotate, Shear and Translate; on 32-pixel images translations are
  ``level`` pixels.
  """
  levels = np.arange(1, 10)
  factor = [lv * 1.8 / 10 + 0.1 for lv in levels]
  signed = lambda values: [s * v for v in values for s in (1.0, -1.0)]
  table = {
      "Identity": (lambda x, v: x, [0.0]),
      "AutoContrast": (lambda x, v: aug.auto_contrast(x), [0.0]),
      "Equalize": (lambda x, v: aug.equalize(x), [0.0]),
      "Rotate": (aug.rotate, signed([float(int(lv * 30 / 10)) for lv in levels])),
      "Solarize": (aug.solarize, [(256 - int(lv * 256 / 10)) / 255.0 for lv in levels]),
      "Color": (aug.color, factor),
      "Contrast": (aug.contrast, factor),
      "Brightness": (aug.brightness, factor),
      "Sharpness": (aug.sharpness, factor),
      "ShearX": (aug.shear_x, signed([lv * 0.3 / 10 for lv in levels])),
      "ShearY": (aug.shear_y, signed([lv * 0.3 / 10 for lv in levels])),
      "TranslateX": (aug.translate_x, signed([float(int(lv * 10 / 10)) for lv in levels])),
      "TranslateY": (aug.translate_y, signed([float(int(lv * 10 / 10)) for lv in levels])),
      "Posterize": (aug.posterize, [4 - int(lv * 4 / 10) for lv in levels]),
  }
  assert set(table) == set(aug.RANDAUGMENT_OPS)
  out = {}
  for name, (fn, values) in table.items():
    values = jnp.asarray(values)
    out[name] = np.asarray(jax.jit(jax.vmap(fn, in_axes=(None, 0)))(image, values))
  return out


def test_strong_augment_single_op_is_a_reference_op():
  # One op, no flip/crop/cutout: each output must be one of the reference's outputs,
  # every op must occur, and the share of unchanged images must match the reference
  # (0.5 skipped + 0.5 * P(an applied op leaves this image unchanged)).
  u8 = _u8(15, (32, 32, 3), 30, 220)
  image = _float(u8)
  candidates = _reference_candidates(image)
  n = 600
  x = jnp.broadcast_to(image, (n, 32, 32, 3))
  out = np.asarray(aug.strong_augment(jax.random.key(7), x, flip=False, pad=0, num_ops=1,
                                      cutout_fraction=0.0))
  geometric = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
  seen = set()
  for result in out:
    # Geometric ops may differ from the candidate in the few pixels whose source point
    # is on a pixel boundary (float rounding of the magnitude); a wrong magnitude or
    # sign moves far more than 2% of the pixels.
    matches = [name for name, outs in candidates.items()
               if (np.abs(outs - result).max(axis=(1, 2, 3)) <= 1e-5).any()
               or (name in geometric
                   and ((np.abs(outs - result) > 1e-5).any(-1).mean((1, 2)) <= 0.02).any())]
    assert matches, "an output is not any reference op's output"
    if len(matches) == 1:
      seen.add(matches[0])
  assert seen >= set(aug.RANDAUGMENT_OPS) - {"Identity"}
  # Exact probability that an image comes back unchanged, from the candidate table.
  base = np.asarray(image)
  unchanged_if_applied = np.mean([
      np.mean((np.abs(outs - base).max(axis=(1, 2, 3)) <= 1e-6)) for outs in candidates.values()
  ])
  p = (1 - aug.APPLY_PROBABILITY) + aug.APPLY_PROBABILITY * unchanged_if_applied
  observed = (np.abs(out - base).max(axis=(1, 2, 3)) <= 1e-6).mean()
  assert abs(observed - p) <= 4 * math.sqrt(p * (1 - p) / n), (observed, p)
