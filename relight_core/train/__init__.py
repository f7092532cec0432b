"""Training data and training loops (ARCHITECTURE.md section 6).

Synthetic heads with ground truth: :mod:`.heads` (the exported MakeHuman head model),
:mod:`.albedo` (procedural skin, eyes, hair, clothes, backgrounds), :mod:`.raster` (a pure-torch
rasterizer) and :mod:`.synthetic` (the sampler the training loops call). Submodules are imported on
use, so ``import relight_core.train`` stays cheap.
"""
