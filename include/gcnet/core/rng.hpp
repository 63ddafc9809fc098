#pragma once
// Counter-based RNG (Philox4x32-10): a (seed, stream) pair names an independent,
// reproducible stream, and any position in it can be computed directly, so the same
// numbers come out on the CPU and the GPU and whatever the thread count.
#include <cmath>
#include <cstdint>

#include "gcnet/core/config.hpp"

namespace gcnet {

struct Philox {
  // 4 x 32-bit outputs for a 128-bit counter and 64-bit key.
  GCNET_HD static void block(std::uint32_t ctr[4], std::uint32_t k0, std::uint32_t k1) {
    constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(M0) * ctr[0];
      const std::uint64_t p1 = static_cast<std::uint64_t>(M1) * ctr[2];
      const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
      const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
      const std::uint32_t n0 = hi1 ^ ctr[1] ^ k0, n2 = hi0 ^ ctr[3] ^ k1;
      ctr[0] = n0; ctr[1] = lo1; ctr[2] = n2; ctr[3] = lo0;
      k0 += W0; k1 += W1;
    }
  }
  // The i-th 32-bit word of stream (seed, stream).
  GCNET_HD static std::uint32_t at(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
    std::uint32_t c[4] = {static_cast<std::uint32_t>(i >> 2), static_cast<std::uint32_t>(i >> 34),
                          static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)};
    block(c, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
    return c[i & 3];
  }
  // Uniform in (0, 1]: never 0, so log() is safe.
  GCNET_HD static double uniform01(std::uint32_t a, std::uint32_t b) {
    const std::uint64_t bits = (static_cast<std::uint64_t>(a) << 21) ^ (b >> 11);
    return (static_cast<double>(bits & ((1ull << 53) - 1)) + 1.0) * (1.0 / 9007199254740992.0);
  }
};

// A sequential generator over one Philox stream.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }
  std::uint64_t position() const { return pos_; }
  void seek(std::uint64_t pos) { pos_ = pos; }

  // A new generator on another stream of the same seed, derived from this one's draws.
  Rng split() { return Rng(seed_, (static_cast<std::uint64_t>(next_u32()) << 32) | next_u32()); }

  std::uint32_t next_u32() { return Philox::at(seed_, stream_, pos_++); }
  double uniform() {  // [0, 1)
    const std::uint32_t a = next_u32(), b = next_u32();
    return Philox::uniform01(a, b) - 0x1p-53;
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {  // Box-Muller; one value per call keeps the stream position simple
    const std::uint32_t a = next_u32(), b = next_u32(), c = next_u32(), d = next_u32();
    const double u1 = Philox::uniform01(a, b), u2 = Philox::uniform01(c, d);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double normal(double mean, double std) { return mean + std * normal(); }
  // Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t r = (static_cast<std::uint64_t>(next_u32()) << 32) | next_u32();
    return n ? r % n : 0;
  }

 private:
  std::uint64_t seed_, stream_, pos_ = 0;
};

// The process-wide generator used by layer constructors for parameter initialization
// (as torch's default generator). manual_seed() makes construction reproducible.
inline Rng& global_rng() {
  static Rng rng(0x6763'6e65'74ull);  // "gcnet"
  return rng;
}
inline void manual_seed(std::uint64_t seed) { global_rng() = Rng(seed); }

}  // namespace gcnet
