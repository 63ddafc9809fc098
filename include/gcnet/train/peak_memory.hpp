#pragma once
// Peak resident memory of this process, for the "memory" field of the training log
// (mmdet logs the peak CUDA memory in MB; on the CPU the peak RSS is the analogue).
#include <sys/resource.h>

namespace gcnet {

// Peak resident set size in MB (0 where the OS does not report it).
inline long peak_rss_mb() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<long>(u.ru_maxrss / 1024);  // Linux reports kilobytes
}

}  // namespace gcnet
