"""EG3D / Deep3DFaceRecon 5-point face alignment (the 512x512 network crop) and its inverse.

This reproduces the released ``third_party/CropPose/crop.py`` numerically (PAPER_MODEL.md 2.13,
conformance README 5.6):

1. Flip the landmarks' y (``y' = H - 1 - y``) and solve the least-squares problem
   ``[X Y Z 1 0 0 0 0; 0 0 0 0 X Y Z 1] k = (x', y')`` against :data:`LANDMARKS_3D_TEMPLATE`;
   ``t = (k3, k7)``, ``s = (|k0:3| + |k4:7|) / 2``.
2. Resize the whole image by ``S = rescale / s`` to ``w = int(w0 S)``, ``h = int(h0 S)`` (LANCZOS).
3. Cut a ``window``^2 (1024) box at ``left = int(w/2 - window/2 + (tx - w0/2) S)``,
   ``up = int(h/2 - window/2 + (h0/2 - ty) S)`` (truncation toward zero). If the box leaves the
   image, reflect-pad by the largest overhang, Gaussian-blur the padded image (radius 3) and paste
   the unblurred image back over it.
4. Centre-crop ``center_crop``^2 (700) and LANCZOS-resize to ``output_size``^2 (512).
   (The R-Net pose input is the same with ``rescale = 466.285`` and no centre crop, to 224^2.)

Coordinates
-----------
Landmarks and affine maps use **pixel coordinates with pixel centres at integers**: ``(x, y)`` =
(column, row), x right, y down, the centre of the top-left pixel is (0, 0) (OpenCV's convention).
The 5 landmarks are, in order: left eye, right eye, nose tip, left and right mouth corners (the
subject's left eye is on the image left for MTCNN's "left_eye"; any consistent detector order
matching the template works).

Exact inverse
-------------
Pillow's resampling maps output pixel centre ``i + 1/2`` to input coordinate ``(i + 1/2) * in/out``,
and crops/pads are integer shifts, so the crop is *exactly* an axis-aligned affine map of the
source: ``x_src + 1/2 = (((x_crop + 1/2) * c/o + cl) + left) * w0/w`` (and the same in y with
``h0/h``, ``up``), where ``c`` = centre-crop size, ``o`` = output size, ``cl`` = centre-crop
offset. :func:`crop_affine` returns it. Because ``w`` and ``h`` are truncated separately, the x and
y scales differ by less than ``1/min(w, h)`` relative (a similarity only to that precision);
and because ``left``/``up`` are truncated, the window sits up to one resized pixel from the ideal
position implied by ``t`` and ``S`` (which the released landmark formula, :func:`pose_landmarks`,
assumes). The affine includes both effects. Measured on synthetic Gaussian blobs (tests/track/test_align.py)
the blob centroids in real crops sit within 0.002 px (float images) and 0.05 px (8-bit images,
quantization) of the affine's prediction, whereas the idealized similarity is off by up to about
one output pixel (0.2-0.8 px in the measured cases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

__all__ = [
    "LANDMARKS_3D_TEMPLATE",
    "RESCALE_CROP",
    "RESCALE_POSE",
    "WINDOW",
    "CENTER_CROP",
    "OUTPUT_SIZE",
    "POSE_SIZE",
    "BLUR_RADIUS",
    "CropGeometry",
    "solve_similarity",
    "crop_geometry",
    "crop_params",
    "crop_affine",
    "invert_affine",
    "apply_affine",
    "align_window",
    "align_crop",
    "pose_crop",
    "pose_landmarks",
    "gaussian_blur_float",
]

LANDMARKS_3D_TEMPLATE = np.array(
    [
        [-0.31148657, 0.29036078, 0.13377953],  # left eye
        [0.30979887, 0.28972036, 0.13179526],  # right eye
        [0.0032535, -0.04617932, 0.55244243],  # nose tip
        [-0.25216928, -0.38133916, 0.22405732],  # left mouth corner
        [0.2484662, -0.38128236, 0.22235769],  # right mouth corner
    ],
    dtype=np.float64,
)
"""Deep3DFaceRecon's standard 5 3D landmarks (x, y, z; BFM units), from BFM
``similarity_Lm3D_all.mat`` (published 8-digit values). Read-only."""
LANDMARKS_3D_TEMPLATE.setflags(write=False)

RESCALE_CROP = 300.0
"""Rescale factor of the 512 network crop."""
RESCALE_POSE = 466.285
"""Rescale factor of the 224 R-Net (pose) crop."""
WINDOW = 1024
"""Side of the window cut from the rescaled image."""
CENTER_CROP = 700
"""Side of the centre crop taken from the window for the network crop."""
OUTPUT_SIZE = 512
"""Side of the network crop."""
POSE_SIZE = 224
"""Side of the R-Net crop."""
BLUR_RADIUS = 3
"""Pillow GaussianBlur radius of the reflect-padded border."""


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------


def _landmarks(landmarks5) -> np.ndarray:
    try:
        lm = np.array(landmarks5, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"landmarks5: expected a [5, 2] array of (x, y) pixel coordinates ({exc})") from None
    if lm.shape != (5, 2):
        raise ValueError(f"landmarks5: expected shape [5, 2] (x, y) pixel coordinates, got {list(lm.shape)}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks5: expected finite coordinates, got NaN or inf")
    return lm


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def _positive_float(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a positive number, got {type(v).__name__}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
    return f


def _image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy array (H, W, C), got {type(image).__name__}")
    if image.dtype == np.uint8:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image: expected a uint8 RGB image of shape [H, W, 3], got {list(image.shape)}")
    elif image.dtype in (np.float32, np.float64):
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f"image: expected a float image of shape [H, W, C] with C in (1, 3, 4), got {list(image.shape)}")
        if not np.isfinite(image).all():
            raise ValueError("image: expected finite pixel values, got NaN or inf")
    else:
        raise TypeError(f"image: expected dtype uint8 (RGB) or float32/float64 (linear), got {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image: expected at least 2x2 pixels, got {list(image.shape[:2])}")
    return image


# ------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------


def solve_similarity(landmarks5, image_height) -> tuple[np.ndarray, float]:
    """Least-squares scale and translation of the 3D template onto the 5 landmarks (official ``POS``).

    Args:
        landmarks5: ``[5, 2]`` float64 (x, y) pixel coordinates (y down), template order.
        image_height: source image height ``H`` in pixels (used for the flip ``y' = H - 1 - y``).

    Returns:
        ``(t, s)``: ``t`` ``[2]`` float64, the template origin in y-flipped (y up) pixel
        coordinates; ``s`` float, pixels per template unit.
    """
    lm = _landmarks(landmarks5)
    h = _positive_int(image_height, "image_height")
    xp = np.stack((lm[:, 0], h - 1 - lm[:, 1]), axis=1)  # y up
    n = 5
    A = np.zeros((2 * n, 8))
    A[0::2, 0:3] = LANDMARKS_3D_TEMPLATE
    A[0::2, 3] = 1.0
    A[1::2, 4:7] = LANDMARKS_3D_TEMPLATE
    A[1::2, 7] = 1.0
    b = xp.reshape(2 * n, 1)
    k = np.linalg.lstsq(A, b, rcond=None)[0][:, 0]
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2.0
    if not s > 0:
        raise ValueError("landmarks5: degenerate landmarks (zero fitted face size)")
    return np.array([k[3], k[7]]), float(s)


@dataclass(frozen=True)
class CropGeometry:
    """Every number that places an aligned crop in the source image.

    Attributes:
        width0, height0: source image size.
        scale: ``S = rescale / s`` (resized pixels per source pixel, before truncation).
        tx, ty: template origin in y-up source pixels (from :func:`solve_similarity`).
        width, height: resized image size ``int(w0 S)``, ``int(h0 S)``.
        left, up: top-left of the window in the resized image (may be negative).
        window: window side (1024).
        center_crop: centre-crop side, or None for no centre crop.
        output_size: side of the final crop.
    """

    width0: int
    height0: int
    scale: float
    tx: float
    ty: float
    width: int
    height: int
    left: int
    up: int
    window: int
    center_crop: int | None
    output_size: int

    @property
    def pad(self) -> int:
        """Reflect padding the official code adds (0 when the window lies inside the image)."""
        return int(max(-self.left, -self.up, self.left + self.window - self.width, self.up + self.window - self.height, 0))

    @property
    def center_offset(self) -> int:
        """Offset of the centre crop inside the window."""
        if self.center_crop is None:
            return 0
        return int(self.window / 2 - self.center_crop / 2)

    @property
    def trans_params(self) -> np.ndarray:
        """``(w0, h0, S, tx, ty)`` float64, the official ``trans_params``."""
        return np.array([self.width0, self.height0, self.scale, self.tx, self.ty], dtype=np.float64)

    def crop_to_source(self) -> np.ndarray:
        """2x3 float64 affine: crop pixel (x, y, 1) -> source pixel (pixel centres at integers)."""
        c = self.center_crop if self.center_crop is not None else self.window
        k = c / self.output_size  # window pixels per output pixel
        sx = self.width0 / self.width
        sy = self.height0 / self.height
        ox = self.center_offset + self.left
        oy = self.center_offset + self.up
        # x_src + 1/2 = ((x_crop + 1/2) k + ox) sx
        return np.array(
            [[k * sx, 0.0, (0.5 * k + ox) * sx - 0.5], [0.0, k * sy, (0.5 * k + oy) * sy - 0.5]],
            dtype=np.float64,
        )

    def source_to_crop(self) -> np.ndarray:
        """2x3 float64 affine: source pixel -> crop pixel (inverse of :meth:`crop_to_source`)."""
        return invert_affine(self.crop_to_source())


def crop_geometry(
    landmarks5,
    width: int,
    height: int,
    *,
    rescale: float = RESCALE_CROP,
    window: int = WINDOW,
    center_crop: int | None = CENTER_CROP,
    output_size: int = OUTPUT_SIZE,
) -> CropGeometry:
    """Geometry of the official aligned crop for a ``width x height`` source image.

    Args:
        landmarks5: ``[5, 2]`` (x, y) pixel coordinates in the source image.
        width, height: source image size in pixels.
        rescale: 300 (network crop) or 466.285 (R-Net crop).
        window: side of the window cut from the rescaled image.
        center_crop: side of the centre crop of the window (<= window), or None for none.
        output_size: side of the final crop.
    """
    w0 = _positive_int(width, "width")
    h0 = _positive_int(height, "height")
    rescale = _positive_float(rescale, "rescale")
    window = _positive_int(window, "window")
    output_size = _positive_int(output_size, "output_size")
    if center_crop is not None:
        center_crop = _positive_int(center_crop, "center_crop")
        if center_crop > window:
            raise ValueError(f"center_crop: expected at most window={window}, got {center_crop}")
    t, s = solve_similarity(landmarks5, h0)
    S = rescale / s
    w = int(np.int32(w0 * S))
    h = int(np.int32(h0 * S))
    if w < 1 or h < 1:
        raise ValueError(f"landmarks5: the face is too large for this image (rescaled size {w}x{h})")
    # int() truncates toward zero, like the official .astype(np.int32)
    left = int(w / 2 - window / 2 + (t[0] - w0 / 2) * S)
    up = int(h / 2 - window / 2 + (h0 / 2 - t[1]) * S)
    return CropGeometry(w0, h0, float(S), float(t[0]), float(t[1]), w, h, left, up, window, center_crop, output_size)


def crop_params(landmarks5, width: int, height: int, rescale: float = RESCALE_CROP) -> np.ndarray:
    """Official ``trans_params`` ``(w0, h0, rescale / s, tx, ty)`` float64 ``[5]``
    (``trans300`` for rescale 300, ``trans466`` for 466.285)."""
    return crop_geometry(landmarks5, width, height, rescale=rescale).trans_params


def crop_affine(
    landmarks5,
    width: int,
    height: int,
    *,
    output_size: int = OUTPUT_SIZE,
    rescale: float = RESCALE_CROP,
    window: int = WINDOW,
    center_crop: int | None = CENTER_CROP,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact maps between crop and source pixel coordinates (see the module docstring).

    Returns:
        ``(crop_to_source, source_to_crop)``: two 2x3 float64 affine matrices acting on
        ``(x, y, 1)`` with pixel centres at integer coordinates. Use :func:`apply_affine`; for
        ``cv2.warpAffine(crop, source_to_crop, ..., flags=WARP_INVERSE_MAP)``-style compositing the
        convention is the same as OpenCV's.
    """
    g = crop_geometry(
        landmarks5, width, height, rescale=rescale, window=window, center_crop=center_crop, output_size=output_size
    )
    return g.crop_to_source(), g.source_to_crop()


def invert_affine(A) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (float64)."""
    a = np.asarray(A, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"A: expected a 2x3 affine matrix, got shape {list(a.shape)}")
    m = np.vstack((a, [0.0, 0.0, 1.0]))
    if abs(np.linalg.det(m)) < 1e-300:
        raise ValueError("A: expected an invertible affine matrix")
    return np.linalg.inv(m)[:2]


def apply_affine(A, points) -> np.ndarray:
    """Apply a 2x3 affine to ``[..., 2]`` points (float64)."""
    a = np.asarray(A, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"A: expected a 2x3 affine matrix, got shape {list(a.shape)}")
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1:] != (2,):
        raise ValueError(f"points: expected shape [..., 2], got {list(p.shape)}")
    return p @ a[:, :2].T + a[:, 2]


def pose_landmarks(
    landmarks5, width: int, height: int, *, rescale: float = RESCALE_POSE, window: int = WINDOW, output_size: int = POSE_SIZE
) -> np.ndarray:
    """Landmarks in the R-Net crop, by the released formula (``lm224``), float64 ``[5, 2]``.

    Note the released convention: y points **up** (``y' = H - 1 - y`` before the transform), and
    the formula uses the ideal scale ``S`` and untruncated window offset, so it differs from the
    exact image placement (:func:`crop_affine`) by up to ~1 resized pixel (x ``output/window``).
    """
    lm = _landmarks(landmarks5)
    output_size = _positive_int(output_size, "output_size")
    g = crop_geometry(lm, width, height, rescale=rescale, window=window, center_crop=None, output_size=output_size)
    lm = np.stack((lm[:, 0], g.height0 - 1 - lm[:, 1]), axis=1)
    out = np.stack((lm[:, 0] - g.tx + g.width0 / 2, lm[:, 1] - g.ty + g.height0 / 2), axis=1) * g.scale
    out = out - np.array([[g.width / 2 - window / 2, g.height / 2 - window / 2]])
    return out * (output_size / float(window))


# ------------------------------------------------------------------------------------------
# resampling
# ------------------------------------------------------------------------------------------


def _box_radius(radius: float, passes: int = 3) -> float:
    # Pillow's extended-box approximation of a Gaussian (Gwosdek et al. 2011), in float.
    sigma2 = radius * radius / passes
    L = math.sqrt(12.0 * sigma2 + 1.0)
    lo = math.floor((L - 1.0) / 2.0)
    a = (2 * lo + 1) * (lo * (lo + 1) - 3 * sigma2)
    a /= 6 * (sigma2 - (lo + 1) * (lo + 1))
    return lo + a


def _box_blur_axis(a: np.ndarray, r: float, axis: int) -> np.ndarray:
    lo = int(math.floor(r))
    frac = r - lo
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (lo + 1, lo + 1)
    p = np.pad(a, pad, mode="edge")

    def sl(k):
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(k, k + n)
        return p[tuple(idx)]

    acc = sl(0) * frac + sl(2 * lo + 2) * frac
    for k in range(1, 2 * lo + 2):
        acc = acc + sl(k)
    return acc / (2.0 * r + 1.0)


def gaussian_blur_float(a: np.ndarray, radius: float = BLUR_RADIUS) -> np.ndarray:
    """Float version of Pillow's ``ImageFilter.GaussianBlur`` (which rejects mode 'F').

    Three passes of an extended box filter per axis with edge replication, as Pillow does, without
    its 8-bit rounding. ``a`` is ``[H, W]`` or ``[H, W, C]``.
    """
    r = _box_radius(float(radius))
    out = np.asarray(a, dtype=np.float64)
    if r <= 0:
        return out.astype(np.float32)
    for axis in (1, 0):
        for _ in range(3):
            out = _box_blur_axis(out, r, axis)
    return out.astype(np.float32)


class _Raster:
    """An image as the Pillow planes the pipeline works on: one RGB image (uint8) or one 'F'
    image per channel (float)."""

    def __init__(self, image: np.ndarray):
        self.float = image.dtype != np.uint8
        if self.float:
            img = image.astype(np.float32, copy=False)
            self.planes = [Image.fromarray(np.ascontiguousarray(img[:, :, k])) for k in range(img.shape[2])]
        else:
            self.planes = [Image.fromarray(np.ascontiguousarray(image))]

    @property
    def size(self) -> tuple[int, int]:
        return self.planes[0].size

    def map(self, fn) -> "_Raster":
        out = object.__new__(_Raster)
        out.float = self.float
        out.planes = [fn(p) for p in self.planes]
        return out

    def resize(self, size: tuple[int, int]) -> "_Raster":
        return self.map(lambda p: p.resize(size, resample=Image.LANCZOS))

    def crop(self, box) -> "_Raster":
        return self.map(lambda p: p.crop(box))

    def pad_blur(self, pad: int, radius: float) -> "_Raster":
        def one(p: Image.Image) -> Image.Image:
            arr = np.asarray(p)
            if self.float:
                padded = np.pad(arr, ((pad, pad), (pad, pad)), mode="reflect")
                blurred = gaussian_blur_float(padded, radius) if radius > 0 else padded.astype(np.float32)
                big = Image.fromarray(np.ascontiguousarray(blurred))
            else:
                padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
                big = Image.fromarray(padded)
                if radius > 0:
                    big = big.filter(ImageFilter.GaussianBlur(radius=radius))
            big.paste(p, (pad, pad))
            return big

        return self.map(one)

    def array(self) -> np.ndarray:
        if self.float:
            return np.stack([np.asarray(p, dtype=np.float32) for p in self.planes], axis=-1)
        return np.asarray(self.planes[0]).copy()


def _window(image: np.ndarray, g: CropGeometry, blur_radius: float) -> _Raster:
    r = _Raster(image).resize((g.width, g.height))
    left, up = g.left, g.up
    pad = g.pad
    if pad > 0:
        r = r.pad_blur(pad, blur_radius)
        left += pad
        up += pad
    return r.crop((left, up, left + g.window, up + g.window))


def align_window(
    image,
    landmarks5,
    *,
    rescale: float = RESCALE_CROP,
    window: int = WINDOW,
    blur_radius: float = BLUR_RADIUS,
) -> np.ndarray:
    """The ``window x window`` intermediate (the official ``im_high``), same dtype/channels as ``image``.

    Args: as :func:`align_crop`.
    """
    img = _image(image)
    g = crop_geometry(landmarks5, img.shape[1], img.shape[0], rescale=rescale, window=window, center_crop=None)
    return _window(img, g, blur_radius).array()


def align_crop(
    image,
    landmarks5,
    output_size: int = OUTPUT_SIZE,
    rescale: float = RESCALE_CROP,
    window: int = WINDOW,
    center_crop: int | None = CENTER_CROP,
    *,
    blur_radius: float = BLUR_RADIUS,
) -> np.ndarray:
    """The EG3D-aligned face crop (official ``Cropper.final_crop``; defaults give the 512 network input).

    Args:
        image: ``[H, W, 3]`` uint8 RGB (bit-exact with the released code under the same Pillow), or
            ``[H, W, C]`` float32/float64 linear values with C in (1, 3, 4) (each channel resampled
            independently as a Pillow 'F' image, so alpha is *not* premultiplied for you; the
            border blur is a float re-implementation of Pillow's). Values are not clipped, so
            LANCZOS ringing may overshoot the input range.
        landmarks5: ``[5, 2]`` (x, y) pixel coordinates, template order.
        output_size: side of the result (512; 224 with ``rescale=466.285``, ``center_crop=None``
            gives the R-Net input).
        rescale: 300.0 for the network crop, 466.285 for the R-Net crop.
        window: side of the window cut from the rescaled image (1024).
        center_crop: side of the centre crop of the window (700), or None.
        blur_radius: Gaussian blur radius of the reflect-padded border (3).

    Returns:
        ``[output_size, output_size, C]``: uint8 for uint8 input, float32 for float input. Map
        coordinates with :func:`crop_affine`.
    """
    img = _image(image)
    g = crop_geometry(
        landmarks5, img.shape[1], img.shape[0], rescale=rescale, window=window, center_crop=center_crop, output_size=output_size
    )
    r = _window(img, g, blur_radius)
    if center_crop is not None:
        o = g.center_offset
        r = r.crop((o, o, o + center_crop, o + center_crop))
    r = r.resize((output_size, output_size))
    return r.array()


def pose_crop(image, landmarks5) -> np.ndarray:
    """The 224x224 R-Net input (official ``align_img`` with rescale 466.285, ``im224``)."""
    return align_crop(image, landmarks5, output_size=POSE_SIZE, rescale=RESCALE_POSE, window=WINDOW, center_crop=None)
