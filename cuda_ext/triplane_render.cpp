// Argument checks and allocation for triplane_render_fwd (see triplane_render.h).
#include "triplane_render.h"

#include <c10/cuda/CUDAGuard.h>

#include <string>

namespace {

std::string shape_of(const at::Tensor& t) { return c10::str(t.sizes()); }

void check_tensor(const at::Tensor& t, const char* name, const at::Device& device) {
  TORCH_CHECK(t.is_cuda(), "triplane_render: ", name, " must be a CUDA tensor, got device ", t.device());
  TORCH_CHECK(t.device() == device, "triplane_render: ", name, " is on ", t.device(), ", albedo_planes on ", device);
  TORCH_CHECK(t.is_contiguous(), "triplane_render: ", name, " must be contiguous (shape ", shape_of(t), ")");
}

void check_float(const at::Tensor& t, const char* name, const at::Device& device, at::IntArrayRef shape) {
  check_tensor(t, name, device);
  TORCH_CHECK(t.scalar_type() == at::kFloat, "triplane_render: ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, "triplane_render: ", name, " must have shape ", shape, ", got ", shape_of(t));
}

}  // namespace

std::vector<at::Tensor> triplane_render_fwd(
    const at::Tensor& albedo_planes, const at::Tensor& shading_planes, const at::Tensor& origins,
    const at::Tensor& directions, const at::Tensor& coarse_depths, const at::Tensor& fine_u,
    const at::Tensor& albedo_w1, const at::Tensor& albedo_b1, const at::Tensor& albedo_w2,
    const at::Tensor& albedo_b2, const at::Tensor& shading_w1, const at::Tensor& shading_b1,
    const at::Tensor& shading_w2, const at::Tensor& shading_b2, double box_warp) {
  TORCH_CHECK(albedo_planes.dim() == 5 && albedo_planes.size(1) == 3 && albedo_planes.size(2) == albedo_planes.size(3),
              "triplane_render: albedo_planes must be [B, 3, R, R, C], got ", shape_of(albedo_planes));
  const at::Device device = albedo_planes.device();
  check_tensor(albedo_planes, "albedo_planes", device);
  const auto dtype = albedo_planes.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf,
              "triplane_render: planes must be float32, bfloat16 or float16, got ", dtype);
  const int64_t batch = albedo_planes.size(0), res = albedo_planes.size(2), channels = albedo_planes.size(4);
  check_tensor(shading_planes, "shading_planes", device);
  TORCH_CHECK(shading_planes.scalar_type() == dtype, "triplane_render: shading_planes dtype ",
              shading_planes.scalar_type(), " differs from albedo_planes dtype ", dtype);
  TORCH_CHECK(shading_planes.dim() == 6 && shading_planes.sizes().slice(1) == albedo_planes.sizes(),
              "triplane_render: shading_planes must be [L, ", c10::str(albedo_planes.sizes()).substr(1),
              ", got ", shape_of(shading_planes));
  const int64_t lights = shading_planes.size(0);
  TORCH_CHECK(lights >= 1 && lights <= kMaxLights, "triplane_render: 1 to ", kMaxLights, " lights, got ", lights);
  TORCH_CHECK(origins.dim() == 3 && origins.size(0) == batch && origins.size(2) == 3,
              "triplane_render: origins must be [", batch, ", M, 3], got ", shape_of(origins));
  const int64_t rays = origins.size(1);
  check_float(origins, "origins", device, {batch, rays, 3});
  check_float(directions, "directions", device, {batch, rays, 3});
  TORCH_CHECK(coarse_depths.dim() == 1 && fine_u.dim() == 1, "triplane_render: coarse_depths and fine_u must be 1-D");
  const int64_t coarse = coarse_depths.size(0), fine = fine_u.size(0);
  TORCH_CHECK(coarse >= 4 && coarse <= kMaxSamples && fine >= 1 && fine <= kMaxSamples,
              "triplane_render: need 4 <= coarse samples <= ", kMaxSamples, " and 1 <= fine samples <= ",
              kMaxSamples, ", got ", coarse, " and ", fine);
  check_float(coarse_depths, "coarse_depths", device, {coarse});
  check_float(fine_u, "fine_u", device, {fine});
  TORCH_CHECK(albedo_w1.dim() == 2, "triplane_render: albedo_w1 must be [H, C], got ", shape_of(albedo_w1));
  const int64_t hidden = albedo_w1.size(0);
  TORCH_CHECK(triplane_render_supported(channels, hidden), "triplane_render: compiled for (C, H) = (32, 64) or "
              "(8, 16), got (", channels, ", ", hidden, ")");
  check_float(albedo_w1, "albedo_w1", device, {hidden, channels});
  check_float(albedo_b1, "albedo_b1", device, {hidden});
  check_float(albedo_w2, "albedo_w2", device, {1 + channels, hidden});
  check_float(albedo_b2, "albedo_b2", device, {1 + channels});
  check_float(shading_w1, "shading_w1", device, {hidden, channels});
  check_float(shading_b1, "shading_b1", device, {hidden});
  check_float(shading_w2, "shading_w2", device, {1, hidden});
  check_float(shading_b2, "shading_b2", device, {1});
  TORCH_CHECK(res >= 1 && box_warp > 0, "triplane_render: need R >= 1 and box_warp > 0");
  TORCH_CHECK(batch * rays * std::max(coarse, fine) * channels < (int64_t(1) << 31),
              "triplane_render: problem too large for 32-bit indexing; render fewer rays per call");

  const c10::cuda::CUDAGuard guard(device);
  const auto f32 = albedo_planes.options().dtype(at::kFloat);
  at::Tensor coarse_sigma = at::empty({batch, rays, coarse}, f32);
  at::Tensor coarse_albedo = at::empty({batch, rays, coarse, channels}, f32);
  at::Tensor coarse_shading = at::empty({lights, batch, rays, coarse}, f32);
  at::Tensor fine_depths = at::empty({batch, rays, fine}, f32);
  at::Tensor fine_sigma = at::empty({batch, rays, fine}, f32);
  at::Tensor fine_albedo = at::empty({batch, rays, fine, channels}, f32);
  at::Tensor fine_shading = at::empty({lights, batch, rays, fine}, f32);
  at::Tensor features = at::empty({lights, batch, channels, rays}, f32);
  at::Tensor albedo = at::empty({batch, channels, rays}, f32);
  at::Tensor shading = at::empty({lights, batch, rays}, f32);
  at::Tensor depth = at::empty({batch, rays}, f32);
  at::Tensor opacity = at::empty({batch, rays}, f32);
  if (batch * rays == 0) {
    return {features, albedo, shading, depth, opacity};
  }
  launch_triplane_render_fwd_kernels(
      albedo_planes, shading_planes, origins, directions, coarse_depths, fine_u,
      {albedo_w1, albedo_b1, albedo_w2, albedo_b2, shading_w1, shading_b1, shading_w2, shading_b2},
      static_cast<float>(2.0 / box_warp), coarse_sigma, coarse_albedo, coarse_shading, fine_depths, fine_sigma,
      fine_albedo, fine_shading, features, albedo, shading, depth, opacity);
  return {features, albedo, shading, depth, opacity};
}
