// Kernels of the fused tri-plane renderer; the steps are listed in triplane_render.h.
// Every formula mirrors relight_core/models/renderer.py line for line (the torch twin).
#include "triplane_render.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

namespace {

constexpr int kThreads = 128;

struct DecoderWeights {  // float32 device pointers, equalized-learning-rate gains already applied
  const float* albedo_w1;   // [H, C]
  const float* albedo_b1;   // [H]
  const float* albedo_w2;   // [1 + C, H]
  const float* albedo_b2;   // [1 + C]
  const float* shading_w1;  // [H, C]
  const float* shading_b1;  // [H]
  const float* shading_w2;  // [1, H]
  const float* shading_b2;  // [1]
};

// F.softplus with beta 1 and threshold 20.
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// renderer.softexp with alpha 0.1: e*u, exp(u) or -1/(e*u) for u = 0.1 x.
__device__ __forceinline__ float softexp(float x) {
  const float e = 2.718281828459045f;
  const float u = 0.1f * x;
  if (u >= 1.f) return e * u;
  if (u <= -1.f) return -1.f / (e * u);
  return expf(u);
}

// Adds w x texel (x, y) of a channels-last plane [R, R, C]; texels outside the plane are zero.
template <typename scalar_t, int C>
__device__ __forceinline__ void add_tap(const scalar_t* __restrict__ plane, int res, int x, int y, float w,
                                        float (&acc)[C]) {
  if (x < 0 || y < 0 || x >= res || y >= res) return;
  const scalar_t* texel = plane + (static_cast<int64_t>(y) * res + x) * C;
#pragma unroll
  for (int c = 0; c < C; ++c) acc[c] += w * static_cast<float>(texel[c]);
}

// grid_sample(mode=bilinear, padding_mode=zeros, align_corners=False) at (gx, gy) in [-1, 1]
// (gx along the width), added into acc.
template <typename scalar_t, int C>
__device__ __forceinline__ void add_bilinear(const scalar_t* __restrict__ plane, int res, float gx, float gy,
                                             float (&acc)[C]) {
  // Texel centres sit at ((g + 1) R - 1) / 2. Clamping far-away points keeps the int conversion
  // defined and changes nothing: all four of their taps are outside the plane either way.
  const float ix = fminf(fmaxf(((gx + 1.f) * res - 1.f) / 2.f, -2.f), res + 1.f);
  const float iy = fminf(fmaxf(((gy + 1.f) * res - 1.f) / 2.f, -2.f), res + 1.f);
  const float fx = floorf(ix), fy = floorf(iy);
  const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy);
  const float east = ix - fx, west = (fx + 1.f) - ix;
  const float south = iy - fy, north = (fy + 1.f) - iy;
  add_tap(plane, res, x0, y0, west * north, acc);
  add_tap(plane, res, x0 + 1, y0, east * north, acc);
  add_tap(plane, res, x0, y0 + 1, west * south, acc);
  add_tap(plane, res, x0 + 1, y0 + 1, east * south, acc);
}

// sample_triplane: mean over the planes sampled at (x, y), (x, z) and (z, x) (EG3D's legacy projection).
template <typename scalar_t, int C>
__device__ __forceinline__ void sample_triplane(const scalar_t* __restrict__ planes, int res, float x, float y,
                                                float z, float (&out)[C]) {
#pragma unroll
  for (int c = 0; c < C; ++c) out[c] = 0.f;
  const int64_t plane_size = static_cast<int64_t>(res) * res * C;
  add_bilinear(planes, res, x, y, out);
  add_bilinear(planes + plane_size, res, x, z, out);
  add_bilinear(planes + 2 * plane_size, res, z, x, out);
#pragma unroll
  for (int c = 0; c < C; ++c) out[c] = out[c] / 3.f;
}

// hidden = softplus(W1 features + b1), W1 [H, C] in shared memory.
template <int C, int H>
__device__ __forceinline__ void hidden_layer(const float* w1, const float* b1, const float (&features)[C],
                                             float (&hidden)[H]) {
#pragma unroll
  for (int j = 0; j < H; ++j) {
    float acc = b1[j];
#pragma unroll
    for (int c = 0; c < C; ++c) acc += w1[j * C + c] * features[c];
    hidden[j] = softplus(acc);
  }
}

template <int H>
__device__ __forceinline__ float output_unit(const float* w2_row, float b2, const float (&hidden)[H]) {
  float acc = b2;
#pragma unroll
  for (int j = 0; j < H; ++j) acc += w2_row[j] * hidden[j];
  return acc;
}

// Kernels 1 and 3: one thread per sample (grid-stride). Sample s of ray r (r = b * M + ray) sits
// at depth depths[r * depth_ray_stride + s] (stride 0: the shared coarse depths).
template <typename scalar_t, int C, int H>
__global__ void __launch_bounds__(kThreads) decode_samples_kernel(
    const scalar_t* __restrict__ albedo_planes,   // [B, 3, R, R, C]
    const scalar_t* __restrict__ shading_planes,  // [L, B, 3, R, R, C]
    const float* __restrict__ origins,            // [B, M, 3]
    const float* __restrict__ directions,         // [B, M, 3]
    const float* __restrict__ depths, int depth_ray_stride, DecoderWeights weights, int batch, int rays,
    int samples, int lights, int res, float coord_scale,
    float* __restrict__ sigma_out,     // [B, M, S] raw density
    float* __restrict__ albedo_out,    // [B, M, S, C] in (-0.001, 1.001)
    float* __restrict__ shading_out) { // [L, B, M, S]
  __shared__ float w1a[H * C], b1a[H], w2a[(1 + C) * H], b2a[1 + C];
  __shared__ float w1s[H * C], b1s[H], w2s[H], b2s[1];
  for (int i = threadIdx.x; i < H * C; i += blockDim.x) {
    w1a[i] = weights.albedo_w1[i];
    w1s[i] = weights.shading_w1[i];
  }
  for (int i = threadIdx.x; i < (1 + C) * H; i += blockDim.x) w2a[i] = weights.albedo_w2[i];
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    b1a[i] = weights.albedo_b1[i];
    b1s[i] = weights.shading_b1[i];
    w2s[i] = weights.shading_w2[i];
  }
  for (int i = threadIdx.x; i < 1 + C; i += blockDim.x) b2a[i] = weights.albedo_b2[i];
  if (threadIdx.x == 0) b2s[0] = weights.shading_b2[0];
  __syncthreads();

  const int64_t plane_stride = 3 * static_cast<int64_t>(res) * res * C;  // one tri-plane
  const int total = batch * rays * samples;
  for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
    const int s = index % samples;
    const int r = index / samples;
    const int b = r / rays;
    const float t = depths[r * depth_ray_stride + s];
    // points = origins + t * directions, then x 2 / box_warp, rounded like the torch twin (no FMA).
    const float* o = origins + 3 * r;
    const float* d = directions + 3 * r;
    const float x = __fmul_rn(__fadd_rn(o[0], __fmul_rn(t, d[0])), coord_scale);
    const float y = __fmul_rn(__fadd_rn(o[1], __fmul_rn(t, d[1])), coord_scale);
    const float z = __fmul_rn(__fadd_rn(o[2], __fmul_rn(t, d[2])), coord_scale);

    float features[C];
    float hidden[H];
    sample_triplane(albedo_planes + b * plane_stride, res, x, y, z, features);
    hidden_layer<C, H>(w1a, b1a, features, hidden);
    sigma_out[index] = output_unit<H>(w2a, b2a[0], hidden);
    float* albedo = albedo_out + static_cast<int64_t>(index) * C;
#pragma unroll 4
    for (int k = 0; k < C; ++k) albedo[k] = sigmoid(output_unit<H>(w2a + (1 + k) * H, b2a[1 + k], hidden)) * 1.002f - 0.001f;

    for (int l = 0; l < lights; ++l) {
      sample_triplane(shading_planes + (static_cast<int64_t>(l) * batch + b) * plane_stride, res, x, y, z, features);
      hidden_layer<C, H>(w1s, b1s, features, hidden);
      shading_out[static_cast<int64_t>(l) * total + index] = softexp(output_unit<H>(w2s, b2s[0], hidden));
    }
  }
}

// The interval quantities of composite_weights: alpha of the interval between two samples.
__device__ __forceinline__ float interval_alpha(float sigma0, float sigma1, float depth0, float depth1) {
  const float density = softplus((sigma0 + sigma1) / 2.f - 1.f);
  return 1.f - expf(-(density * (depth1 - depth0)));
}

// Kernel 2: one thread per ray. Coarse weights -> importance_depths (deterministic u = fine_u).
__global__ void __launch_bounds__(kThreads) importance_kernel(
    const float* __restrict__ coarse_sigma,   // [B*M, Sc]
    const float* __restrict__ coarse_depths,  // [Sc]
    const float* __restrict__ fine_u,         // [Sf]
    int ray_count, int coarse, int fine,
    float* __restrict__ fine_depths) {        // [B*M, Sf]
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= ray_count) return;
  const float* sigma = coarse_sigma + static_cast<int64_t>(r) * coarse;
  const int intervals = coarse - 1;  // K coarse interval weights
  float weight[kMaxSamples];
  float transmittance = 1.f;
  for (int i = 0; i < intervals; ++i) {
    const float alpha = interval_alpha(sigma[i], sigma[i + 1], coarse_depths[i], coarse_depths[i + 1]);
    weight[i] = alpha * transmittance;
    transmittance *= (1.f - alpha) + 1e-10f;
  }
  // smoothed[j] = avg_pool(max_pool(weights, 2, 1, pad 1), 2, 1)[j] + 0.01; pdf = smoothed[1:-1] + 1e-5.
  auto pooled = [&](int j) {  // max_pool1d output j; the -inf padding never wins
    return j == 0 ? weight[0] : j == intervals ? weight[intervals - 1] : fmaxf(weight[j - 1], weight[j]);
  };
  const int bins_in_pdf = intervals - 2;  // P
  float cdf[kMaxSamples];                 // P + 1 entries; first holds the unnormalized pdf at 1..P
  float pdf_sum = 0.f;
  for (int j = 1; j <= bins_in_pdf; ++j) {
    cdf[j] = ((pooled(j) + pooled(j + 1)) / 2.f + 0.01f) + 1e-5f;
    pdf_sum += cdf[j];
  }
  cdf[0] = 0.f;
  float running = 0.f;
  for (int j = 1; j <= bins_in_pdf; ++j) {
    running += cdf[j] / pdf_sum;
    cdf[j] = running;
  }
  auto bin = [&](int j) { return (coarse_depths[j] + coarse_depths[j + 1]) / 2.f; };
  float* out = fine_depths + static_cast<int64_t>(r) * fine;
  for (int k = 0; k < fine; ++k) {
    const float u = fine_u[k];
    int index = 0;  // searchsorted(cdf, u, right=True): entries <= u
    while (index <= bins_in_pdf && cdf[index] <= u) ++index;
    const int below = max(index - 1, 0), above = min(index, bins_in_pdf);
    float denom = cdf[above] - cdf[below];
    if (denom < 1e-5f) denom = 1.f;
    out[k] = bin(below) + (u - cdf[below]) / denom * (bin(above) - bin(below));
  }
}

struct Sample {
  float depth, sigma, albedo;
  float shading[kMaxLights];
};

// Kernel 4: one thread per (ray, channel). Walks the coarse and fine samples in depth order (both
// lists ascend: a merge replaces the sort), composites, writes the images. Each thread recomputes
// the ray's weights, which keeps everything in registers and the reads of a warp coalesced.
template <int C>
__global__ void __launch_bounds__(kThreads) composite_kernel(
    const float* __restrict__ coarse_depths, const float* __restrict__ coarse_sigma,
    const float* __restrict__ coarse_albedo, const float* __restrict__ coarse_shading,
    const float* __restrict__ fine_depths, const float* __restrict__ fine_sigma,
    const float* __restrict__ fine_albedo, const float* __restrict__ fine_shading, int batch, int rays, int coarse,
    int fine, int lights,
    float* __restrict__ features,  // [L, B, C, M]
    float* __restrict__ albedo,    // [B, C, M]
    float* __restrict__ shading,   // [L, B, M]
    float* __restrict__ depth,     // [B, M]
    float* __restrict__ opacity) { // [B, M]
  const int index = blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= batch * rays * C) return;
  const int c = index % C;
  const int r = index / C;  // b * M + ray
  const int b = r / rays, ray = r % rays;
  const int64_t coarse_light_stride = static_cast<int64_t>(batch) * rays * coarse;
  const int64_t fine_light_stride = static_cast<int64_t>(batch) * rays * fine;
  const float* ray_fine_depths = fine_depths + static_cast<int64_t>(r) * fine;

  int next_coarse = 0, next_fine = 0;
  auto next_sample = [&]() {
    Sample sample;
    const bool take_coarse =
        next_fine >= fine || (next_coarse < coarse && coarse_depths[next_coarse] <= ray_fine_depths[next_fine]);
    if (take_coarse) {
      const int64_t at = static_cast<int64_t>(r) * coarse + next_coarse++;
      sample.depth = coarse_depths[at - static_cast<int64_t>(r) * coarse];
      sample.sigma = coarse_sigma[at];
      sample.albedo = coarse_albedo[at * C + c];
#pragma unroll
      for (int l = 0; l < kMaxLights; ++l) sample.shading[l] = l < lights ? coarse_shading[l * coarse_light_stride + at] : 0.f;
    } else {
      const int64_t at = static_cast<int64_t>(r) * fine + next_fine++;
      sample.depth = ray_fine_depths[at - static_cast<int64_t>(r) * fine];
      sample.sigma = fine_sigma[at];
      sample.albedo = fine_albedo[at * C + c];
#pragma unroll
      for (int l = 0; l < kMaxLights; ++l) sample.shading[l] = l < lights ? fine_shading[l * fine_light_stride + at] : 0.f;
    }
    return sample;
  };

  float transmittance = 1.f, total = 0.f, depth_sum = 0.f, albedo_sum = 0.f;
  float feature_sum[kMaxLights] = {}, shading_sum[kMaxLights] = {};
  Sample previous = next_sample();
  for (int n = 1; n < coarse + fine; ++n) {
    const Sample current = next_sample();
    const float alpha = interval_alpha(previous.sigma, current.sigma, previous.depth, current.depth);
    const float w = alpha * transmittance;
    transmittance *= (1.f - alpha) + 1e-10f;
    total += w;
    depth_sum += w * ((previous.depth + current.depth) / 2.f);
    albedo_sum += w * (previous.albedo + current.albedo) / 2.f;
#pragma unroll
    for (int l = 0; l < kMaxLights; ++l) {
      feature_sum[l] += w * (previous.albedo * previous.shading[l] + current.albedo * current.shading[l]) / 2.f;
      shading_sum[l] += w * (previous.shading[l] + current.shading[l]) / 2.f;
    }
    previous = current;
  }

  for (int l = 0; l < lights; ++l) {
    features[((static_cast<int64_t>(l) * batch + b) * C + c) * rays + ray] = feature_sum[l] * 2.f - 1.f;
  }
  albedo[(static_cast<int64_t>(b) * C + c) * rays + ray] = albedo_sum * 2.f - 1.f;
  if (c == 0) {
    for (int l = 0; l < lights; ++l) shading[(static_cast<int64_t>(l) * batch + b) * rays + ray] = shading_sum[l];
    // No density: no depth (the twin's inf), clamped to the far end; then clamp to the sampled range.
    const float near = coarse_depths[0], far = coarse_depths[coarse - 1];
    const float mean_depth = total > 0.f ? depth_sum / total : far;
    depth[r] = fminf(fmaxf(mean_depth, near), far);
    opacity[r] = total;
  }
}

int blocks_for(int64_t threads, int cap) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((threads + kThreads - 1) / kThreads, cap)));
}

template <typename scalar_t, int C, int H>
void launch_decode(const at::Tensor& albedo_planes, const at::Tensor& shading_planes, const at::Tensor& origins,
                   const at::Tensor& directions, const float* depths, int depth_ray_stride, int samples,
                   const DecoderWeights& weights, float coord_scale, at::Tensor& sigma, at::Tensor& albedo,
                   at::Tensor& shading, cudaStream_t stream) {
  const int batch = albedo_planes.size(0), res = albedo_planes.size(2);
  const int rays = origins.size(1), lights = shading_planes.size(0);
  int sm_count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
  const int cap = 8 * std::max(sm_count, 1);  // enough blocks to fill the GPU; a grid-stride loop does the rest
  decode_samples_kernel<scalar_t, C, H><<<blocks_for(int64_t(batch) * rays * samples, cap), kThreads, 0, stream>>>(
      albedo_planes.data_ptr<scalar_t>(), shading_planes.data_ptr<scalar_t>(), origins.data_ptr<float>(),
      directions.data_ptr<float>(), depths, depth_ray_stride, weights, batch, rays, samples, lights, res,
      coord_scale, sigma.data_ptr<float>(), albedo.data_ptr<float>(), shading.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <int C, int H>
void launch_all(const at::Tensor& albedo_planes, const at::Tensor& shading_planes, const at::Tensor& origins,
                const at::Tensor& directions, const at::Tensor& coarse_depths, const at::Tensor& fine_u,
                const DecoderWeights& weights, float coord_scale, at::Tensor& coarse_sigma, at::Tensor& coarse_albedo,
                at::Tensor& coarse_shading, at::Tensor& fine_depths, at::Tensor& fine_sigma, at::Tensor& fine_albedo,
                at::Tensor& fine_shading, at::Tensor& features, at::Tensor& albedo, at::Tensor& shading,
                at::Tensor& depth, at::Tensor& opacity) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int batch = albedo_planes.size(0), rays = origins.size(1), lights = shading_planes.size(0);
  const int coarse = coarse_depths.size(0), fine = fine_u.size(0);
  auto decode = [&](const float* depths, int depth_ray_stride, int samples, at::Tensor& sigma, at::Tensor& alb,
                    at::Tensor& shade) {
    switch (albedo_planes.scalar_type()) {
      case at::kFloat:
        launch_decode<float, C, H>(albedo_planes, shading_planes, origins, directions, depths, depth_ray_stride,
                                   samples, weights, coord_scale, sigma, alb, shade, stream);
        break;
      case at::kBFloat16:
        launch_decode<c10::BFloat16, C, H>(albedo_planes, shading_planes, origins, directions, depths,
                                           depth_ray_stride, samples, weights, coord_scale, sigma, alb, shade, stream);
        break;
      case at::kHalf:
        launch_decode<c10::Half, C, H>(albedo_planes, shading_planes, origins, directions, depths, depth_ray_stride,
                                       samples, weights, coord_scale, sigma, alb, shade, stream);
        break;
      default:
        TORCH_CHECK(false, "triplane_render: unsupported plane dtype ", albedo_planes.scalar_type());
    }
  };
  decode(coarse_depths.data_ptr<float>(), 0, coarse, coarse_sigma, coarse_albedo, coarse_shading);
  importance_kernel<<<blocks_for(int64_t(batch) * rays, INT32_MAX), kThreads, 0, stream>>>(
      coarse_sigma.data_ptr<float>(), coarse_depths.data_ptr<float>(), fine_u.data_ptr<float>(), batch * rays, coarse,
      fine, fine_depths.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  decode(fine_depths.data_ptr<float>(), fine, fine, fine_sigma, fine_albedo, fine_shading);
  composite_kernel<C><<<blocks_for(int64_t(batch) * rays * C, INT32_MAX), kThreads, 0, stream>>>(
      coarse_depths.data_ptr<float>(), coarse_sigma.data_ptr<float>(), coarse_albedo.data_ptr<float>(),
      coarse_shading.data_ptr<float>(), fine_depths.data_ptr<float>(), fine_sigma.data_ptr<float>(),
      fine_albedo.data_ptr<float>(), fine_shading.data_ptr<float>(), batch, rays, coarse, fine, lights,
      features.data_ptr<float>(), albedo.data_ptr<float>(), shading.data_ptr<float>(), depth.data_ptr<float>(),
      opacity.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void launch_triplane_render_fwd_kernels(
    const at::Tensor& albedo_planes, const at::Tensor& shading_planes, const at::Tensor& origins,
    const at::Tensor& directions, const at::Tensor& coarse_depths, const at::Tensor& fine_u,
    const std::vector<at::Tensor>& decoder, float coord_scale, at::Tensor& coarse_sigma, at::Tensor& coarse_albedo,
    at::Tensor& coarse_shading, at::Tensor& fine_depths, at::Tensor& fine_sigma, at::Tensor& fine_albedo,
    at::Tensor& fine_shading, at::Tensor& features, at::Tensor& albedo, at::Tensor& shading, at::Tensor& depth,
    at::Tensor& opacity) {
  TORCH_CHECK(decoder.size() == 8, "triplane_render: expected 8 decoder tensors, got ", decoder.size());
  const DecoderWeights weights{decoder[0].data_ptr<float>(), decoder[1].data_ptr<float>(), decoder[2].data_ptr<float>(),
                               decoder[3].data_ptr<float>(), decoder[4].data_ptr<float>(), decoder[5].data_ptr<float>(),
                               decoder[6].data_ptr<float>(), decoder[7].data_ptr<float>()};
  const int64_t channels = albedo_planes.size(4), hidden = decoder[0].size(0);
  if (channels == 32 && hidden == 64) {
    launch_all<32, 64>(albedo_planes, shading_planes, origins, directions, coarse_depths, fine_u, weights, coord_scale,
                       coarse_sigma, coarse_albedo, coarse_shading, fine_depths, fine_sigma, fine_albedo, fine_shading,
                       features, albedo, shading, depth, opacity);
  } else if (channels == 8 && hidden == 16) {
    launch_all<8, 16>(albedo_planes, shading_planes, origins, directions, coarse_depths, fine_u, weights, coord_scale,
                      coarse_sigma, coarse_albedo, coarse_shading, fine_depths, fine_sigma, fine_albedo, fine_shading,
                      features, albedo, shading, depth, opacity);
  } else {
    TORCH_CHECK(false, "triplane_render: no kernel compiled for (C, H) = (", channels, ", ", hidden, ")");
  }
}
