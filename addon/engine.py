# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Relight" render engine: F12, Ctrl-F12 and ``blender -b file.blend -a`` relight plate frames.

Blender calls :meth:`RELIGHT_RenderEngine.render` once per frame with the evaluated depsgraph
(on its render thread in the UI, so the worker call may block there). The frame's lights, world
and camera are exported from that depsgraph, the worker relights the plate frame
(:mod:`.render_job`), and its passes fill the render result: ``Combined`` is the relit beauty
and every plate pass is a render pass registered in :meth:`update_render_passes`, so Blender's
own outputs (PNG, EXR, multilayer EXR as ``ViewLayer.<Pass>.<channel>``) and the compositor see
them. Progress goes to Blender's progress bar; ESC (``test_break``) cancels the worker's job.
"""

import bpy

from . import backend, render_job


class RELIGHT_RenderEngine(bpy.types.RenderEngine):
    bl_idname = "RELIGHT"
    bl_label = "Relight"
    bl_use_preview = False
    bl_use_postprocess = True
    bl_use_shading_nodes_custom = False

    last_error = ""  # the latest failure's message (also reported), for scripts and tests

    def update_render_passes(self, scene=None, renderlayer=None):
        self.register_pass(scene, renderlayer, "Combined", 4, "RGBA", "COLOR")
        for name, _, channels, chan_id, kind in render_job.PASSES:
            self.register_pass(scene, renderlayer, name, channels, chan_id, kind)

    def render(self, depsgraph):
        scene = depsgraph.scene
        r = scene.render
        width, height = int(r.resolution_x * r.resolution_percentage / 100), int(r.resolution_y * r.resolution_percentage / 100)
        frame = scene.frame_current
        type(self).last_error = ""
        try:
            args, warnings = render_job.frame_request(scene, depsgraph, depsgraph.view_layer)
            for w in warnings:
                self.report({"WARNING"}, w)
            self.update_stats("", f"Relight: frame {frame}, starting the worker")

            def progress(done, total, message):
                self.update_progress(done / total if total else 0.0)
                self.update_stats("", f"Relight: frame {frame}: {message}")

            result = backend.run(None, "render", args, progress=progress, should_cancel=self.test_break)
            arrays = render_job.load_passes(result["frames"][0]["passes"])
        except backend.Cancelled:
            return
        except (backend.WorkerError, ValueError, OSError, KeyError) as exc:
            message = f"Relight frame {frame}: {getattr(exc, 'summary', exc)}"
            type(self).last_error = str(exc)
            self.report({"ERROR"}, message)
            self.error_set(message)
            print(str(exc))
            return
        out = self.begin_result(0, 0, width, height)
        layer = out.layers[0]
        layer.passes["Combined"].rect = render_job.fit(arrays["beauty"], width, height, 4)
        for name, key, channels, _, _ in render_job.PASSES:
            target = next((p for p in layer.passes if p.name == name), None)  # absent: pass disabled
            if target is not None and key in arrays:
                target.rect = render_job.fit(arrays[key], width, height, channels)
        self.end_result(out)
        self.update_progress(1.0)
