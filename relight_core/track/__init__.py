"""Face tracking for plates: everything between a video frame and the network's inputs.

Modules (import them directly; nothing heavy is imported here):

* :mod:`.landmarks` - MediaPipe face detection and the 478-point face mesh, in pixels.
* :mod:`.five_points` - the 5 EG3D alignment points from the mesh, MTCNN-compatible.
* :mod:`.align` - the EG3D 5-point 512x512 crop and its exact inverse.
* :mod:`.canonical` - the canonical 3D face in EG3D head space (package data).
* :mod:`.pose` - head pose in the plate camera, the crop's EG3D camera label, yaw/pitch/roll.
* :mod:`.smoothing` - One-Euro filters for landmarks, translations and rotations.
* :mod:`.cuts` - shot-cut detection from frame statistics.
* :mod:`.tracker` - :class:`~.tracker.Tracker`: all of the above per frame, with subject choice.
"""
