"""Procedural appearance of the synthetic heads: skin, eyes, mouth, hair, clothes, backgrounds.

All colours are **linear sRGB reflectances** (diffuse albedo) in [0, 1].

Skin (:func:`skin_reflectance`, tabulated by :func:`skin_lut`) is a two-chromophore, two-layer
model after Donner & Jensen (2006) and Jimenez et al. (2010), simplified: light crosses the
epidermis twice and is attenuated by melanin (``exp(-2 OD)``, optical depth ``OD`` from the melanin
amount and the eumelanin/pheomelanin share), is diffusely reflected by a semi-infinite dermis
whose absorption is blood (Prahl's oxy/deoxy-haemoglobin spectra at 150 g/l, 75 % saturation) plus
a bloodless baseline, with reduced scattering ``4.6 (l / 500 nm)^-1.42`` per mm, through the
diffusion-dipole total reflectance (Jensen et al. 2001, relative index 1.4), plus a 2 % flat
epidermal back-scatter. Pure melanin absorbs as ``l^-3.33`` (eumelanin) and ``l^-4.75``
(pheomelanin); through a scattering epidermis diffuse light sees a much flatter attenuation, so
the model uses effective exponents 1.0 and 2.4, fitted so that its colours pass within a few
percent of typical measured diffuse skin albedos from Fitzpatrick I to VI. Spectra (400-700 nm)
are integrated with the CIE 1931 observer (Wyman et al. 2013 fit) into linear sRGB, white-balanced
so that a perfect reflector is (1, 1, 1). A person is a skin tone (uniform in [0, 1], mapped to a
melanin optical depth by :data:`TONE_ANCHORS`), a eumelanin share and a blood fraction: red
reflectance about 0.54 (fair) down to 0.07 (very dark), always red > green > blue.

Regions modulate the chromophores per pixel: lips (less melanin, much more blood), cheeks and nose
(flush), ears, eyelids (darker); skin-tone blotches and fine grain from 3D value noise evaluated at
the canonical (rest) position of each surface point, so the texture sticks to the skin when the face
moves; freckles and moles as melanin spots; eyebrows, stubble/beard and scalp hair as a hair
colour laid over the skin with strand noise. Eyeballs get sclera, a radially streaked iris with a
dark limbal ring and a pupil, computed from the direction of the canonical point from the eyeball
centre. The tongue and the mouth and eye cavities get fixed, darkened colours (standing in for the
occlusion the unshadowed SH shading lacks); teeth get a colour too, but the current head model has
no teeth geometry (see scripts/export_head_model.py). Clothing colours the
shoulders below a random neckline (solid, stripes, checks or mottled). Backgrounds are solid,
gradient, blotchy-noise or soft-blob images.

Pipeline used by :mod:`relight_core.train.synthetic`:

1. :func:`sample_appearance` draws an :class:`Appearance` (per-person parameters).
2. :func:`vertex_fields` makes per-vertex channels ``[B, V, FIELDS]`` (canonical position, region
   masks, hair/brow/beard/clothing coverage); the rasterizer interpolates them.
3. :func:`pixel_albedo` turns the interpolated channels into albedo ``[B, H, W, 3]``.
4. :func:`sample_background` draws backdrops ``[B, H, W, 3]``.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass, fields as dc_fields

import torch
import torch.nn.functional as F

from .heads import REGION, HeadModel

__all__ = [
    "FIELDS",
    "Appearance",
    "skin_lut",
    "skin_reflectance",
    "melanin_from_tone",
    "TONE_ANCHORS",
    "skin_rgb",
    "value_noise",
    "fbm",
    "sample_appearance",
    "vertex_fields",
    "pixel_albedo",
    "sample_background",
    "to_srgb",
    "smoothstep",
]

FIELDS = (
    "cx", "cy", "cz",  # canonical (rest) position: texture coordinates for the noise
    "lips", "eyelids", "ears", "face", "lashes",  # exported soft masks
    "eyeball", "teeth", "tongue", "mouth_cavity", "eye_cavity",  # one-hot regions
    "hair", "brows", "beard", "cloth", "cheeks", "freckle_zone",  # per person
)
"""Channels of :func:`vertex_fields`, in order."""
_F = {n: i for i, n in enumerate(FIELDS)}

# ------------------------------------------------------------------------------------------
# colour science
# ------------------------------------------------------------------------------------------

_WL = torch.arange(400.0, 701.0, 10.0, dtype=torch.float64)  # nm, 31 samples
# Prahl's molar extinction (cm^-1 / M) of oxy- and deoxy-haemoglobin at 400, 410, ..., 700 nm.
_EPS_HBO2 = torch.tensor([266232, 466840, 480360, 210800, 62816, 58864, 44480, 33209, 26629, 23684, 20933, 20035, 24202,
                          39957, 53236, 43016, 32613, 44496, 50104, 14401, 3200, 1506, 942, 610, 442, 368, 320, 294, 278,
                          276, 290], dtype=torch.float64)
_EPS_HB = torch.tensor([223296, 303956, 407560, 528600, 413280, 103292, 23389, 16156, 14550, 16684, 20035, 25774, 31590,
                        39036, 46592, 53412, 53788, 45072, 37020, 28324, 14677, 9444, 6510, 5149, 4345, 3750, 3227, 2795,
                        2408, 2052, 1794], dtype=torch.float64)
_XYZ_TO_SRGB = torch.tensor([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]], dtype=torch.float64)

_MELANIN_RANGE = (0.001, 2.5)  # melanin optical depth per pass at 500 nm
_BLOOD_RANGE = (0.002, 0.15)
# Effective melanin spectra. Pure melanin absorbs as l^-3.33 (eumelanin) and l^-4.75
# (pheomelanin); through a scattering epidermis the attenuation of diffuse light is much flatter.
# With exponents 1.0 and 2.4 and a 2 % spectrally flat epidermal back-scatter, the model passes
# within a few percent of typical measured diffuse skin albedos (linear sRGB, Fitzpatrick I..VI):
# (0.60, 0.43, 0.35), (0.45, 0.30, 0.22), (0.30, 0.18, 0.12), (0.17, 0.09, 0.06), (0.08, 0.04, 0.025).
_EU_EXP, _PHEO_EXP = 1.0, 2.4
_EPIDERMIS_FLOOR = 0.02
TONE_ANCHORS = (0.002, 0.15, 0.44, 0.89, 1.6)
"""Melanin optical depths of Fitzpatrick-like tones at tone = 0, 0.25, 0.5, 0.75, 1 (see
:func:`melanin_from_tone`)."""


def melanin_from_tone(tone: torch.Tensor) -> torch.Tensor:
    """Melanin optical depth of a skin tone in [0, 1] (piecewise log-linear through TONE_ANCHORS)."""
    a = torch.log(torch.tensor(TONE_ANCHORS, device=tone.device))
    t = tone.clamp(0, 1) * (len(TONE_ANCHORS) - 1)
    i = t.floor().long().clamp(max=len(TONE_ANCHORS) - 2)
    f = t - i
    return torch.exp(a[i] * (1 - f) + a[i + 1] * f)


def _g(x: torch.Tensor, mu: float, s1: float, s2: float) -> torch.Tensor:
    s = torch.where(x < mu, torch.full_like(x, s1), torch.full_like(x, s2))
    return torch.exp(-0.5 * ((x - mu) / s) ** 2)


def _cmf(wl: torch.Tensor) -> torch.Tensor:
    """CIE 1931 2-degree colour matching functions ``[N, 3]`` (Wyman, Sloan & Shirley 2013)."""
    x = 1.056 * _g(wl, 599.8, 37.9, 31.0) + 0.362 * _g(wl, 442.0, 16.0, 26.7) - 0.065 * _g(wl, 501.1, 20.4, 26.2)
    y = 0.821 * _g(wl, 568.8, 46.9, 40.5) + 0.286 * _g(wl, 530.9, 16.3, 31.1)
    z = 1.217 * _g(wl, 437.0, 11.8, 36.0) + 0.681 * _g(wl, 459.0, 26.0, 13.8)
    return torch.stack((x, y, z), -1)


def _spectrum_to_rgb(refl: torch.Tensor) -> torch.Tensor:
    """Reflectance spectra ``[..., N]`` (equal-energy light) to white-balanced linear sRGB ``[..., 3]``."""
    cmf = _cmf(_WL)
    white = (cmf.sum(0) @ _XYZ_TO_SRGB.T)
    rgb = (refl @ cmf) @ _XYZ_TO_SRGB.T
    return rgb / white


def skin_reflectance(melanin: torch.Tensor, eumelanin: torch.Tensor, blood: torch.Tensor, oxy: float = 0.75) -> torch.Tensor:
    """Skin reflectance spectra ``[..., 31]`` (400-700 nm) of the two-layer model (module docstring).

    Args:
        melanin: epidermal melanin optical depth per pass at 500 nm ``[...]`` (0.002 very fair,
            0.15 light brown, 0.45 brown, 0.9 dark brown, 1.6 very dark).
        eumelanin: share of eumelanin in it (the rest is pheomelanin), ``[...]``.
        blood: dermal blood volume fraction ``[...]`` (0.005-0.03; lips ~0.1).
        oxy: oxygen saturation of the blood.
    """
    wl = _WL
    x = wl / 500.0
    od = melanin[..., None] * (eumelanin[..., None] * x**-_EU_EXP + (1 - eumelanin[..., None]) * x**-_PHEO_EXP)
    t2 = torch.exp(-2.0 * od)
    base = 0.0244 + 8.53 * torch.exp(-(wl - 154.0) / 66.2)  # bloodless tissue, mm^-1
    mu_blood = 0.1 * 2.303 * (150.0 / 64500.0) * (oxy * _EPS_HBO2 + (1 - oxy) * _EPS_HB)  # mm^-1
    b = blood[..., None]
    mu_a = b * mu_blood + (1 - b) * base
    mu_s = 4.6 * x**-1.42
    alpha = mu_s / (mu_a + mu_s)
    eta = 1.4
    fdr = -1.440 / eta**2 + 0.710 / eta + 0.668 + 0.0636 * eta
    A = (1 + fdr) / (1 - fdr)
    k = torch.sqrt(3 * (1 - alpha))
    rd = 0.5 * alpha * (1 + torch.exp(-4.0 / 3.0 * A * k)) * torch.exp(-k)
    return _EPIDERMIS_FLOOR + t2 * rd


_LUT_CACHE: dict = {}


def skin_lut(device=None, size: tuple[int, int, int] = (48, 24, 4)) -> torch.Tensor:
    """Skin colour table ``[3, Ne, Nb, Nm]`` over (eumelanin share, blood, melanin) for grid_sample.

    Axes, each mapped to [-1, 1]: melanin log-uniform over its range (last axis, grid x), blood
    log-uniform (grid y), eumelanin share in [0.3, 1] (grid z). Cached per device.
    """
    key = (str(device), size)
    if key not in _LUT_CACHE:
        nm, nb, ne = size
        m = torch.exp(torch.linspace(math.log(_MELANIN_RANGE[0]), math.log(_MELANIN_RANGE[1]), nm, dtype=torch.float64))
        b = torch.exp(torch.linspace(math.log(_BLOOD_RANGE[0]), math.log(_BLOOD_RANGE[1]), nb, dtype=torch.float64))
        e = torch.linspace(0.3, 1.0, ne, dtype=torch.float64)
        E, Bl, M = torch.meshgrid(e, b, m, indexing="ij")
        rgb = _spectrum_to_rgb(skin_reflectance(M, E, Bl)).clamp(min=0.0)  # [ne, nb, nm, 3]
        _LUT_CACHE[key] = rgb.permute(3, 0, 1, 2).float().to(device)
    return _LUT_CACHE[key]


def _log_coord(x: torch.Tensor, rng: tuple[float, float]) -> torch.Tensor:
    lo, hi = math.log(rng[0]), math.log(rng[1])
    return ((torch.log(x.clamp(rng[0], rng[1])) - lo) / (hi - lo)) * 2 - 1


def skin_rgb(melanin: torch.Tensor, blood: torch.Tensor, eumelanin: torch.Tensor) -> torch.Tensor:
    """Linear sRGB albedo ``[..., 3]`` of skin with the given chromophores (broadcast ``[...]``)."""
    melanin, blood, eumelanin = torch.broadcast_tensors(melanin, blood, eumelanin)
    shape = melanin.shape
    lut = skin_lut(melanin.device)
    g = torch.stack((_log_coord(melanin, _MELANIN_RANGE), _log_coord(blood, _BLOOD_RANGE),
                     ((eumelanin.clamp(0.3, 1.0) - 0.3) / 0.7) * 2 - 1), -1).reshape(1, 1, 1, -1, 3).float()
    out = F.grid_sample(lut[None], g, mode="bilinear", padding_mode="border", align_corners=True)  # [1, 3, 1, 1, N]
    return out.reshape(3, -1).T.reshape(*shape, 3)


@functools.lru_cache(maxsize=None)
def device_constant(values: tuple, device: str) -> torch.Tensor:
    """A small constant float32 tensor on ``device``, made once: a host-to-device copy per call
    would synchronise with the GPU. Read-only (shared by every caller)."""
    return torch.tensor(values, dtype=torch.float32, device=device)


def to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """sRGB transfer function of linear values (clipped to [0, 1] first)."""
    v = linear.clamp(0.0, 1.0)
    return torch.where(v <= 0.0031308, 12.92 * v, 1.055 * v.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


# ------------------------------------------------------------------------------------------
# procedural noise
# ------------------------------------------------------------------------------------------


def _hash(ix: torch.Tensor, iy: torch.Tensor, iz: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Integer lattice hash to [0, 1) (same on every device)."""
    return _mix((ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ (seed * 2654435761))


def _mix(h: torch.Tensor) -> torch.Tensor:
    """The avalanche rounds of :func:`_hash`, from the combined lattice key."""
    h = h & 0xFFFFFFFF
    h = ((h >> 16) ^ h) * 0x45D9F3B & 0xFFFFFFFF
    h = ((h >> 16) ^ h) * 0x45D9F3B & 0xFFFFFFFF
    h = (h >> 16) ^ h
    return (h & 0xFFFFFF).float() / float(0x1000000)


def value_noise(p: torch.Tensor, freq: float, seed: torch.Tensor) -> torch.Tensor:
    """Smooth 3D value noise in [0, 1] at points ``[..., 3]`` (``seed`` broadcasts to ``[...]``)."""
    q = p * freq
    c = torch.floor(q)
    f = q - c
    f = f * f * (3 - 2 * f)
    c = c.long()
    # the lattice key of corner (dx, dy, dz) is kx[dx] ^ ky[dy] ^ kz[dz] ^ ks (as in _hash): the
    # per-axis products are computed once instead of once per corner
    ks = seed.long().expand(q.shape[:-1]) * 2654435761
    kx = [(c[..., 0] + d) * 73856093 for d in (0, 1)]
    ky = [(c[..., 1] + d) * 19349663 for d in (0, 1)]
    kz = [(c[..., 2] + d) * 83492791 for d in (0, 1)]
    out = torch.zeros(q.shape[:-1], device=p.device)
    for dx in (0, 1):
        wx = f[..., 0] if dx else 1 - f[..., 0]
        for dy in (0, 1):
            wxy = wx * (f[..., 1] if dy else 1 - f[..., 1])
            kxy = kx[dx] ^ ky[dy]
            for dz in (0, 1):
                wz = f[..., 2] if dz else 1 - f[..., 2]
                out = out + wxy * wz * _mix(kxy ^ kz[dz] ^ ks)
    return out


def fbm(p: torch.Tensor, freq: float, seed: torch.Tensor, octaves: int = 3, gain: float = 0.5) -> torch.Tensor:
    """Fractal sum of :func:`value_noise` octaves, centred: about [-0.5, 0.5]."""
    total = torch.zeros(p.shape[:-1], device=p.device)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        total = total + amp * (value_noise(p, freq * 2**o, seed + 7919 * o) - 0.5)
        norm += amp
        amp *= gain
    return total / norm


# ------------------------------------------------------------------------------------------
# appearance parameters
# ------------------------------------------------------------------------------------------

# linear sRGB palettes
_HAIR = torch.tensor([
    [0.012, 0.010, 0.009], [0.025, 0.018, 0.014], [0.05, 0.032, 0.022], [0.09, 0.055, 0.033],  # black .. brown
    [0.17, 0.10, 0.055], [0.30, 0.20, 0.10], [0.45, 0.33, 0.17], [0.55, 0.45, 0.28],  # light brown .. blond
    [0.20, 0.065, 0.03], [0.33, 0.12, 0.05],  # auburn, red
    [0.28, 0.27, 0.26], [0.55, 0.54, 0.52],  # grey, white
])
_HAIR_P = torch.tensor([20, 16, 14, 10, 7, 5, 4, 3, 1.5, 0.8, 0, 0], dtype=torch.float)  # grey/white come from age
_IRIS = torch.tensor([
    [0.018, 0.010, 0.006], [0.045, 0.022, 0.010], [0.08, 0.045, 0.018],  # dark brown, brown, light brown
    [0.10, 0.09, 0.035], [0.06, 0.09, 0.05],  # hazel, green
    [0.07, 0.11, 0.16], [0.12, 0.16, 0.20], [0.10, 0.11, 0.12],  # blue, light blue, grey
])
_IRIS_P = torch.tensor([30, 20, 10, 8, 5, 9, 4, 4], dtype=torch.float)


@dataclass
class Appearance:
    """Per-person appearance parameters (every field ``[B]`` or ``[B, k]``, on one device).

    Skin: ``melanin``, ``eumelanin``, ``blood``, ``flush`` (cheek/nose redness), ``freckles``
    (density), ``moles``. Hair: ``hair_color`` [B, 3], ``hair_amount`` (0 bald .. 1 full),
    ``hairline`` (forehead height), ``recession`` (temples), ``bald_top``, ``hair_length`` (how far
    down the back/sides), ``hair_thickness`` (shell offset, head units), ``brow_color`` [B, 3],
    ``brow_density``, ``brow_thickness``, ``beard`` (0 none .. 1 full), ``stubble``. Eyes:
    ``iris_color`` [B, 3], ``iris_size``, ``sclera`` [B, 3]. Mouth: ``teeth`` [B, 3],
    ``lipstick`` [B, 3] with ``lipstick_amount``. Clothes: ``cloth_color`` [B, 3],
    ``cloth_color2`` [B, 3], ``cloth_pattern`` (0 solid, 1 stripes, 2 checks, 3 mottled),
    ``neckline`` (height), ``neck_v`` (V depth), ``cloth_thickness``. ``seed`` int64 for the noise.
    """

    melanin: torch.Tensor
    eumelanin: torch.Tensor
    blood: torch.Tensor
    flush: torch.Tensor
    freckles: torch.Tensor
    moles: torch.Tensor
    hair_color: torch.Tensor
    hair_amount: torch.Tensor
    hairline: torch.Tensor
    recession: torch.Tensor
    bald_top: torch.Tensor
    hair_length: torch.Tensor
    hair_thickness: torch.Tensor
    brow_color: torch.Tensor
    brow_density: torch.Tensor
    brow_thickness: torch.Tensor
    beard: torch.Tensor
    stubble: torch.Tensor
    iris_color: torch.Tensor
    iris_size: torch.Tensor
    sclera: torch.Tensor
    teeth: torch.Tensor
    lipstick: torch.Tensor
    lipstick_amount: torch.Tensor
    cloth_color: torch.Tensor
    cloth_color2: torch.Tensor
    cloth_pattern: torch.Tensor
    neckline: torch.Tensor
    neck_v: torch.Tensor
    cloth_thickness: torch.Tensor
    seed: torch.Tensor

    def __len__(self) -> int:
        return self.melanin.shape[0]

    def index(self, idx) -> "Appearance":
        return Appearance(**{f.name: getattr(self, f.name)[idx] for f in dc_fields(self)})

    def to(self, device) -> "Appearance":
        return Appearance(**{f.name: getattr(self, f.name).to(device) for f in dc_fields(self)})


def _u(n, g, dev, lo=0.0, hi=1.0):
    return lo + (hi - lo) * torch.rand(n, generator=g, device=dev)


def _choice(p: torch.Tensor, n: int, g, dev) -> torch.Tensor:
    return torch.multinomial(p.to(dev), n, replacement=True, generator=g)


def _random_color(n, g, dev, lo=0.02, hi=0.7):
    """Saturated-to-grey random linear colours with log-uniform brightness."""
    h = _u(n, g, dev) * 6.0
    s = _u(n, g, dev) ** 0.7
    k = torch.stack(((h + 5) % 6, (h + 3) % 6, (h + 1) % 6), -1)
    rgb = 1 - s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    v = torch.exp(_u(n, g, dev, math.log(lo), math.log(hi)))
    return rgb * v[:, None]


def sample_appearance(model: HeadModel, attributes: torch.Tensor, generator: torch.Generator | None = None) -> Appearance:
    """Random appearance for people with the given phenotype ``attributes`` ``[B, A]``.

    Skin tone is drawn independently of the face shape (uniform over :data:`TONE_ANCHORS`, fair to
    very dark), so every face shape appears with every skin tone; darker skin makes dark hair and
    brown eyes likelier; gender and age steer facial hair, baldness, grey hair and make-up.
    ``generator`` must live on ``model.device``.
    """
    g = generator
    dev = model.device
    n = attributes.shape[0]
    col = {k: j for j, k in enumerate(model.attribute_names)}
    female = attributes[:, col["gender"]].to(dev)
    age = ((attributes[:, col["age"]].to(dev) - 0.667) / 0.333).clamp(0, 1)  # 0 ~ 25 y .. 1 ~ 90 y
    male = (female < 0.5).float()

    dark = _u(n, g, dev)  # skin tone, uniform over fair .. very dark
    melanin = melanin_from_tone(dark)
    eumelanin = _u(n, g, dev, 0.6, 0.95)
    blood = torch.exp(_u(n, g, dev, math.log(0.006), math.log(0.025)))

    hair_idx = _choice(_HAIR_P, n, g, dev)
    # darker skin: mostly dark hair
    dark_hair = _choice(_HAIR_P[:4], n, g, dev)
    hair_idx = torch.where(_u(n, g, dev) < dark * 0.9, dark_hair, hair_idx)
    hair_color = _HAIR.to(dev)[hair_idx] * torch.exp(0.15 * torch.randn(n, 3, generator=g, device=dev))
    grey = (age * 1.3 - 0.2 + 0.3 * (_u(n, g, dev) - 0.5)).clamp(0, 1)
    hair_color = torch.lerp(hair_color, _HAIR.to(dev)[10 + (_u(n, g, dev) < 0.4).long()], grey[:, None])

    bald = male * (_u(n, g, dev) < 0.05 + 0.5 * age**2).float()
    hair_amount = torch.where(_u(n, g, dev) < 0.04 + 0.08 * male, torch.zeros(n, device=dev), torch.ones(n, device=dev))
    recession = male * _u(n, g, dev) * (0.3 + 0.7 * age)
    bald_top = bald * _u(n, g, dev, 0.3, 1.0)
    hair_length = torch.where(female > 0.5, _u(n, g, dev, 0.4, 1.0), _u(n, g, dev, 0.0, 0.5))
    hair_thickness = torch.where(female > 0.5, _u(n, g, dev, 0.015, 0.08), _u(n, g, dev, 0.0, 0.04) * _u(n, g, dev) ** 0.5)
    hair_thickness = hair_thickness * (1 - 0.7 * bald_top)

    # forehead hairline: a fringe (bangs) for some women, higher with receding hair
    hairline = _u(n, g, dev, -0.2, 0.25) + 0.25 * recession * age
    fringe = (female > 0.5).float() * (_u(n, g, dev) < 0.2).float()
    hairline = torch.lerp(hairline, _u(n, g, dev, -0.55, -0.3), fringe)
    brow_color = torch.lerp(hair_color, _HAIR.to(dev)[1].expand(n, 3), 0.3 * _u(n, g, dev)[:, None])
    brow_color = torch.lerp(brow_color, _HAIR.to(dev)[10].expand(n, 3), (0.5 * grey)[:, None])
    beard_on = male * (_u(n, g, dev) < 0.15).float()
    beard = beard_on * _u(n, g, dev, 0.3, 1.0)
    stubble = male * _u(n, g, dev) ** 2

    iris_idx = _choice(_IRIS_P, n, g, dev)
    iris_idx = torch.where(_u(n, g, dev) < dark * 0.95, _choice(_IRIS_P[:3], n, g, dev), iris_idx)
    iris_color = _IRIS.to(dev)[iris_idx] * torch.exp(0.2 * torch.randn(n, 3, generator=g, device=dev))
    sclera = torch.stack((_u(n, g, dev, 0.50, 0.70), _u(n, g, dev, 0.45, 0.62), _u(n, g, dev, 0.40, 0.58)), -1)
    teeth = torch.stack((_u(n, g, dev, 0.45, 0.70), _u(n, g, dev, 0.40, 0.62), _u(n, g, dev, 0.30, 0.50)), -1)

    lip_palette = torch.tensor([[0.35, 0.03, 0.04], [0.20, 0.02, 0.03], [0.30, 0.08, 0.08], [0.12, 0.02, 0.03],
                                [0.40, 0.12, 0.12]], device=dev)
    lipstick = lip_palette[_choice(torch.ones(5), n, g, dev)]
    lipstick_amount = (female > 0.5).float() * (_u(n, g, dev) < 0.3).float() * _u(n, g, dev, 0.4, 0.9)

    return Appearance(
        melanin=melanin, eumelanin=eumelanin, blood=blood,
        flush=_u(n, g, dev, 0.0, 1.0) ** 2, freckles=(_u(n, g, dev) < 0.25 * (dark < 0.45).float()).float() * _u(n, g, dev, 0.3, 1.0),
        moles=_u(n, g, dev, 0.0, 1.0),
        hair_color=hair_color, hair_amount=hair_amount, hairline=hairline,
        recession=recession, bald_top=bald_top, hair_length=hair_length, hair_thickness=hair_thickness,
        brow_color=brow_color, brow_density=_u(n, g, dev, 0.5, 1.0), brow_thickness=_u(n, g, dev, 0.7, 1.3) * (1 + 0.2 * male),
        beard=beard, stubble=stubble,
        iris_color=iris_color, iris_size=_u(n, g, dev, 0.9, 1.1), sclera=sclera, teeth=teeth,
        lipstick=lipstick, lipstick_amount=lipstick_amount,
        cloth_color=_random_color(n, g, dev), cloth_color2=_random_color(n, g, dev),
        cloth_pattern=_choice(torch.tensor([6.0, 2.0, 1.0, 2.0]), n, g, dev),
        neckline=_u(n, g, dev, -0.15, 0.2), neck_v=_u(n, g, dev, 0.0, 1.0) ** 2, cloth_thickness=_u(n, g, dev, 0.004, 0.015),
        seed=torch.randint(0, 2**30, (n,), generator=g, device=dev),
    )


# ------------------------------------------------------------------------------------------
# per-vertex fields
# ------------------------------------------------------------------------------------------


def smoothstep(e0, e1, x):
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (``e0 > e1`` gives a falling step)."""
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


class _Frame:
    """Anatomical reference points of the canonical mesh (head units)."""

    def __init__(self, model: HeadModel):
        lm = model.landmark_target - model.landmark_offset  # eyeball centres, not pupils
        self.eye_l, self.eye_r = lm[1], lm[0]  # subject's left eye has x > 0
        self.eye_mid = 0.5 * (lm[0] + lm[1])
        self.iod = (lm[1] - lm[0]).norm()
        self.nose = lm[2]
        self.mouth = 0.5 * (lm[3] + lm[4])
        head = model.vertices[model.head_weight > 0.99]
        self.top = head[:, 1].max()
        lo, hi = head.min(0).values, head.max(0).values
        self.centre = 0.5 * (lo + hi)
        j = model.joints(model.vertices[None])[0]
        self.neck = j[model.joint_names.index("neck")]
        self.eyes = torch.stack((j[model.joint_names.index("l-eye")], j[model.joint_names.index("r-eye")]))


def _frame(model: HeadModel) -> _Frame:
    """The model's :class:`_Frame`, computed once and kept on the model."""
    fr = getattr(model, "_albedo_frame", None)
    if fr is None:
        fr = _Frame(model)
        model._albedo_frame = fr
    return fr


def vertex_fields(model: HeadModel, app: Appearance) -> torch.Tensor:
    """Per-vertex channels ``[B, V, len(FIELDS)]`` for :func:`pixel_albedo` (see :data:`FIELDS`).

    Shapes are defined on the canonical mean head relative to the 5 alignment points, so they sit
    at the same anatomical place on every identity.
    """
    fr = _frame(model)
    v = model.vertices  # [V, 3] canonical
    B, V = len(app), v.shape[0]
    dev = model.device
    iod = fr.iod
    out = torch.zeros(B, V, len(FIELDS), device=dev)
    out[..., 0:3] = v
    out[..., _F["lips"]: _F["lashes"] + 1] = model.masks
    reg = model.region.long()
    skin = (reg == REGION["skin"]).float()
    for name in ("eyeball", "teeth", "tongue", "mouth_cavity", "eye_cavity"):
        out[..., _F[name]] = (reg == REGION[name]).float()

    rel = (v - fr.eye_mid) / iod  # anatomical coordinates: 1 = interocular distance
    x, y, z = rel.unbind(-1)
    face = model.masks[:, model.mask_names.index("face")]
    ears = model.masks[:, model.mask_names.index("ears")]
    onhead = model.head_weight

    # --- scalp hair: above a hairline that wraps from the forehead round the ears to the nape ---
    c = (v - fr.centre) / iod
    azim = torch.atan2(c[:, 0], c[:, 2])  # 0 front, +-pi back
    a = azim.abs()[None]  # [1, V]
    hl = app.hairline[:, None]
    rec = app.recession[:, None]
    ln = app.hair_length[:, None]
    front_h = 0.85 + hl  # forehead hairline height above the eye line (interocular units)
    knots = (0.0, 0.45, 0.75, 1.15, 2.0, math.pi)  # front, temple, in front of the ear, behind it, back
    values = (front_h, front_h, front_h + 0.35 * rec, -0.15 - 0.25 * ln + 0.5 * rec, -0.3 - 0.5 * ln, -0.9 - 1.3 * ln)
    h = values[0].expand(B, V)
    for i in range(len(knots) - 1):
        h = h + (values[i + 1] - values[i]) * smoothstep(knots[i], knots[i + 1], a)
    hair = smoothstep(h - 0.05, h + 0.12, y[None])
    # male-pattern baldness: the top of the head, from the front hairline back to the crown
    crown = smoothstep(0.9, 1.4, y[None] + 0.25 * c[:, 2][None].clamp(max=0))
    hair = hair * (1 - app.bald_top[:, None] * crown)
    hair = hair * (1 - ears[None]) * skin[None] * app.hair_amount[:, None]
    out[..., _F["hair"]] = hair

    # --- eyebrows: an arch above each eye ---
    ax = x.abs()
    t = (ax - 0.12) / 0.62  # 0 at the inner end, 1 at the tail
    arch = 0.40 + 0.10 * torch.sin(math.pi * t.clamp(0, 1) * 0.85) - 0.05 * t.clamp(0, 1) ** 2
    thick = 0.075 * app.brow_thickness[:, None] * (1.15 - 0.55 * t.clamp(0, 1))[None]
    d = (y - arch)[None]
    along = smoothstep(-0.05, 0.05, t)[None] * (1 - smoothstep(0.9, 1.08, t))[None]
    brows = torch.exp(-0.5 * (d / thick) ** 2) * along * (z > -0.3).float()[None] * skin[None]
    out[..., _F["brows"]] = brows * app.brow_density[:, None]

    # --- beard zone: jaw, chin, upper lip, lower cheeks, under the chin ---
    lips = model.masks[:, model.mask_names.index("lips")]
    # upper boundary: under the nose (moustache), rising over the cheeks, up the sideburns
    line = -0.9 + 0.2 * smoothstep(0.3, 1.1, ax) + 0.8 * smoothstep(1.0, 1.45, ax)
    beard = smoothstep(line + 0.12, line - 0.25, y) * smoothstep(1.6, 1.35, ax)
    nose = ((v - fr.nose) / iod)[:, :2].norm(dim=-1)
    beard = beard * smoothstep(0.22, 0.35, nose)
    beard = beard * (1 - smoothstep(0.3, 0.7, lips)) * skin * (1 - ears)
    neck_low = smoothstep(-2.3, -1.6, y)  # stops on the neck
    beard = beard * neck_low * (z > -0.6).float()
    out[..., _F["beard"]] = beard[None].expand(B, V)

    # --- clothes: everything below a neckline that dips at the front ---
    nrel = (v - fr.neck) / iod
    front = smoothstep(-0.2, 0.6, nrel[:, 2])[None]
    width = smoothstep(1.2, 0.0, nrel[:, 0].abs())[None]
    line = -0.15 + app.neckline[:, None] - (0.35 + 1.2 * app.neck_v[:, None]) * front * width
    cloth = smoothstep(line + 0.05, line - 0.05, nrel[:, 1][None]) * (onhead[None] < 0.5).float() * skin[None]
    out[..., _F["cloth"]] = cloth

    # --- cheeks (flush) and the freckle zone (nose bridge and upper cheeks) ---
    for side in (-1.0, 1.0):
        dc = torch.stack((x - side * 0.62, y + 0.45), -1)
        out[..., _F["cheeks"]] += torch.exp(-0.5 * (dc.norm(dim=-1) / 0.28) ** 2)[None] * face[None]
    fz = torch.exp(-0.5 * ((x / 0.75) ** 2 + ((y + 0.42) / 0.22) ** 2)) * smoothstep(-0.6, 0.0, z)
    out[..., _F["freckle_zone"]] = (fz * skin)[None]
    return out


# ------------------------------------------------------------------------------------------
# per-pixel albedo
# ------------------------------------------------------------------------------------------


def pixel_albedo(fields: torch.Tensor, app: Appearance, model: HeadModel, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Albedo ``[B, H, W, 3]`` from interpolated :func:`vertex_fields` channels ``[B, H, W, C]``.

    Only pixels where ``mask`` ``[B, H, W]`` (bool) is set are computed (default: all); the others
    are 0, for the caller to composite the background.
    """
    B, H, W, C = fields.shape
    if mask is None:
        mask = torch.ones(B, H, W, dtype=torch.bool, device=fields.device)
    bi, yi, xi = torch.nonzero(mask, as_tuple=True)
    out = torch.zeros(B, H, W, 3, device=fields.device)
    if bi.numel():
        out[bi, yi, xi] = _albedo_points(fields[bi, yi, xi], bi, app, model)
    return out


def _albedo_points(fields: torch.Tensor, b: torch.Tensor, app: Appearance, model: HeadModel) -> torch.Tensor:
    """Albedo ``[N, 3]`` of surface points with channels ``[N, C]`` belonging to people ``b`` ``[N]``."""
    fr = _frame(model)
    f = {n: fields[:, i] for i, n in enumerate(FIELDS)}
    f["lips"] = smoothstep(0.65, 0.95, f["lips"])
    p = fields[:, 0:3]
    seed = app.seed[b]
    dev = fields.device

    def per(t):
        return t[b]

    def where(cond: torch.Tensor):
        return torch.nonzero(cond, as_tuple=True)[0]

    # --- skin chromophores ---
    mel = per(app.melanin) * torch.exp(0.2 * fbm(p, 12.0, seed, octaves=3) + 0.15 * (value_noise(p, 220.0, seed + 11) - 0.5))
    mel = mel * (1 - 0.35 * f["lips"]) * (1 + 0.25 * f["eyelids"]) * (1 + 0.15 * f["ears"])
    # freckles: dense small melanin spots on nose and cheeks; moles: rare larger ones
    spots = torch.zeros_like(mel)
    k = where(f["freckle_zone"] * per(app.freckles) > 0.01)
    if k.numel():
        spots[k] = 1.5 * smoothstep(0.7, 0.85, value_noise(p[k], 260.0, seed[k] + 23)) * f["freckle_zone"][k] * per(app.freckles)[k]
    k = where(per(app.moles) > 0.5)
    if k.numel():
        spots[k] += 6.0 * smoothstep(0.985, 0.995, value_noise(p[k], 45.0, seed[k] + 31))
    mel = mel * (1 + spots)
    blood = per(app.blood) * torch.exp(0.25 * fbm(p, 8.0, seed + 5, octaves=2))
    blood = blood * (1 + 2.0 * f["lips"]) * (1 + 1.4 * per(app.flush) * f["cheeks"]) * (1 + 0.4 * f["ears"])
    dn = (p - fr.nose).norm(dim=-1) / fr.iod  # nose tip flush
    blood = blood * (1 + 0.5 * per(app.flush) * torch.exp(-0.5 * (dn / 0.25) ** 2))
    skin = skin_rgb(mel, blood, per(app.eumelanin))
    skin = torch.lerp(skin, per(app.lipstick), (f["lips"] * per(app.lipstick_amount))[:, None])
    out = skin

    # --- hair over skin: stubble/beard, brows, scalp ---
    hairy = where((f["beard"] > 0) & ((per(app.stubble) > 0) | (per(app.beard) > 0)) | (f["brows"] > 0.01) | (f["hair"] > 0.02))
    if hairy.numel():
        ph, sh_ = p[hairy], seed[hairy]
        fb, fbr, fh = f["beard"][hairy], f["brows"][hairy], f["hair"][hairy]
        bh = b[hairy]
        strands = value_noise(ph * device_constant((1.0, 0.15, 1.0), str(dev)), 300.0, sh_ + 41)
        tone = (0.7 + 0.6 * strands)[:, None]
        hair_col = app.hair_color[bh] * tone
        brow_col = app.brow_color[bh] * tone
        # stubble: short hair seen through the skin, a fine even darkening towards the hair colour
        stub_zone = (fb + 0.35 * fbm(ph, 30.0, sh_ + 49, octaves=2)).clamp(0, 1)
        stub = smoothstep(0.0, 0.9, stub_zone) * app.stubble[bh] * (0.1 + 0.25 * value_noise(ph, 700.0, sh_ + 47))
        beard_edge = (fb + 0.35 * fbm(ph, 40.0, sh_ + 59, octaves=2)).clamp(0, 1)
        beard = smoothstep(0.2, 0.9, beard_edge) * app.beard[bh] * (0.55 + 0.45 * strands)
        brow = (fbr * (0.75 + 0.5 * (value_noise(ph, 250.0, sh_ + 43) - 0.5))).clamp(0, 1)
        scalp = ((fh - 0.5) * 2.5 + 0.5 + 0.6 * fbm(ph, 60.0, sh_ + 53, octaves=2)).clamp(0, 1) * (fh > 0.02).float()
        o = torch.lerp(out[hairy], hair_col, torch.maximum(stub, beard).clamp(0, 1)[:, None] * (fb > 0).float()[:, None])
        o = torch.lerp(o, brow_col, brow[:, None])
        o = torch.lerp(o, hair_col, scalp[:, None])
        out = out.index_put((hairy,), o)
    out = out * (1 - 0.8 * f["lashes"].clamp(0, 1))[:, None]  # lash line: dark lid margins

    # --- clothes ---
    k = where(f["cloth"] > 0)
    if k.numel():
        pk, sk, bk = p[k], seed[k], b[k]
        pat = app.cloth_pattern[bk]
        stripes = (torch.sin(pk[:, 1] * 90.0 + 0.3 * sk.float()) > 0).float()
        checks = ((torch.sin(pk[:, 1] * 70.0) > 0) ^ (torch.sin(pk[:, 0] * 70.0) > 0)).float()
        mottled = smoothstep(-0.1, 0.1, fbm(pk, 25.0, sk + 61, octaves=3))
        mix = torch.where(pat == 1, stripes, torch.where(pat == 2, checks, torch.where(pat == 3, mottled, torch.zeros_like(stripes))))
        weave = 1 + 0.12 * (value_noise(pk, 400.0, sk + 67) - 0.5)
        cloth = torch.lerp(app.cloth_color[bk], app.cloth_color2[bk], mix[:, None]) * weave[:, None]
        out = out.index_put((k,), torch.lerp(out[k], cloth, f["cloth"][k].clamp(0, 1)[:, None]))

    # --- eyes ---
    k = where(f["eyeball"] > 0)
    if k.numel():
        eye = _eye_albedo(p[k], b[k], app, fr)
        out = out.index_put((k,), torch.lerp(out[k], eye, f["eyeball"][k].clamp(0, 1)[:, None]))

    # --- mouth interior and eye sockets ---
    out = torch.lerp(out, per(app.teeth), f["teeth"].clamp(0, 1)[:, None])
    out = torch.lerp(out, device_constant((0.16, 0.035, 0.035), str(dev)).expand_as(out), f["tongue"].clamp(0, 1)[:, None])
    out = torch.lerp(out, device_constant((0.06, 0.012, 0.012), str(dev)).expand_as(out), f["mouth_cavity"].clamp(0, 1)[:, None])
    out = torch.lerp(out, skin * 0.55, f["eye_cavity"].clamp(0, 1)[:, None])
    return out.clamp(0.0, 1.0)


def _eye_albedo(p: torch.Tensor, b: torch.Tensor, app: Appearance, fr: _Frame) -> torch.Tensor:
    """Sclera, iris and pupil ``[N, 3]`` from the angle between the canonical point and the gaze
    axis (+z) of the nearer eyeball."""
    d0, d1 = p - fr.eyes[0], p - fr.eyes[1]
    d = torch.where((d0.norm(dim=-1) < d1.norm(dim=-1))[:, None], d0, d1)
    r = d.norm(dim=-1).clamp(min=1e-6)
    ang = torch.acos((d[:, 2] / r).clamp(-1, 1))  # 0 at the front of the eye
    phi = torch.atan2(d[:, 1], d[:, 0])
    iris_r = 0.40 * app.iris_size[b]
    pupil_r = 0.38 * iris_r
    corner = smoothstep(0.7, 1.3, ang)
    sclera = app.sclera[b] * torch.stack((torch.ones_like(ang), 1 - 0.15 * corner, 1 - 0.2 * corner), -1)
    streak = value_noise(torch.stack((torch.cos(phi) * 4, torch.sin(phi) * 4, ang * 30), -1), 1.0, app.seed[b] + 71)
    iris = app.iris_color[b] * (0.6 + 0.8 * streak)[:, None]
    iris = iris * (1 - 0.6 * smoothstep(0.7, 1.0, ang / iris_r))[:, None]  # dark limbal ring
    col = torch.where((ang < iris_r)[:, None], iris, sclera)
    return torch.where((ang < pupil_r)[:, None], torch.full_like(col, 0.01), col)


# ------------------------------------------------------------------------------------------
# backgrounds
# ------------------------------------------------------------------------------------------


def sample_background(n: int, height: int, width: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Random backdrops ``[n, H, W, 3]`` (linear albedo in about [0.02, 0.85]).

    Kinds (equally likely): solid colour; linear gradient between two colours at a random angle;
    radial vignette; blotchy fractal noise between two colours; soft out-of-focus blobs over a
    base colour.
    """
    g = generator
    dev = torch.device(device) if device is not None else torch.device("cpu")
    ys = torch.linspace(-1, 1, height, device=dev).view(1, height, 1)
    xs = torch.linspace(-1, 1, width, device=dev).view(1, 1, width)
    c1 = _random_color(n, g, dev, 0.02, 0.85).view(n, 1, 1, 3)
    c2 = _random_color(n, g, dev, 0.02, 0.85).view(n, 1, 1, 3)
    kind = torch.randint(0, 5, (n,), generator=g, device=dev).view(n, 1, 1)
    ang = _u(n, g, dev, 0, 2 * math.pi).view(n, 1, 1)
    lin = (0.5 + 0.5 * (xs * torch.cos(ang) + ys * torch.sin(ang)) / 1.42).clamp(0, 1)
    cx, cy = _u(n, g, dev, -0.5, 0.5).view(n, 1, 1), _u(n, g, dev, -0.5, 0.5).view(n, 1, 1)
    rad = (((xs - cx) ** 2 + (ys - cy) ** 2).sqrt() / 1.6).clamp(0, 1)
    pts = torch.stack((xs.expand(n, height, width), ys.expand(n, height, width), torch.zeros(n, height, width, device=dev)), -1)
    seed = torch.randint(0, 2**30, (n, 1, 1), generator=g, device=dev)
    scale = _u(n, g, dev, 1.5, 6.0).view(n, 1, 1, 1)
    noise = (fbm(pts * scale, 1.0, seed, octaves=4) + 0.5).clamp(0, 1)
    blobs = torch.zeros(n, height, width, device=dev)
    for k in range(6):
        bx, by = _u(n, g, dev, -1.2, 1.2).view(n, 1, 1), _u(n, g, dev, -1.2, 1.2).view(n, 1, 1)
        br = _u(n, g, dev, 0.1, 0.5).view(n, 1, 1)
        blobs = blobs + _u(n, g, dev, 0.3, 1.0).view(n, 1, 1) * torch.exp(-((xs - bx) ** 2 + (ys - by) ** 2) / (2 * br**2))
    blobs = blobs.clamp(0, 1)
    t = torch.where(kind == 0, torch.zeros_like(lin), torch.where(kind == 1, lin, torch.where(kind == 2, rad, torch.where(kind == 3, noise, blobs))))
    return torch.lerp(c1, c2, t.unsqueeze(-1)).clamp(0, 1)
