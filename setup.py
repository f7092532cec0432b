"""Builds relight_core and, when a CUDA toolkit and a CUDA build of torch are present, cuda_ext.

Without CUDA the extension is skipped with a one-line notice; `relight build-ext` builds it later.
Install with `pip install --no-build-isolation -e .` so the build sees the installed torch.
"""

import os
import sys

from setuptools import find_packages, setup


def cuda_extensions():
    """The relight_core._cuda extension, or [] (with a notice) when it cannot be built here."""
    sources = sorted(
        os.path.join("cuda_ext", name) for name in os.listdir("cuda_ext") if name.endswith((".cpp", ".cu"))
    ) if os.path.isdir("cuda_ext") else []
    if not sources or os.environ.get("RELIGHT_NO_CUDA") == "1":
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        print("relight: torch is not installed in the build environment; skipping cuda_ext", file=sys.stderr)
        return [], {}
    if torch.version.cuda is None or CUDA_HOME is None:
        print("relight: no CUDA toolkit or CPU-only torch; skipping cuda_ext (build later with `relight build-ext`)",
              file=sys.stderr)
        return [], {}
    extension = CUDAExtension(
        "relight_core._cuda",
        sources,
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "--use_fast_math"]},
    )
    return [extension], {"build_ext": BuildExtension}


extensions, commands = cuda_extensions()

# Identity embeddings for `relight eval` (dlib's ResNet face descriptor and its model files).
EVAL = ["dlib-bin>=19.24", "face-recognition-models==0.3.0"]

setup(
    name="relight",
    version="0.1.0",
    description="Real-time 3D-aware relighting of people in video",
    python_requires=">=3.11",
    packages=find_packages(include=["relight_core", "relight_core.*"]),
    package_data={"relight_core": ["data/*"]},
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24,<2",  # bpy 4.5 (the Blender add-on tests) needs numpy 1.x
        "safetensors>=0.4",
        "pillow>=10",
        "tqdm>=4.66",
        "imageio>=2.34",
        "imageio-ffmpeg>=0.5",
        "scikit-image>=0.22",
        "OpenEXR>=3.3,<4",
        "tifffile>=2023.1",
        "mediapipe==0.10.21",  # the last release that ships its face models inside the wheel
        "opencv-contrib-python>=4.9",  # the OpenCV build mediapipe itself pulls in; one cv2, not two
        "PyMCubes>=0.1.4",  # marching cubes for head meshes
        "trimesh>=4",  # mesh clean-up and PLY/OBJ/GLB export
        "fast-simplification>=0.1.7",  # the decimation trimesh calls for `relight mesh --decimate`
    ],
    extras_require={
        # bpy (Blender as a Python module) runs the add-on tests; its wheels exist for Python 3.11.
        "test": ["pytest>=8", "bpy==4.5.15; python_version == '3.11'", *EVAL],
        "eval": EVAL,
        "ocio": ["opencolorio>=2.3"],
    },
    entry_points={"console_scripts": ["relight = relight_core.cli:main"]},
    ext_modules=extensions,
    cmdclass=commands,
)
