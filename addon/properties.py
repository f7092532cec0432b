# SPDX-License-Identifier: GPL-3.0-or-later
"""All per-scene add-on state: one ``RelightSettings`` group at ``Scene.relight`` (STYLE.md 15)."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

# The names of relight_core.sh.PRESETS (tests/addon checks they match; the add-on cannot import it).
PRESET_NAMES = ("key_left", "key_right", "top", "rim", "under", "flat", "gel_blue_orange")


class RELIGHT_PG_settings(bpy.types.PropertyGroup):
    """Relight settings of a scene (``scene.relight``)."""

    plate_path: StringProperty(
        name="Plate",
        description="Video file, or one image of a numbered sequence, holding the person to relight",
        subtype="FILE_PATH",
        default="",
    )
    plate_colorspace: StringProperty(
        name="Plate Colour Space",
        description=("OCIO colour space the plate is encoded in (Blender's config or $OCIO); empty: sRGB for "
                     "8/16-bit images and video, linear for EXR"),
        default="",
    )
    plate_clip: PointerProperty(name="Plate Clip", description="The loaded plate (Load Plate)", type=bpy.types.MovieClip)
    plate_camera: PointerProperty(
        name="Plate Camera",
        description="The camera that filmed the plate (Track Plate creates it); other cameras give novel views",
        type=bpy.types.Object,
    )
    plate_focal_mm: FloatProperty(
        name="Plate Lens",
        description="Focal length the plate was shot with, on the sensor width below (tracking and the plate camera)",
        default=50.0, min=1.0, soft_max=300.0, unit="CAMERA",
    )
    plate_sensor_width: FloatProperty(
        name="Plate Sensor Width",
        description="Sensor width the plate lens refers to (36 mm: full-frame equivalent)",
        default=36.0, min=1.0, soft_max=100.0, unit="CAMERA",
    )
    weights: StringProperty(
        name="Weights",
        description="Relight checkpoint (.safetensors); empty: the weights shipped with relight_core",
        subtype="FILE_PATH",
        default="",
    )
    cache_dir: StringProperty(
        name="Cache Folder",
        description="Where the worker writes relit frames and passes (re-renders reuse finished frames)",
        subtype="DIR_PATH",
        default="//relight_cache/",
    )
    warmup_frames: IntProperty(
        name="Warm-up Frames",
        description="Plate frames before each rendered frame that are tracked and relit again (not written), so "
                    "tracking smoothing and the temporal network are settled: more is steadier and slower",
        default=4, min=0, max=32,
    )
    env_height: IntProperty(
        name="Light Map Height",
        description="Height in pixels of the world image Light from Plate makes (width is twice it)",
        default=64, min=8, max=1024,
    )
    mesh_resolution: IntProperty(
        name="Mesh Resolution",
        description="Grid size of the head mesh extraction (marching cubes); more is finer and slower",
        default=256, min=32, max=1024,
    )
    subject: PointerProperty(
        name="Head",
        description="Object at the centre of the head (the tracked head anchor); lights are evaluated there",
        type=bpy.types.Object,
    )
    light_source: EnumProperty(
        name="Light Source",
        description="What lights the person",
        items=(
            ("SCENE", "Scene Lights", "Blender's lights and world, evaluated at the head at every frame"),
            ("PRESET", "Preset", "One of Relight's named light setups"),
        ),
        default="SCENE",
    )
    preset: EnumProperty(
        name="Preset",
        description="Named light setup (used when Light Source is Preset)",
        items=tuple((n, n.replace("_", " ").title(), "") for n in PRESET_NAMES),
        default="key_left",
    )
    exposure: FloatProperty(
        name="Exposure",
        description="Stops of extra new light: the scene's lights and world (or the preset) are 2^stops as "
                    "bright for the relighting; the plate itself is not scaled",
        default=0.0,
        soft_min=-10.0,
        soft_max=10.0,
    )
    export_path: StringProperty(
        name="Scene File",
        description="Where Export Scene writes the scene description (JSON; world bakes go next to it)",
        subtype="FILE_PATH",
        default="//relight/scene.json",
    )
    use_frame_range: BoolProperty(
        name="Custom Frame Range",
        description="Export these frames instead of the scene's frame range",
        default=False,
    )
    frame_start: IntProperty(name="Start", description="First frame to export", default=1)
    frame_end: IntProperty(name="End", description="Last frame to export", default=250)
    world_bake_width: IntProperty(
        name="World Bake Width",
        description="Width in pixels of the panoramic render of a node-based world (height is half)",
        default=64,
        min=8,
        max=1024,
    )
    world_bake_samples: IntProperty(
        name="World Bake Samples",
        description="Cycles samples per pixel of the world bake (more for small bright suns in an HDRI)",
        default=256,
        min=1,
        max=16384,
    )


RelightSettings = RELIGHT_PG_settings
