#pragma once
// rounded(x): x rounded to double on its own. The compiler may fuse a product into a following
// add (an FMA, GCC's default with -march=native under gnu++20), which rounds once where numpy,
// PyTorch and pycocotools' C round twice; a value that feeds such a sum passes through here, so
// results that are compared with a threshold (an IoU against 0.5) decide as the reference does.
// An empty asm keeps the value in a register the compiler must materialise, inlined or not.
namespace gcnet {

inline double rounded(double x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
  asm("" : "+w"(x));
#else
  volatile double v = x;
  x = v;
#endif
  return x;
}

}  // namespace gcnet
