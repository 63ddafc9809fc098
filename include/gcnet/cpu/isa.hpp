#pragma once
// Which instruction set the CPU kernels of gcnet/cpu/ run: chosen at RUN time, once, from what
// the processor supports. Every translation unit compiles the same code.
//
// Why not `#if defined(__AVX512F__)`: a header-only library's inline functions must have one
// definition in the whole program. Translation units built with other flags (a .cu file, whose
// host pass nvcc compiles without -march=native; a unit built for a baseline CPU) would give one
// function two bodies, and every template calling it (each layer on Cpu) would inherit the
// difference. So the AVX-512 kernels live in namespace cpu::isa_avx512 and are compiled in every
// unit under a target attribute (GCNET_CPU_AVX512_BEGIN / _END), next to the portable forms in
// cpu::isa_generic; a dispatch function per kernel (the only name other code calls) asks isa().
// docs/design.md, "CPU fast paths", has the whole argument and what remains.
#include <atomic>
#include <optional>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"

// Whether this compiler can build the AVX-512 kernels in any translation unit (GCC and Clang on
// x86-64: target attributes, and intrinsics usable under them). Elsewhere only isa_generic exists.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define GCNET_CPU_AVX512_KERNELS 1
#include <immintrin.h>
#else
#define GCNET_CPU_AVX512_KERNELS 0
#endif

// GCNET_CPU_AVX512_BEGIN ... GCNET_CPU_AVX512_END: every function defined in between (lambdas
// and templates included) is compiled for AVX-512F whatever -march says. Only the dispatch may
// call them, after isa() said so. GCC 12 warns inside the shuffle intrinsics it inlines (the
// `__Y = __Y` of _mm512_undefined_ps, GCC bug 105593; nothing there is uninitialized), and notes
// (-Wpsabi) that a function returning __m512 has another ABI without AVX-512: every such function
// is an inline helper called only from within these regions.
#if GCNET_CPU_AVX512_KERNELS && defined(__clang__)
#define GCNET_CPU_AVX512_BEGIN \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f\"))), apply_to = function)")
#define GCNET_CPU_AVX512_END _Pragma("clang attribute pop")
#elif GCNET_CPU_AVX512_KERNELS
#define GCNET_CPU_AVX512_BEGIN                                                           \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f\")") _Pragma("GCC diagnostic push") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")                                    \
          _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define GCNET_CPU_AVX512_END _Pragma("GCC diagnostic pop") _Pragma("GCC pop_options")
#endif

// GCNET_CPU_AVX2_BEGIN ... GCNET_CPU_AVX2_END: the same for AVX2 with FMA (the x86-64 processors
// without AVX-512: AMD Zen 1-3, Intel client cores), under the same rules.
#if GCNET_CPU_AVX512_KERNELS && defined(__clang__)
#define GCNET_CPU_AVX2_BEGIN \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define GCNET_CPU_AVX2_END _Pragma("clang attribute pop")
#elif GCNET_CPU_AVX512_KERNELS
#define GCNET_CPU_AVX2_BEGIN                                                                       \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")") _Pragma("GCC diagnostic push") \
      _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define GCNET_CPU_AVX2_END _Pragma("GCC diagnostic pop") _Pragma("GCC pop_options")
#endif

// `#pragma GCC unroll n` for the kernels' fixed-size loops; nvcc's front end does not know it (and
// warns), so .cu units leave the unrolling to the host compiler's own judgment.
#if defined(__CUDACC__)
#define GCNET_UNROLL(n)
#else
#define GCNET_UNROLL(n) GCNET_PRAGMA(GCC unroll n)
#endif

namespace gcnet::cpu {

// Ordered: a processor that runs one runs those before it (an AVX-512 processor has AVX2 and FMA).
// Avx2 means AVX2 with FMA. Only the float GEMM has an AVX2 form (cpu/sgemm_avx2.hpp); the other
// kernels run their portable form there, which -march=native vectorizes for it anyway.
enum class Isa { Generic, Avx2, Avx512 };

inline const char* isa_name(Isa isa) {
  return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "generic";
}

// What this processor can run.
inline Isa detected_isa() {
#if GCNET_CPU_AVX512_KERNELS
  __builtin_cpu_init();  // may run before the constructors that would otherwise do it
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (__builtin_cpu_supports("avx512f") && avx2) return Isa::Avx512;
  return avx2 ? Isa::Avx2 : Isa::Generic;
#else
  return Isa::Generic;
#endif
}

namespace detail {
// The ISA in use. A dynamically initialized inline variable: one object in the program, and code
// running before its initialization reads the zero it starts as, Isa::Generic (always safe).
inline std::atomic<int> active_isa{static_cast<int>(detected_isa())};
}  // namespace detail

// The ISA the dispatch functions choose (one relaxed load per call).
inline Isa isa() { return static_cast<Isa>(detail::active_isa.load(std::memory_order_relaxed)); }

// Tests and benchmarks: run `isa`'s kernels from now on (std::nullopt: the detected one again).
// Asking for an ISA the processor lacks is an error.
inline void force_isa(std::optional<Isa> isa) {
  const Isa want = isa.value_or(detected_isa());
  GCNET_CHECK(static_cast<int>(want) <= static_cast<int>(detected_isa()), "cpu::force_isa: this processor cannot run ",
              isa_name(want), " kernels");
  detail::active_isa.store(static_cast<int>(want), std::memory_order_relaxed);
}

}  // namespace gcnet::cpu
