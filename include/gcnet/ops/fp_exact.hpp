#pragma once
// GCNET_FP_EXACT_BEGIN / GCNET_FP_EXACT_END: around code that must round every product and sum
// on its own, as PyTorch's kernels do (box overlaps, NMS, box coding, anchors). GCC contracts
// a * b + c into one fused multiply-add under gnu++20 with -march=native (its default is
// -ffp-contract=fast), which moves a result by an ulp and can flip an `IoU > threshold` decision
// next to the threshold; the region turns contraction off for the functions defined in it
// (lambdas included; checked in the object code). Clang contracts only within one expression by
// default, and the code in these regions writes each product as its own statement.
#if defined(__GNUC__) && !defined(__clang__)
#define GCNET_FP_EXACT_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define GCNET_FP_EXACT_END _Pragma("GCC pop_options")
#else
#define GCNET_FP_EXACT_BEGIN
#define GCNET_FP_EXACT_END
#endif
