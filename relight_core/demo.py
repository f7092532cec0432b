"""`relight demo` (and `make demo`): relight the built-in public-domain portrait
(`skimage.data.astronaut()`) under named light presets and an orbit of cameras, and write an image
grid and a short movie.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

# The five alignment points (eye centres, nose tip, mouth corners; x, y in pixels) of the built-in
# portrait, as the released pipeline's MTCNN detector finds them. They make the demo independent
# of the face tracker.
ASTRONAUT_LANDMARKS = np.array(
    [[205.44, 102.70], [248.21, 104.81], [226.44, 129.41], [202.12, 140.73], [246.60, 143.08]]
)
GRID_LIGHTS = ("key_left", "key_right", "top", "rim", "under", "gel_blue_orange")
GRID_VIEWS = 5
MOVIE_FRAMES = 48


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the grid and the movie")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", type=Path, help="a Relight checkpoint (default: the shipped small weights)")
    parser.add_argument("--frames", type=int, default=MOVIE_FRAMES, help="frames of the orbit movie")


def portrait_crop(size: int) -> torch.Tensor:
    """The built-in portrait aligned like the network's training data -> [1, 3, size, size] in [-1, 1]."""
    from skimage import data

    from .track.align import align_crop

    crop = align_crop(data.astronaut(), ASTRONAUT_LANDMARKS)
    crop = Image.fromarray(crop).resize((size, size), Image.LANCZOS)
    return torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None].float() / 127.5 - 1


def to_uint8(image: torch.Tensor, output_colour: str = "display") -> np.ndarray:
    """A rendered or input image [3, H, W] in [-1, 1] -> display [H, W, 3] uint8."""
    from .models.relighter import to_display

    return (to_display(image, output_colour) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def light_sh(name: str) -> torch.Tensor:
    """A preset as a batch of one: [1, 9] grey or [1, 9, 3] coloured."""
    from .sh import preset

    return preset(name).float()[None]


def render_grid(model, crop, planes, cameras, lights, progress) -> Image.Image:
    """Rows: lights; first column: the input crop, then one column per camera, with labels."""
    size = model.config.output_resolution
    grid = Image.new("RGB", (size * (len(cameras) + 1), size * len(lights)), "black")
    draw = ImageDraw.Draw(grid)
    source = Image.fromarray(to_uint8(crop[0])).resize((size, size), Image.LANCZOS)
    for row, name in enumerate(lights):
        grid.paste(source, (0, row * size))
        for col, camera in enumerate(cameras, start=1):
            out = model(None, camera[None], light_sh(name), albedo_planes=planes)
            grid.paste(Image.fromarray(to_uint8(out["image"][0], model.config.output_colour)), (col * size, row * size))
            progress.update()
        draw.text((size + 6, row * size + 6), name, fill="white")
    draw.text((6, 6), "input", fill="white")
    return grid


def write_movie(model, planes, path: Path, frames: int, progress) -> None:
    """One orbit of the camera while the light circles the head."""
    import imageio.v2 as imageio

    from .camera import orbit
    from .sh import rotating

    cameras = orbit(frames)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with imageio.get_writer(tmp, fps=24, codec="libx264", quality=8, macro_block_size=8) as writer:
        for k in range(frames):
            sh = rotating(k / frames).float()[None]
            out = model(None, cameras[k:k + 1], sh, albedo_planes=planes)
            writer.append_data(to_uint8(out["image"][0], model.config.output_colour))
            progress.update()
    tmp.replace(path)


@torch.no_grad()
def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .camera import orbit
    from .checkpoints import default_weights_status, load_default_model, load_model

    if args.weights:
        model, status = load_model(args.weights, args.device), f"weights: {args.weights}"
    else:
        model, _ = load_default_model(args.device)
        status = f"weights: {default_weights_status()}"
    print(f"relight demo: {status}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    crop = portrait_crop(model.config.image_size).to(args.device)
    planes = model.encode(crop)
    cameras = orbit(GRID_VIEWS).to(args.device)
    total = len(GRID_LIGHTS) * GRID_VIEWS + args.frames
    with tqdm(total=total, desc="relight demo", unit="render") as progress:
        grid_path, movie_path = args.out / "grid.png", args.out / "orbit.mp4"
        grid = render_grid(model, crop, planes, cameras, GRID_LIGHTS, progress)
        tmp = grid_path.with_name(".grid.tmp.png")
        grid.save(tmp)
        tmp.replace(grid_path)
        write_movie(model, planes, movie_path, args.frames, progress)
    print(f"grid of {len(GRID_LIGHTS)} lights x {GRID_VIEWS} views: {grid_path.resolve()}")
    print(f"orbit movie ({args.frames} frames): {movie_path.resolve()}")
    print(status)
    return 0
