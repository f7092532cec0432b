"""A plain, JSON-able scene description (lights, world, cameras by frame) and its conversion to SH.

This is what the Blender add-on sends (``addon/scene_export.py`` writes it without importing
relight_core) and what the CLI reads. One conversion, :func:`scene_to_sh`, turns a frame of it
into the coloured DPR coefficients of the head (ARCHITECTURE.md 2, BLENDER.md 4).

Units and frames
----------------
* **World**: Blender's world space, +Z up, Blender units (metres at unit scale 1; Cycles ignores
  the unit scale and so does this module). Matrices are Blender ``matrix_world`` values, row-major
  nested lists, columns = the object's local axes (with their scale), last column = position.
* **Lights** follow Cycles 4.5 exactly as measured (BLENDER.md 4.3; checked against Cycles renders
  in ``tests/addon``):

  - ``power`` is watts for point, spot and area lights and W/m^2 (Blender "Strength") for suns;
    the effective power is ``power * 2**exposure``.
  - sun: irradiance ``power`` at normal incidence, also for a wide ``angle`` (the disk's radiance
    grows so that the normal-incidence irradiance stays ``power``).
  - point and spot of radius ``r`` at distance ``d``: a uniform cap of radiance
    ``P / (4 pi^2 r^2)``; ``soft_falloff`` on (Blender's default) makes it a disk facing the head
    (half-angle ``atan(r / d)``, on-axis irradiance ``P / (4 pi (d^2 + r^2))``), off a sphere
    (half-angle ``asin(r / d)``, irradiance ``P / (4 pi d^2)``). ``normalize`` off multiplies the
    power by ``4 pi r^2`` (by 4 when ``r = 0``). The radius ignores the object's scale, as in Cycles.
  - spot: the point light times Cycles' cone mask ``smoothstep((cos t - cos(size / 2)) /
    ((1 - cos(size / 2)) * blend))``, ``t`` measured in the light's local frame (object scale
    squashes the cone) and averaged over the light's visible cap.
  - area: a one-sided Lambertian emitter (emits along its local -Z) of radiance
    ``P / (pi A)`` (``normalize`` off: ``P / pi``), ``A`` in world units (object scale included),
    integrated over patches (exact near field); ``spread < 180 deg`` applies Cycles' soft-box
    attenuation per patch.
  - the world: radiance ``color * strength`` (constant), an equirectangular radiance map (Blender's
    Environment Texture layout, :func:`relight_core.sh.envmap_directions`), or precomputed SH.

* **SH**: DPR basis, ``c = radiance SH / pi`` (:mod:`relight_core.sh`), returned in the DPR frame of
  the crop camera: the camera that shares the view camera's optical centre and looks at the head
  (:func:`relight_core.camera.centred_camera`). Not captured by SH9: shadows, light linking and
  light node trees (see the add-on's export warnings).

File format
-----------
``{"format": "relight.scene", "version": 1, "fps": 24.0, "frames": [{"frame": 1, "lights": [...],
"world": {...} | null, "camera": {...} | null}, ...]}``; every object is the ``to_dict()`` of the
matching class in :mod:`relight_core.scene.description`. Unknown keys are rejected so typos surface.
"""

from __future__ import annotations

from .description import FORMAT, VERSION, CameraDesc, Light, Scene, SceneFrame, World
from .lighting import dpr_rotation, lighting_at, load_envmap, scene_to_sh

__all__ = [
    "FORMAT",
    "VERSION",
    "Light",
    "World",
    "CameraDesc",
    "SceneFrame",
    "Scene",
    "load_envmap",
    "lighting_at",
    "dpr_rotation",
    "scene_to_sh",
]
