"""Shot-cut detection (relight_core.track.cuts) on the real clip and on still sequences."""

from __future__ import annotations

import numpy as np
from skimage import data

from relight_core.track.cuts import CutDetector, frame_signature, hist_distance, structure_correlation

# Found by looking at the frames of tears_of_steel_clip.mp4: the robot close-up cuts to the wide
# shot of the bridge at frame 21, to the lab (man with glasses) at 65 and to the robot head at 185.
# Frames 192-204 flicker (a hologram effect) within one shot: no cut there.
CLIP_CUTS = [21, 65, 185]


def read_clip(path):
    import imageio.v2 as imageio

    with imageio.get_reader(str(path)) as r:
        return [np.asarray(f) for f in r]


def test_finds_the_cuts_of_the_clip(shared_data):
    frames = read_clip(shared_data / "video" / "tears_of_steel_clip.mp4")
    assert len(frames) == 240
    det = CutDetector()
    info = [det(f) for f in frames]
    cuts = [i for i, c in enumerate(info) if c.cut]
    flicker = max(info[i].hist_distance for i in range(192, 205))
    print(f"cuts at {cuts}; colour distance at the cuts {[round(info[i].hist_distance, 2) for i in CLIP_CUTS]}, "
          f"structure {[round(info[i].structure, 2) for i in CLIP_CUTS]}; hologram flicker colour distance {flicker:.2f}")
    assert cuts == CLIP_CUTS
    assert flicker > det.hist_threshold  # a colour-only detector would fire here


def test_no_cut_in_a_still_sequence():
    rng = np.random.default_rng(0)
    img = data.astronaut().astype(np.float32)
    det = CutDetector()
    for k in range(30):
        gain = 1.0 + 0.25 * np.sin(k)  # flicker of +-25% brightness plus sensor noise
        f = np.clip(img * gain + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        assert not det(f).cut, k


def test_cut_between_different_images():
    det = CutDetector()
    assert not det(data.astronaut()).cut  # the first frame is never a cut
    c = det(np.ascontiguousarray(data.coffee()[:512, :512]))
    assert c.cut and c.hist_distance > 0.3 and c.structure < 0.5
    det.reset()
    assert not det(data.astronaut()).cut


def test_signature_metrics():
    a = frame_signature(data.astronaut())
    b = frame_signature((data.astronaut() * 0.5).astype(np.uint8))
    assert hist_distance(a, a) == 0.0
    assert structure_correlation(a, a) > 0.999
    assert structure_correlation(a, b) > 0.99  # brightness does not change structure
    assert hist_distance(a, b) > 0.3  # but it does move the histogram
