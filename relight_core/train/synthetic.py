"""Synthetic training data: random people, lights and EG3D cameras, rendered with ground truth.

:class:`SyntheticHeads` samples everything on one device (CPU or GPU) with a ``torch.Generator``
and renders with :mod:`relight_core.train.raster`; it needs no data files beyond the packaged head
model. Two entry points:

* :meth:`SyntheticHeads.sample` - a batch of independent people, each with an input view under an
  input light, the same view under a target light, and a novel (multi-view supervision) view under
  both lights.
* :meth:`SyntheticHeads.sequence` - one person over ``length`` frames with smooth head motion,
  talking and blinking, and slowly drifting light, for the temporal network.

Conventions
-----------
* Images are NCHW float32. ``image`` is the network input: the input-view RGB encoded to display
  sRGB (clipped to [0, 1]) and mapped to [-1, 1]. Every other image is **linear**.
* ``rgb = albedo * shading`` exactly, per pixel (after the supersampled render is box-filtered,
  albedo and shading are averaged separately and multiplied).
* ``normal``: unit world (head-space) normals, 0 on background; ``depth``: distance from the camera
  centre along the ray (head units), 0 on background; ``mask``: coverage in [0, 1] (soft at the
  silhouette from supersampling).
* Lights are SH9 in DPR's convention (``c = L / pi``), grey ``[B, 9]`` or coloured ``[B, 9, 3]``
  (``coloured`` option), expressed in the DPR frame of the **input camera**; ``light_frame``
  ``[B, 3, 3]`` (``sh.world_to_dpr`` of the input camera) maps world normals into it. The light is
  fixed to the world (the room), so novel views use the same frame. In sequences the camera is the
  one fixed in the room and the head moves, so each frame's light is in that frame's own camera
  frame. ``sh_gray`` is always the grey version (``sh.to_gray``) the released network takes.
* Backgrounds are backdrops attached to the camera (the same 2D image in every view of a sample),
  lit by the light evaluated for a normal facing the camera; they are not 3D-consistent, so mask
  them out of multi-view losses.

Camera sampling (PAPER_MODEL.md 2.11): input cameras as ``get_ref_cam`` (fov N(18.837, 1) degrees,
radius N(2.7, 0.1), pivot N(0, 14/256) per axis, roll N(0, 2) degrees, pitch U(+-26), yaw U(+-49)
degrees); novel views as ``get_mv_cam`` (pitch U(+-26), yaw U(+-36), EG3D fov, radius 2.7, pivot 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import camera, sh
from . import albedo as alb
from .heads import HeadModel, Identity, euler_to_matrix
from .raster import project, render_head, shade, vertex_normals

__all__ = ["CameraRanges", "SyntheticHeads", "sample_cameras", "sample_lights"]


@dataclass
class CameraRanges:
    """Camera distributions (degrees and head units), PAPER_MODEL.md 2.11."""

    pitch: float = 26.0
    yaw: float = 49.0
    fov_mean: float = camera.FOV_EG3D_DEG
    fov_std: float = 1.0
    radius_mean: float = camera.RADIUS_EG3D
    radius_std: float = 0.1
    pivot_std: float = 14.0 / 256.0
    roll_std: float = 2.0


REF_CAMERAS = CameraRanges()
"""``get_ref_cam``: augmented input cameras."""
MV_CAMERAS = CameraRanges(pitch=26.0, yaw=36.0, fov_std=0.0, radius_std=0.0, pivot_std=0.0, roll_std=0.0)
"""``get_mv_cam``: multi-view supervision cameras (fixed fov, radius and pivot)."""


def orbit_labels(pitch, yaw, radius, pivot, fov_deg, roll) -> torch.Tensor:
    """Batched :func:`relight_core.camera.orbit_camera` with per-camera radius and fov ``[B, 25]``.

    All arguments are ``[B]`` tensors (radians for the angles, degrees for ``fov_deg``) except
    ``pivot`` ``[B, 3]``. Same construction as EG3D's LookAtPoseSampler (the orbit sphere is centred
    on the origin, the camera looks at the pivot, roll about world z is pre-multiplied).
    """
    h = yaw + math.pi / 2
    v = (pitch + math.pi / 2).clamp(1e-5, math.pi - 1e-5)
    phi = torch.arccos(1 - 2 * v / math.pi)
    origin = torch.stack((radius * torch.sin(phi) * torch.cos(math.pi - h), radius * torch.cos(phi),
                          radius * torch.sin(phi) * torch.sin(math.pi - h)), -1)
    c2w = camera.look_at(origin, pivot, alb.device_constant((0.0, 1.0, 0.0), str(origin.device)))
    c, s = torch.cos(roll), torch.sin(roll)
    Rz = torch.zeros(roll.shape[0], 4, 4, device=roll.device)
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1] = c, -s, s, c
    Rz[:, 2, 2] = Rz[:, 3, 3] = 1.0
    c2w = Rz @ c2w
    f = 1.0 / (torch.tan(fov_deg * 3.14159 / 360.0) * 1.414)
    K = camera.intrinsics(f)
    return camera.camera_label(c2w, K)


def sample_cameras(n: int, ranges: CameraRanges, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """``n`` EG3D camera labels ``[n, 25]`` from the given distributions."""
    dev = torch.device(device) if device is not None else torch.device("cpu")

    def u(a):
        return (2 * torch.rand(n, generator=generator, device=dev) - 1) * a

    def nrm(shape=(n,)):
        return torch.randn(shape, generator=generator, device=dev)

    d = math.radians
    return orbit_labels(
        u(d(ranges.pitch)), u(d(ranges.yaw)), ranges.radius_mean + ranges.radius_std * nrm(),
        ranges.pivot_std * nrm((n, 3)), ranges.fov_mean + ranges.fov_std * nrm(), d(ranges.roll_std) * nrm(),
    )


def _sphere_normals(k: int = 200, device=None) -> torch.Tensor:
    i = torch.arange(k, dtype=torch.float32, device=device) + 0.5
    z = 1 - 2 * i / k
    r = (1 - z * z).sqrt()
    ph = i * math.pi * (3 - math.sqrt(5))
    return torch.stack((r * torch.cos(ph), r * torch.sin(ph), z), -1)


def sample_lights(
    n: int,
    generator: torch.Generator | None = None,
    device=None,
    *,
    coloured: float = 0.0,
    random_sh: float = 0.3,
) -> torch.Tensor:
    """Random SH lights in the DPR frame ``[n, 9]`` (or ``[n, 9, 3]`` when ``coloured > 0``).

    A share ``1 - random_sh`` are physical set-ups: ambient plus a key light (mostly from the
    camera side and above), an optional fill and an optional rim, some soft (sun disk up to 90
    degrees). The rest draw the coefficients directly like DPR's FFHQ labels (DC in [0.35, 1.1],
    the others uniform in +-0.55 x DC / 1.1), shrinking the non-DC part until the shading of every
    direction is non-negative. Each light is then scaled so that its brightest shading is about
    U(0.8, 1.6) while the DC term stays in [0.35, 1.1] (luminance). With
    ``coloured`` > 0 that share of the lights gets per-source colours (warm/cool tints or gels);
    the output is then always ``[n, 9, 3]`` (grey lights repeated over channels).
    """
    g = generator
    dev = torch.device(device) if device is not None else torch.device("cpu")

    def u(shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=g, device=dev)

    def direction(shape, front: float):
        # toward the light, DPR frame (x right, y into the screen, z up); `front` biases to -y
        v = torch.randn(*shape, 3, generator=g, device=dev)
        v = v / v.norm(dim=-1, keepdim=True)
        v[..., 1] = v[..., 1] - front
        v[..., 2] = v[..., 2] + 0.3 * front
        return v / v.norm(dim=-1, keepdim=True)

    colour_on = (u((n,)) < coloured).float()[:, None]

    def tint() -> torch.Tensor:
        # [n, 3] unit-luminance colours: white unless coloured; then warm/cool shifts or gels
        t = u((n,), -1, 1)
        warm = torch.stack((1 + 0.25 * t, torch.ones_like(t), 1 - 0.35 * t), -1)
        gel = alb._random_color(n, g, dev, 0.3, 1.0)
        col = torch.lerp(warm, gel / gel.amax(-1, keepdim=True), (u((n,)) < 0.3).float()[:, None])
        col = col / (col * alb.device_constant(tuple(sh.LUMA_REC709), str(dev))).sum(-1, keepdim=True)
        return torch.lerp(torch.ones_like(col), col, colour_on)

    # physical set-ups: ambient + key (+ fill) (+ rim); the key's softness is drawn per batch
    soft = float(u((1,), 0.0, math.pi / 2))
    c = sh.ambient(u((n,), 0.05, 0.6), tint()).to(dev)
    c = c + sh.directional(direction((n,), 1.0), u((n,), 0.5, 3.5), tint(), angle=soft).to(dev)
    for p_on, front, lo, hi in ((0.5, 1.2, 0.2, 1.2), (0.3, -1.0, 0.3, 2.0)):  # fill, rim
        on = (u((n,)) < p_on).float()
        c = c + on[:, None, None] * sh.directional(direction((n,), front), u((n,), lo, hi), tint()).to(dev)
    # random-coefficient lights
    dc = u((n,), 0.35, 1.1)
    r = u((n, 9), -0.55, 0.55) * (dc / 1.1)[:, None]
    r[:, 0] = dc
    normals = _sphere_normals(device=dev)
    basis = sh.shading_basis(normals)  # [K, 9]
    for _ in range(8):
        shade = r @ basis.T
        bad = (shade.amin(-1) < 0).float()[:, None]
        scale = torch.ones_like(r)
        scale[:, 1:] = 1 - 0.25 * bad
        r = r * scale
    r = r[:, :, None].expand(n, 9, 3) * tint()[:, None, :]
    pick = (u((n,)) < random_sh).float()[:, None, None]
    c = torch.lerp(c, r, pick)
    # exposure: the brightest shading over all directions near U(0.8, 1.6), the DC term kept in
    # [0.35, 1.1] (both on luminance)
    luma = alb.device_constant(tuple(sh.LUMA_REC709), str(dev))
    gray = (c * luma).sum(-1)  # [n, 9]
    peak = (gray @ basis.T).amax(-1).clamp(min=1e-6)
    dc = gray[:, 0].clamp(min=1e-6)
    scale = torch.minimum(torch.maximum(u((n,), 0.8, 1.6) / peak, 0.35 / dc), 1.1 / dc)
    c = c * scale[:, None, None]
    if coloured <= 0:
        return sh.to_gray(c)
    return c


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Box-filter ``[B, H, W, C]`` by ``k`` to ``[B, C, H/k, W/k]``."""
    x = x.permute(0, 3, 1, 2)
    return F.avg_pool2d(x, k) if k > 1 else x


class SyntheticHeads:
    """Random synthetic people rendered with ground truth (module docstring).

    Args:
        resolution: output image side (square).
        device: where to sample and render.
        model: a :class:`HeadModel` (default: the packaged one on ``device``).
        supersample: render at ``resolution * supersample`` and box-filter (anti-aliasing).
        coloured: share of coloured lights (0: grey ``[B, 9]`` lights only).
        expression_rate: share of samples with a random (non-neutral) expression.
    """

    def __init__(self, resolution: int = 256, device=None, *, model: HeadModel | None = None, supersample: int = 2,
                 coloured: float = 0.0, expression_rate: float = 0.75):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = model if model is not None else HeadModel.load(device=self.device)
        self.resolution = int(resolution)
        self.supersample = int(supersample)
        self.coloured = float(coloured)
        self.expression_rate = float(expression_rate)
        self._shell = self._hair_shell()

    # --------------------------------------------------------------------------------------
    # geometry: hair shell and clothes
    # --------------------------------------------------------------------------------------

    def _hair_shell(self) -> dict[str, torch.Tensor]:
        """Faces of the skin that can carry hair, duplicated as an offset shell."""
        m = self.model
        g0 = torch.Generator(device=m.device).manual_seed(0)  # never touches the global RNG
        probe = alb.sample_appearance(m, m.sample_attributes(1, g0), g0)
        probe.hairline[:] = -0.7  # below any sampled hairline (fringes reach -0.55)
        probe.hair_length[:] = 1.2
        probe.recession[:] = 0.0
        probe.bald_top[:] = 0.0
        probe.hair_amount[:] = 1.0
        cov = alb.vertex_fields(m, probe)[0, :, alb.FIELDS.index("hair")]
        cand = cov > 1e-4
        fmask = cand[m.faces].all(-1)
        idx = torch.nonzero(cand, as_tuple=True)[0]
        remap = torch.full((m.num_vertices,), -1, dtype=torch.long, device=m.device)
        remap[idx] = torch.arange(idx.numel(), device=m.device)
        faces = remap[m.faces[fmask]] + m.num_vertices
        return {"index": idx, "faces": faces}

    def dress(self, vertices: torch.Tensor, fields: torch.Tensor, app: alb.Appearance) -> tuple[torch.Tensor, ...]:
        """Add clothes thickness and the hair shell.

        Returns:
            ``(vertices [B, V + S, 3], faces [F + Fs, 3], fields [B, V + S, C], normals
            [B, V + S, 3])``. Vertices: the skin, moved out by the cloth thickness under clothes,
            then the hair shell (the scalp moved out along its normals by ``hair_thickness *
            smoothstep(0.55, 0.95, coverage)``, a little less low on the sides and back). Normals:
            those of the bare skin, also on the shell (a parallel offset surface), so the steep
            rim where the hair rises off the skin does not shade as a wall.
        """
        m = self.model
        n = vertex_normals(vertices, m.faces)
        cloth = fields[..., alb.FIELDS.index("cloth")]
        v = vertices + n * (app.cloth_thickness[:, None] * cloth)[..., None]
        idx = self._shell["index"]
        cov = fields[:, idx, alb.FIELDS.index("hair")]
        # rise only where the hair colour is (nearly) opaque, so the shell's edge shows hair, not skin
        off = app.hair_thickness[:, None] * alb.smoothstep(0.55, 0.95, cov)
        # fuller on top, thinner at the sides and back of the neck
        up = (m.vertices[idx, 1] - m.landmark_target[:2, 1].mean()).clamp(min=0) / 0.3
        off = off * (0.6 + 0.4 * up.clamp(max=1.0))[None]
        shell = v[:, idx] + n[:, idx] * off[..., None]
        verts = torch.cat((v, shell), 1)
        faces = torch.cat((m.faces, self._shell["faces"]), 0)
        f = torch.cat((fields, fields[:, idx]), 1)
        return verts, faces, f, torch.cat((n, n[:, idx]), 1)

    # --------------------------------------------------------------------------------------
    # rendering
    # --------------------------------------------------------------------------------------

    def render(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        fields: torch.Tensor,
        normals: torch.Tensor,
        app: alb.Appearance,
        cameras: torch.Tensor,
        background: torch.Tensor,
        lights: dict[str, torch.Tensor],
        light_frame: torch.Tensor,
        keep_fragments: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Render one view (every output NCHW at ``resolution``).

        Returns ``mask, depth, normal, albedo`` and ``shading_<name>, rgb_<name>`` per light; with
        ``keep_fragments`` also the supersampled ``fragments`` and ``depth_ss``, ``mask_ss``
        ``[B, S, S]`` (for :meth:`flow`).
        """
        k = self.supersample
        S = self.resolution * k
        bg = background
        if bg.shape[1] != S:
            bg = F.interpolate(bg.permute(0, 3, 1, 2), size=(S, S), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        out = render_head(vertices, faces, cameras, S, S, extra={"fields": fields}, normals=normals)
        m = out["mask"]
        px_alb = alb.pixel_albedo(out["fields"], app, self.model, mask=m[..., 0] > 0)
        albedo = px_alb * m + bg * (1 - m)
        res = {"mask": _pool(m, k), "albedo": _pool(albedo, k)}
        msum = res["mask"].clamp(min=1e-6)
        res["depth"] = _pool(out["depth"], k) / msum * (res["mask"] > 0)
        nrm = _pool(out["normal"], k)
        res["normal"] = nrm / nrm.norm(dim=1, keepdim=True).clamp(min=1e-6) * (res["mask"] > 0)
        for name, light in lights.items():
            shading = _pool(shade(out["normal"], m, cameras, light, light_frame), k)
            res[f"shading_{name}"] = shading
            res[f"rgb_{name}"] = res["albedo"] * shading
        if keep_fragments:
            res.update(fragments=out["frags"], depth_ss=out["depth"][..., 0], mask_ss=m[..., 0])
        return res

    def flow(self, rendered: dict, vertices: torch.Tensor, faces: torch.Tensor, cameras: torch.Tensor,
             source: torch.Tensor, tolerance: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact backward optical flow from each rendered frame ``t`` to frame ``source[t]``.

        Every covered pixel of frame t sees a surface point given by its triangle and (perspective
        correct) barycentrics; the same point of the mesh in frame s (same triangle, same
        barycentrics, frame s's vertices) is projected with frame s's camera. It counts as visible
        in s when it lands inside the image, on the subject, and within ``tolerance`` head units of
        frame s's depth there (not hidden behind another surface).

        Args:
            rendered: :meth:`render` output of all frames with ``keep_fragments=True``.
            vertices: ``[T, V, 3]`` the vertices that were rendered; faces: ``[F, 3]``.
            cameras: ``[T, 25]``; source: ``[T]`` long, the frame each frame's flow points to.

        Returns:
            ``flow [T, 2, H, W]`` (pixels at ``resolution``; frame t's pixel p shows what frame
            source[t] shows at p + flow, the convention of :func:`relight_core.train.losses.warp`)
            and ``visible [T, 1, H, W]`` (the share of each pixel whose point is visible in both).
        """
        frags = rendered["fragments"]
        T, S, _ = frags.face_index.shape
        k = self.supersample
        corners = faces.to(vertices.device, torch.long)[frags.face_index.clamp(min=0).view(T, -1)]  # [T, SS, 3]
        moved = vertices[source]  # the mesh as it is in frame s
        points = torch.gather(moved, 1, corners.view(T, -1, 1).expand(-1, -1, 3)).view(T, S * S, 3, 3)
        points = (points * frags.bary.view(T, S * S, 3, 1)).sum(2)
        cams = cameras[source]
        x_cam, xy = project(points, cams, S, S)
        distance = (points - camera.split_label(cams)[0][:, None, :3, 3]).norm(dim=-1)
        pixel = xy.round().long()
        inside = (pixel >= 0).all(-1) & (pixel < S).all(-1) & (x_cam[..., 2] > 0)
        lookup = (pixel[..., 1].clamp(0, S - 1) * S + pixel[..., 0].clamp(0, S - 1))
        depth_s = torch.gather(rendered["depth_ss"][source].view(T, -1), 1, lookup)
        mask_s = torch.gather(rendered["mask_ss"][source].view(T, -1), 1, lookup)
        visible = inside & frags.mask.view(T, -1) & (mask_s > 0) & ((distance - depth_s).abs() < tolerance)
        ys, xs = torch.meshgrid(torch.arange(S, device=xy.device), torch.arange(S, device=xy.device), indexing="ij")
        own = torch.stack((xs, ys), -1).view(1, S * S, 2).float()
        vis = visible.float().view(T, S, S, 1)
        flow = ((xy - own).view(T, S, S, 2) * vis) / k  # in output pixels
        weight = _pool(vis, k)
        return _pool(flow, k) / weight.clamp(min=1e-6), weight

    # --------------------------------------------------------------------------------------
    # sampling
    # --------------------------------------------------------------------------------------

    def _person(self, n: int, g: torch.Generator | None):
        m = self.model
        ident = m.sample_identity(n, g)
        app = alb.sample_appearance(m, ident.attributes, g)
        expr = m.sample_expression(n, g)
        keep = (torch.rand(n, 1, generator=g, device=self.device) < self.expression_rate).float()
        return ident, app, expr * keep

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A batch of independent samples (module docstring for conventions).

        Returns a dict with ``image`` [B, 3, H, W] in [-1, 1]; ``camera`` and ``mv_camera``
        [B, 25]; ``sh``, ``target_sh`` [B, 9] (or [B, 9, 3]), ``sh_gray``, ``target_sh_gray``
        [B, 9]; ``light_frame`` [B, 3, 3]; at the input view ``albedo``, ``normal`` (3 ch),
        ``depth``, ``mask`` (1 ch), ``shading``, ``rgb`` (input light), ``target_shading``,
        ``target_rgb`` (target light); at the novel view the same with an ``mv_`` prefix; and the
        person: ``identity`` [B, K], ``attributes`` [B, A], ``expression`` [B, E].
        """
        g = generator
        B = batch_size
        dev = self.device
        m = self.model
        ident, app, expr = self._person(B, g)
        body = euler_to_matrix(0.15 * torch.randn(B, generator=g, device=dev), 0.3 * torch.randn(B, generator=g, device=dev),
                               0.08 * torch.randn(B, generator=g, device=dev)).to(dev)
        verts = m.mesh(ident, expr, body_rotation=body)
        fields = alb.vertex_fields(m, app)
        verts, faces, fields, normals = self.dress(verts, fields, app)
        cams = sample_cameras(B, REF_CAMERAS, g, dev)
        mv = sample_cameras(B, MV_CAMERAS, g, dev)
        lights = {"in": sample_lights(B, g, dev, coloured=self.coloured), "out": sample_lights(B, g, dev, coloured=self.coloured)}
        frame = sh.world_to_dpr(camera.split_label(cams)[0])
        bg = alb.sample_background(B, self.resolution, self.resolution, g, dev)
        # both views in one render call: half the calls and kernel launches, the same pixels
        twice = torch.arange(B, device=dev).repeat(2)
        both = self.render(verts[twice], faces, fields[twice], normals[twice], app.index(twice), torch.cat((cams, mv)),
                           bg[twice], {k: v[twice] for k, v in lights.items()}, frame[twice])
        a, b = ({k: v[:B] for k, v in both.items()}, {k: v[B:] for k, v in both.items()})
        out = {
            "image": alb.to_srgb(a["rgb_in"]) * 2 - 1,
            "camera": cams, "mv_camera": mv,
            "sh": lights["in"], "target_sh": lights["out"],
            "sh_gray": sh.to_gray(lights["in"]), "target_sh_gray": sh.to_gray(lights["out"]),
            "light_frame": frame,
            "identity": ident.coeffs, "attributes": ident.attributes, "expression": expr,
        }
        for prefix, r in (("", a), ("mv_", b)):
            for key in ("albedo", "normal", "depth", "mask"):
                out[prefix + key] = r[key]
            out[prefix + "shading"], out[prefix + "rgb"] = r["shading_in"], r["rgb_in"]
            out[prefix + "target_shading"], out[prefix + "target_rgb"] = r["shading_out"], r["rgb_out"]
        return out

    def sequence(self, length: int, generator: torch.Generator | None = None, *, fps: float = 25.0,
                 flow_reference: int | None = None) -> dict[str, torch.Tensor]:
        """One person over ``length`` frames: head motion, talking, blinking, drifting light.

        The camera is fixed in the room and the head turns (yaw within about +-30 degrees, pitch
        +-12, roll +-5, smooth), so each frame's EG3D camera is the room camera seen from the head;
        the shoulders turn 30 % as much as the head. The light (fixed in the room, i.e. in every
        frame's camera frame) slowly rotates and changes strength. A second target light, fixed
        for the clip, gives ``target_*`` maps.

        Returns a dict like :meth:`sample` with a leading time dimension ``T`` in place of ``B``
        (no ``mv_`` entries). With ``flow_reference`` = r, also the exact backward flow
        (:meth:`flow`) of every frame to the previous one, ``flow_previous`` and
        ``valid_previous`` (frame 0: to itself), and to frame r, ``flow_reference`` and
        ``valid_reference``. The flow costs no random draws, so the frames are the same either way.
        """
        g = generator
        T = length
        dev = self.device
        m = self.model
        ident, app, _ = self._person(1, g)
        expr = m.expression_sequence(T, g, fps=fps)
        t = torch.arange(T, device=dev, dtype=torch.float32) / fps

        def wander(amp: float, freq: float) -> torch.Tensor:
            f = freq * (0.5 + torch.rand(3, generator=g, device=dev))
            ph = 2 * math.pi * torch.rand(3, generator=g, device=dev)
            a = torch.rand(3, generator=g, device=dev) + 0.3
            w = (a[None] * torch.sin(2 * math.pi * f[None] * t[:, None] + ph[None])).sum(-1) / a.sum()
            return amp * w

        yaw = wander(math.radians(30), 0.15) + math.radians(10) * (2 * torch.rand((), generator=g, device=dev) - 1)
        pitch = wander(math.radians(12), 0.2)
        roll = wander(math.radians(5), 0.15)
        radius = camera.RADIUS_EG3D + 0.05 * wander(1.0, 0.1)
        zero = torch.zeros(T, device=dev)
        cams = orbit_labels(-pitch, -yaw, radius, zero[:, None].expand(T, 3), torch.full((T,), camera.FOV_EG3D_DEG, device=dev), -roll)
        body = euler_to_matrix(-0.7 * pitch * 0.5, -0.7 * yaw, -0.7 * roll).to(dev)
        ident_t = Identity(ident.coeffs.expand(T, -1), ident.attributes.expand(T, -1))
        app_t = app.index(torch.zeros(T, dtype=torch.long, device=dev))
        verts = m.mesh(ident_t, expr, body_rotation=body)
        fields = alb.vertex_fields(m, app_t)
        verts, faces, fields, normals = self.dress(verts, fields, app_t)
        # light: one random light, slowly rotating about the vertical and breathing in strength
        base = sample_lights(1, g, dev, coloured=self.coloured)
        target = sample_lights(1, g, dev, coloured=self.coloured)
        spin = wander(math.radians(20), 0.05)
        R = euler_to_matrix(zero, zero, spin).to(dev)  # about the DPR z axis (image up)
        light = sh.rotate(base.expand(T, *base.shape[1:]), R) * (1 + 0.1 * wander(1.0, 0.1)).view(T, *([1] * (base.dim() - 1)))
        lights = {"in": light, "out": target.expand(T, *target.shape[1:])}
        frame = sh.world_to_dpr(camera.split_label(cams)[0])
        bg = alb.sample_background(1, self.resolution, self.resolution, g, dev).expand(T, -1, -1, -1)
        r = self.render(verts, faces, fields, normals, app_t, cams, bg, lights, frame, keep_fragments=flow_reference is not None)
        flows = {}
        if flow_reference is not None:
            previous = (torch.arange(T, device=dev) - 1).clamp(min=0)
            flows["flow_previous"], flows["valid_previous"] = self.flow(r, verts, faces, cams, previous)
            reference = torch.full((T,), int(flow_reference), device=dev, dtype=torch.long)
            flows["flow_reference"], flows["valid_reference"] = self.flow(r, verts, faces, cams, reference)
        return {
            **flows,
            "image": alb.to_srgb(r["rgb_in"]) * 2 - 1,
            "camera": cams,
            "sh": lights["in"], "target_sh": lights["out"],
            "sh_gray": sh.to_gray(lights["in"]), "target_sh_gray": sh.to_gray(lights["out"]),
            "light_frame": frame,
            "albedo": r["albedo"], "normal": r["normal"], "depth": r["depth"], "mask": r["mask"],
            "shading": r["shading_in"], "rgb": r["rgb_in"],
            "target_shading": r["shading_out"], "target_rgb": r["rgb_out"],
            "identity": ident_t.coeffs, "attributes": ident_t.attributes, "expression": expr,
        }
