"""Per-frame face tracking of a plate: subject, landmarks, 5 points, head pose, camera label.

:class:`Tracker` ties the stages together for the frames of one clip, in order::

    frame --CutDetector--> new shot? --FaceLandmarker--> faces --subject choice--> face
      --size check--> head pose from the raw landmarks (PnP) --pose check-->
      One-Euro smoothing of the landmarks and, separately, of rotation and translation
      --> 5 points from the smoothed landmarks (EG3D crop), smoothed head pose (plate camera),
          EG3D camera label of the crop from the smoothed pose

Every frame gives a :class:`FrameTrack`. Frames without a usable face have ``found=False`` and a
``reason`` ("no face", "face too small: 35 px < 48 px", "extreme pose: yaw 75 deg", "subject not
visible (1 other face)"); the plate job passes them through unchanged and reports them.

``cut`` tells the caller to reset its temporal state (the temporal network's window): it is set
at a shot cut (frame statistics, :mod:`.cuts`), when the subject's landmarks jump between
consecutive frames, when another person becomes the subject, and when the subject reappears
after more than ``lost_patience`` frames. The tracker resets its own smoothing at the same
moments.

Subject policy: at the first frame, after a cut, or once the subject has been missing for
``lost_patience`` frames, the largest face (or the most central one, ``subject="center"``) becomes
the subject, with a new ``subject`` id. Afterwards the same person is followed by box overlap and
centre distance, so a second face entering the frame does not steal the track.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .align import crop_affine
from .canonical import DEFAULT_INTERPUPILLARY_M, load_canonical_face
from .cuts import CutDetector
from .five_points import five_points
from .landmarks import Face, FaceLandmarker, box_iou
from .pose import HeadPose, crop_camera_label, head_angles, plate_intrinsics, solve_pose
from .smoothing import OneEuroFilter, RotationFilter

__all__ = ["TrackerConfig", "FrameTrack", "Tracker"]


@dataclass
class TrackerConfig:
    """Tracking settings (defaults suit a 24-30 fps plate).

    Attributes:
        max_faces: most faces looked for in a frame.
        min_face_size: smallest usable face, pixels (longer side of the landmark box); smaller
            faces are reported as "face too small".
        max_yaw_deg, max_pitch_deg: larger head angles are reported as "extreme pose" (the
            network was trained on yaw within +-49 deg and pitch within +-26 deg).
        subject: "largest" (default) or "center": which face becomes the subject.
        lost_patience: frames the subject may be missing before another face is chosen.
        fps: frame rate, for the smoothing filters' time base (time = frame number / fps).
        smoothing: smooth landmarks and pose (One-Euro filters).
        landmark_min_cutoff: One-Euro cutoff (Hz) of the landmarks at rest; lower is smoother.
        landmark_beta: its speed coefficient (Hz per face size per second).
        pose_min_cutoff: One-Euro cutoff (Hz) of rotation and translation at rest.
        pose_beta: speed coefficient of the rotation (Hz per rad/s) and translation (Hz per
            head distance per second).
        d_cutoff: cutoff (Hz) of the filters' speed estimates.
        hist_threshold, structure_threshold: shot-cut thresholds (:class:`.cuts.CutDetector`).
        jump_threshold: a landmark jump larger than this (RMS displacement of the rigid points
            between consecutive frames, in face sizes) resets smoothing like a cut.
        focal_px, fov_deg, focal_mm, sensor_width_mm: plate camera intrinsics (one of the first
            three; default a 50 mm lens on a 36 mm sensor), see :func:`.pose.plate_intrinsics`.
        interpupillary_m: the subject's interpupillary distance (metric scale of a head unit).
        static: treat frames as unrelated images (no landmark tracking between frames).
    """

    max_faces: int = 4
    min_face_size: float = 48.0
    max_yaw_deg: float = 60.0
    max_pitch_deg: float = 45.0
    subject: str = "largest"
    lost_patience: int = 12
    fps: float = 24.0
    smoothing: bool = True
    landmark_min_cutoff: float = 1.5
    landmark_beta: float = 4.0
    pose_min_cutoff: float = 1.5
    pose_beta: float = 2.0
    d_cutoff: float = 1.0
    hist_threshold: float = 0.25
    structure_threshold: float = 0.5
    jump_threshold: float = 0.25
    focal_px: float | None = None
    fov_deg: float | None = None
    focal_mm: float | None = None
    sensor_width_mm: float = 36.0
    interpupillary_m: float = DEFAULT_INTERPUPILLARY_M
    static: bool = False

    def __post_init__(self):
        if self.subject not in ("largest", "center"):
            raise ValueError(f"subject: expected 'largest' or 'center', got {self.subject!r}")
        if not self.fps > 0:
            raise ValueError(f"fps: expected a positive frame rate, got {self.fps!r}")
        if not self.min_face_size >= 0:
            raise ValueError(f"min_face_size: expected pixels >= 0, got {self.min_face_size!r}")
        if isinstance(self.lost_patience, bool) or not isinstance(self.lost_patience, int) or self.lost_patience < 0:
            raise ValueError(f"lost_patience: expected an int >= 0, got {self.lost_patience!r}")


@dataclass
class FrameTrack:
    """Tracking result of one frame.

    Attributes:
        number: the frame number given to :meth:`Tracker.track`.
        found: whether a usable face of the subject was tracked (all fields below filled).
        reason: why not, when ``found`` is False ("" otherwise).
        cut: the caller must reset its temporal state at this frame; ``cut_reason`` says why.
        subject: id of the tracked person (increments when another person is chosen; -1: none).
        faces: number of faces visible in the frame.
        box: ``[4]`` subject's box (x0, y0, x1, y1) pixels, when a subject face is visible.
        score: detector confidence of the subject (NaN if unknown).
        landmarks: ``[478, 3]`` smoothed pixel landmarks (:mod:`.landmarks` convention).
        five_points: ``[5, 2]`` EG3D alignment points (pixels) for :func:`.align.align_crop`.
        crop_to_source: ``[2, 3]`` affine, 512 crop pixel -> plate pixel (:func:`.align.crop_affine`).
        rotation: ``[3, 3]`` head -> plate camera rotation (smoothed).
        translation: ``[3]`` head pivot in plate camera coordinates, head units (smoothed).
        metres_per_unit: metres per head unit (``translation * metres_per_unit`` is in metres).
        camera_label: ``[25]`` float32 EG3D camera label of the crop.
        yaw, pitch, roll: degrees (:func:`.pose.head_angles` conventions).
        error_px: RMS reprojection error of the pose fit, pixels.
    """

    number: int
    found: bool = False
    reason: str = ""
    cut: bool = False
    cut_reason: str = ""
    subject: int = -1
    faces: int = 0
    box: np.ndarray | None = None
    score: float = math.nan
    landmarks: np.ndarray | None = None
    five_points: np.ndarray | None = None
    crop_to_source: np.ndarray | None = None
    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    metres_per_unit: float = math.nan
    camera_label: np.ndarray | None = None
    yaw: float = math.nan
    pitch: float = math.nan
    roll: float = math.nan
    error_px: float = math.nan

    def report(self) -> dict:
        """A small JSON-able summary (no landmarks) for per-frame metadata."""
        out = {}
        for k, v in asdict(self).items():
            if k in ("landmarks",):
                continue
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, float) and not math.isfinite(v):
                v = None
            out[k] = v
        return out


@dataclass
class _Filters:
    landmarks: OneEuroFilter
    rotation: RotationFilter
    translation: OneEuroFilter

    def reset(self) -> None:
        self.landmarks.reset()
        self.rotation.reset()
        self.translation.reset()


@dataclass
class _State:
    subject_id: int = -1
    box: np.ndarray | None = None
    missing: int = 0
    last_number: int | None = None
    last_found_number: int | None = None
    last_rigid: np.ndarray | None = None
    last_pose: HeadPose | None = None
    pending_cut: list = field(default_factory=list)


class Tracker:
    """Track the subject's face through the frames of a clip (see the module docstring).

    Args:
        config: :class:`TrackerConfig` (defaults if None).

    Frames must come in increasing frame-number order within a clip; call :meth:`reset` between
    clips. Use as a context manager or call :meth:`close` to release MediaPipe.
    """

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        c = self.config
        self.canonical = load_canonical_face()
        self.metres_per_unit = self.canonical.metres_per_unit(c.interpupillary_m)
        self._landmarker = FaceLandmarker(c.max_faces, static=c.static)
        self._cuts = CutDetector(c.hist_threshold, c.structure_threshold)
        self._filters = _Filters(
            OneEuroFilter(c.landmark_min_cutoff, c.landmark_beta, c.d_cutoff, shared_speed=True),
            RotationFilter(c.pose_min_cutoff, c.pose_beta, c.d_cutoff),
            OneEuroFilter(c.pose_min_cutoff, c.pose_beta, c.d_cutoff, shared_speed=True),
        )
        self._K = None
        self._size = None
        self._state = _State()

    # -- life cycle -------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new clip: forget the subject, smoothing, cut statistics and tracked faces."""
        self._state = _State()
        self._filters.reset()
        self._cuts.reset()
        self._landmarker.reset()

    def close(self) -> None:
        """Release MediaPipe."""
        self._landmarker.close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _intrinsics(self, w: int, h: int) -> np.ndarray:
        if self._size != (w, h):
            c = self.config
            self._K = plate_intrinsics(w, h, focal_px=c.focal_px, fov_deg=c.fov_deg, focal_mm=c.focal_mm,
                                       sensor_width_mm=c.sensor_width_mm)
            self._size = (w, h)
        return self._K

    def _new_subject(self, faces: list[Face], w: int, h: int) -> Face:
        if self.config.subject == "center":
            centre = np.array([(w - 1) / 2, (h - 1) / 2])
            face = min(faces, key=lambda f: float(np.linalg.norm(f.center - centre)))
        else:
            face = max(faces, key=lambda f: f.size)
        s = self._state
        s.subject_id += 1
        s.box = face.box.copy()
        s.missing = 0
        s.last_rigid = None
        s.last_pose = None
        self._filters.reset()
        return face

    def _match(self, faces: list[Face]) -> Face | None:
        """The face that continues the current subject (box overlap / centre distance), if any."""
        prev = self._state.box
        size = max(prev[2] - prev[0], prev[3] - prev[1])
        centre = (prev[:2] + prev[2:]) / 2
        best, best_score = None, 0.0
        for f in faces:
            ratio = f.size / max(size, 1e-6)
            if not 0.5 < ratio < 2.0:
                continue
            dist = float(np.linalg.norm(f.center - centre)) / max(size, f.size)
            score = max(box_iou(f.box, prev), 1.0 - dist / 0.75 if dist < 0.75 else 0.0)
            if score > best_score:
                best, best_score = f, score
        return best

    def _cut(self, track: FrameTrack, reason: str) -> None:
        track.cut = True
        track.cut_reason = f"{track.cut_reason}; {reason}" if track.cut_reason else reason

    # -- main entry -------------------------------------------------------------------------

    def track(self, frame, frame_number: int) -> FrameTrack:
        """Track one ``[H, W, 3]`` uint8 RGB frame; returns its :class:`FrameTrack`."""
        c, s = self.config, self._state
        number = int(frame_number)
        track = FrameTrack(number=number)
        if s.last_number is not None and number <= s.last_number:
            # out of order: treat as a new clip
            previous = s.last_number
            self.reset()
            s = self._state
            self._cut(track, f"frame number {number} does not follow {previous}")
        s.last_number = number

        info = self._cuts(frame)
        if info.cut:
            self._cut(track, f"shot cut (colour distance {info.hist_distance:.2f}, structure {info.structure:.2f})")
            self._landmarker.reset()
            s.box = None
            s.missing = 0
            self._filters.reset()
            s.last_rigid = None
            s.last_pose = None

        h, w = frame.shape[:2]
        faces = self._landmarker(frame)
        track.faces = len(faces)
        if not faces:
            track.reason = "no face"
            s.missing += 1
            return track

        face = None
        if s.box is not None:
            face = self._match(faces)
            if face is None:
                s.missing += 1
                if s.missing <= c.lost_patience:
                    n = len(faces)
                    track.subject = s.subject_id
                    track.reason = f"subject not visible ({n} other face{'s' if n > 1 else ''})"
                    return track
        if face is None:
            had_subject = s.subject_id >= 0
            face = self._new_subject(faces, w, h)
            if had_subject and not track.cut:
                self._cut(track, f"new subject {s.subject_id}")
        else:
            if s.missing > c.lost_patience and not track.cut:
                self._cut(track, f"subject reappeared after {s.missing} frames")
                self._filters.reset()
                s.last_rigid = None
            s.missing = 0
            s.box = face.box.copy()

        track.subject = s.subject_id
        track.box = face.box.copy()
        track.score = face.score
        if face.landmarks is None or face.size < c.min_face_size:
            track.reason = f"face too small: {face.size:.0f} px < {c.min_face_size:.0f} px"
            s.last_rigid = None
            return track

        raw = face.landmarks
        rigid = raw[self.canonical.rigid_indices, :2]
        if s.last_rigid is not None and s.last_found_number == number - 1:
            jump = float(np.sqrt(((rigid - s.last_rigid) ** 2).sum(1).mean())) / face.size
            if jump > c.jump_threshold and not track.cut:
                self._cut(track, f"landmark jump ({jump:.2f} face sizes)")
                self._filters.reset()
                s.last_pose = None
        s.last_rigid = rigid

        K = self._intrinsics(w, h)
        try:
            pose = solve_pose(raw, K, canonical=self.canonical, initial=s.last_pose)
        except RuntimeError as exc:
            track.reason = f"pose fit failed ({exc})"
            return track
        s.last_pose = pose
        yaw, pitch, roll = head_angles(pose)
        if abs(yaw) > c.max_yaw_deg or abs(pitch) > c.max_pitch_deg:
            which = f"yaw {yaw:.0f} deg" if abs(yaw) / c.max_yaw_deg >= abs(pitch) / c.max_pitch_deg else f"pitch {pitch:.0f} deg"
            track.reason = f"extreme pose: {which}"
            track.yaw, track.pitch, track.roll = yaw, pitch, roll
            self._filters.reset()
            return track

        t = number / c.fps
        if c.smoothing:
            lm = self._filters.landmarks(raw, t, scale=face.size)
            R = self._filters.rotation(pose.rotation, t)
            tr = self._filters.translation(pose.translation, t, scale=float(np.linalg.norm(pose.translation)))
            smooth = HeadPose(R, tr, pose.error_px)
        else:
            lm, smooth = raw.copy(), pose

        track.landmarks = lm
        track.five_points = five_points(lm)
        track.crop_to_source = crop_affine(track.five_points, w, h)[0]
        track.rotation = smooth.rotation
        track.translation = smooth.translation
        track.metres_per_unit = self.metres_per_unit
        track.camera_label = crop_camera_label(smooth)
        track.yaw, track.pitch, track.roll = head_angles(smooth)
        track.error_px = pose.error_px
        track.found = True
        s.last_found_number = number
        return track
