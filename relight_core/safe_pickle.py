"""Read EG3D/StyleGAN3 "persistent" network pickles without running code from them.

EG3D training writes ``pickle.dump({"G": ..., "D": ..., "G_ema": ..., ...})``. Each
``@persistent_class`` network is stored as a call ``torch_utils.persistence._reconstruct_persistent_obj(meta)``;
``meta`` holds the *source code* of the class's module (the official loader ``exec``s it), the class
name and the object's ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``...).
Here that call just returns ``meta``. Every other global must be on a short allow-list; module classes
such as ``torch.nn.Sequential`` become inert stand-ins that are never imported, and tensor bytes go
through ``torch.load(weights_only=True)``. Reading a file never imports or calls code chosen by it.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import copyreg
import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["UnsafePickleError", "PersistentMeta", "read_eg3d_pickle"]

_EXPECTED = ("expected an EG3D-style network pickle (a dict with persistent networks such as "
             "G, D and G_ema, as written by EG3D/StyleGAN3 training)")


class UnsafePickleError(ValueError):
    """The pickle asks for a global outside the allow-list: loading it could run code."""


class PersistentMeta(dict):
    """The ``meta`` of a ``@persistent_class`` object: type, version, module_src, class_name, state."""


class _ModuleStub:
    """Inert stand-in for a non-persistent class (e.g. ``torch.nn.Linear``); never imported.

    Pickle may create it with ``__new__`` and give it its ``__dict__`` through ``__setstate__``
    (how modules are pickled). Calling the class, i.e. running its constructor, is refused.
    """

    qualname = source = "?"

    def __init__(self, *args, **kwargs):
        raise UnsafePickleError(f"refusing to call {self.qualname} from {self.source}: "
                                "this file tries to run code")

    def __setstate__(self, state):
        self.state = state


_NP_RECONSTRUCT = np.zeros(0).__reduce__()[0]   # numpy.core.multiarray._reconstruct (any numpy)
_NP_SCALAR = np.float64(0).__reduce__()[0]       # numpy.core.multiarray.scalar
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # only ever gets allow-listed classes
    ("_codecs", "encode"): codecs.encode,                  # bytes in protocol-2 pickles
    ("dnnlib.util", "EasyDict"): dict,
    ("dnnlib", "EasyDict"): dict,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    **{(m, "_reconstruct"): _NP_RECONSTRUCT for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _NP_SCALAR for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{("builtins", t.__name__): t for t in (set, frozenset, object, dict, list, tuple, bytearray, complex)},
    **{("torch._utils", n): getattr(torch._utils, n) for n in (
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state")},
    **{("torch", n): getattr(torch, n) for n in (
        "Size", "device", "float16", "bfloat16", "float32", "float64", "uint8", "int8", "int16", "int32",
        "int64", "bool", "complex64", "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage",
        "ByteStorage", "CharStorage", "ShortStorage", "IntStorage", "LongStorage", "BoolStorage")},
}
# Modules whose classes may appear as inert stand-ins (torch layers; EG3D's non-persistent helpers
# such as training.volumetric_rendering.renderer.ImportanceRenderer or training.triplane.OSGDecoder).
_STUB_PREFIXES = ("torch.nn.modules.", "training.")


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals (see the module docstring)."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path
        self._stubs: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))  # Python 2 names
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return PersistentMeta  # PersistentMeta(meta) returns meta instead of exec'ing its source
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return self._load_storage
        if module.startswith(_STUB_PREFIXES) and name.isidentifier():
            qualname = f"{module}.{name}"
            if qualname not in self._stubs:
                attrs = {"qualname": qualname, "module_name": module, "source": str(self.path)}
                self._stubs[qualname] = type(name, (_ModuleStub,), attrs)
            return self._stubs[qualname]
        raise UnsafePickleError(f"refusing to load {module}.{name} from {self.path}: it is not on the "
                                "allow-list of a network pickle (this file tries to run code)")

    def _load_storage(self, data: bytes):
        """Tensor storage pickled as ``torch.save`` bytes: load it weights-only, onto the CPU."""
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            msg = str(err)
            detail = msg[msg.find("WeightsUnpickler error:"):].split("\n")[0] if "WeightsUnpickler" in msg else msg
            raise UnsafePickleError(f"refusing tensor data in {self.path}: it is not plain tensor data "
                                    f"({detail.strip()})") from None


def _node(obj) -> tuple[str, str | None, dict] | None:
    """``(class_name, module_name, state)`` of a pickled module object, else None."""
    if isinstance(obj, PersistentMeta) and isinstance(obj.get("state"), dict):
        return str(obj.get("class_name")), None, obj["state"]
    if isinstance(obj, _ModuleStub):
        state = getattr(obj, "state", None)
        return type(obj).__name__, type(obj).module_name, state if isinstance(state, dict) else {}
    return None


def _collect(state: dict, prefix: str, out: dict[str, torch.Tensor]) -> int:
    """Add the parameters and buffers under ``state`` to ``out``; return the number of parameters."""
    n_params = 0
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor.detach()
                n_params += group == "_parameters"
    for name, child in (state.get("_modules") or {}).items():
        node = _node(child)
        if node is not None:
            n_params += _collect(node[2], f"{prefix}{name}.", out)
    return n_params


def _plain(value):
    """Convert to dicts, lists, numbers and strings (tensors kept); describe anything else."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.Tensor)):
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    node = _node(value)
    if node is not None:
        return f"<{node[0]} object (no parameters, not a network); contents not read>"
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int, float, bool)) else repr(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return f"<{type(value).__name__} object>"


def _network(value) -> dict | None:
    """The record of a network (a pickled module with at least one parameter), else None."""
    node = _node(value)
    if node is None:
        return None
    class_name, module_name, state = node
    tensors: dict[str, torch.Tensor] = {}
    if _collect(state, "", tensors) == 0:
        return None
    return {"class_name": class_name, "module_name": module_name,
            "module_src": value.get("module_src") if isinstance(value, PersistentMeta) else None,
            "init_args": _plain(state.get("_init_args", ())),
            "init_kwargs": _plain(state.get("_init_kwargs", {})),
            "tensors": tensors}


def read_eg3d_pickle(path) -> dict:
    """Read an EG3D/StyleGAN-style network pickle without executing any code from it.

    Returns ``{key: entry}`` for the pickle's top-level dict. A network (typically ``G``, ``D``,
    ``G_ema``) becomes ``{"class_name", "module_name" (None for persistent classes, which carry
    source instead), "module_src", "init_args" (list), "init_kwargs" (plain dict),
    "tensors" ({dotted.name: CPU tensor} of all parameters and buffers)}``. Other entries
    (``training_set_kwargs``...) come back as plain values, or a short description string.

    Raises ``UnsafePickleError`` (a ``ValueError``) if the file names a global that could run
    code, and ``ValueError`` if the file is missing, not a pickle, or holds no networks.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; {_EXPECTED}")
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise ValueError(f"{path} is a zip archive (a torch.save checkpoint?), not a pickle; {_EXPECTED}")
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated")
                data = _SafeUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except Exception as err:
            raise ValueError(f"{path} is not a readable pickle ({type(err).__name__}: {err}); "
                             f"{_EXPECTED}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a dict; {_EXPECTED}")
    out, networks = {}, []
    for key, value in data.items():
        record = _network(value)
        if record is not None:
            networks.append(key)
        out[key] = record if record is not None else _plain(value)
    if not networks:
        raise ValueError(f"{path} contains no networks (top-level keys: {sorted(map(str, data))}); {_EXPECTED}")
    return out
