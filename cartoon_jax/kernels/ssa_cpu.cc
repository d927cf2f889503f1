// SSA's forward pass on the CPU as one XLA FFI call (the math of models/ssa.py's `ssa_forward`,
// its reference): for each position p of the NHWC float32 query and key maps, the logits
// s_d = <q(p), k(p + d)> over the R x R offsets d (row-major; a neighbour outside the map is a
// zero vector: logit 0, value 0), their softmax P, and out(p) = sum_d P_d k(p + d). One pass over
// the rows: the three key rows a position needs stay in cache, nothing R^2-sized is written
// except, for training, the (B, H, W, R^2) softmax the backward pass keeps.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Rows [row_begin, row_end) of the B * H rows, a row at a time: the R^2 logits of every position
// of the row, then their softmax as one loop over the row (so exp vectorises), then the weighted
// sums. kChannels > 0: the channel count known at compile time (the channel loops unroll and
// vectorise); 0: `channels` at run time.
template <int64_t kChannels>
void ForwardRows(const float* __restrict q, const float* __restrict k, float* __restrict out,
                 float* __restrict probs, int64_t height, int64_t width, int64_t channels,
                 int64_t patch, int64_t row_begin, int64_t row_end) {
  const int64_t cs = kChannels > 0 ? kChannels : channels;
  const int64_t half = patch / 2, offsets = patch * patch;
  std::vector<float> acc(cs), scratch(probs == nullptr ? width * offsets : 0);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t b = row / height, y = row % height;
    // The row's logits, then its softmax in place: in `probs` when it is kept.
    float* __restrict logits = probs ? probs + row * width * offsets : scratch.data();
    for (int64_t x = 0; x < width; ++x) {
      const float* __restrict qp = q + (row * width + x) * cs;
      float* __restrict lp = logits + x * offsets;
      for (int64_t dy = 0; dy < patch; ++dy) {
        const int64_t ny = y + dy - half;
        for (int64_t dx = 0; dx < patch; ++dx) {
          const int64_t nx = x + dx - half;
          float dot = 0.0f;  // a zero vector outside the map: logit 0
          if (ny >= 0 && ny < height && nx >= 0 && nx < width) {
            const float* __restrict kp = k + ((b * height + ny) * width + nx) * cs;
            for (int64_t c = 0; c < cs; ++c) dot += qp[c] * kp[c];
          }
          lp[dy * patch + dx] = dot;
        }
      }
      float top = lp[0];
      for (int64_t d = 1; d < offsets; ++d) top = std::max(top, lp[d]);
      for (int64_t d = 0; d < offsets; ++d) lp[d] -= top;
    }
    for (int64_t i = 0; i < width * offsets; ++i) logits[i] = std::exp(logits[i]);
    for (int64_t x = 0; x < width; ++x) {
      float* __restrict pp = logits + x * offsets;
      float total = 0.0f;
      for (int64_t d = 0; d < offsets; ++d) total += pp[d];
      const float inv = 1.0f / total;
      for (int64_t d = 0; d < offsets; ++d) pp[d] *= inv;
      float* __restrict a = acc.data();
      for (int64_t c = 0; c < cs; ++c) a[c] = 0.0f;
      for (int64_t dy = 0; dy < patch; ++dy) {
        const int64_t ny = y + dy - half;
        if (ny < 0 || ny >= height) continue;
        for (int64_t dx = 0; dx < patch; ++dx) {
          const int64_t nx = x + dx - half;
          if (nx < 0 || nx >= width) continue;
          const float p = pp[dy * patch + dx];
          const float* __restrict kp = k + ((b * height + ny) * width + nx) * cs;
          for (int64_t c = 0; c < cs; ++c) a[c] += p * kp[c];
        }
      }
      float* __restrict op = out + (row * width + x) * cs;
      for (int64_t c = 0; c < cs; ++c) op[c] = a[c];
    }
  }
}

using RowsFn = void (*)(const float*, const float*, float*, float*, int64_t, int64_t, int64_t,
                        int64_t, int64_t, int64_t);

RowsFn ForChannels(int64_t channels) {
  switch (channels) {
    case 8: return ForwardRows<8>;
    case 16: return ForwardRows<16>;
    case 32: return ForwardRows<32>;
    case 64: return ForwardRows<64>;
    case 128: return ForwardRows<128>;
    default: return ForwardRows<0>;
  }
}

ffi::Error Forward(ffi::Buffer<ffi::F32>& query, ffi::Buffer<ffi::F32>& key, int64_t patch_size,
                   float* out, float* probs) {
  const auto dims = query.dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("ssa: query must be NHWC");
  const auto key_dims = key.dimensions();
  for (size_t i = 0; i < 4; ++i) {
    if (key_dims.size() != 4 || key_dims[i] != dims[i]) {
      return ffi::Error::InvalidArgument("ssa: query and key shapes differ");
    }
  }
  if (patch_size < 1 || patch_size % 2 != 1) {
    return ffi::Error::InvalidArgument("ssa: patch_size must be a positive odd integer");
  }
  const int64_t height = dims[1], width = dims[2], channels = dims[3];
  const int64_t rows = dims[0] * height;
  const int64_t hardware = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(hardware, rows / 8));
  const RowsFn rows_fn = ForChannels(channels);
  std::vector<std::thread> threads;
  const int64_t chunk = (rows + workers - 1) / workers;
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t end = std::min(rows, begin + chunk);
    auto work = [&, begin, end] {
      rows_fn(query.typed_data(), key.typed_data(), out, probs, height, width, channels,
              patch_size, begin, end);
    };
    if (end == rows) {
      work();  // the last chunk on the calling thread
    } else {
      threads.emplace_back(work);
    }
  }
  for (auto& t : threads) t.join();
  return ffi::Error::Success();
}

ffi::Error SsaForwardImpl(ffi::Buffer<ffi::F32> query, ffi::Buffer<ffi::F32> key,
                          int64_t patch_size, ffi::ResultBuffer<ffi::F32> out) {
  return Forward(query, key, patch_size, out->typed_data(), nullptr);
}

ffi::Error SsaForwardWithProbsImpl(ffi::Buffer<ffi::F32> query, ffi::Buffer<ffi::F32> key,
                                   int64_t patch_size, ffi::ResultBuffer<ffi::F32> out,
                                   ffi::ResultBuffer<ffi::F32> probs) {
  return Forward(query, key, patch_size, out->typed_data(), probs->typed_data());
}

}  // namespace

// The output only (inference), and the output with the softmax (training's forward pass).
XLA_FFI_DEFINE_HANDLER_SYMBOL(CartoonJaxSsaForward, SsaForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("patch_size")
                                  .Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(CartoonJaxSsaForwardWithProbs, SsaForwardWithProbsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("patch_size")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
