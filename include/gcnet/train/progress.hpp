#pragma once
// Formatting of the trainer's progress line (mmdet's TextLoggerHook style):
//   Iter [50/200]  lr: 1.000e-02, eta: 0:00:12, time: 0.061, data_time: 0.002, memory: 88, 16.4 it/s, loss_cls: 0.6931, loss: 0.6931
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace gcnet {

// Seconds as H:MM:SS.
inline std::string format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds < 0 ? 0 : seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

struct ProgressLine {
  bool by_epoch = false;
  std::int64_t epoch = 0, iter_in_epoch = 0, iters_per_epoch = 0;  // epoch mode
  std::int64_t iter = 0, max_iters = 0;                              // iteration mode
  double lr = 0, eta_s = 0, time_s = 0, data_time_s = 0, iters_per_s = 0;
  long memory_mb = 0;
  std::vector<std::pair<std::string, double>> losses;  // includes the total "loss"

  std::string str() const {
    char buf[256];
    std::string s;
    if (by_epoch)
      std::snprintf(buf, sizeof buf, "Epoch [%lld][%lld/%lld]", static_cast<long long>(epoch),
                    static_cast<long long>(iter_in_epoch), static_cast<long long>(iters_per_epoch));
    else
      std::snprintf(buf, sizeof buf, "Iter [%lld/%lld]", static_cast<long long>(iter), static_cast<long long>(max_iters));
    s += buf;
    std::snprintf(buf, sizeof buf, "  lr: %.3e, eta: %s, time: %.3f, data_time: %.3f, memory: %ld, %.1f it/s", lr,
                  format_eta(eta_s).c_str(), time_s, data_time_s, memory_mb, iters_per_s);
    s += buf;
    for (const auto& [name, v] : losses) {
      std::snprintf(buf, sizeof buf, ", %s: %.4f", name.c_str(), v);
      s += buf;
    }
    return s;
  }
};

}  // namespace gcnet
