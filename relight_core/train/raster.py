"""A small batched triangle rasterizer in pure torch (CPU or CUDA), for the synthetic heads.

It is not differentiable and needs no compiled code. Every image of a batch has its own vertex
positions and camera; all share one triangle list.

Algorithm (:func:`rasterize`)
-----------------------------
1. Vertices go to OpenCV camera space (``x_cam = R^T (x - c)``) and to pixel coordinates with the
   normalized EG3D intrinsics: ``x_pix = u W - 0.5``, ``y_pix = v H - 0.5`` (pixel centres at
   integers, :mod:`relight_core.camera`'s convention).
2. Triangles facing away from the camera (optional), behind the near plane, degenerate or outside
   the image are dropped. The others enumerate the pixel centres of their bounding boxes as
   (triangle, pixel) candidate pairs, processed in chunks of bounded size.
3. A candidate whose pixel centre lies inside the triangle (edge functions, inclusive) gets its
   camera-space depth by perspective-correct interpolation (``1/z`` is linear on the screen).
4. The z-buffer is one ``scatter_reduce(amin)`` of an int64 key per pair: the float32 bits of the
   depth in the high word and the triangle index in the low word, so the nearest triangle wins and
   ties go to the lower index: the result is deterministic on CPU and CUDA.
5. Barycentrics are recomputed once per covered pixel for its winning triangle and made
   perspective-correct (``b_i / z_i`` normalized).

Attributes are interpolated with :func:`interpolate`; :func:`shade` evaluates SH light on a
rendered normal map; :func:`render_head` wraps everything for the synthetic data: albedo, normal,
depth, mask, position, shading and RGB under SH light.

Measured on a 2-core CPU (torch 2.13, a 6165-vertex, 12050-triangle head): 11 ms for one head at
128 x 128, 160 ms for 8 heads at 256 x 256 (rasterization about two thirds of it).

Outputs of :func:`render_head` (all channels-last, ``[B, H, W, C]``):

* ``mask`` ``[B, H, W, 1]``: 1 where a triangle covers the pixel centre.
* ``depth`` ``[B, H, W, 1]``: distance from the camera centre to the surface along the pixel's
  ray (EG3D units), the renderer's definition of depth (PAPER_MODEL.md 2.9); 0 on background.
* ``normal`` ``[B, H, W, 3]``: unit normal in **world (head) space**, interpolated from vertex
  normals (smooth shading); 0 on background. :func:`normals_to_camera` converts to OpenCV camera
  axes, ``sh.world_to_dpr(cam2world) @ n`` to the DPR frame.
* ``position`` ``[B, H, W, 3]``: the world surface point (0 on background).
* ``albedo`` ``[B, H, W, 3]``: linear reflectance; on background the background albedo.
* ``shading`` ``[B, H, W, 3]``: ``sh.shading(M n, coeffs)`` with ``M`` the light frame (default:
  the DPR frame of the rendering camera), i.e. ``E / pi``; grey light gives three equal channels.
* ``rgb`` ``[B, H, W, 3]``: exactly ``albedo * shading`` (linear, not clipped).

Background pixels are a backdrop facing the camera: their shading is the SH evaluated for the
normal pointing at the camera (``(0, -1, 0)`` in the DPR frame of the render camera, whatever the
light frame), clamped below at ``background_floor`` times the ambient (DC) term so that SH ringing
never makes a backdrop black or negative. Their RGB is again albedo x shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import sh
from ..camera import split_label

__all__ = [
    "Fragments",
    "project",
    "rasterize",
    "interpolate",
    "vertex_normals",
    "normals_to_camera",
    "ambient_shading",
    "shade",
    "render_head",
]

_NEAR = 1e-3
_MAX_PAIRS = 1 << 24  # candidate (triangle, pixel) pairs per chunk (~16.8 M; ~1 GB of temporaries)


@dataclass
class Fragments:
    """Result of :func:`rasterize`.

    Attributes:
        face_index: ``[B, H, W]`` int64 index of the visible triangle, -1 on background.
        bary: ``[B, H, W, 3]`` perspective-correct barycentric weights of its 3 corners (0 on
            background).
        z: ``[B, H, W]`` camera-space depth (along the optical axis) of the surface, 0 on background.
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    z: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``[B, H, W]`` bool coverage."""
        return self.face_index >= 0


def _check_inputs(vertices: torch.Tensor, faces: torch.Tensor, cameras: torch.Tensor) -> None:
    if not isinstance(vertices, torch.Tensor) or vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices: expected a [B, V, 3] tensor, got {getattr(vertices, 'shape', type(vertices))}")
    if not isinstance(faces, torch.Tensor) or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces: expected a [F, 3] integer tensor, got {getattr(faces, 'shape', type(faces))}")
    if faces.dtype.is_floating_point:
        raise TypeError(f"faces: expected an integer tensor, got {faces.dtype}")
    if not isinstance(cameras, torch.Tensor) or cameras.dim() != 2 or cameras.shape[-1] != 25:
        raise ValueError(f"cameras: expected [B, 25] EG3D camera labels, got {getattr(cameras, 'shape', type(cameras))}")
    if cameras.shape[0] != vertices.shape[0]:
        raise ValueError(f"cameras: expected one camera per mesh ({vertices.shape[0]}), got {cameras.shape[0]}")


def project(vertices: torch.Tensor, cameras: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World points to camera space and pixel coordinates.

    Args:
        vertices: ``[B, V, 3]`` world points.
        cameras: ``[B, 25]`` EG3D labels (normalized intrinsics).
        height, width: image size in pixels.

    Returns:
        ``(x_cam [B, V, 3], xy_pix [B, V, 2])``: OpenCV camera coordinates and pixel coordinates
        with pixel centres at integers (x right, y down).
    """
    c2w, K = split_label(cameras.to(vertices.dtype))
    R, c = c2w[:, :3, :3], c2w[:, :3, 3]
    x_cam = (vertices - c[:, None, :]) @ R  # rows: R^T (x - c)
    z = x_cam[..., 2:3]
    zs = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    uv = (x_cam @ K.transpose(-1, -2))[..., :2] / zs
    scale = torch.stack((uv.new_full((), width), uv.new_full((), height)))
    return x_cam, uv * scale - 0.5


def _edge(a: torch.Tensor, b: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    # twice the signed area of (a, b, p): positive when p is to the left of a->b in a y-up frame
    return (b[..., 0] - a[..., 0]) * (py - a[..., 1]) - (b[..., 1] - a[..., 1]) * (px - a[..., 0])


def rasterize(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: torch.Tensor,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = True,
) -> Fragments:
    """Rasterize a batch of meshes (shared topology) into ``height x width`` images.

    Args:
        vertices: ``[B, V, 3]`` float world positions.
        faces: ``[F, 3]`` int triangle corner indices. Front faces are counter-clockwise seen from
            outside (right-hand normal ``(v1 - v0) x (v2 - v0)`` points out).
        cameras: ``[B, 25]`` EG3D camera labels.
        height, width: image size.
        cull_backfaces: drop triangles whose front side faces away from the camera.

    Returns:
        :class:`Fragments`.
    """
    _check_inputs(vertices, faces, cameras)
    if height < 1 or width < 1:
        raise ValueError(f"height, width: expected a positive image size, got {height}x{width}")
    B = vertices.shape[0]
    dev = vertices.device
    verts = vertices.float()
    faces = faces.to(device=dev, dtype=torch.long)
    x_cam, xy = project(verts, cameras.float().to(dev), height, width)

    v_cam = x_cam[:, faces]  # [B, F, 3, 3]
    p = xy[:, faces]  # [B, F, 3, 2]
    z = v_cam[..., 2]  # [B, F, 3]
    area = _edge(p[..., 0, :], p[..., 1, :], p[..., 2, 0], p[..., 2, 1])  # [B, F]
    keep = (z > _NEAR).all(-1) & (area.abs() > 1e-12)
    if cull_backfaces:
        n = torch.cross(v_cam[..., 1, :] - v_cam[..., 0, :], v_cam[..., 2, :] - v_cam[..., 0, :], dim=-1)
        keep &= (n * v_cam[..., 0, :]).sum(-1) < 0
    lo = p.amin(dim=2)
    hi = p.amax(dim=2)
    x0 = torch.ceil(lo[..., 0]).clamp(min=0)
    y0 = torch.ceil(lo[..., 1]).clamp(min=0)
    x1 = torch.floor(hi[..., 0]).clamp(max=width - 1)
    y1 = torch.floor(hi[..., 1]).clamp(max=height - 1)
    keep &= (x1 >= x0) & (y1 >= y0)

    bi, fi = torch.nonzero(keep, as_tuple=True)
    bw = (x1 - x0 + 1)[bi, fi].long()
    bh = (y1 - y0 + 1)[bi, fi].long()
    counts = bw * bh
    bx0 = x0[bi, fi].long()
    by0 = y0[bi, fi].long()
    tp = p[bi, fi]  # [T, 3, 2]
    tz = z[bi, fi]  # [T, 3]
    tarea = area[bi, fi]

    hw = height * width
    big = torch.iinfo(torch.int64).max
    zbuf = torch.full((B * hw,), big, dtype=torch.int64, device=dev)
    # chunks of triangles with a bounded number of candidate pairs
    ends = torch.cumsum(counts, 0)
    start_t = 0
    T = counts.shape[0]
    while start_t < T:
        base = ends[start_t - 1] if start_t > 0 else ends.new_zeros(())
        stop_t = int(torch.searchsorted(ends, base + _MAX_PAIRS, right=True).item())
        stop_t = max(stop_t, start_t + 1)
        sl = slice(start_t, stop_t)
        cnt = counts[sl]
        n_pairs = int(cnt.sum().item())
        if n_pairs > 0:
            local = torch.repeat_interleave(torch.arange(stop_t - start_t, device=dev), cnt)
            first = torch.cumsum(cnt, 0) - cnt
            off = torch.arange(n_pairs, device=dev) - first[local]
            w_ = bw[sl][local]
            px = bx0[sl][local] + off % w_
            py = by0[sl][local] + off // w_
            tri = tp[sl][local]  # [P, 3, 2]
            pxf, pyf = px.float(), py.float()
            ar = tarea[sl][local]
            b0 = _edge(tri[:, 1], tri[:, 2], pxf, pyf) / ar
            b1 = _edge(tri[:, 2], tri[:, 0], pxf, pyf) / ar
            b2 = 1.0 - b0 - b1
            inside = (b0 >= -1e-6) & (b1 >= -1e-6) & (b2 >= -1e-6)
            zz = tz[sl][local]
            inv = b0 / zz[:, 0] + b1 / zz[:, 1] + b2 / zz[:, 2]
            depth = 1.0 / inv.clamp(min=1e-12)
            inside &= depth > _NEAR
            bsel = bi[sl][local]
            pix = bsel * hw + py * width + px
            key = (depth.float().view(torch.int32).long() << 32) | fi[sl][local]
            zbuf.scatter_reduce_(0, pix[inside], key[inside], reduce="amin", include_self=True)
        start_t = stop_t

    covered = zbuf != big
    face_index = torch.where(covered, zbuf & 0xFFFFFFFF, torch.full_like(zbuf, -1)).view(B, height, width)
    bary = torch.zeros(B * hw, 3, device=dev)
    zimg = torch.zeros(B * hw, device=dev)
    pix = torch.nonzero(covered, as_tuple=True)[0]
    if pix.numel():
        b = pix // hw
        f = face_index.view(-1)[pix]
        rem = pix % hw
        pyf = (rem // width).float()
        pxf = (rem % width).float()
        tri = p[b, f]
        zz = z[b, f]
        ar = area[b, f]
        b0 = _edge(tri[:, 1], tri[:, 2], pxf, pyf) / ar
        b1 = _edge(tri[:, 2], tri[:, 0], pxf, pyf) / ar
        bs = torch.stack((b0, b1, 1.0 - b0 - b1), -1).clamp(min=0.0)
        w = bs / zz
        inv = w.sum(-1, keepdim=True)
        bary[pix] = w / inv
        zimg[pix] = 1.0 / inv[:, 0]
    return Fragments(face_index, bary.view(B, height, width, 3), zimg.view(B, height, width))


def interpolate(attributes: torch.Tensor, faces: torch.Tensor, frags: Fragments) -> torch.Tensor:
    """Interpolate per-vertex attributes at the pixels (0 on background).

    Args:
        attributes: ``[B, V, C]`` or ``[V, C]`` (shared by the batch).
        faces: ``[F, 3]`` the triangle list given to :func:`rasterize`.
        frags: its result.

    Returns:
        ``[B, H, W, C]``.
    """
    B, H, W = frags.face_index.shape
    a = attributes
    if a.dim() == 2:
        a = a.unsqueeze(0).expand(B, -1, -1)
    if a.dim() != 3 or a.shape[0] != B:
        raise ValueError(f"attributes: expected [B, V, C] or [V, C] with B = {B}, got {list(attributes.shape)}")
    faces = faces.to(device=a.device, dtype=torch.long)
    fidx = frags.face_index.clamp(min=0).view(B, -1)  # [B, HW]
    corners = faces[fidx]  # [B, HW, 3]
    C = a.shape[-1]
    g = torch.gather(a, 1, corners.view(B, -1, 1).expand(-1, -1, C)).view(B, H * W, 3, C)
    out = (g * frags.bary.view(B, H * W, 3, 1).to(a.dtype)).sum(2)
    out = out * frags.mask.view(B, H * W, 1).to(a.dtype)
    return out.view(B, H, W, C)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[B, V, 3]`` of ``[B, V, 3]`` vertices (CCW = outward)."""
    faces = faces.to(device=vertices.device, dtype=torch.long)
    v = vertices[:, faces]  # [B, F, 3, 3]
    fn = torch.cross(v[:, :, 1] - v[:, :, 0], v[:, :, 2] - v[:, :, 0], dim=-1)
    padded = torch.cat([fn, fn.new_zeros(fn.shape[0], 1, 3)], dim=1)  # face F: padding, adds zero
    n = padded[:, incident_faces(faces, vertices.shape[1])].sum(dim=2)
    return n / n.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def incident_faces(faces: torch.Tensor, n_vertices: int) -> torch.Tensor:
    """``[V, K]`` the faces around each vertex in face order, padded with ``F`` (K = largest valence).

    Summing over this table instead of ``index_add_`` keeps vertex normals bit-identical from run
    to run on CUDA, where ``index_add_`` adds in whatever order its atomics land.
    """
    corners = faces.reshape(-1)
    order = torch.sort(corners, stable=True).indices
    vertex = corners[order]
    counts = torch.bincount(corners, minlength=n_vertices)
    slot = torch.arange(corners.numel(), device=faces.device) - (torch.cumsum(counts, 0) - counts)[vertex]
    table = torch.full((n_vertices, int(counts.max())), faces.shape[0], dtype=torch.long, device=faces.device)
    table[vertex, slot] = order // 3
    return table


def normals_to_camera(normals: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
    """World normals ``[B, H, W, 3]`` to OpenCV camera axes (x right, y down, z forward)."""
    c2w, _ = split_label(cameras.to(normals.dtype))
    return torch.einsum("bhwi,bij->bhwj", normals, c2w[:, :3, :3])


def ambient_shading(coeffs: torch.Tensor) -> torch.Tensor:
    """Shading of the SH's DC term alone (the mean over the sphere), ``[B]`` or ``[B, 3]``."""
    return coeffs[:, 0] * (sh.LAMBERT[0] * sh.SH_CONSTANTS[0])


def _shading3(normals_dpr: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, 3]`` shading of ``[B, H, W, 3]`` DPR normals under ``[B, 9]`` or ``[B, 9, 3]``."""
    if coeffs.dim() == 2:
        s = sh.shading(normals_dpr, coeffs[:, None, None, :])
        return s.unsqueeze(-1).expand(*s.shape, 3)
    return sh.shading(normals_dpr, coeffs[:, None, None, :, :])


def shade(
    normal: torch.Tensor,
    mask: torch.Tensor,
    cameras: torch.Tensor,
    light: torch.Tensor,
    light_frame: torch.Tensor | None = None,
    background_floor: float = 0.25,
) -> torch.Tensor:
    """Shading ``[B, H, W, 3]`` of a rendered view (module docstring: surface and backdrop).

    Args:
        normal: ``[B, H, W, 3]`` unit world normals.
        mask: ``[B, H, W, 1]`` coverage in [0, 1] (the backdrop fills the rest).
        cameras: ``[B, 25]`` the rendering cameras.
        light: ``[B, 9]`` grey or ``[B, 9, 3]`` coloured SH.
        light_frame: ``[B, 3, 3]`` world -> light-frame rotation (default: the cameras' DPR frames).
        background_floor: lower clamp of the backdrop shading, as a fraction of the DC shading.
    """
    B = normal.shape[0]
    dev = normal.device
    light = light.float().to(dev)
    if light.dim() not in (2, 3) or light.shape[0] != B or light.shape[1] != 9 or (light.dim() == 3 and light.shape[2] != 3):
        raise ValueError(f"light: expected [B, 9] or [B, 9, 3] SH coefficients with B = {B}, got {list(light.shape)}")
    c2w, _ = split_label(cameras.float().to(dev))
    cam_frame = sh.world_to_dpr(c2w)
    frame = cam_frame if light_frame is None else light_frame.float().to(dev)
    fg = _shading3(torch.einsum("bij,bhwj->bhwi", frame, normal), light)
    # backdrop: the normal pointing at the render camera, expressed in the light frame
    toward = -torch.einsum("bij,bj->bi", frame, cam_frame[:, 1])  # frame @ cam_frame^T @ (0, -1, 0)
    bg = _shading3(toward[:, None, None, :], light)  # [B, 1, 1, 3]
    dc = ambient_shading(light)
    dc = dc.unsqueeze(-1).expand(B, 3) if dc.dim() == 1 else dc
    bg = torch.maximum(bg, background_floor * dc[:, None, None, :].clamp(min=0))
    return fg * mask + bg * (1 - mask)


def render_head(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: torch.Tensor,
    height: int,
    width: int,
    *,
    albedo: torch.Tensor | None = None,
    light: torch.Tensor | None = None,
    light_frame: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    background_floor: float = 0.25,
    extra: dict[str, torch.Tensor] | None = None,
    normals: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Rasterize and shade a batch of heads (see the module docstring for every output).

    Args:
        vertices: ``[B, V, 3]`` world (head-space) positions.
        faces: ``[F, 3]`` triangles.
        cameras: ``[B, 25]`` EG3D labels.
        height, width: image size.
        albedo: ``[B, V, 3]`` per-vertex linear albedo, or ``[B, H, W, 3]`` already per pixel
            (e.g. from :mod:`relight_core.train.albedo`), or None (grey 0.5).
        light: ``[B, 9]`` grey or ``[B, 9, 3]`` coloured SH (DPR convention, ``c = L / pi``), or
            None for no shading/RGB outputs.
        light_frame: ``[B, 3, 3]`` rotation taking world directions to the frame the SH is
            expressed in. Default: ``sh.world_to_dpr`` of ``cameras`` (light attached to the
            rendering camera). Pass the reference camera's frame to keep a light fixed to the head
            across views.
        background: ``[B, H, W, 3]`` background albedo (default 0.5 grey).
        background_floor: lower clamp of the backdrop shading, as a fraction of the DC shading.
        extra: more per-vertex attributes ``{name: [B or 1, V, C]}`` to interpolate (returned
            under the same names, 0 on background).
        normals: ``[B, V, 3]`` vertex normals for shading (default: :func:`vertex_normals`).

    Returns:
        dict of ``[B, H, W, C]`` float32 tensors: mask, depth, normal, position (world surface
        point), albedo, and with a light: shading, rgb; plus ``extra``; and ``frags``.
    """
    frags = rasterize(vertices, faces, cameras, height, width)
    B = vertices.shape[0]
    dev = vertices.device
    m = frags.mask.unsqueeze(-1).float()
    vn = vertex_normals(vertices.float(), faces) if normals is None else normals.float()
    # one gather for every per-vertex attribute (same values as one interpolate call each)
    attributes = [vn, vertices.float()] + [v.float().expand(B, -1, -1) for v in (extra or {}).values()]
    packed = interpolate(torch.cat(attributes, -1), faces, frags)
    normal, pos = packed[..., :3], packed[..., 3:6]
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-12) * m
    c2w, _ = split_label(cameras.float().to(dev))
    centre = c2w[:, :3, 3]
    depth = (pos - centre[:, None, None, :]).norm(dim=-1, keepdim=True) * m
    out: dict[str, torch.Tensor] = {"mask": m, "depth": depth, "normal": normal, "position": pos}

    if background is None:
        background = torch.full((B, height, width, 3), 0.5, device=dev)
    if albedo is None:
        alb = torch.full((B, height, width, 3), 0.5, device=dev)
    elif albedo.dim() == 3:
        alb = interpolate(albedo.float(), faces, frags)
    else:
        alb = albedo.float()
    out["albedo"] = alb * m + background.float() * (1 - m)

    if light is not None:
        out["shading"] = shade(normal, m, cameras, light, light_frame, background_floor)
        out["rgb"] = out["albedo"] * out["shading"]

    start = 6
    for k, v in (extra or {}).items():
        out[k] = packed[..., start:start + v.shape[-1]]
        start += v.shape[-1]
    out["frags"] = frags  # type: ignore[assignment]
    return out
