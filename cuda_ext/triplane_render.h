// Fused forward of the tri-plane volume renderer (relight_core/models/renderer.py, eval mode).
//
// Inference only: deterministic sampling (no ray jitter, u = linspace(0, 1) for the importance
// samples), no backward. Four launches on the current stream, all per-point or per-ray:
//   1. decode the coarse samples: point -> 3-plane bilinear gathers of the albedo and every
//      shading tri-plane -> both decoder MLPs -> sigma, albedo features, shading per light;
//   2. per ray: coarse compositing weights -> smoothed pdf -> inverse-CDF fine depths;
//   3. decode the fine samples (kernel 1 again);
//   4. per (ray, channel): merge coarse and fine by depth, composite, write the images.
// Only the small per-sample intermediates of 1-3 touch global memory (they stay in L2 at 64^2 rays).
#pragma once

#include <ATen/ATen.h>

#include <vector>

// Checks the arguments, allocates, launches. Returns
//   {features [L, B, C, M] (albedo x shading, x2-1), albedo [B, C, M] (x2-1), shading [L, B, M],
//    depth [B, M], opacity [B, M]}, all float32, M = rays.
std::vector<at::Tensor> triplane_render_fwd(
    const at::Tensor& albedo_planes,   // [B, 3, R, R, C] float32 / bfloat16 / float16, contiguous
    const at::Tensor& shading_planes,  // [L, B, 3, R, R, C] same dtype, contiguous
    const at::Tensor& origins,         // [B, M, 3] float32, head space
    const at::Tensor& directions,      // [B, M, 3] float32, unit
    const at::Tensor& coarse_depths,   // [Sc] float32, ascending (torch.linspace(ray_start, ray_end, Sc))
    const at::Tensor& fine_u,          // [Sf] float32 (torch.linspace(0, 1, Sf))
    const at::Tensor& albedo_w1,       // [H, C] float32, equalized gain applied
    const at::Tensor& albedo_b1,       // [H]
    const at::Tensor& albedo_w2,       // [1 + C, H]
    const at::Tensor& albedo_b2,       // [1 + C]
    const at::Tensor& shading_w1,      // [H, C]
    const at::Tensor& shading_b1,      // [H]
    const at::Tensor& shading_w2,      // [1, H]
    const at::Tensor& shading_b2,      // [1]
    double box_warp);

// Launches the four kernels of triplane_render_fwd on tensors it has checked and allocated.
void launch_triplane_render_fwd_kernels(
    const at::Tensor& albedo_planes, const at::Tensor& shading_planes, const at::Tensor& origins,
    const at::Tensor& directions, const at::Tensor& coarse_depths, const at::Tensor& fine_u,
    const std::vector<at::Tensor>& decoder,  // the eight decoder tensors, in the order above
    float coord_scale,  // 2 / box_warp: head space -> plane coordinates in [-1, 1]
    // scratch: per-sample decoder outputs and the fine depths
    at::Tensor& coarse_sigma,    // [B, M, Sc]
    at::Tensor& coarse_albedo,   // [B, M, Sc, C]
    at::Tensor& coarse_shading,  // [L, B, M, Sc]
    at::Tensor& fine_depths,     // [B, M, Sf]
    at::Tensor& fine_sigma,      // [B, M, Sf]
    at::Tensor& fine_albedo,     // [B, M, Sf, C]
    at::Tensor& fine_shading,    // [L, B, M, Sf]
    // outputs
    at::Tensor& features, at::Tensor& albedo, at::Tensor& shading, at::Tensor& depth, at::Tensor& opacity);

// Sizes the kernels are compiled for (plane channels C, decoder hidden width H), and limits.
constexpr int kMaxSamples = 128;  // per pass (coarse or fine), per ray
constexpr int kMaxLights = 4;
inline bool triplane_render_supported(int64_t channels, int64_t hidden) {
  return (channels == 32 && hidden == 64) || (channels == 8 && hidden == 16);
}
