"""SH of Blender lights and worlds (add-on export -> relight_core.scene.scene_to_sh) against Cycles.

The oracle (``blender_oracle.py``, BLENDER.md 4.3-4.4) renders a tiny white diffuse sphere at the
head under the same scene. Two checks per case, per colour channel:

1. Pixels: ``|Cycles - sh.shading(n, c)| <= 3/32 * sum(E)/pi + noise``. An order-2 SH of any
   non-negative light differs from the exact clamped-cosine irradiance by at most
   ``sh.DIRECTIONAL_MAX_ERROR = 3/32`` of the total (``sum(E)/pi = c_0 / Y_0``, reached at the
   terminator of a single distant light); NOISE_PIXEL covers Cycles' Monte Carlo noise of area
   lights and worlds at these sample counts.
2. Coefficients: fitting SH bands 0..8 to the rendered sphere recovers the nine DPR coefficients
   Cycles actually produced (the even bands >= 4 that the truncation drops are fitted separately);
   they must equal ``scene_to_sh``'s to COEF_TOL of the DC term. This is the sharp test of the
   light units, falloff, cone, area and world conversions.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
import torch
from mathutils import Vector

import blender_oracle as oracle
from relight_core import scene as rscene
from relight_core import sh

HEAD = (0.3, 0.2, 1.5)
NOISE_PIXEL = 0.03  # of sum(E)/pi; Monte Carlo noise of area lights and worlds at 64-256 spp is < 0.01
COEF_TOL = 0.02  # of c_0; measured worst case 0.0095 (spot in its blend region; printed with -s)




def _aim(ob, target, off_axis_deg=0.0):
    """Point the light's -Z at ``target``, or ``off_axis_deg`` away from it."""
    d = (Vector(target) - ob.location).normalized()
    if off_axis_deg:
        u = d.cross(Vector((0, 0, 1))).normalized()
        a = math.radians(off_axis_deg)
        d = d * math.cos(a) + u * math.sin(a)
    ob.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()
    return ob



def _needs_light_setting(light, name):
    """Light exposure, normalize and temperature exist from Blender 4.5 (BLENDER.md 3.3)."""
    if not hasattr(light, name):
        pytest.skip(f"this Blender ({bpy.app.version_string}) lights have no {name!r}")

def _near(*offset):
    return tuple(h + o for h, o in zip(HEAD, offset))


def sun_small(sc):
    oracle.add_light(sc, "SUN", (0, 0, 0), energy=3.0, angle=math.radians(2)).rotation_euler = (0.6, 0.3, 0.2)


def sun_wide_coloured_exposed(sc):
    ob = oracle.add_light(sc, "SUN", (0, 0, 0), energy=1.0, angle=math.radians(90), color=(1.0, 0.8, 0.6))
    _needs_light_setting(ob.data, "exposure")
    ob.data.exposure = 1.0
    ob.rotation_euler = (-0.9, 0.4, 0.0)


def point_small(sc):
    oracle.add_light(sc, "POINT", _near(1.0, -1.5, 1.0), energy=500.0, shadow_soft_size=0.1, color=(1.0, 0.5, 0.25))


def point_large_soft_falloff(sc):
    oracle.add_light(sc, "POINT", _near(-1.2, -0.6, 0.5), energy=300.0, shadow_soft_size=0.6)


def point_sphere_unnormalized(sc):
    ob = oracle.add_light(sc, "POINT", _near(0.5, -1.0, -0.8), energy=50.0, shadow_soft_size=0.4)
    ob.data.use_soft_falloff = False
    _needs_light_setting(ob.data, "normalize")
    ob.data.normalize = False


def point_blackbody(sc):
    ob = oracle.add_light(sc, "POINT", _near(0.0, -1.5, 1.0), energy=400.0, shadow_soft_size=0.05)
    _needs_light_setting(ob.data, "use_temperature")
    ob.data.use_temperature = True
    ob.data.temperature = 3200.0


def spot_inside_cone(sc):
    ob = oracle.add_light(sc, "SPOT", _near(-1.0, -1.5, 1.2), energy=800.0, shadow_soft_size=0.05,
                spot_size=math.radians(45), spot_blend=0.15)
    _aim(ob, HEAD)


def spot_blend_region_scaled(sc):
    ob = oracle.add_light(sc, "SPOT", _near(1.5, -1.2, 0.3), energy=800.0, shadow_soft_size=0.1,
                spot_size=math.radians(60), spot_blend=0.5)
    _aim(ob, HEAD, off_axis_deg=24.0)
    ob.scale = (1.0, 1.15, 1.0)


def area_square(sc):
    _aim(oracle.add_light(sc, "AREA", _near(-1.0, -1.0, 0.5), energy=300.0, size=0.8), HEAD)


def area_rectangle_scaled_unnormalized_tilted(sc):
    ob = oracle.add_light(sc, "AREA", _near(1.0, -0.8, 0.6), energy=40.0, shape="RECTANGLE", size=1.0, size_y=0.4)
    _needs_light_setting(ob.data, "normalize")
    ob.data.normalize = False
    _aim(ob, HEAD, off_axis_deg=40.0)
    ob.scale = (1.5, 1.0, 1.0)


def area_ellipse_spread(sc):
    ob = oracle.add_light(sc, "AREA", _near(0.2, -1.2, 0.9), energy=150.0, shape="ELLIPSE", size=0.6, size_y=0.3,
                spread=math.radians(60))
    _aim(ob, HEAD, off_axis_deg=10.0)


def area_disk_near_field(sc):
    _aim(oracle.add_light(sc, "AREA", _near(0.0, -0.6, 0.3), energy=100.0, shape="DISK", size=1.0), HEAD)


def world_constant(sc):
    w = bpy.data.worlds.new("w")
    w.use_nodes = True
    bg = w.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.2, 0.5, 1.0, 1.0)
    bg.inputs["Strength"].default_value = 2.0
    sc.world = w


def world_color_nodes_off(sc):
    w = bpy.data.worlds.new("w")
    w.use_nodes = False
    w.color = (0.6, 0.3, 0.1)
    sc.world = w


def _env_pixels(h=32, w=64):
    d = sh.envmap_directions(h, w).numpy()
    u1, u2 = np.array([0.6, -0.7, 0.4]), np.array([-0.8, 0.2, 0.56])
    u1, u2 = u1 / np.linalg.norm(u1), u2 / np.linalg.norm(u2)
    r = 0.2 + 2.0 * np.clip(d @ u1, 0, None) ** 4
    g = 0.3 + 1.0 * np.clip(d @ u2, 0, None) ** 2
    b = 0.5 + 0.4 * d[..., 2]
    return np.stack((r, g, b), axis=-1)


def _rot_z(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


def world_environment_image(sc, tmp_path):
    """A smooth coloured HDR map (64 x 32) through Mapping (rotation Z 30 deg) into the world."""
    env = _env_pixels()
    h, w = env.shape[:2]
    np.save(tmp_path / "env.npy", env)
    try:  # a real EXR file, read by Cycles and by relight_core.scene alike
        import OpenEXR

        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, {"RGB": env.astype(np.float32)}).write(str(tmp_path / "env.exr"))
        img = bpy.data.images.load(str(tmp_path / "env.exr"))
    except ImportError:  # the same pixels in memory (Image.save would display-encode them)
        img = bpy.data.images.new("env", w, h, float_buffer=True, alpha=False)
        rgba = np.concatenate((env[::-1], np.ones((h, w, 1))), axis=-1).astype(np.float32)
        img.pixels.foreach_set(rgba.ravel())
    world = bpy.data.worlds.new("w")
    world.use_nodes = True
    nt = world.node_tree
    coords, mapping = nt.nodes.new("ShaderNodeTexCoord"), nt.nodes.new("ShaderNodeMapping")
    tex = nt.nodes.new("ShaderNodeTexEnvironment")
    tex.image, tex.interpolation = img, "Closest"
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(30))
    nt.links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    nt.links.new(tex.outputs["Color"], nt.nodes["Background"].inputs["Color"])
    nt.nodes["Background"].inputs["Strength"].default_value = 1.5
    world.cycles.sampling_method = "MANUAL"  # a small importance map: the default one takes seconds
    world.cycles.sample_map_resolution = 64
    sc.world = world


def rig_with_world(sc):
    _aim(oracle.add_light(sc, "AREA", _near(-1.2, -1.2, 0.6), energy=200.0, size=0.5), HEAD)
    oracle.add_light(sc, "POINT", _near(1.5, -1.0, 0.2), energy=60.0, shadow_soft_size=0.2, color=(0.6, 0.7, 1.0))
    oracle.add_light(sc, "SUN", (0, 0, 0), energy=1.5).rotation_euler = (math.radians(-60), 0.0, math.radians(160))
    world_constant(sc)
    sc.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.3


CASES = {  # builder: Cycles samples
    sun_small: 16, sun_wide_coloured_exposed: 128, point_small: 32, point_large_soft_falloff: 128,
    point_sphere_unnormalized: 128, point_blackbody: 16, spot_inside_cone: 32, spot_blend_region_scaled: 64,
    area_square: 128, area_rectangle_scaled_unnormalized_tilted: 128, area_ellipse_spread: 128,
    area_disk_near_field: 256, world_constant: 64, world_color_nodes_off: 32, world_environment_image: 128, rig_with_world: 128,
}


def _export_case(addon, builder, tmp_path):
    """Build a case in a fresh scene, export it with the add-on, convert it with scene_to_sh."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    if builder is world_environment_image:
        builder(sc, tmp_path)
    else:
        builder(sc)
    warnings = []
    dg = bpy.context.evaluated_depsgraph_get()
    frame_dict = addon.scene_export.export_frame(sc, dg, bpy.context.view_layer, str(tmp_path / "bake"), {}, warnings)
    frame = rscene.SceneFrame.from_dict(frame_dict, base_dir=tmp_path)
    c = rscene.scene_to_sh(frame, oracle.translation(HEAD), oracle.front_camera(HEAD), dtype=torch.float64).numpy()
    return sc, frame, c, warnings


@pytest.mark.parametrize("builder", list(CASES), ids=[b.__name__ for b in CASES])
def test_sh_matches_cycles(addon, builder, tmp_path):
    sc, frame, c, warnings = _export_case(addon, builder, tmp_path)
    assert warnings == []
    oracle.add_probe(sc, HEAD, samples=CASES[builder])
    normals, values = oracle.render_probe(sc, HEAD)
    total = c[0] / sh.SH_CONSTANTS[0]  # sum(E)/pi per channel
    assert (total > 0).all()
    pred = sh.shading(torch.from_numpy(normals), torch.from_numpy(c)).numpy()
    pix_err = np.abs(pred - values).max(axis=0) / total
    fitted = oracle.fit_sh(normals, values)
    coef_err = np.abs(fitted - c).max(axis=0) / c[0]
    print(f"\n[sh-vs-cycles] {builder.__name__:45s} pixel max err {pix_err.max():.4f} x sum(E)/pi "
          f"(bound {sh.DIRECTIONAL_MAX_ERROR:.4f}); coefficient max err {coef_err.max():.4f} x c0; "
          f"{len(values)} px")
    assert (pix_err <= sh.DIRECTIONAL_MAX_ERROR + NOISE_PIXEL).all(), pix_err
    assert (coef_err <= COEF_TOL).all(), (coef_err, fitted, c)


def test_environment_bake_matches_the_image_itself(addon, tmp_path):
    """The baked world (a Mapping rotation R in the node tree) == the image with rotation R^T."""
    _, frame, c_bake, _ = _export_case(addon, world_environment_image, tmp_path)
    assert frame.world.kind == "image" and frame.world.path.endswith(".npy")
    direct = rscene.World(kind="image", path=str(tmp_path / "env.npy"), strength=1.5, rotation=_rot_z(30).T)
    c_file = rscene.lighting_at(rscene.SceneFrame(frame=1, world=direct), HEAD).numpy()
    np.testing.assert_allclose(c_bake, c_file, atol=0.01 * c_file[0].max())
    pytest.importorskip("OpenEXR")
    exr = rscene.World(kind="image", path=str(tmp_path / "env.exr"), strength=1.5, rotation=_rot_z(30).T)
    c_exr = rscene.lighting_at(rscene.SceneFrame(frame=1, world=exr), HEAD).numpy()
    np.testing.assert_allclose(c_exr, c_file, atol=1e-5 * c_file[0].max())
