"""The worker (relight_core.worker): protocol over a real subprocess, and every command on a real clip.

The clip is three frames with a face (70-72) of the Tears of Steel excerpt (CC BY 3.0, (c) Blender
Foundation) re-encoded to a short MP4; the network is the seeded `tiny` config, so each job takes
seconds on a CPU. Tests that need the clip skip when ../shared/data is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from relight_core import sh
from relight_core.worker import FRONT_CAMERA, PROTOCOL, Handler

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(face_clip):
    return face_clip


def _run(handler: Handler, cmd: str, args: dict | None = None, rid: int = 1, on_progress=None) -> tuple[list, dict]:
    """Call the handler like the subprocess loop does: (progress messages, final message)."""
    messages = []

    def emit(msg):
        json.dumps(msg, allow_nan=False)  # every message must be valid protocol JSON
        messages.append(msg)
        if msg["type"] == "progress" and on_progress is not None:
            on_progress(msg)

    handler.handle({"id": rid, "cmd": cmd, "args": args or {}}, emit)
    assert all(m["id"] == rid for m in messages)
    assert [m["type"] for m in messages[:-1]] == ["progress"] * (len(messages) - 1)
    return messages[:-1], messages[-1]


def _render_args(clip, out, **extra):
    return dict(input=str(clip), out=str(out), weights="tiny", formats=["exr32"], multilayer=False, preview=False,
                contact_sheet=False, **extra)


def test_subprocess_handshake_errors_and_shutdown():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    lines = [{"id": 1, "cmd": "hello", "args": {"protocol": PROTOCOL}},
             {"id": 2, "cmd": "hello", "args": {"protocol": PROTOCOL + 1}},
             {"id": 3, "cmd": "no_such_command"},
             {"id": 4, "cmd": "track", "args": {"plate": "/nowhere/plate.mp4"}},
             {"id": 5, "cmd": "shutdown"}]
    text = "\n".join(json.dumps(x) for x in lines) + "\nthis is not json\n"
    proc = subprocess.run([sys.executable, "-m", "relight_core.worker"], input=text, capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout holds protocol lines only
    by_id = {m["id"]: m for m in out}
    hello = by_id[1]["result"]
    assert hello["protocol"] == PROTOCOL and hello["torch"] == torch.__version__
    assert hello["cuda_available"] == torch.cuda.is_available() and "gpu" in hello and hello["weights"]
    assert by_id[2]["kind"] == "protocol" and "install matching versions" in by_id[2]["message"]
    assert by_id[3]["kind"] == "bad_request" and "unknown command" in by_id[3]["message"]
    assert by_id[5]["result"] == {"shutdown": True}
    assert 4 not in by_id or by_id[4]["kind"] in ("cancelled", "input")  # queued behind shutdown
    assert "relight worker: protocol" in proc.stderr  # logs go to stderr


def test_track_gives_a_plausible_head_pose_per_frame(clip):
    progress, final = _run(Handler(), "track", {"plate": str(clip)})
    assert final["type"] == "result", final
    res = final["result"]
    assert res["frame_numbers"] == [1, 2, 3] and res["size"] == [640, 360] and res["found"] == 3
    assert [p["done"] for p in progress] == [1, 2, 3] and progress[-1]["total"] == 3
    assert res["fov_deg"] == pytest.approx(39.6, abs=0.05)  # the default 50 mm lens on 36 mm
    for rec in res["frames"]:
        m = np.asarray(rec["head_to_camera"])
        scale = np.linalg.norm(m[:3, :3], axis=0)
        assert np.allclose(scale, res["metres_per_unit"])  # the head scale sits in the rotation block
        assert 0.3 < m[2, 3] < 5.0  # the head is in front of the camera, at a human distance (metres)
    far = np.asarray(res["frames"][0]["head_to_camera"])[:3, 3] - np.asarray(res["frames"][2]["head_to_camera"])[:3, 3]
    assert np.linalg.norm(far) < 0.2  # three consecutive frames: the head barely moves


def test_light_from_plate_writes_the_world_image(clip, tmp_path):
    from relight_core.io.exr import read_exr

    cam = [[1, 0, 0, 0], [0, 0, -1, -3], [0, 1, 0, 1.5], [0, 0, 0, 1]]  # front view, moved
    _, final = _run(Handler(), "light_from_plate", {"plate": str(clip), "frame": 2, "out": str(tmp_path / "env.exr"),
                                                   "height": 32, "camera_matrix": cam})
    assert final["type"] == "result", final
    res = final["result"]
    env = read_exr(res["path"])
    assert env.shape == (32, 64, 3) and env.dtype == np.float32 and env.min() >= 0 and np.isfinite(env).all()
    sh_cam, sh_world = torch.tensor(res["sh_camera"]), torch.tensor(res["sh_world"])
    # a camera in front view: world and camera DPR frames coincide (the translation is ignored)
    torch.testing.assert_close(sh_world, sh_cam, atol=1e-5, rtol=0)
    # the image projects back onto the light (clamping the ringing adds a little energy only)
    back = sh.project_envmap(torch.from_numpy(env.astype(np.float64)))
    assert float(back[0].sum()) == pytest.approx(float(sh_world[0].sum()), rel=0.1)
    torch.testing.assert_close(back[1:4], sh_world[1:4].double(), atol=0.1 * float(sh_world[0].abs().max()), rtol=0)
    # the same light seen by a camera turned 90 degrees to the left lands elsewhere in the world
    turned = np.asarray(FRONT_CAMERA) @ np.asarray([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    _, other = _run(Handler(), "light_from_plate", {"plate": str(clip), "frame": 2, "out": str(tmp_path / "b.exr"),
                                                   "height": 16, "camera_matrix": turned.tolist()})
    rotated = torch.tensor(other["result"]["sh_world"])
    torch.testing.assert_close(rotated[0], sh_world[0], atol=1e-5, rtol=0)  # the ambient part stays
    assert not torch.allclose(rotated[1:4], sh_world[1:4], atol=1e-3)


def test_render_cancel_resume_and_passes(clip, tmp_path):
    handler = Handler()
    out = tmp_path / "job"

    def cancel_after_first(msg):
        handler.cancel(7)

    progress, final = _run(handler, "render", _render_args(clip, out), rid=7, on_progress=cancel_after_first)
    assert final["type"] == "error" and final["kind"] == "cancelled", final
    assert [p["done"] for p in progress] == [1]  # stopped between frames
    assert (out / "frames" / "frame.0001.json").is_file() and not (out / "frames" / "frame.0003.json").exists()

    progress, final = _run(handler, "render", _render_args(clip, out), rid=8)
    assert final["type"] == "result", final
    res = final["result"]
    assert "1 already done" in res["summary"] and [p["done"] for p in progress] == [2, 3]
    assert [f["frame"] for f in res["frames"]] == [1, 2, 3] and all(f["relit"] for f in res["frames"])
    with np.load(res["frames"][1]["passes"]) as data:
        shapes = {k: data[k].shape for k in data.files}
        assert all(data[k].dtype == np.float32 for k in data.files)
        matte = data["alpha"][..., 0]
    assert shapes["beauty"] == (360, 640, 3) and shapes["relit"] == (360, 640, 4)
    assert shapes["normal"] == (360, 640, 3) and shapes["depth"] == (360, 640, 1)
    assert 0 < (matte > 0.5).mean() < 0.5  # a face-sized matte


def test_bad_requests_name_the_problem(clip, tmp_path):
    handler = Handler()
    _, final = _run(handler, "track", {"plate": str(tmp_path / "missing.mp4")})
    assert final["kind"] == "input" and "missing.mp4" in final["message"]
    _, final = _run(handler, "render", _render_args(clip, tmp_path / "o", resolution=9))
    assert final["kind"] == "bad_request" and "resolution" in final["message"]
    _, final = _run(handler, "light_from_plate", {"plate": str(clip), "frame": "two", "out": str(tmp_path / "x.exr")})
    assert final["kind"] == "bad_request" and "frame" in final["message"]
    _, final = _run(handler, "render", _render_args(clip, tmp_path / "o2", frames="50:60"))
    assert final["kind"] == "input" and "50" in final["message"]


def test_cancel_before_start_and_release(clip):
    handler = Handler()
    assert handler.cancel(11) is False  # not running yet: cancelled when it starts
    progress, final = _run(handler, "track", {"plate": str(clip)}, rid=11)
    assert final["kind"] == "cancelled" and progress == []
    _, final = _run(handler, "release", rid=12)
    assert final["result"] == {"released": 0}


def test_serve_answers_cancel_while_a_job_runs(clip):
    """The subprocess loop: hello and cancel are answered while a job runs on the job thread."""
    from relight_core.worker import serve

    lines_in: list = []
    started = threading.Event()
    out: list = []

    def write_line(text):
        msg = json.loads(text)
        out.append(msg)
        if msg.get("type") == "progress":
            started.set()

    def lines():
        yield json.dumps({"id": 1, "cmd": "track", "args": {"plate": str(clip)}})
        started.wait(60)
        yield json.dumps({"id": 2, "cmd": "cancel", "args": {"target": 1}})
        yield from lines_in

    serve(lines(), write_line)
    final = {m["id"]: m for m in out if m["type"] != "progress"}
    assert final[2]["result"] == {"cancelled": True}
    assert final[1]["kind"] == "cancelled"
    assert len([m for m in out if m["type"] == "progress"]) < 3


@pytest.mark.skipif(not (REPO / "relight_core" / "mesh.py").is_file(), reason="relight_core.mesh is not there yet")
def test_mesh_is_in_metres_in_head_space(clip, tmp_path):
    import trimesh

    _, final = _run(Handler(), "mesh", {"plate": str(clip), "frame": 2, "out": str(tmp_path / "head.ply"),
                                        "resolution": 64})
    assert final["type"] == "result", final
    mesh = trimesh.load(final["result"]["path"])
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert len(mesh.vertices) == final["result"]["vertices"] > 100
    assert 0.08 < extent.max() < 0.6  # a head, in metres


def _target_sh(out, frame=2):
    return np.asarray(json.loads((out / "frames" / f"frame.{frame:04d}.json").read_text())["target_sh"])


def test_render_exposure_scales_the_target_light(clip, tmp_path):
    """The add-on's Exposure: the target light (preset, or a scene's lights and world) is
    2**stops as bright, and each exposure is its own job."""
    from relight_core.scene import Light, Scene, SceneFrame, World

    handler = Handler()
    one = dict(frames="2:2", resume_warmup=0)
    _, final = _run(handler, "render", _render_args(clip, tmp_path / "rim", light="rim", exposure=1, **one))
    assert final["type"] == "result", final
    np.testing.assert_allclose(_target_sh(tmp_path / "rim"), 2.0 * sh.preset("rim").numpy(), rtol=1e-5)

    sun = Light(type="sun", power=3.0, matrix=((1, 0, 0, 0), (0, 0.6, -0.8, 0), (0, 0.8, 0.6, 0), (0, 0, 0, 1)))
    world = World(kind="constant", color=(0.2, 0.3, 0.4), strength=0.5)
    scene_file = tmp_path / "scene.json"
    Scene(frames={2: SceneFrame(frame=2, lights=(sun,), world=world)}).save(scene_file)
    targets = {}
    for stops in (0.0, -1.5):
        out = tmp_path / f"scene{stops}"
        _, final = _run(handler, "render", _render_args(clip, out, scene=str(scene_file), exposure=stops, **one))
        assert final["type"] == "result", final
        targets[stops] = _target_sh(out)
    assert np.abs(targets[0.0]).max() > 0.05
    np.testing.assert_allclose(targets[-1.5], 2.0**-1.5 * targets[0.0], rtol=1e-4, atol=1e-6)
    assert json.loads(scene_file.read_text())["frames"][0]["lights"][0]["exposure"] == 0.0  # the input is kept

    _, final = _run(handler, "render", _render_args(clip, tmp_path / "bad", exposure="bright"))
    assert final["kind"] == "bad_request" and "exposure" in final["message"]
    _, final = _run(handler, "render", _render_args(clip, tmp_path / "rot", light="rotating", exposure=1))
    assert final["kind"] == "input" and "rotating" in final["message"]
