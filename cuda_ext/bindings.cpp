// The one bindings file of relight_core._cuda: every op of cuda_ext/ is registered here.
// Ops are inference-only forwards for now (no `_bwd`): the torch reference is the training path.
#include <torch/extension.h>

#include "triplane_render.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused CUDA kernels of relight_core (see cuda_ext/README.md)";
  m.def("triplane_render_fwd", &triplane_render_fwd,
        "Fused eval-mode tri-plane volume render (forward only); see cuda_ext/triplane_render.h");
  m.def("triplane_render_supported", &triplane_render_supported,
        "Whether (plane channels, decoder hidden width) has a compiled kernel");
}
