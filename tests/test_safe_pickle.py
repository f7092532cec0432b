"""relight_core.safe_pickle: EG3D persistent pickles are read without running code from them.

The test pickles are written the way EG3D/StyleGAN3 training writes them: fake ``dnnlib``,
``dnnlib.util`` and ``torch_utils.persistence`` modules (importable only while pickling)
reproduce the ``@persistent_class`` format, i.e. ``(_reconstruct_persistent_obj, (meta,))``
with meta = {type, version, module_src, class_name, state}.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

from relight_core.safe_pickle import UnsafePickleError, read_eg3d_pickle

# ---------------------------------------------------------------- fake dnnlib / torch_utils


class EasyDict(dict):
    """Like dnnlib.util.EasyDict: a dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_CLASSES: dict[str, type] = {}


def _reconstruct_persistent_obj(meta):
    """What the real one does: exec the pickled module source, then rebuild the object."""
    exec(meta["module_src"], types.ModuleType("_imported_module").__dict__)
    cls = _CLASSES[meta["class_name"]]
    obj = cls.__new__(cls)
    obj.__dict__.update(meta["state"])
    return obj


EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


@contextlib.contextmanager
def stylegan_importable():
    """Make the fake dnnlib/torch_utils importable (as while training), then remove them."""
    mods = {name: types.ModuleType(name) for name in ("dnnlib", "dnnlib.util", "torch_utils", "torch_utils.persistence")}
    mods["dnnlib.util"].EasyDict = mods["dnnlib"].EasyDict = EasyDict
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    saved = {name: sys.modules.get(name) for name in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def persistent_class(orig, module_src="import torch\n\nclass Net(torch.nn.Module):\n    pass\n"):
    """Minimal @persistence.persistent_class: keeps init args, pickles with module source."""

    class Decorator(orig):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)

        def __reduce__(self):
            fields = list(super().__reduce__())
            meta = dict(type="class", version=6, module_src=module_src, class_name=orig.__name__, state=fields[2])
            return (_reconstruct_persistent_obj, (meta,), None)

    Decorator.__name__ = Decorator.__qualname__ = orig.__name__
    _CLASSES[orig.__name__] = Decorator
    return Decorator


# ---------------------------------------------------------------- a tiny EG3D-like network


class TinyMapping(torch.nn.Module):
    def __init__(self, z_dim, w_dim, num_layers=2):
        super().__init__()
        self.fc0 = torch.nn.Linear(z_dim, w_dim)                               # plain torch module
        self.weight = torch.nn.Parameter(torch.randn(w_dim, 2 * z_dim)[:, ::2])  # non-contiguous
        self.register_buffer("w_avg", torch.randn(w_dim))
        self.weight_gain = np.float32(1 / np.sqrt(z_dim))                        # numpy scalar attribute
        self.num_layers = num_layers


class TinyGenerator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, mapping_kwargs={}, rendering_kwargs={}, **kwargs):
        super().__init__()
        self.mapping = TinyMappingP(z_dim, w_dim, **mapping_kwargs)
        self.decoder = torch.nn.Sequential(torch.nn.Linear(w_dim, 8), torch.nn.Softplus(),
                                           torch.nn.Linear(8, 3, bias=False))
        self.blocks = torch.nn.ModuleList([TinyMappingP(w_dim, w_dim) for _ in range(2)])
        self.register_buffer("noise_const", torch.randn(4, 4, dtype=torch.float64))
        self.register_buffer("steps", torch.arange(3))
        self.register_buffer("cache", torch.zeros(2, dtype=torch.float16), persistent=False)
        self.rendering_kwargs = rendering_kwargs


class TinyDiscriminator(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3)


class AugmentPipe(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("p", torch.ones([]))


TinyMappingP = persistent_class(TinyMapping)
TinyGeneratorP = persistent_class(TinyGenerator)

G_ARGS = (8, 25, 16)
G_KWARGS = dict(mapping_kwargs=EasyDict(num_layers=2), sr_kwargs=EasyDict(channel_base=32768),
                rendering_kwargs=EasyDict(depth_resolution=48, box_warp=1.0, ray_start="auto", clamp_mode="softplus",
                                          sr_antialias=True, image_resolution=64, avg_camera_pivot=[0, 0, 0.2]))
TRAINING_SET_KWARGS = dict(class_name="training.dataset.ImageFolderDataset", path="ffhq.zip",
                           resolution=64, use_labels=True, max_size=None, xflip=False)


def expected_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def write_snapshot(path, protocol=pickle.DEFAULT_PROTOCOL, generator_cls=TinyGeneratorP):
    """Pickle {G, D, G_ema, augment_pipe, training_set_kwargs} as EG3D's training loop does."""
    torch.manual_seed(0)
    nets = dict(G=generator_cls(*G_ARGS, **G_KWARGS), D=persistent_class(TinyDiscriminator)(3))
    torch.manual_seed(1)
    nets["G_ema"] = generator_cls(*G_ARGS, **G_KWARGS)
    data = dict(training_set_kwargs=dict(EasyDict(TRAINING_SET_KWARGS)), **nets,
                augment_pipe=persistent_class(AugmentPipe)())
    with stylegan_importable(), open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return nets


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_reads_tensors_and_config_exactly(tmp_path, protocol):
    path = tmp_path / "network-snapshot.pkl"
    nets = write_snapshot(path, protocol)
    assert "dnnlib" not in sys.modules and "torch_utils.persistence" not in sys.modules

    out = read_eg3d_pickle(path)

    assert set(out) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert out["training_set_kwargs"] == TRAINING_SET_KWARGS
    assert isinstance(out["augment_pipe"], str) and "AugmentPipe" in out["augment_pipe"]
    assert "dnnlib" not in sys.modules and "torch_utils" not in sys.modules  # nothing imported
    for key, net in nets.items():
        rec = out[key]
        assert rec["class_name"] == type(net).__name__
        expected = expected_tensors(net)
        assert set(rec["tensors"]) == set(expected)  # parameters and all buffers
        state_dict_keys = list(net.state_dict())
        assert [k for k in rec["tensors"] if k in state_dict_keys] == state_dict_keys  # in state_dict order
        for name, tensor in expected.items():
            got = rec["tensors"][name]
            assert type(got) is torch.Tensor and got.dtype == tensor.dtype and got.device.type == "cpu"
            assert torch.equal(got, tensor.detach()), name
    g = out["G_ema"]
    assert g["init_args"] == list(G_ARGS)
    assert g["init_kwargs"] == {k: dict(v) for k, v in G_KWARGS.items()}
    assert all(type(v) is dict for v in g["init_kwargs"].values())  # EasyDict -> dict
    assert "mapping.fc0.bias" in g["tensors"] and "cache" in g["tensors"]  # stub torch module; non-persistent buffer
    assert "decoder.2.bias" not in g["tensors"]  # bias=None is skipped
    assert "class Net" in g["module_src"]
    assert not torch.equal(out["G"]["tensors"]["mapping.w_avg"], g["tensors"]["mapping.w_avg"])


def test_pickled_module_source_is_not_executed(tmp_path):
    marker = tmp_path / "code_ran.txt"
    side_effect = persistent_class(TinyGenerator, module_src=f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n")
    path = tmp_path / "snapshot.pkl"
    write_snapshot(path, generator_cls=side_effect)

    with stylegan_importable():
        with open(path, "rb") as f:
            pickle.load(f)  # control: the normal loader does run the pickled source
        assert marker.exists()
        marker.unlink()
        out = read_eg3d_pickle(path)  # ours does not, even with torch_utils importable

    assert not marker.exists()
    assert "pwned" in out["G_ema"]["module_src"] and out["G_ema"]["tensors"]


class _Call:
    """Pickles as a call ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize("payload, global_name", [
    (lambda m: _Call(os.system, f"touch {m}"), f"{os.system.__module__}.system"),
    (lambda m: _Call(eval, f"open({str(m)!r}, 'w')"), "builtins.eval"),
    (lambda m: _Call(torch.nn.Linear, 2, 2), "torch.nn.modules.linear.Linear"),  # calling a class is refused
])
def test_malicious_global_is_refused(tmp_path, payload, global_name):
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / "model.pkl"
    torch.manual_seed(0)
    net = TinyGeneratorP(*G_ARGS, **G_KWARGS)
    net.extra = {"hidden": [payload(marker)]}  # buried in the network's pickled state
    with stylegan_importable(), open(path, "wb") as f:
        pickle.dump({"G_ema": net}, f)

    with pytest.raises(UnsafePickleError, match="refusing") as info:
        read_eg3d_pickle(path)
    assert global_name in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, ValueError) and not marker.exists()


def test_malicious_tensor_bytes_are_refused(tmp_path):
    marker = tmp_path / "code_ran.txt"
    evil_bytes = pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=2)
    tensor = _Call(torch._utils._rebuild_tensor_v2, _Call(torch.storage._load_from_bytes, evil_bytes),
                   0, (1,), (1,), False, OrderedDict())
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": tensor}, f)
    with pytest.raises(UnsafePickleError, match="system") as info:
        read_eg3d_pickle(path)
    assert str(path) in str(info.value) and not marker.exists()


def test_legacy_cuda_tensor_maps_to_cpu(tmp_path):
    """Old pickles of CUDA tensors name torch.cuda.FloatStorage and location 'cuda:0'."""
    buf = io.BytesIO()  # what torch's TypedStorage.__reduce__ writes
    torch.save(torch.arange(3.0)._typed_storage(), buf, _use_new_zipfile_serialization=False)
    cuda_bytes = buf.getvalue().replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n")
    cuda_bytes = cuda_bytes.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    assert b"cuda:0" in cuda_bytes
    weight = _Call(torch._utils._rebuild_tensor_v2, _Call(torch.storage._load_from_bytes, cuda_bytes),
                   0, (3,), (1,), False, OrderedDict())
    meta = dict(type="class", version=6, module_src="", class_name="Net",
                state={"_parameters": {"weight": weight}, "_buffers": {}, "_modules": {}})
    path = tmp_path / "legacy.pkl"
    with stylegan_importable(), open(path, "wb") as f:
        pickle.dump({"G_ema": _Call(_reconstruct_persistent_obj, meta)}, f, protocol=2)

    got = read_eg3d_pickle(path)["G_ema"]["tensors"]["weight"]
    assert got.device.type == "cpu" and torch.equal(got, torch.arange(3.0))


def test_clear_errors(tmp_path):
    missing = tmp_path / "missing.pkl"
    with pytest.raises(ValueError, match="missing.pkl: no such file.*EG3D-style network pickle"):
        read_eg3d_pickle(missing)

    text = tmp_path / "notes.pkl"
    text.write_text("this is not a pickle\n")
    with pytest.raises(ValueError, match="notes.pkl is not a readable pickle.*G_ema"):
        read_eg3d_pickle(text)

    zipped = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, zipped)
    with pytest.raises(ValueError, match="model.pth is a zip archive"):
        read_eg3d_pickle(zipped)

    no_nets = tmp_path / "kwargs.pkl"
    no_nets.write_bytes(pickle.dumps({"training_set_kwargs": {"resolution": 512}}))
    with pytest.raises(ValueError, match="kwargs.pkl contains no networks.*training_set_kwargs"):
        read_eg3d_pickle(no_nets)

    a_list = tmp_path / "list.pkl"
    a_list.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="list.pkl holds a list, not a dict"):
        read_eg3d_pickle(a_list)
