"""Head mesh from the albedo tri-plane: density grid, marching cubes, cleaning, vertex colours, files.

Pipeline (`extract_head_mesh`): aligned crop -> `Relighter.encode` -> albedo tri-plane ->
`density_grid` (raw density on a regular grid over the tri-plane box) -> the grid's border is
closed -> marching cubes (PyMCubes) at `threshold` -> the largest connected component, outward
normals, optional decimation (trimesh) -> vertex colours from the albedo features -> `write_mesh`.

Frame and units: head space (EG3D's world, ARCHITECTURE.md 2): the tri-plane box
[-box_warp/2, box_warp/2]^3, +y up, +x the subject's left, the face looking along +z, the head
pivot at the origin. One head unit is `metres_per_unit` metres (about 0.41 m for an average adult,
:meth:`relight_core.track.canonical.CanonicalFace.metres_per_unit`); the tracked head anchor uses
the same frame, so the mesh placed under it needs no other transform. (glTF's axes are the same,
+y up and +z forward, so a GLB imports upright.)

Density and threshold, as EG3D's shape extraction (`gen_samples.py --shapes`) chooses them: the
decoder's *raw* density output (before the renderer's `softplus(sigma - 1)`) sampled on an N^3
grid whose end samples lie on the faces of the box; a border of 30 N / 256 samples on every side
forced to -1000, which cuts away the artefacts of the tri-plane's edges and closes the surface;
marching cubes at level 10. There the rendered density is softplus(9) = 9 per head unit, enough
that a ray has started to be absorbed (9 % per 0.01 unit), so the level is the outer edge of the
visible skin. `EG3D_LEVEL` and `EG3D_BORDER` are those defaults. With the shipped small weights
the crown rises into the artefacts at the top of the box (above y = 0.4) and the border cuts it
flat at y = 0.383; a smaller `border` keeps more of it, with the artefacts.

Vertex colours: the renderer's albedo pass (`TriplaneDecoders.albedo` features 0-2,
composited along a short ray into the surface, `albedo_colours`), stored as 8-bit display sRGB
(for weights with ``output_colour == "linear"`` encoded with the sRGB curve, as `to_display` does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

EG3D_LEVEL = 10.0
"""Marching-cubes level on the raw density (EG3D's `gen_samples.py`)."""
EG3D_BORDER = 30 / 256
"""Fraction of the grid side closed off at each face of the box (EG3D: 30 samples at 256^3)."""
COLOUR_RAY = (-0.02, 0.1, 12)
"""Vertex-colour rays (`albedo_colours`): from 0.02 head units outside the surface to 0.1 inside,
12 samples 0.011 apart (the renderer's are about 0.016 apart; 25 samples change colours by at
most 4/255)."""
MESH_FORMATS = (".ply", ".obj", ".glb")
"""File types `write_mesh` writes, chosen by extension."""

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` (grid points) after each chunk; raising from it cancels."""


def default_chunk(device: torch.device) -> int:
    """Grid points evaluated at once: on a GPU 4 M (about 1 GB of temporaries with the 64-wide
    decoder); on a CPU 32 k per thread, so each thread's temporaries stay near its cache (with one
    thread 2x faster than 1 M at once; fewer, larger chunks keep several threads busy)."""
    return 2**22 if device.type == "cuda" else 2**15 * max(1, torch.get_num_threads())


# ------------------------------------------------------------------------------------------
# density grid
# ------------------------------------------------------------------------------------------


def grid_axis(resolution: int, box_warp: float, device: torch.device | str = "cpu") -> Tensor:
    """The grid's sample positions along one axis: [R] head units, the ends on the box faces."""
    return torch.linspace(-box_warp / 2, box_warp / 2, resolution, device=device)


def _affine_parts(layer: nn.Module, width: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """An affine layer as (weight [width, out], bias [out]), read through its forward pass."""
    bias = layer(torch.zeros(1, width, dtype=like.dtype, device=like.device))
    weight = layer(torch.eye(width, dtype=like.dtype, device=like.device)) - bias
    return weight, bias[0]


def _plane_lookups(planes: Tensor, axis: Tensor, box_warp: float) -> Tensor:
    """Each plane sampled on the grid's 2D lattice: planes [3C, P, P] -> [3, R, R, C].

    Entry [k, a, b] is plane k at (u, v) = (axis[a], axis[b]), with the bilinear lookup of
    `sample_triplane` (the same coordinates, so the same values).
    """
    normalized = axis * (2.0 / box_warp)
    u, v = torch.meshgrid(normalized, normalized, indexing="ij")
    lattice = torch.stack([u, v], dim=-1)[None].expand(3, -1, -1, -1)
    per_plane = planes.reshape(3, planes.shape[0] // 3, *planes.shape[1:])
    sampled = F.grid_sample(per_plane, lattice, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled.permute(0, 2, 3, 1)


@torch.no_grad()
def density_grid(model, albedo_planes: Tensor, resolution: int = 256, chunk: int | None = None,
                 progress: Progress | None = None) -> Tensor:
    """Raw density of the albedo tri-plane on a regular grid over the tri-plane box.

    Args:
        model: a `Relighter` (its config's `box_warp` and `renderer.decoders` are used).
        albedo_planes: [1, 3C, P, P] or [3C, P, P], from `Relighter.encode`.
        resolution: R, samples per axis; the samples are `grid_axis(R, box_warp)`.
        chunk: most grid points evaluated at once (whole rows along z; default `default_chunk`).
        progress: see `Progress`.
    Returns:
        [R, R, R] float32 on the planes' device; entry [i, j, k] is the decoder's raw sigma (the
        renderer's density is softplus(sigma - 1)) at head-space (axis[i], axis[j], axis[k]).

    Why it is fast: the decoder's first layer is affine and the tri-plane feature is the mean of
    three lookups that each depend on two coordinates, so the three planes are looked up and
    projected to the hidden width once on R^2 lattices; per grid point only three hidden vectors
    are added, then softplus and one dot product give sigma. Memory: the [R, R, R] result, the
    [3, R, R, C] lookups and about 2 x `chunk` x hidden floats of temporaries.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be a positive number of grid points, got {chunk}")
    planes = albedo_planes[0] if albedo_planes.ndim == 4 else albedo_planes
    if planes.ndim != 3 or planes.shape[0] != model.config.triplane_channels:
        raise ValueError(f"albedo_planes must be [1, {model.config.triplane_channels}, P, P] for config "
                         f"{model.config.name!r}, got {list(albedo_planes.shape)}")
    planes = planes.float()
    decoders, box = model.renderer.decoders, model.config.box_warp
    axis = grid_axis(resolution, box, planes.device)
    lookups = _plane_lookups(planes, axis, box)  # [3, R, R, C]
    channels = lookups.shape[-1]
    first_weight, first_bias = _affine_parts(decoders.albedo_hidden, channels, planes)
    out_weight, out_bias = _affine_parts(decoders.albedo_out, first_weight.shape[1], planes)
    projected = (lookups @ first_weight) / 3  # [3, R, R, H]: each plane's share of the hidden layer
    hidden_xy = projected[0] + first_bias  # indexed [x, y]
    hidden_xz = projected[1] + projected[2].transpose(0, 1)  # plane 1 is (x, z), plane 2 (z, x)
    sigma_weight, sigma_bias = out_weight[:, 0], out_bias[0]

    grid = torch.empty((resolution,) * 3, dtype=torch.float32, device=planes.device)
    rows_xy, grid_rows = hidden_xy.reshape(resolution**2, -1), grid.view(resolution**2, resolution)
    rows = max(1, (chunk or default_chunk(planes.device)) // resolution)  # (x, y) rows of R points in z
    for start in range(0, resolution**2, rows):
        stop = min(start + rows, resolution**2)
        x_index = torch.arange(start, stop, device=planes.device) // resolution
        hidden = hidden_xz[x_index]  # [n, R(z), H]
        hidden += rows_xy[start:stop, None, :]
        grid_rows[start:stop] = F.softplus(hidden) @ sigma_weight + sigma_bias
        if progress is not None:
            progress(stop * resolution, resolution**3)
    return grid


@torch.no_grad()
def albedo_colours(model, albedo_planes: Tensor, points: np.ndarray, normals: np.ndarray,
                   chunk: int | None = None) -> np.ndarray:
    """Display-sRGB albedo of surface points, as the renderer would show it looking straight at them.

    Args:
        points, normals: [N, 3] head-space surface points and their outward unit normals.
    Returns:
        [N, 3] uint8 display sRGB.

    Each point gets a short ray along its inward normal (`COLOUR_RAY`), composited exactly as the
    renderer composites its albedo pass (`composite_weights`, `midpoint_sum`), normalized by the
    ray's opacity. Why not the features at the point itself: the marching-cubes level sits where
    the density has only started to absorb light; the visible colour comes from a little deeper.
    """
    from .models.relighter import to_display
    from .models.renderer import composite_weights, midpoint_sum, sample_triplane

    planes = (albedo_planes if albedo_planes.ndim == 4 else albedo_planes[None]).float()
    decoders, box, device = model.renderer.decoders, model.config.box_warp, planes.device
    depths = torch.linspace(*COLOUR_RAY, device=device)  # along the inward normal; negative is outside
    if chunk is None:  # rays at once; on a CPU about 2 k per thread keeps the samples near the cache
        chunk = 2**16 if device.type == "cuda" else 2**11 * max(1, torch.get_num_threads())
    out = np.empty((len(points), 3), dtype=np.uint8)
    for start in range(0, len(points), chunk):
        point = torch.tensor(points[start:start + chunk], dtype=torch.float32, device=device)
        inward = -torch.tensor(normals[start:start + chunk], dtype=torch.float32, device=device)
        samples = point[:, None] + depths[None, :, None] * inward[:, None]  # [B, S, 3]
        sigma, features = decoders.albedo(sample_triplane(planes, samples.reshape(1, -1, 3), box))
        count = len(point)
        weights, _ = composite_weights(sigma.reshape(count, -1, 1), depths.expand(count, -1)[..., None])
        albedo = midpoint_sum(weights, features.reshape(count, -1, features.shape[-1])[..., :3])
        albedo = albedo / weights.sum(dim=-2).clamp_min(1e-6)
        # The renderer's albedo image is features * 2 - 1, shown through to_display.
        display = to_display(albedo * 2 - 1, model.config.output_colour)
        out[start:start + chunk] = (display * 255).round().byte().cpu().numpy()
    return out


# ------------------------------------------------------------------------------------------
# surface
# ------------------------------------------------------------------------------------------


def close_border(grid: np.ndarray, border: float, threshold: float) -> np.ndarray:
    """A copy of `grid` [R, R, R] with `border` of each side (at least one voxel) forced far below
    `threshold`: cuts the box's edge artefacts away and makes marching cubes close the surface."""
    resolution = grid.shape[0]
    pad = max(1, int(border * resolution))
    if 2 * pad >= resolution:
        raise ValueError(f"border {border} leaves no grid at resolution {resolution}")
    closed = np.full_like(grid, threshold - 1000.0)
    inner = slice(pad, resolution - pad)
    closed[inner, inner, inner] = grid[inner, inner, inner]
    return closed


def surface_from_grid(grid: np.ndarray, threshold: float, box_warp: float):
    """Marching cubes of a closed grid -> trimesh.Trimesh in head units (unprocessed)."""
    import mcubes
    import trimesh

    vertices, faces = mcubes.marching_cubes(grid, float(threshold))
    if len(faces) == 0:
        raise ValueError(
            f"no surface: the density never exceeds the threshold {threshold:g} inside the box "
            f"(highest {float(grid.max()):.3g}); check that the crop shows a face, or lower the threshold"
        )
    # marching cubes works in voxel indices; sample i sits at -box/2 + i * box / (R - 1)
    vertices = vertices * (box_warp / (grid.shape[0] - 1)) - box_warp / 2
    return trimesh.Trimesh(vertices, faces.astype(np.int64), process=False)


def largest_component(mesh):
    """The connected component (by shared edges) with the most faces, as a new mesh."""
    import trimesh

    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    keep = labels == np.bincount(labels).argmax()
    part = mesh.copy()
    part.update_faces(keep)
    part.remove_unreferenced_vertices()
    return part


def decimate(mesh, face_count: int):
    """Quadric edge-collapse decimation to about `face_count` faces (needs `fast-simplification`)."""
    if face_count < 4:
        raise ValueError(f"decimate: a closed mesh needs at least 4 faces, got {face_count}")
    if face_count >= len(mesh.faces):
        return mesh
    try:
        import fast_simplification  # noqa: F401  (trimesh's decimation backend)
    except ImportError:
        raise ValueError("decimation needs the fast-simplification package: pip install fast-simplification") from None
    return mesh.simplify_quadric_decimation(face_count=int(face_count))


def finish_mesh(model, albedo_planes: Tensor, surface, decimate_to: int | None = None):
    """A raw marching-cubes surface -> the largest component, optionally decimated, with outward
    normals and vertex colours (`albedo_colours`) and the extraction's settings in `metadata`."""
    import trimesh

    mesh = largest_component(surface)
    if decimate_to is not None:
        mesh = decimate(mesh, decimate_to)
    trimesh.repair.fix_normals(mesh)  # consistent winding, then outward (positive volume)
    mesh.visual.vertex_colors = albedo_colours(model, albedo_planes, mesh.vertices, mesh.vertex_normals)
    mesh.metadata.update(units="head", box_warp=model.config.box_warp, colour="display sRGB")
    return mesh


def mesh_from_planes(model, albedo_planes: Tensor, resolution: int = 256, threshold: float = EG3D_LEVEL,
                     decimate_to: int | None = None, *, border: float = EG3D_BORDER,
                     progress: Progress | None = None):
    """Albedo tri-plane [1, 3C, P, P] -> cleaned, coloured trimesh.Trimesh in head units.

    Args: as `extract_head_mesh` (`decimate_to` is its `decimate`).
    """
    grid = density_grid(model, albedo_planes, resolution, progress=progress).cpu().numpy()
    surface = surface_from_grid(close_border(grid, border, threshold), threshold, model.config.box_warp)
    del grid
    mesh = finish_mesh(model, albedo_planes, surface, decimate_to)
    mesh.metadata.update(resolution=resolution, threshold=float(threshold), border=float(border))
    return mesh


def crop_tensor(crop: np.ndarray, size: int, device: torch.device | str) -> Tensor:
    """An aligned crop [S, S, 3] uint8 (display sRGB) -> the network input [1, 3, S, S] in [-1, 1]."""
    crop = np.asarray(crop)
    if crop.dtype != np.uint8 or crop.shape != (size, size, 3):
        raise ValueError(f"the crop must be a [{size}, {size}, 3] uint8 RGB image (the EG3D-aligned crop at the "
                         "model's image_size, relight_core.track.align.align_crop), "
                         f"got {crop.dtype} {list(crop.shape)}")
    return torch.from_numpy(crop).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


@torch.no_grad()
def extract_head_mesh(model, image_uint8_crop: np.ndarray, resolution: int = 256, threshold: float = EG3D_LEVEL,
                      decimate: int | None = None, *, border: float = EG3D_BORDER,
                      metres_per_unit: float | None = None, progress: Progress | None = None):
    """The head in an aligned crop as a closed, coloured triangle mesh.

    Args:
        model: a `Relighter` (eval mode); runs on its device.
        image_uint8_crop: [S, S, 3] uint8 display sRGB, the EG3D-aligned crop at
            `model.config.image_size` (`relight_core.track.align.align_crop`).
        resolution: grid samples per axis (256; 512 halves the voxel size for 8x the grid work).
        threshold: marching-cubes level on the raw density (EG3D's 10; see the module docstring).
        decimate: target face count, or None to keep every face.
        border: fraction of the box closed off at each face (EG3D's 30/256).
        metres_per_unit: metres per head unit, when the head's scale is known; kept in
            ``mesh.metadata["metres_per_unit"]`` (vertices stay in head units).
        progress: called per grid chunk (`Progress`); raise from it to cancel.
    Returns:
        trimesh.Trimesh: one connected, closed component with outward normals (watertight;
        decimation can leave a few edges shared by four faces, no holes), vertices [V, 3]
        float64 in head space, ``visual.vertex_colors`` [V, 4] uint8 display sRGB.
    """
    model_device = next(model.parameters()).device
    planes = model.encode(crop_tensor(image_uint8_crop, model.config.image_size, model_device))
    mesh = mesh_from_planes(model, planes, resolution, threshold, decimate, border=border, progress=progress)
    if metres_per_unit is not None:
        mesh.metadata["metres_per_unit"] = float(metres_per_unit)
    return mesh


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------


def write_mesh(mesh, path: str | Path) -> Path:
    """Write `mesh` as PLY (binary), OBJ or GLB, chosen by the extension; atomically (a temporary
    file in the same folder, renamed over `path` once complete). Returns the path.

    Colours: PLY and OBJ have no colour-space rule and carry the display-sRGB vertex colours as
    they are (Blender's PLY importer reads colours as sRGB by default); glTF defines vertex
    colours as linear, so GLB gets them decoded.
    """
    from .io import atomic_path, srgb_to_linear

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in MESH_FORMATS:
        raise ValueError(f"cannot write a mesh as {path.name!r}: use one of {', '.join(MESH_FORMATS)}")
    if ext == ".glb":
        mesh = mesh.copy()
        colours = mesh.visual.vertex_colors.copy()
        colours[:, :3] = (srgb_to_linear(colours[:, :3] / 255.0) * 255).round().astype(np.uint8)
        mesh.visual.vertex_colors = colours
        mesh.metadata["colour"] = "linear"  # GLB keeps the metadata (as glTF extras)
    data = mesh.export(file_type=ext[1:])
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ------------------------------------------------------------------------------------------
# benchmark
# ------------------------------------------------------------------------------------------


@torch.no_grad()
def mesh_benchmark(model, albedo_planes: Tensor, resolutions=(256, 512), repeats: int = 3) -> list[dict]:
    """Time mesh extraction from a tri-plane, stage by stage, at each resolution.

    Stages: "grid_s" (`density_grid` on the planes' device, synchronized), "marching_cubes_s"
    (copy to the CPU, border, PyMCubes, conversion to head units), "finish_s" (`finish_mesh`: cleaning,
    normals, vertex colours). One untimed warm-up at the smallest resolution, then the median of
    `repeats` runs; also the final mesh's face count.
    """
    device, box = albedo_planes.device, model.config.box_warp

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return value, time.perf_counter() - start

    density_grid(model, albedo_planes, min(resolutions))
    results = []
    for resolution in resolutions:
        times: dict[str, list[float]] = {"grid_s": [], "marching_cubes_s": [], "finish_s": []}
        for _ in range(repeats):
            grid, seconds = timed(lambda: density_grid(model, albedo_planes, resolution))
            times["grid_s"].append(seconds)
            surface, seconds = timed(lambda: surface_from_grid(
                close_border(grid.cpu().numpy(), EG3D_BORDER, EG3D_LEVEL), EG3D_LEVEL, box))
            times["marching_cubes_s"].append(seconds)
            del grid
            mesh, seconds = timed(lambda: finish_mesh(model, albedo_planes, surface))
            times["finish_s"].append(seconds)
        results.append({"resolution": resolution, "faces": len(mesh.faces),
                        **{name: statistics.median(values) for name, values in times.items()}})
    return results


# ------------------------------------------------------------------------------------------
# `relight mesh`
# ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, nargs="?",
                        help="a portrait (PNG, JPEG, TIFF, EXR); its face is tracked and cropped as for a plate")
    parser.add_argument("--out", type=Path, help=f"the mesh file to write ({', '.join(MESH_FORMATS)})")
    parser.add_argument("--resolution", type=int, help="grid samples per axis (default 256; 512 is twice as fine, 8x the work)")
    parser.add_argument("--threshold", type=float, default=EG3D_LEVEL,
                        help="raw density level of the surface (default: EG3D's 10)")
    parser.add_argument("--decimate", type=int, metavar="N", help="simplify to about N faces")
    parser.add_argument("--metres", action="store_true", help="write vertices in metres (default: head units)")
    parser.add_argument("--interpupillary-m", type=float, default=0.063,
                        help="the subject's interpupillary distance in metres, for the metric scale (default 0.063)")
    parser.add_argument("--weights", type=Path, help="a Relight checkpoint (default: the shipped small weights)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when there is a GPU)")
    parser.add_argument("--benchmark", action="store_true", help="instead, time the extraction stages at 256^3 and "
                        "512^3 (or --resolution) on IMAGE or the built-in portrait; writes nothing")


def _load(args: argparse.Namespace):
    from .checkpoints import default_weights_status, load_default_model, load_model

    if args.weights:
        return load_model(args.weights, args.device), f"weights: {args.weights}"
    return load_default_model(args.device)[0], f"weights: {default_weights_status()}"


def track_crop(path: Path, size: int, interpupillary_m: float = 0.063) -> tuple[np.ndarray, float]:
    """A portrait file (a video: its first frame) -> (its EG3D crop [size, size, 3] uint8, metres per
    head unit), through the plate's tracking path (MediaPipe landmarks -> 5 points -> align_crop)."""
    from .io import colour, open_plate
    from .track.align import align_crop
    from .track.tracker import Tracker, TrackerConfig

    frame = next(iter(open_plate(path)))
    stored = np.asarray(frame.source_pixels)
    if stored.dtype == np.uint8 and frame.colourspace == colour.SRGB:
        display = np.ascontiguousarray(colour.split_channels(stored)[0])
    else:
        display = colour.encode(frame.rgb, None, colour.SRGB, np.uint8)
    with Tracker(TrackerConfig(static=True, smoothing=False, interpupillary_m=interpupillary_m)) as tracker:
        track = tracker.track(display, 0)
    if not track.found:
        raise ValueError(f"{path}: no usable face ({track.reason}); "
                         "use a portrait in which one face is clearly visible")
    return align_crop(display, track.five_points, output_size=size), track.metres_per_unit


def _run_benchmark(args: argparse.Namespace, model, status: str) -> int:
    from .eval.timing import device_name

    size = model.config.image_size
    if args.image is None:
        from skimage import data

        from .demo import ASTRONAUT_LANDMARKS
        from .track.align import align_crop

        crop = align_crop(data.astronaut(), ASTRONAUT_LANDMARKS, output_size=size)
    else:
        crop = track_crop(args.image, size)[0]
    planes = model.encode(crop_tensor(crop, size, args.device))
    resolutions = (args.resolution,) if args.resolution else (256, 512)
    print(f"relight mesh --benchmark: config {model.config.name}, {device_name(torch.device(args.device))}; {status}")
    for row in mesh_benchmark(model, planes, resolutions):
        print(f"{row['resolution']}^3: density grid {row['grid_s']:.3f} s, "
              f"marching cubes {row['marching_cubes_s']:.3f} s, clean + colours {row['finish_s']:.3f} s; "
              f"{row['faces']} faces", flush=True)
    return 0


def _check_request(args: argparse.Namespace) -> None:
    """Fail on bad arguments before the network loads."""
    if args.resolution is not None and args.resolution < 16:
        raise ValueError(f"--resolution {args.resolution}: use at least 16 samples per axis (256 is the default)")
    if args.benchmark:
        return
    if args.image is None or args.out is None:
        raise ValueError("give a portrait and --out FILE (or --benchmark)")
    if args.out.suffix.lower() not in MESH_FORMATS:
        raise ValueError(f"--out {args.out}: use one of {', '.join(MESH_FORMATS)}")
    if not args.image.is_file():
        raise FileNotFoundError(f"{args.image}: no such image file")
    if args.decimate is not None and args.decimate < 4:
        raise ValueError(f"--decimate {args.decimate}: a closed mesh needs at least 4 faces")


@torch.no_grad()
def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    _check_request(args)
    model, status = _load(args)
    if args.benchmark:
        return _run_benchmark(args, model, status)
    crop, metres_per_unit = track_crop(args.image, model.config.image_size, args.interpupillary_m)
    with tqdm(desc="relight mesh: density grid", unit="pt", unit_scale=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        mesh = extract_head_mesh(model, crop, args.resolution or 256, args.threshold, args.decimate,
                                 metres_per_unit=metres_per_unit, progress=progress)
    if args.metres:
        mesh.apply_scale(metres_per_unit)
        mesh.metadata["units"] = "metres"
    write_mesh(mesh, args.out)
    units = "metres" if args.metres else f"head units (1 unit = {metres_per_unit:.3f} m)"
    print(f"wrote {args.out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, in {units}")
    print(status, file=sys.stderr)
    return 0
