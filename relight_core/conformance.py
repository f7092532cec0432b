"""Proof of fidelity: run this network on the inputs of a conformance folder and compare every
reference tensor of the released implementation (format: `../shared/conformance/README.md`).

The weights are rebuilt from the folder's recipe under the official key names (the seed is in
its `run_info.json`) and converted with the same code as `relight convert`. `relight conformance
DIR` prints one line per tensor and exits non-zero on any failure.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from .checkpoints import convert_file, load_model
from .conformance_weights import check_against, official_weights
from .models.relighter import Relighter, VideoRelighter

# Reference entries that are inputs, not outputs to reproduce.
INPUTS = {
    "video.frames_u8", "video.cams", "video.shs", "video.pitch_yaw", "video.shifts",
    "temporal_unit.albedo_window", "temporal_unit.shading_window",
    "align.image_u8", "alignB.image_u8", "align.landmarks", "alignB.landmarks",
    "align.landmarks_detected", "alignB.landmarks_detected", "align.lm3d_template", "alignB.lm3d_template",
}
OUTPUT_FILES = ("image_path", "novel_view", "unit_tests", "encoder_debug", "video", "align")


@dataclass
class Result:
    name: str
    error: float
    tolerance: float
    metric: str

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)  # NaN fails

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.name:<44} {self.error:10.3e}  (< {self.tolerance:.0e} {self.metric})  {verdict}"


def rel_l2(ours: Tensor, ref: Tensor) -> float:
    """||a - b|| / ||b|| in float64."""
    ours, ref = ours.double().reshape(-1), ref.double().reshape(-1)
    return float((ours - ref).norm() / ref.norm().clamp_min(1e-300))


def stats_error(ours: Tensor, ref: Tensor) -> float:
    """Worst of the README's stats criteria, each scaled to a 1e-4 tolerance."""
    x = ours.double().reshape(-1)
    mine = torch.stack([x.mean(), x.std(), x.norm(), x.min(), x.max()])
    mean, std, norm, low, high = ref[:5].double()
    span = float(high - low)
    errors = [
        abs(float(mine[0] - mean)) / (float(std) + 1e-3),
        abs(float(mine[1] - std)) / (float(std) + 1e-3),
        abs(float(mine[2] - norm)) / float(norm),
        abs(float(mine[3] - low)) / span * 0.1,  # min/max tolerance is 1e-3 of the range
        abs(float(mine[4] - high)) / span * 0.1,
    ]
    return max(errors)


def compare(name: str, ours: Tensor, ref: Tensor) -> Result:
    """Compare one reference entry with our full-size tensor, by the README's rules (section 8)."""
    base, _, suffix = name.rpartition(".")
    ours = ours.detach().cpu()
    if suffix == "stats":
        return Result(name, stats_error(ours, ref), 1e-4, "stats")
    if suffix in ("crop_c", "crop_tl"):
        size, height = ref.shape[-1], ours.shape[-1]
        start = height // 2 - size // 2 if suffix == "crop_c" else 0
        return Result(name, rel_l2(ours[..., start:start + size, start:start + size], ref), 1e-4, "rel-L2")
    if suffix in ("tok_first", "tok_mid"):
        start = ours.shape[1] // 2 if suffix == "tok_mid" else 0
        return Result(name, rel_l2(ours[:, start:start + ref.shape[1]], ref), 1e-4, "rel-L2")
    if ref.dtype == torch.float16:
        return Result(name, rel_l2(ours.half(), ref), 5e-4, "rel-L2 fp16")
    if name.endswith("image_depth"):
        return Result(name, float((ours - ref).abs().max()), 1e-4, "abs")
    if name.startswith("cams.") or name.endswith("ws_lit"):
        return Result(name, float((ours - ref).abs().max()), 1e-5, "abs")
    if ref.dtype == torch.uint8:
        return compare_u8(name, ours, ref)
    if ref.dtype == torch.float64:
        return Result(name, rel_l2(ours, ref), 1e-9, "rel")
    return Result(name, rel_l2(ours, ref), 1e-4, "rel-L2")


def compare_u8(name: str, ours: Tensor, ref: Tensor) -> Result:
    """uint8 images: exact against standard Pillow; <= 2 levels on < 3% of values against Pillow-SIMD."""
    diff = (ours.int() - ref.int()).abs()
    if name.endswith("_pillow"):
        return Result(name, float(diff.max()), 0, "max levels")
    share = float((diff > 0).double().mean()) if int(diff.max()) <= 2 else 1.0
    return Result(name, share, 0.03, "share differing")


def _full_width(ws: Tensor) -> Tensor:
    """Our single SR style [B, w] as the release's 14 identical rows [B, 14, w]."""
    return ws[:, None].expand(-1, 14, -1)


def _render_outputs(prefix: str, out: dict) -> dict[str, Tensor]:
    return {
        f"{prefix}.image": out["image"],
        f"{prefix}.image_raw": out["image_raw"],
        f"{prefix}.image_depth": out["depth"],
        f"{prefix}.image_shading": out["shading"],
        f"{prefix}.image_feat": out["features"][0],
    }


class Runner:
    """Builds the network from the folder's recipe and produces our version of every reference."""

    def __init__(self, folder: Path, progress: Callable[[str], None] = lambda _: None):
        self.folder = folder
        self.progress = progress
        self.seed = json.loads((folder / "run_info.json").read_text())["seed"]
        from safetensors.torch import load_file

        self.refs: dict[str, Tensor] = load_file(str(folder / "inputs.safetensors"))
        self.expected = ["cams.orbit"]  # the one output stored with the inputs
        for file in OUTPUT_FILES:
            outputs = load_file(str(folder / f"{file}.safetensors"))
            self.refs.update(outputs)
            self.expected += [name for name in outputs if name not in INPUTS]

    def build_model(self) -> Relighter:
        """Recipe weights -> a model.pth -> `relight convert` -> `load_model`, as a user would."""
        self.progress("rebuilding the weights from the recipe")
        official = official_weights(self.folder / "weights_recipe.json", self.seed)
        check_against(official, self.folder / "weights_check.json")
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(official, Path(tmp) / "model.pth")
            del official
            self.progress("converting them like `relight convert`")
            convert_file(Path(tmp) / "model.pth", Path(tmp) / "model.safetensors")
            return load_model(Path(tmp) / "model.safetensors", expected_config="paper")

    def outputs(self) -> Iterator[dict[str, Tensor]]:
        """Yield dicts of our tensors, group by group (cheap checks first)."""
        from .camera import orbit_camera

        r = self.refs
        angles = r["cams.orbit_pitch_yaw"]
        yield {"cams.orbit": orbit_camera(angles[:, 0], angles[:, 1])}
        model = self.build_model()
        with torch.no_grad():
            yield from self._network_outputs(model)
        yield from self._align_outputs()

    def _network_outputs(self, model: Relighter) -> Iterator[dict[str, Tensor]]:
        r = self.refs
        self.progress("lighting mapping, shading encoder, renderer and super-resolution")
        yield {"maplit.ws_lit": model.lighting(r["maplit.sh"])}
        planes = r["img.albedo_planes"].float()
        shading = model.shade(planes, r["input.sh"])
        style = model.planes_to_style(planes)
        yield {"shading_unit.shading_planes": shading[0], "shading_unit.superres_ws": _full_width(style)}
        render = model.render(planes, r["img.shading_planes"].float()[None], r["input.cam"], r["render_unit.superres_ws"][:, -1])
        yield {**_render_outputs("render_unit", render), "render_unit.superres_ws": r["render_unit.superres_ws"]}

        self.progress("image path")
        taps = model.albedo_encoder.forward_debug(r["input.image"])
        yield {f"enc.{k}": v for k, v in taps.items() if k != "albedo_planes"}
        yield {"enc.shading_mapping_x": model.shading_encoder.lift(taps["albedo_planes"])}
        out = model(None, r["input.cam"], r["input.sh"], albedo_planes=taps["albedo_planes"])
        yield {
            **_render_outputs("img", out),
            "img.albedo_planes": out["albedo_planes"],
            "img.shading_planes": out["shading_planes"][0],
            "img.ws_lit": model.lighting(r["input.sh"]),
            "img.planes2ws": out["style"] - model.planes_to_style.w_avg,
            "img.superres_ws": _full_width(out["style"]),
        }
        self.progress("relight and novel view from the stored albedo planes")
        novel = model(None, r["novel.cam"], r["novel.sh"], albedo_planes=out["albedo_planes"])
        yield {
            **_render_outputs("novel", novel),
            "novel.shading_planes": novel["shading_planes"][0],
            "novel.ws_lit": model.lighting(r["novel.sh"]),
            "novel.superres_ws": _full_width(novel["style"]),
        }
        yield from self._video_outputs(model)

    def _video_outputs(self, model: Relighter) -> Iterator[dict[str, Tensor]]:
        r = self.refs
        albedo_res, shading_res = model.temporal(r["temporal_unit.albedo_window"], r["temporal_unit.shading_window"])
        yield {"temporal_unit.residual_albedo": albedo_res, "temporal_unit.residual_shading": shading_res}
        frozen, sliding = VideoRelighter(model, "frozen"), VideoRelighter(model, "sliding")
        frames = r["video.frames_u8"].permute(0, 3, 1, 2).float() / 127.5 - 1
        for k in range(1, len(frames) + 1):
            self.progress(f"video frame {k} of {len(frames)}")
            camera, sh = r["video.cams"][k - 1:k], r["video.shs"][k - 1:k]
            albedo = model.encode(frames[k - 1:k])
            shading = model.shade(albedo, sh)
            style = model.planes_to_style(albedo)
            got = {
                f"video.f{k}.albedo_planes": albedo,
                f"video.f{k}.shading_planes": shading[0],
                f"video.f{k}.superres_ws": _full_width(style),
            }
            smoothed = frozen.smooth(albedo, shading)
            if smoothed["residual_albedo"] is not None:
                got[f"video.frozen.residual_albedo"] = smoothed["residual_albedo"]
                got[f"video.frozen.residual_shading"] = smoothed["residual_shading"][0]
            out = model.render(smoothed["albedo_planes"], smoothed["shading_planes"], camera, style)
            got.update(_render_outputs(f"video.f{k}", out))
            smoothed = sliding.smooth(albedo, shading)
            if k == len(frames):
                got["video.sliding.residual_albedo"] = smoothed["residual_albedo"]
                got["video.sliding.residual_shading"] = smoothed["residual_shading"][0]
                out = model.render(smoothed["albedo_planes"], smoothed["shading_planes"], camera, style)
                got.update(_render_outputs("video.sliding_f7", out))
            yield got

    def _align_outputs(self) -> Iterator[dict[str, Tensor]]:
        from .track import align

        self.progress("5-point crop")
        r = self.refs
        for case, image in (("align", r["input.image_u8"]), ("alignB", r["alignB.image_u8"])):
            image, landmarks = image.numpy(), r[f"{case}.landmarks"].numpy()
            height, width = image.shape[:2]
            t, s = align.solve_similarity(landmarks, height)
            crop, pose = align.align_crop(image, landmarks), align.pose_crop(image, landmarks)
            window = align.align_window(image, landmarks)
            got = {
                "pos_t": t, "pos_s": np.array([s]),
                "trans300": align.crop_params(landmarks, width, height, align.RESCALE_CROP),
                "trans466": align.crop_params(landmarks, width, height, align.RESCALE_POSE),
                "lm224": align.pose_landmarks(landmarks, width, height),
                "high300_center": window[412:612, 412:612],
                "crop512": crop, "crop512_pillow": crop, "im224": pose, "im224_pillow": pose,
            }
            yield {f"{case}.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in got.items()}


def run_conformance(folder: str | Path, progress: Callable[[str], None] = lambda _: None) -> list[Result]:
    """Compare every reference output tensor in `folder`; results in reference-name order."""
    folder = Path(folder)
    if not (folder / "run_info.json").is_file():
        raise FileNotFoundError(f"{folder} is not a conformance folder (no run_info.json)")
    runner = Runner(folder, progress)
    ours: dict[str, Tensor] = {}
    for group in runner.outputs():
        ours.update(group)
    results = []
    for name in sorted(runner.expected):
        base = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1] in ("stats", "crop_c", "crop_tl", "tok_first", "tok_mid") else name
        if base not in ours:
            results.append(Result(name, float("nan"), 0, "not produced"))
            continue
        results.append(compare(name, ours[base], runner.refs[name]))
    return results
