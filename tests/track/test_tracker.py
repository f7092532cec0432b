"""The per-frame tracker (relight_core.track.tracker) on real frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mediapipe")
from skimage import data  # noqa: E402

from relight_core.track.tracker import FrameTrack, Tracker, TrackerConfig  # noqa: E402

ASTRONAUT_MTCNN = np.array([[205.44, 102.70], [248.21, 104.81], [226.44, 129.41], [202.12, 140.73], [246.60, 143.08]])


@pytest.fixture(scope="module")
def image_tracker():
    with Tracker(TrackerConfig(static=True)) as t:
        yield t


def _one(tracker: Tracker, image, number: int = 0) -> FrameTrack:
    tracker.reset()
    return tracker.track(image, number)


def test_astronaut(image_tracker):
    r = _one(image_tracker, data.astronaut())
    assert r.found and r.reason == "" and r.subject == 0 and r.faces == 1
    assert r.landmarks.shape == (478, 3)
    assert np.linalg.norm(r.five_points - ASTRONAUT_MTCNN, axis=1).max() < 3.5
    assert r.camera_label.shape == (25,) and r.camera_label.dtype == np.float32
    assert max(abs(r.yaw), abs(r.pitch), abs(r.roll)) < 10  # a frontal portrait
    # the label's camera sits at EG3D's radius, looking at the pivot
    c2w = r.camera_label[:16].reshape(4, 4)
    assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(2.7, rel=1e-5)
    assert c2w[:3, 2] @ (-c2w[:3, 3] / 2.7) == pytest.approx(1.0, abs=1e-5)
    # the crop maps back onto the face: the crop centre lands between the eyes and the mouth
    centre = r.crop_to_source @ np.array([255.5, 255.5, 1.0])
    assert 205 < centre[0] < 250 and 100 < centre[1] < 145
    assert r.translation[2] * r.metres_per_unit > 0.1
    json.dumps(r.report())


def test_no_face_and_tiny_face_are_reported(image_tracker):
    r = _one(image_tracker, data.coffee())
    assert not r.found and r.reason == "no face" and r.faces == 0 and r.camera_label is None
    small = np.asarray(Image.fromarray(data.astronaut()).resize((160, 160), Image.LANCZOS))
    canvas = np.full((360, 640, 3), 90, np.uint8)
    canvas[100:260, 300:460] = small
    r = _one(image_tracker, canvas)
    assert not r.found and r.reason.startswith("face too small:"), r.reason
    assert r.faces == 1 and r.box is not None
    print(r.reason)


def test_config_limits_are_reported(image_tracker):
    with Tracker(TrackerConfig(static=True, min_face_size=200)) as t:
        r = t.track(data.astronaut(), 0)
    assert not r.found and r.reason.startswith("face too small:") and "< 200 px" in r.reason
    with Tracker(TrackerConfig(static=True, max_yaw_deg=0.1, max_pitch_deg=0.1)) as t:
        r = t.track(data.astronaut(), 0)
    assert not r.found and r.reason.startswith("extreme pose:"), r.reason
    with pytest.raises(ValueError):
        TrackerConfig(subject="smallest")


def test_second_face_does_not_steal_the_subject():
    """Two faces: the larger is chosen; when it moves and the other grows, it is still followed."""
    face = data.astronaut()[40:240, 130:330]
    big = np.asarray(Image.fromarray(face).resize((200, 200), Image.LANCZOS))
    small = np.asarray(Image.fromarray(face).resize((150, 150), Image.LANCZOS))
    larger = np.asarray(Image.fromarray(face).resize((260, 260), Image.LANCZOS))
    with Tracker() as t:
        frames = []
        for k in range(6):
            f = np.full((480, 854, 3), 70, np.uint8)
            f[100 + k * 4:300 + k * 4, 80 + k * 6:280 + k * 6] = big
            other = small if k < 3 else larger
            f[60:60 + other.shape[0], 520:520 + other.shape[1]] = other
            frames.append(t.track(f, k))
    assert all(r.found for r in frames), [r.reason for r in frames]
    assert {r.subject for r in frames} == {0}
    assert all(r.box[0] < 400 for r in frames)  # always the face on the left
    assert frames[4].faces == 2 and not any(r.cut for r in frames[1:])


def test_clip_first_frames(shared_data):
    """Frames 0-110 of the plate: no face (0-20), a tiny far face (21-64), then the man with
    glasses (65-), with a second face entering at 94-98. No crash, every frame reported, one
    stable subject per shot."""
    import imageio.v2 as imageio

    frames = []
    with imageio.get_reader(str(shared_data / "video" / "tears_of_steel_clip.mp4")) as rd:
        for i, f in enumerate(rd):
            if i > 110:
                break
            frames.append(np.asarray(f))
    with Tracker() as t:
        out = [t.track(f, i) for i, f in enumerate(frames)]
    reasons = {}
    for r in out:
        assert r.found or r.reason, r.number
        reasons.setdefault(r.reason or "found", []).append(r.number)
    print({k: (len(v), v[0], v[-1]) for k, v in reasons.items()})
    assert all(r.reason == "no face" for r in out[:21])
    assert all(r.reason.startswith("face too small") for r in out[21:65])
    assert [r.number for r in out if r.cut] == [21, 65]
    man = out[65:]
    assert sum(r.found for r in man) >= 0.95 * len(man)
    ids = {r.subject for r in man}
    assert len(ids) == 1
    assert all(r.box[0] > 320 for r in man if r.box is not None)  # the man on the right
    assert max(r.faces for r in man) == 2  # the second person was seen ...
    assert all(r.found for r in out[94:99])  # ... and did not interrupt the subject
    # he looks to the image left, i.e. turned to his own right: positive yaw
    yaws = np.array([r.yaw for r in man if r.found])
    assert 20 < np.median(yaws) < 60
    # smoothing: the label changes little between consecutive frames
    steps = [np.abs(a.camera_label - b.camera_label).max() for a, b in zip(man, man[1:]) if a.found and b.found]
    assert np.median(steps) < 0.05


def test_out_of_order_frames_restart(image_tracker):
    image_tracker.reset()
    image_tracker.track(data.astronaut(), 5)
    r = image_tracker.track(data.astronaut(), 3)
    assert r.found and r.cut and "does not follow" in r.cut_reason
