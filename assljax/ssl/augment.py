"""On-device image augmentation for semi-supervised training (FixMatch's recipe).

Two batch functions, jittable and vmapped per image, each drawing the random numbers
of the whole batch in one call to the PRNG:

    weak = weak_augment(key, images)                # flip + 4-px reflect-pad random crop
    strong = strong_augment(key, images)            # weak, then RandAugment (2 ops), Cutout

and the RandAugment operations as public per-image functions on ``(H, W, C)`` float
images in ``[0, 1]`` (``C`` in ``{1, 3}``). Each operation follows Pillow's semantics on
uint8-quantized images (``PIL.ImageOps``, ``PIL.ImageEnhance``, ``Image.transform``):
on an image whose values are ``k / 255`` it returns Pillow's result divided by 255, up
to Pillow's final truncation to an integer (point and blend operations return the
unquantized value, at most ``1 / 255`` above Pillow's; equalize, posterize and solarize
are exact; geometric operations use nearest-neighbour resampling like the reference).
Where Pillow builds an intermediate uint8 image (the grey image of Color and Contrast,
the SMOOTH-filtered image of Sharpness, the histograms of Equalize) the input is
quantized to 256 levels first, as Pillow does.

Reference settings (FixMatch, Sohn et al. 2020; google-research/fixmatch,
``libml/augment.py`` ``AugmentPoolRAMC`` = the "rac" RandAugment + Cutout used for
FixMatch (RA), with the op table of ``third_party/auto_augment/augmentations.py``):

- ``num_ops = 2`` operations drawn uniformly *with replacement* from the 14 ops of
  ``RANDAUGMENT_OPS``; each one is applied with probability 0.5; its level is drawn
  uniformly from the integers ``1..9`` (``np.random.randint(1, 10)``) and its sign, for
  signed ops, is ``±`` with probability 0.5. Magnitudes for level ``L``:
  Rotate ``±int(3 L)`` degrees; Solarize threshold ``256 - int(25.6 L)`` (of 255);
  Color/Contrast/Brightness/Sharpness factor ``0.1 + 0.18 L`` (in ``[0.28, 1.72]``);
  ShearX/Y ``±0.03 L``; TranslateX/Y ``±L`` pixels on 32-pixel images, here
  ``±floor(L * side / 32)`` pixels so the fraction of the side is kept on other sizes;
  Posterize ``4 - int(0.4 L)`` bits (``4..1``).
- Geometric ops use Pillow's default NEAREST resampling and fill uncovered pixels with
  grey 0.5 (the reference wraps images as RGBA; uncovered pixels have alpha 0 and are
  set to 0 in its ``[-1, 1]`` scale, i.e. 0.5 in ``[0, 1]``).
- Cutout (``cutout_numpy``): a square of side ``size`` (16 on 32 x 32) centred on a
  uniformly drawn pixel, clipped at the borders, filled with 0 in the ``[-1, 1]`` scale,
  i.e. grey 0.5.
- Weak augmentation (``augment_mirror`` then ``augment_shift``): horizontal flip with
  probability 0.5 and a ``pad``-pixel REFLECT pad followed by a random crop back to
  ``(H, W)`` (offsets uniform in ``0..2 pad``).

The PyTorch port (kekmodel/FixMatch-pytorch, ``fixmatch_augment_pool``) differs in its
ranges (factors ``0.05 + 0.09 L``, Posterize ``4 + int(0.4 L)`` bits, translations
``int(0.03 L * side)``), fills geometric ops with black and Cutout with 127/255; this
module follows the original TensorFlow reference above.
"""

from __future__ import annotations

import functools
import math

import dm_pix as pix
import jax
import jax.numpy as jnp
from jax import lax

from assljax._validation import UserInputError, check_int, check_number

#: The RandAugment operations in the reference's order (``RANDOM_POLICY_OPS``).
RANDAUGMENT_OPS = ("Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color",
                   "Contrast", "Brightness", "Sharpness", "ShearX", "TranslateX",
                   "TranslateY", "Posterize", "ShearY")

#: Probability that each drawn RandAugment op is applied (reference: 0.5).
APPLY_PROBABILITY = 0.5
#: Levels are drawn uniformly from ``1 .. MAX_LEVEL - 1`` (reference: randint(1, 10)).
MAX_LEVEL = 10
#: Grey used for pixels uncovered by geometric ops and for Cutout (reference: 0 in [-1, 1]).
FILL = 0.5


# ----------------------------------------------------------------------------- checks


def _check_image(image: jax.Array, name: str = "image") -> jax.Array:
  image = jnp.asarray(image)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise UserInputError(f"{name} must have shape (H, W, C) with C in {{1, 3}}, got "
                         f"{tuple(image.shape)}.")
  if not jnp.issubdtype(image.dtype, jnp.floating):
    raise UserInputError(f"{name} must be floating point with values in [0, 1], got dtype "
                         f"{image.dtype}.")
  return image


def _check_batch(images: jax.Array, pad: int) -> jax.Array:
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise UserInputError(f"images must have shape (n, H, W, C) with C in {{1, 3}}, got "
                         f"{tuple(images.shape)}.")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise UserInputError(f"images must be floating point with values in [0, 1], got dtype "
                         f"{images.dtype}.")
  if not isinstance(pad, int) or pad < 0 or pad >= min(images.shape[1:3]):
    raise UserInputError(f"pad must be an integer in [0, min(H, W)), got {pad!r} for images "
                     f"of size {images.shape[1]}x{images.shape[2]}.")
  return images.astype(jnp.float32)


# ---------------------------------------------------------------------- uint8 helpers


def _quantize(image: jax.Array) -> jax.Array:
  """Pillow's uint8 levels of a float image in [0, 1], as int32 ``(H, W, C)``."""
  return jnp.round(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.int32)


def _luminance(levels: jax.Array) -> jax.Array:
  """Pillow's ``convert("L")`` of uint8 levels ``(H, W, C)``, as int32 ``(H, W)``."""
  if levels.shape[-1] == 1:
    return levels[..., 0]
  r, g, b = levels[..., 0], levels[..., 1], levels[..., 2]
  # ITU-R 601-2 luma in Pillow's 16-bit fixed point (libImaging/Convert.c, L24).
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def _blend(degenerate: jax.Array, image: jax.Array, factor) -> jax.Array:
  """``Image.blend(degenerate, image, factor)`` without the final truncation, clipped."""
  factor = jnp.asarray(factor, image.dtype)
  return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 1.0)


def _pil_affine(image: jax.Array, coeffs, fill: float) -> jax.Array:
  """``Image.transform(size, AFFINE, coeffs, NEAREST, fillcolor=fill)`` on ``(H, W, C)``.

  Pillow maps the output pixel centre ``(x + 0.5, y + 0.5)`` to the input point
  ``(a x' + b y' + c, d x' + e y' + f)`` and takes the pixel containing it (floor).
  dm-pix indexes pixel centres by integers and rounds, so the same point is at
  ``(row, col) = (d x' + e y' + f - 0.5, a x' + b y' + c - 0.5)``. Points within float
  rounding of a pixel boundary may land in the neighbouring pixel (Pillow accumulates
  the coordinates in float64, this computes them in float32): about 1 pixel in 1,000
  for the reference's rotations and shears.
  """
  a, b, c, d, e, f = (jnp.asarray(v, jnp.float32) for v in coeffs)
  zero, one = jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32)
  matrix = jnp.stack([jnp.stack([e, d, zero]), jnp.stack([b, a, zero]),
                      jnp.stack([zero, zero, one])])
  offset = jnp.stack([0.5 * (d + e) + f - 0.5, 0.5 * (a + b) + c - 0.5, zero])
  out = pix.affine_transform(image, matrix, offset=offset, order=0, mode="constant",
                             cval=fill)
  return out.astype(image.dtype)


# ------------------------------------------------------------------ per-image ops


def identity(image: jax.Array) -> jax.Array:
  """Returns ``image`` ``(H, W, C)`` unchanged."""
  return _check_image(image)


def auto_contrast(image: jax.Array) -> jax.Array:
  """``PIL.ImageOps.autocontrast``: stretch each channel to span ``[0, 1]``.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.

  Returns:
    ``(H, W, C)``: ``(x - lo) / (hi - lo)`` per channel with ``lo``/``hi`` its minimum and
    maximum; channels with ``hi == lo`` are unchanged (Pillow truncates the result to
    uint8, this does not).
  """
  image = _check_image(image)
  lo = jnp.min(image, axis=(0, 1), keepdims=True)
  hi = jnp.max(image, axis=(0, 1), keepdims=True)
  spread = hi > lo
  scaled = (image - lo) / jnp.where(spread, hi - lo, 1.0)
  return jnp.where(spread, jnp.clip(scaled, 0.0, 1.0), image)


def equalize(image: jax.Array) -> jax.Array:
  """``PIL.ImageOps.equalize``: per-channel histogram equalization on 256 levels.

  Pillow's lookup table for a channel with histogram ``h`` over ``N`` pixels is
  ``lut[i] = (step // 2 + sum_{j < i} h[j]) // step`` with
  ``step = (N - h[max level present]) // 255``, and the identity when ``step == 0``
  (fewer than 256 pixels off the top level).

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]`` (quantized to uint8 levels).

  Returns:
    ``(H, W, C)`` on the grid ``k / 255``, equal to Pillow's result.
  """
  image = _check_image(image)
  h, w, c = image.shape
  levels = _quantize(image).reshape(h * w, c)

  def channel(v):
    hist = jnp.bincount(v, length=256)
    step = (h * w - hist[jnp.max(v)]) // 255
    before = jnp.cumsum(hist) - hist
    lut = jnp.minimum((step // 2 + before) // jnp.maximum(step, 1), 255)
    lut = jnp.where(step > 0, lut, jnp.arange(256))
    return lut[v]

  out = jax.vmap(channel, in_axes=1, out_axes=1)(levels)
  return (out.astype(jnp.float32) / 255.0).reshape(h, w, c).astype(image.dtype)


def rotate(image: jax.Array, degrees, *, fill: float = FILL) -> jax.Array:
  """``Image.rotate(degrees, NEAREST, fillcolor=fill)``: counter-clockwise about the centre.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    degrees: scalar angle in degrees (may be traced); positive turns counter-clockwise.
    fill: value of pixels that come from outside the image.

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  h, w, _ = image.shape
  # Pillow's Image.rotate: the inverse map about the centre (w / 2, h / 2) in continuous
  # coordinates, angle negated because the matrix maps output to input.
  radians = -jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
  cos, sin = jnp.cos(radians), jnp.sin(radians)
  cx, cy = w / 2.0, h / 2.0
  coeffs = (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
  return _pil_affine(image, coeffs, fill)


def solarize(image: jax.Array, threshold) -> jax.Array:
  """``PIL.ImageOps.solarize``: invert (``1 - x``) every value ``>= threshold``.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    threshold: scalar in the image's scale, may be traced. Pillow's integer threshold
      ``t`` corresponds to ``t / 255``; ``(t - 0.5) / 255`` gives the same result on
      images on the ``k / 255`` grid without relying on float rounding at equality.

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  return pix.solarize(image, jnp.asarray(threshold, image.dtype))


def color(image: jax.Array, factor) -> jax.Array:
  """``PIL.ImageEnhance.Color(image).enhance(factor)``: blend with the grey image.

  ``factor`` 0 gives Pillow's ``convert("L")`` grey image, 1 the original, above 1
  more saturation. Single-channel images are returned unchanged, as in Pillow.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    factor: scalar (may be traced).

  Returns:
    ``(H, W, C)`` clipped to ``[0, 1]``.
  """
  image = _check_image(image)
  if image.shape[-1] == 1:
    return image
  grey = _luminance(_quantize(image)).astype(image.dtype)[..., None] / 255.0
  return _blend(grey, image, factor)


def contrast(image: jax.Array, factor) -> jax.Array:
  """``PIL.ImageEnhance.Contrast(image).enhance(factor)``: blend with the mean grey.

  The degenerate image is the constant ``round(mean(convert("L")))`` as in Pillow.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    factor: scalar (may be traced); 0 gives the flat mean grey, 1 the original.

  Returns:
    ``(H, W, C)`` clipped to ``[0, 1]``.
  """
  image = _check_image(image)
  grey = _luminance(_quantize(image))
  n = grey.size
  mean = (2 * jnp.sum(grey) + n) // (2 * n)  # int(mean + 0.5), exactly
  return _blend(mean.astype(image.dtype) / 255.0, image, factor)


def brightness(image: jax.Array, factor) -> jax.Array:
  """``PIL.ImageEnhance.Brightness(image).enhance(factor)``: ``factor * x``, clipped.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    factor: scalar (may be traced).

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  return _blend(jnp.zeros((), image.dtype), image, factor)


def sharpness(image: jax.Array, factor) -> jax.Array:
  """``PIL.ImageEnhance.Sharpness(image).enhance(factor)``: blend with the SMOOTH image.

  The degenerate image is Pillow's ``ImageFilter.SMOOTH`` (3x3 kernel ``[[1, 1, 1],
  [1, 5, 1], [1, 1, 1]] / 13``, rounded to uint8) on interior pixels; border pixels are
  copied, so ``sharpness`` leaves the one-pixel border unchanged.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    factor: scalar (may be traced); 0 gives the smoothed image, 1 the original.

  Returns:
    ``(H, W, C)`` clipped to ``[0, 1]``.
  """
  image = _check_image(image)
  h, w, _ = image.shape
  if h < 3 or w < 3:
    return image
  q = _quantize(image)
  total = 4 * q[1:-1, 1:-1]
  for di in range(3):
    for dj in range(3):
      total = total + q[di:h - 2 + di, dj:w - 2 + dj]
  smooth = (2 * total + 13) // 26  # round(total / 13); 13 is odd, so there are no ties
  degenerate = image.at[1:-1, 1:-1].set(smooth.astype(image.dtype) / 255.0)
  return _blend(degenerate, image, factor)


def shear_x(image: jax.Array, shear, *, fill: float = FILL) -> jax.Array:
  """``Image.transform(size, AFFINE, (1, shear, 0, 0, 1, 0), NEAREST)``.

  Output pixel ``(x, y)`` reads input ``(x + shear * y, y)`` (pixel centres, origin at the
  top-left corner as in the reference).

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    shear: scalar (may be traced).
    fill: value of pixels that come from outside the image.

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  return _pil_affine(image, (1.0, shear, 0.0, 0.0, 1.0, 0.0), fill)


def shear_y(image: jax.Array, shear, *, fill: float = FILL) -> jax.Array:
  """``Image.transform(size, AFFINE, (1, 0, 0, shear, 1, 0), NEAREST)``.

  Output pixel ``(x, y)`` reads input ``(x, y + shear * x)``.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    shear: scalar (may be traced).
    fill: value of pixels that come from outside the image.

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  return _pil_affine(image, (1.0, 0.0, 0.0, shear, 1.0, 0.0), fill)


def translate_x(image: jax.Array, pixels, *, fill: float = FILL) -> jax.Array:
  """``Image.transform(size, AFFINE, (1, 0, pixels, 0, 1, 0), NEAREST)``.

  Output pixel ``(x, y)`` reads input ``(x + pixels, y)``: positive ``pixels`` moves the
  content left.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    pixels: scalar (may be traced; fractional values floor like Pillow).
    fill: value of pixels that come from outside the image.

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  return _pil_affine(image, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill)


def translate_y(image: jax.Array, pixels, *, fill: float = FILL) -> jax.Array:
  """``Image.transform(size, AFFINE, (1, 0, 0, 0, 1, pixels), NEAREST)``.

  Output pixel ``(x, y)`` reads input ``(x, y + pixels)``: positive ``pixels`` moves the
  content up.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]``.
    pixels: scalar (may be traced).
    fill: value of pixels that come from outside the image.

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  return _pil_affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill)


def posterize(image: jax.Array, bits) -> jax.Array:
  """``PIL.ImageOps.posterize``: keep the ``bits`` high bits of each uint8 level.

  Args:
    image: ``(H, W, C)`` float in ``[0, 1]`` (quantized to uint8 levels).
    bits: integer scalar in ``1..8`` (may be traced).

  Returns:
    ``(H, W, C)`` on the grid ``k / 255``, equal to Pillow's result.
  """
  image = _check_image(image)
  if isinstance(bits, int) and not 1 <= bits <= 8:
    raise UserInputError(f"bits must be an integer in [1, 8], got {bits}.")
  shift = 8 - jnp.asarray(bits, jnp.int32)
  q = _quantize(image)
  kept = jnp.left_shift(jnp.right_shift(q, shift), shift)
  return (kept.astype(jnp.float32) / 255.0).astype(image.dtype)


def cutout(key: jax.Array, image: jax.Array, size, *, fill: float = FILL) -> jax.Array:
  """Cutout (DeVries & Taylor 2017) as in the FixMatch reference's ``cutout_numpy``.

  A centre pixel ``(cy, cx)`` is drawn uniformly; rows ``[cy - size // 2, cy - size // 2
  + size)`` and the same columns around ``cx``, clipped to the image, are set to
  ``fill`` (for even ``size`` this is the reference's ``[c - size // 2, c + size // 2)``).

  Args:
    key: PRNG key.
    image: ``(H, W, C)`` float in ``[0, 1]``.
    size: side of the square in pixels (integer, may be traced); 0 leaves the image as is.
    fill: value written into the square (the reference uses grey 0.5).

  Returns:
    ``(H, W, C)``.
  """
  image = _check_image(image)
  h, w, _ = image.shape
  key_y, key_x = jax.random.split(key)
  return _cutout_at(image, jax.random.randint(key_y, (), 0, h),
                    jax.random.randint(key_x, (), 0, w), size, fill=fill)


def _cutout_at(image: jax.Array, cy: jax.Array, cx: jax.Array, size,
               *, fill: float = FILL) -> jax.Array:
  """:func:`cutout` centred on ``(cy, cx)``."""
  h, w, _ = image.shape
  size = jnp.asarray(size, jnp.int32)
  y0, x0 = cy - size // 2, cx - size // 2
  rows = jnp.arange(h)
  cols = jnp.arange(w)
  inside_rows = (rows >= y0) & (rows < y0 + size)
  inside_cols = (cols >= x0) & (cols < x0 + size)
  mask = inside_rows[:, None, None] & inside_cols[None, :, None]
  return jnp.where(mask, jnp.asarray(fill, image.dtype), image)


# ------------------------------------------------------------------ RandAugment table


def _enhance_factor(level):
  return 0.1 + 1.8 * level.astype(jnp.float32) / MAX_LEVEL


def _branches(height: int, width: int):
  """One ``(image, level, sign) -> image`` per entry of ``RANDAUGMENT_OPS``."""

  def translate_pixels(level, sign, side):
    # 10 pixels at PARAMETER_MAX on 32-pixel images, kept as a fraction of the side.
    return sign * ((level * side) // 32).astype(jnp.float32)

  return (
      lambda x, level, sign: x,
      lambda x, level, sign: auto_contrast(x),
      lambda x, level, sign: equalize(x),
      lambda x, level, sign: rotate(x, sign * (3 * level).astype(jnp.float32)),
      # Pillow inverts uint8 levels >= t; comparing against (t - 0.5) / 255 keeps values
      # on the k / 255 grid on the right side whatever the float rounding of t / 255.
      lambda x, level, sign: solarize(
          x, ((256 - (level * 256) // MAX_LEVEL).astype(jnp.float32) - 0.5) / 255.0),
      lambda x, level, sign: color(x, _enhance_factor(level)),
      lambda x, level, sign: contrast(x, _enhance_factor(level)),
      lambda x, level, sign: brightness(x, _enhance_factor(level)),
      lambda x, level, sign: sharpness(x, _enhance_factor(level)),
      lambda x, level, sign: shear_x(x, sign * 0.3 * level.astype(jnp.float32) / MAX_LEVEL),
      lambda x, level, sign: translate_x(x, translate_pixels(level, sign, width)),
      lambda x, level, sign: translate_y(x, translate_pixels(level, sign, height)),
      lambda x, level, sign: posterize(x, 4 - (level * 4) // MAX_LEVEL),
      lambda x, level, sign: shear_y(x, sign * 0.3 * level.astype(jnp.float32) / MAX_LEVEL),
  )


# One call to the PRNG per batch: every random number of an augmentation is a uint32
# word of a single ``jax.random.bits`` draw, and integers and coins are read off the
# words. XLA:CPU compiles each threefry call site on its own (0.2-0.5 s apiece), so the
# per-image key splits and the separate randint/bernoulli draws of a direct port cost
# seconds of compilation in every training step that augments.

_WEAK_WORDS = 3   # flip, row offset, column offset
_OP_WORDS = 4     # op, applied, level, sign
_CUTOUT_WORDS = 2  # centre row, centre column


def _below(words: jax.Array, k: int) -> jax.Array:
  """Integers uniform in ``0 .. k - 1`` from uint32 words (bias below ``k / 2^32``)."""
  return (words % jnp.uint32(k)).astype(jnp.int32)


def _coin(words: jax.Array, p: float) -> jax.Array:
  """True with probability ``p`` (to ``2^-24``) from uint32 words."""
  return (words >> 8) < jnp.uint32(round(p * (1 << 24)))


def _policy(words: jax.Array, num_ops: int):
  """The reference's random policy for one image from ``(4 num_ops,)`` words:
  ``(branch, level, sign)``, each ``(num_ops,)``.

  ``branch`` is the drawn op's index in ``RANDAUGMENT_OPS``, or 0 (Identity) when the op
  is skipped (probability ``1 - APPLY_PROBABILITY``).
  """
  op, applied, level, sign = words.reshape(num_ops, _OP_WORDS).T
  branch = jnp.where(_coin(applied, APPLY_PROBABILITY), _below(op, len(RANDAUGMENT_OPS)), 0)
  return (branch, 1 + _below(level, MAX_LEVEL - 1),
          jnp.where(_coin(sign, 0.5), -1.0, 1.0).astype(jnp.float32))


def _apply_ops(image: jax.Array, branch: jax.Array, level: jax.Array,
               sign: jax.Array) -> jax.Array:
  """Applies the drawn ops in order via ``lax.switch``; ``image`` ``(H, W, C)``."""
  branches = _branches(image.shape[0], image.shape[1])

  def apply_one(x, op):
    return lax.switch(op[0], branches, x, op[1], op[2]), None

  # A scan over the op slots compiles the 14 branches once, whatever num_ops is.
  return lax.scan(apply_one, image, (branch, level, sign))[0]


def _weak_one(words: jax.Array, image: jax.Array, flip: bool, pad: int) -> jax.Array:
  """Flip and reflect-pad crop of one ``(H, W, C)`` image from ``(3,)`` words."""
  if flip:
    image = jnp.where(_coin(words[0], 0.5), image[:, ::-1], image)
  if pad:
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    image = lax.dynamic_slice(padded, (_below(words[1], 2 * pad + 1),
                                       _below(words[2], 2 * pad + 1), jnp.int32(0)),
                              image.shape)
  return image


# ------------------------------------------------------------------------ batch API


def _per_image_loop() -> bool:
  """Whether :func:`strong_augment` loops over images (``lax.map``) instead of vmapping.

  Under ``vmap`` a ``lax.switch`` on a per-image index becomes a select: every one of the
  14 branches is computed for every image. That is the right layout on accelerators; on
  CPU a loop in which ``lax.switch`` runs only the drawn branch is several times faster.
  """
  return jax.default_backend() == "cpu"


@functools.partial(jax.jit, static_argnames=("flip", "pad"))
def _weak(key, images, flip, pad):
  words = jax.random.bits(key, (images.shape[0], _WEAK_WORDS))
  return jax.vmap(lambda w, x: _weak_one(w, x, flip, pad))(words, images)


@functools.partial(jax.jit, static_argnames=("flip", "pad", "num_ops", "size", "loop"))
def _strong(key, images, flip, pad, num_ops, size, loop):
  words = jax.random.bits(key, (images.shape[0], _WEAK_WORDS + _OP_WORDS * num_ops
                                + _CUTOUT_WORDS))
  w_weak, w_ops, w_cut = jnp.split(words, [_WEAK_WORDS, _WEAK_WORDS + _OP_WORDS * num_ops],
                                   axis=1)
  # Flip/crop and Cutout are cheap and vmapped; only the RandAugment switch is looped on
  # CPU (see _per_image_loop).
  x = jax.vmap(lambda w, im: _weak_one(w, im, flip, pad))(w_weak, images)
  if num_ops:
    policy = jax.vmap(lambda w: _policy(w, num_ops))(w_ops)
    if loop:
      x = lax.map(lambda args: _apply_ops(*args), (x, *policy))
    else:
      x = jax.vmap(_apply_ops)(x, *policy)
  if size:
    h, w = images.shape[1:3]
    x = jax.vmap(lambda c, im: _cutout_at(im, _below(c[0], h), _below(c[1], w), size))(
        w_cut, x)
  return x


def weak_augment(key: jax.Array, images: jax.Array, *, flip: bool = True,
                 pad: int = 4) -> jax.Array:
  """FixMatch's weak augmentation: random horizontal flip, then reflect-pad random crop.

  Each image, independently (its own row of ``jax.random.bits(key, (n, 3))``), is
  mirrored with probability 0.5 (if ``flip``), REFLECT-padded by ``pad`` pixels on every
  side and cropped back to ``(H, W)`` at an offset drawn uniformly from ``0..2 pad`` per
  axis. Jitted (``flip`` and ``pad`` static); callable inside ``jax.jit``.

  Args:
    key: PRNG key; the same key gives the same output.
    images: ``(n, H, W, C)`` float in ``[0, 1]``, ``C`` in ``{1, 3}``.
    flip: mirror at random (``False`` for digits and SVHN).
    pad: shift range in pixels, ``0 <= pad < min(H, W)``; 0 disables the crop.

  Returns:
    ``(n, H, W, C)`` float32 in ``[0, 1]``.
  """
  images = _check_batch(images, pad)
  return _weak(key, images, bool(flip), pad)


def strong_augment(key: jax.Array, images: jax.Array, *, flip: bool = True, pad: int = 4,
                   num_ops: int = 2, cutout_fraction: float = 0.5) -> jax.Array:
  """FixMatch's strong augmentation: weak flip/crop, RandAugment, then Cutout.

  Per image, independently (its own row of one ``jax.random.bits`` draw): the weak
  flip/crop of :func:`weak_augment`; then ``num_ops`` operations drawn uniformly with
  replacement from ``RANDAUGMENT_OPS``, each applied with probability 0.5 at a level
  drawn from ``1..9`` with the reference magnitudes (module docstring), selected by
  ``lax.switch`` on the drawn index; then Cutout of a square of side
  ``floor(cutout_fraction * min(H, W))`` (16 pixels on 32 x 32) filled with grey 0.5. Jitted (options static); callable inside ``jax.jit``. On CPU the images
  are processed in a ``lax.map`` loop, elsewhere vmapped (same results).

  Args:
    key: PRNG key; the same key gives the same output.
    images: ``(n, H, W, C)`` float in ``[0, 1]``, ``C`` in ``{1, 3}``.
    flip: mirror at random in the weak stage.
    pad: shift range of the weak stage, ``0 <= pad < min(H, W)``.
    num_ops: RandAugment operations per image (reference: 2); 0 disables RandAugment.
    cutout_fraction: Cutout side as a fraction of the shorter image side, in
      ``[0, 1]``; 0 disables Cutout.

  Returns:
    ``(n, H, W, C)`` float32 in ``[0, 1]``.
  """
  images = _check_batch(images, pad)
  check_int("num_ops", num_ops, low=0)
  check_number("cutout_fraction", cutout_fraction, low=0.0, high=1.0)
  size = int(math.floor(cutout_fraction * min(images.shape[1:3]) + 1e-9))
  return _strong(key, images, bool(flip), pad, num_ops, size, _per_image_loop())


__all__ = [
    "APPLY_PROBABILITY", "FILL", "MAX_LEVEL", "RANDAUGMENT_OPS", "auto_contrast",
    "brightness", "color", "contrast", "cutout", "equalize", "identity", "posterize",
    "rotate", "sharpness", "shear_x", "shear_y", "solarize", "strong_augment",
    "translate_x", "translate_y", "weak_augment",
]
