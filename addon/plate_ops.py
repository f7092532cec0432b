# SPDX-License-Identifier: GPL-3.0-or-later
"""Plate workflow operators: Load Plate, Track Plate, Preview Frame, Light from Plate, Extract
Head Mesh, Release GPU Memory. The worker-backed ones are :class:`jobs.WorkerJob` operators:
modal in the UI, blocking in background mode (and when called from scripts)."""

import os

import bpy
from bpy.props import StringProperty

from . import backend, jobs, render_job
from . import plate as _plate

PREVIEW_IMAGE = "Relight Preview"


def _plate_args(scene):
    """Plate options shared by the worker's track, light_from_plate and mesh commands."""
    s = scene.relight
    path, _ = _plate.plate_source(s.plate_path)
    return {"plate": path, "colourspace": s.plate_colorspace or None, "video_start": 1,
            "focal_mm": s.plate_focal_mm, "sensor_width_mm": s.plate_sensor_width}


def _has_plate(context):
    return context.scene is not None and hasattr(context.scene, "relight") and bool(context.scene.relight.plate_path)


class RELIGHT_OT_load_plate(bpy.types.Operator):
    """Load a video or an image sequence as the plate, keeping its frame numbers, and fit the scene's frame range and resolution to it"""

    bl_idname = "relight.load_plate"
    bl_label = "Load Plate"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Plate", description="Video file, or one image of a numbered sequence",
                             subtype="FILE_PATH", default="")
    filter_movie: bpy.props.BoolProperty(default=True, options={"HIDDEN"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        path = self.filepath or context.scene.relight.plate_path
        try:
            clip = _plate.load_clip(context.scene, path)
        except (ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Relight: {exc}")
            return {"CANCELLED"}
        sc = context.scene
        self.report({"INFO"}, f"Relight: plate {clip.name}, frames {sc.frame_start}-{sc.frame_end}, "
                              f"{clip.size[0]}x{clip.size[1]}")
        return {"FINISHED"}


class RELIGHT_OT_track_plate(jobs.WorkerJob, bpy.types.Operator):
    """Track the head through the plate: creates the plate camera (the plate's field of view) and a head anchor empty animated with the tracked pose, at true scale"""

    bl_idname = "relight.track_plate"
    bl_label = "Track Plate"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(lambda cls, context: _has_plate(context))

    def request(self, context):
        sc = context.scene
        args = _plate_args(sc)
        args["frames"] = f"{sc.frame_start}:{sc.frame_end}"
        return "track", args

    def finish(self, context, result):
        sc = context.scene
        cam = _plate.plate_camera(sc, result["fov_deg"], sc.relight.plate_sensor_width)
        context.view_layer.update()  # fresh matrix_world for a new or moved camera
        sc.render.resolution_x, sc.render.resolution_y = result["size"]
        sc.render.resolution_percentage = 100
        anchor, keyed = _plate.animate_anchor(sc, cam, result["frames"], result["metres_per_unit"])
        if not keyed:
            self.report({"WARNING"}, "Relight: no usable face in any frame (see the worker's reasons per frame); "
                                     "the head anchor has no keys")
        else:
            self.report({"INFO"}, f"Relight: tracked {keyed} of {len(result['frames'])} frames; "
                                  f"plate field of view {result['fov_deg']:.1f} deg")
        return {"FINISHED"}


class RELIGHT_OT_preview_frame(jobs.WorkerJob, bpy.types.Operator):
    """Relight the current frame with the scene's lights and show it in the "Relight Preview" image"""

    bl_idname = "relight.preview_frame"
    bl_label = "Preview Frame"
    bl_options = {"REGISTER"}

    poll = classmethod(lambda cls, context: _has_plate(context))

    def request(self, context):
        depsgraph = context.evaluated_depsgraph_get()
        args, warnings = render_job.frame_request(context.scene, depsgraph, context.view_layer, allow_bake=True)
        for w in warnings:
            self.report({"WARNING"}, w)
        return "render", args

    def finish(self, context, result):
        frame = result["frames"][0]
        arrays = render_job.load_passes(frame["passes"])
        image = render_job.preview_image(PREVIEW_IMAGE, arrays["beauty"])
        for area in (context.screen.areas if context.screen else ()):
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
        state = "relit" if frame["relit"] else f"not relit: {frame['reason']}"
        self.report({"INFO"}, f"Relight: frame {frame['frame']} {state} (image {image.name!r})")
        return {"FINISHED"}


class RELIGHT_OT_light_from_plate(jobs.WorkerJob, bpy.types.Operator):
    """Estimate the plate's light at the current frame and make it the world, so CG objects are lit like the plate"""

    bl_idname = "relight.light_from_plate"
    bl_label = "Light from Plate"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(lambda cls, context: _has_plate(context))

    def request(self, context):
        sc = context.scene
        args = _plate_args(sc)
        cam = sc.relight.plate_camera
        if cam is not None:
            context.view_layer.update()
            args["camera_matrix"] = _plate.camera_matrix(cam)
        folder = os.path.join(render_job.cache_dir(sc), "light")
        os.makedirs(folder, exist_ok=True)
        args.update(frame=sc.frame_current, height=sc.relight.env_height,
                    out=os.path.join(folder, f"plate_light.{sc.frame_current:04d}.exr"))
        return "light_from_plate", args

    def finish(self, context, result):
        world = _plate.plate_light_world(context.scene, result["path"])
        self.report({"INFO"}, f"Relight: world {world.name!r} lit like plate frame {context.scene.frame_current}")
        return {"FINISHED"}


class RELIGHT_OT_extract_head_mesh(jobs.WorkerJob, bpy.types.Operator):
    """Extract the head's surface at the current frame and place it under the head anchor (true scale)"""

    bl_idname = "relight.extract_head_mesh"
    bl_label = "Extract Head Mesh"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _has_plate(context) and context.scene.relight.subject is not None

    def request(self, context):
        sc = context.scene
        s = sc.relight
        args = _plate_args(sc)
        folder = os.path.join(render_job.cache_dir(sc), "mesh")
        os.makedirs(folder, exist_ok=True)
        args.update(frame=sc.frame_current, resolution=s.mesh_resolution, weights=bpy.path.abspath(s.weights) or None,
                    out=os.path.join(folder, f"head.{sc.frame_current:04d}.ply"))
        return "mesh", args

    def finish(self, context, result):
        ob = _plate.place_mesh(context, result["path"], context.scene.relight.subject)
        self.report({"INFO"}, f"Relight: head mesh {ob.name!r} ({result['vertices']} vertices) under "
                              f"{context.scene.relight.subject.name!r}")
        return {"FINISHED"}


class RELIGHT_OT_release(bpy.types.Operator):
    """Stop the Relight worker: frees all its memory, GPU memory included (it restarts when needed)"""

    bl_idname = "relight.release"
    bl_label = "Release GPU Memory"
    bl_options = {"REGISTER"}

    def execute(self, context):
        stopped = backend.stop()
        self.report({"INFO"}, "Relight: worker stopped, memory released" if stopped else "Relight: no worker running")
        return {"FINISHED"}


classes = (RELIGHT_OT_load_plate, RELIGHT_OT_track_plate, RELIGHT_OT_preview_frame, RELIGHT_OT_light_from_plate,
           RELIGHT_OT_extract_head_mesh, RELIGHT_OT_release)
