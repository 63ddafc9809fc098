#pragma once
// Compile-once instantiations. A program with many translation units may define
// GCNET_EXTERN_LAYERS and include gcnet/explicit_instances.hpp in exactly ONE of them: the
// library's classes for (float, Cpu) and (double, Cpu) are then compiled there, and every other
// unit only declares them (about half the compile time of a unit that builds a backbone; the
// project's own tests, examples and benchmarks do this, docs/performance.md "Build times").
// Each class's header ends with GCNET_EXTERN_CLASS(Name) (or GCNET_EXTERN_INSTANCE for other
// template arguments).
#include "gcnet/core/backend.hpp"

#if defined(GCNET_EXTERN_LAYERS)
#define GCNET_EXTERN_INSTANCE(...) extern template class __VA_ARGS__;
#else
#define GCNET_EXTERN_INSTANCE(...)
#endif
#define GCNET_EXTERN_CLASS(Name)              \
  GCNET_EXTERN_INSTANCE(Name<float, ::gcnet::Cpu>) \
  GCNET_EXTERN_INSTANCE(Name<double, ::gcnet::Cpu>)
