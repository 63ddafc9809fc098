#pragma once
// The training log in mmdetection's `*.log.json` shape: JSON lines, the first an env/meta
// record, then one record per log interval ({"mode": "train", "epoch", "iter", "lr", losses,
// "loss", "time", "data_time", "memory"}). Each line is flushed so a crash keeps the log.
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "gcnet/core/error.hpp"

namespace gcnet {

// Local time as YYYYmmdd_HHMMSS, the name mmdet gives its logs.
inline std::string timestamp_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d_%H%M%S", &tm);
  return buf;
}

class JsonLog {
 public:
  JsonLog() = default;
  // Creates <dir>/<timestamp>.log.json; a second run in the same second gets a "_1" suffix
  // rather than overwriting the first run's log.
  explicit JsonLog(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    const std::string stamp = timestamp_now();
    path_ = dir / (stamp + ".log.json");
    for (int k = 1; std::filesystem::exists(path_); ++k) path_ = dir / (stamp + "_" + std::to_string(k) + ".log.json");
    out_.open(path_, std::ios::out | std::ios::trunc);
    GCNET_CHECK(out_.good(), path_.string(), ": cannot open the training log for writing");
  }

  const std::filesystem::path& path() const { return path_; }
  bool is_open() const { return out_.is_open(); }

  void write(const nlohmann::json& record) {
    out_ << record.dump() << '\n';
    out_.flush();
    GCNET_CHECK(out_.good(), path_.string(), ": write failed");
  }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace gcnet
