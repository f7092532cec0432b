"""A plate job: read -> track -> estimate the input light -> relight -> composite -> write passes.

``relight plate INPUT --out DIR [--light PRESET | --sh FILE | --scene SCENE.json] [--camera ...]``
and the same from Python::

    from relight_core.plate import PlateJobConfig, run_plate
    report = run_plate(PlateJobConfig(input="shot.####.exr", out="out/sh010", light="key_left"))
    print(report.summary())

Per frame (ARCHITECTURE.md 4): the frame is decoded to scene-linear and display sRGB
(:mod:`relight_core.io`), the subject is tracked (:class:`relight_core.track.tracker.Tracker`),
the network's input is the EG3D crop of the display pixels at the model's ``image_size``, the
input light is estimated from the face (:func:`relight_core.track.lighting.estimate_lighting`) and
smoothed within the shot, the temporal network (:class:`VideoRelighter` semantics: a window of
earlier frames, reset at cuts) relights the crop under the target light, and the result is
composited (:mod:`relight_core.composite`) and written (:mod:`relight_core.passes`).

Modules: :mod:`.config` (settings, SH files, presets, cameras), :mod:`.lights` (target and input
light, their frames), :mod:`.network` (weights, the network step), :mod:`.frame` (one frame),
:mod:`.job` (the run loop, resume, writing), :mod:`.report`, :mod:`.cli`.

Decisions
---------
* **Lights and frames.** Presets and SH files are given in the **plate camera's DPR frame**
  (x image right, y into the screen, z image up): a light fixed to the camera rig, so ``key_left``
  stays on the image-left while the head moves. The estimator's input light is in the same frame.
  The network takes its SH in the **head DPR frame** (:data:`relight_core.sh.HEAD_TO_DPR`, the
  frame training converts its lights to with :func:`relight_core.sh.camera_to_head`), so both
  lights are rotated there with the tracked head rotation ``R`` (head -> plate camera):
  ``HEAD_TO_DPR @ (OPENCV_TO_DPR @ R)^T`` (:func:`.lights.plate_light_to_head`). A scene
  (``--scene``) is evaluated per frame at the tracked head position in the scene's world
  (:func:`relight_core.scene.lighting_at`), expressed in the plate camera's frame and converted
  the same way, so a light fixed in the scene stays fixed while the head turns. ``rotating``
  orbits a key light once over the plate's frames. Each frame record keeps both: ``target_sh``
  and ``input_sh`` in the plate camera's frame, ``target_sh_network`` and ``input_sh_network`` as
  fed to the network (``light_frames`` names the two frames).
* **Shading ratio** (same view): the network shades the same planes under the target light and
  under the input light; one render of both (geometry shared, super-resolution only for the
  target) gives the ratio ``(S_t + eps) / (S_in + eps)`` per channel, clamped to
  ``ratio_range``. The temporal network sees both lights as one multi-light window.
* **Resume.** ``DIR/job.json`` stores the settings; a frame is done when its record
  ``DIR/frames/frame.####.json`` (written last, atomically) names the same job id and every file
  it lists exists. A re-run skips done frames without starting the tracker or the network. A
  different setting is an error unless ``force``. Unfinished frames are computed with up to
  ``resume_warmup`` earlier frames run again (not written) so tracking smoothing and the temporal
  window are warm; results then match an uninterrupted run closely (not bit for bit).
* **Frames without a usable face** (none, too small, extreme pose, subject not visible, input
  light not estimated, camera cannot see the head) are passed through bit-identical (same view)
  or written transparent (novel view), with neutral passes, and listed in the report.
* **Several faces**: the tracker's subject (the largest, then the same person) is relit; such
  frames are listed.
* **Network colour**: this project's networks are trained on linear targets (image, albedo and
  shading are linear); the released network (``paper`` config) works on display images, so its
  outputs are decoded from sRGB and its ratio multiplies display-encoded values
  (``network_space="auto"`` picks by config name).
* **Global state**: the frames run under ``torch.inference_mode()`` and with the job's thread
  count inside the job only; a library caller's autograd mode, thread count and RNG are kept.
"""

from ..io import PlateError
from .cli import add_arguments, config_from_args, run
from .config import PlateJobConfig, load_sh_file, parse_camera
from .job import run_plate
from .report import PlateInterrupted, PlateReport

__all__ = ["PlateJobConfig", "PlateReport", "PlateInterrupted", "PlateError", "run_plate", "load_sh_file",
           "parse_camera", "add_arguments", "config_from_args", "run"]
