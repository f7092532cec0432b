"""Real portraits for training: track a folder of images or videos and pack the crops into one file.

:func:`track_folder` runs the plate pipeline's face tracking on every training file of a folder
(the held-out eighth, :func:`relight_core.train.split.split_held_out`, is never read):

    MediaPipe landmarks -> 5 points -> EG3D crop at the network's input size
    head pose -> the crop's EG3D camera label
    estimate_lighting (source camera DPR frame) -> crop camera -> head DPR frame (sh.camera_to_head)
    MediaPipe selfie segmentation -> person matte, warped into the crop like the image

Videos are sampled every ``every`` frames through :func:`relight_core.io.open_plate`, so a studio's
own footage works the same way as a folder of stills.

The pack (:func:`write_pack` / :func:`read_pack`) is one safetensors file, compact enough to carry
to a training machine (about 16 kB per portrait at 256 px):

    jpeg, jpeg_offsets       the crops (display sRGB) as concatenated JPEG files
    matte, matte_offsets     per crop a 2-channel PNG at half size: person matte, and "valid" (1
                             where the crop shows the source image, 0 where the EG3D crop ran past
                             its border and the aligner filled in blurred reflections)
    camera [N, 25]           EG3D label of each crop
    sh [N, 9, 3]             estimated input light, head DPR frame (what the network takes)
    sh_camera [N, 9, 3]      the same light as estimated, in the source camera's DPR frame
    metadata                 format, image size, source names, the split rule, skipped files
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

PACK_FORMAT = "relight-portrait-pack"
PACK_VERSION = "1"
JPEG_QUALITY = 90


@dataclass
class Portrait:
    """One tracked training portrait (a still, or one sampled video frame)."""

    name: str
    """Source file, plus ``#frame`` for video frames."""
    crop: np.ndarray
    """[S, S, 3] uint8 display sRGB EG3D crop."""
    matte: np.ndarray
    """[S, S] float32 person matte in [0, 1]."""
    valid: np.ndarray
    """[S, S] float32: 1 where the crop shows the source image."""
    camera: np.ndarray
    """[25] EG3D label of the crop."""
    sh: np.ndarray
    """[9, 3] input light in the head DPR frame."""
    sh_camera: np.ndarray
    """[9, 3] input light as estimated, in the source camera's DPR frame."""


# ------------------------------------------------------------------------------------------
# finding and tracking sources
# ------------------------------------------------------------------------------------------


def list_sources(folder: str | Path) -> list[Path]:
    """Images and videos under ``folder`` (recursively), sorted by path."""
    from ..io.images import IMAGE_EXTENSIONS
    from ..io.video import VIDEO_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; give a folder of portrait images or videos")
    wanted = set(IMAGE_EXTENSIONS) | set(VIDEO_EXTENSIONS)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) or videos "
                         f"({', '.join(VIDEO_EXTENSIONS)}) found")
    return files


def _frames(path: Path, every: int):
    """Frames of an image or video file: every ``every``-th frame of a video, the image itself."""
    from ..io import open_plate
    from ..io.video import VIDEO_EXTENSIONS

    if path.suffix.lower() in VIDEO_EXTENSIONS:
        plate = open_plate(path)
        numbers = plate.frame_numbers
        plate = open_plate(path, frames=range(numbers[0], numbers[-1] + 1, every))
        for frame in plate:
            yield f"{path.name}#{frame.number}", frame
    else:
        yield path.name, next(iter(open_plate(path)))


def _display_uint8(frame) -> np.ndarray:
    from ..io import linear_to_srgb

    from ..io.colour import SRGB

    pixels = frame.source_pixels
    if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] >= 3 and frame.colourspace == SRGB:
        return np.ascontiguousarray(pixels[..., :3])
    return (np.clip(linear_to_srgb(frame.rgb), 0, 1) * 255 + 0.5).astype(np.uint8)


def _valid_region(crop_to_source: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """[size, size] float32: 1 where a crop pixel maps inside the source image."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = crop_to_source[0, 0] * xs + crop_to_source[0, 1] * ys + crop_to_source[0, 2]
    sy = crop_to_source[1, 0] * xs + crop_to_source[1, 1] * ys + crop_to_source[1, 2]
    return ((sx >= -0.5) & (sx <= width - 0.5) & (sy >= -0.5) & (sy <= height - 0.5)).astype(np.float32)


class PortraitTracker:
    """Tracker, light estimator and person segmenter for one pack build (close when done)."""

    def __init__(self, size: int):
        from ..composite import PersonSegmenter
        from ..track.tracker import Tracker, TrackerConfig

        self.size = size
        self.tracker = Tracker(TrackerConfig(static=True, smoothing=False))
        self.segmenter = PersonSegmenter()

    def close(self) -> None:
        self.tracker.close()
        self.segmenter.close()

    def __call__(self, name: str, frame) -> Portrait | str:
        """A :class:`Portrait`, or the reason this frame is not usable."""
        from .. import sh as SH
        from ..track.align import align_crop, crop_affine
        from ..track.lighting import estimate_lighting, light_to_crop_frame
        from ..track.pose import plate_intrinsics

        display = _display_uint8(frame)
        height, width = display.shape[:2]
        self.tracker.reset()  # every frame on its own: stills are unrelated, video frames are sparse
        track = self.tracker.track(display, 0)
        if not track.found:
            return track.reason
        estimate = estimate_lighting(frame.rgb, track.landmarks, track.rotation, K=plate_intrinsics(width, height))
        if not estimate.ok:
            return f"input light not estimated ({estimate.reason})"
        sh_camera = np.asarray(estimate.sh, dtype=np.float64).reshape(9, -1)
        sh_camera = np.repeat(sh_camera, 3, 1) if sh_camera.shape[1] == 1 else sh_camera
        sh_crop = light_to_crop_frame(sh_camera, track.rotation, track.translation)
        label = np.asarray(track.camera_label, dtype=np.float32)
        sh_head = SH.camera_to_head(torch.as_tensor(sh_crop, dtype=torch.float64),
                                    torch.as_tensor(label[:16].reshape(4, 4), dtype=torch.float64)).numpy()
        crop = align_crop(display, track.five_points, output_size=self.size)
        matte = align_crop(self.segmenter(display)[..., None], track.five_points, output_size=self.size)[..., 0]
        crop_to_source = crop_affine(track.five_points, width, height, output_size=self.size)[0]
        return Portrait(name, crop, np.clip(matte, 0, 1), _valid_region(crop_to_source, width, height, self.size),
                        label, sh_head.astype(np.float32), sh_camera.astype(np.float32))


def track_folder(folder: str | Path, size: int, every: int = 12) -> Iterator[tuple[str, Portrait | str]]:
    """(name, :class:`Portrait` or the reason it was skipped) for the training part of a folder."""
    from tqdm import tqdm

    from .split import split_held_out

    if every < 1:
        raise ValueError(f"every: expected a frame step >= 1, got {every}")
    train, _ = split_held_out(list_sources(folder))
    tracker = PortraitTracker(size)
    try:
        for path in tqdm(train, desc="tracking portraits", unit="file"):
            for name, frame in _frames(path, every):
                yield name, tracker(name, frame)
    finally:
        tracker.close()


# ------------------------------------------------------------------------------------------
# the pack file
# ------------------------------------------------------------------------------------------


def _concat(blobs: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
    return torch.from_numpy(data), torch.from_numpy(offsets)


def _encode(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(image, "LA").save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _decode(data: torch.Tensor, offsets: torch.Tensor, index: int) -> np.ndarray:
    from PIL import Image

    start, stop = int(offsets[index]), int(offsets[index + 1])
    return np.asarray(Image.open(io.BytesIO(data[start:stop].numpy().tobytes())))


def _half(matte: np.ndarray) -> np.ndarray:
    """[S, S, 2] float in [0, 1] -> [S/2, S/2, 2] uint8 (2x2 means: mattes are soft, and a third the size)."""
    h, w = matte.shape[:2]
    mean = matte[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, -1).mean((1, 3))
    return (np.clip(mean, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_pack(path: str | Path, portraits: list[Portrait], *, info: dict | None = None) -> Path:
    """Write portraits to one safetensors pack (atomically); returns the path."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    if not portraits:
        raise ValueError(f"{path}: no usable portraits to pack")
    size = portraits[0].crop.shape[0]
    jpeg, jpeg_offsets = _concat([_encode(p.crop, "JPEG") for p in portraits])
    mattes = [_half(np.stack([p.matte, p.valid], -1)) for p in portraits]
    matte, matte_offsets = _concat([_encode(m, "PNG") for m in mattes])
    tensors = {
        "jpeg": jpeg, "jpeg_offsets": jpeg_offsets, "matte": matte, "matte_offsets": matte_offsets,
        "camera": torch.from_numpy(np.stack([p.camera for p in portraits]).astype(np.float32)),
        "sh": torch.from_numpy(np.stack([p.sh for p in portraits]).astype(np.float32)),
        "sh_camera": torch.from_numpy(np.stack([p.sh_camera for p in portraits]).astype(np.float32)),
    }
    metadata = {"format": PACK_FORMAT, "format_version": PACK_VERSION, "image_size": str(size),
                "names": json.dumps([p.name for p in portraits]), "info": json.dumps(info or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


@dataclass
class PortraitPack:
    """A pack decoded into tensors (``read_pack``)."""

    names: list[str]
    image: torch.Tensor
    """[N, 3, S, S] uint8 display sRGB crops."""
    matte: torch.Tensor
    """[N, 2, S/2, S/2] uint8: person matte and valid region, stored at half size (upsample to use)."""
    camera: torch.Tensor
    sh: torch.Tensor
    sh_camera: torch.Tensor
    info: dict

    def __len__(self) -> int:
        return len(self.names)


def read_pack(path: str | Path) -> PortraitPack:
    """Read and decode a pack; a file that is not one raises ValueError saying what to do."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such portrait pack; build one with scripts/prepare_portraits.py")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error}); rebuild it with "
                         f"scripts/prepare_portraits.py") from error
    if metadata.get("format") != PACK_FORMAT or metadata.get("format_version") != PACK_VERSION:
        raise ValueError(f"{path}: not a version-{PACK_VERSION} portrait pack (format {metadata.get('format')!r}, "
                         f"version {metadata.get('format_version')!r}); rebuild it with scripts/prepare_portraits.py")
    names = json.loads(metadata["names"])
    images = [_decode(tensors["jpeg"], tensors["jpeg_offsets"], i) for i in range(len(names))]
    mattes = [_decode(tensors["matte"], tensors["matte_offsets"], i) for i in range(len(names))]
    return PortraitPack(
        names=names,
        image=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
        matte=torch.from_numpy(np.stack(mattes)).permute(0, 3, 1, 2).contiguous(),
        camera=tensors["camera"], sh=tensors["sh"], sh_camera=tensors["sh_camera"],
        info=json.loads(metadata.get("info", "{}")),
    )
