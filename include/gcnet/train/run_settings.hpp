#pragma once
// The settings a run must keep for a resume to continue it exactly: the seed, the batch
// size, the data, the learning rate... A resume with another --seed or --batch was silently
// accepted and then no longer reproduced the run. The trainer records them in every
// checkpoint's metadata as "run.<name>" and compares them on resume: a difference is an
// Error listing every changed setting, unless the caller allows the change (then the
// differences are returned, for a warning). Settings a checkpoint did not record (written
// before they were, or by another program) are not compared.
#include <map>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet {

// Setting name -> value as text, e.g. {{"batch", "32"}, {"lr", "0.05"}}.
using RunSettings = std::map<std::string, std::string>;

inline constexpr const char* kRunSettingPrefix = "run.";

// Adds `settings` to checkpoint metadata, each under "run.<name>".
inline void record_run_settings(const RunSettings& settings, std::map<std::string, std::string>& metadata) {
  for (const auto& [name, value] : settings) metadata[kRunSettingPrefix + name] = value;
}

// "name A -> B" for each setting recorded in `metadata` with a value other than `now`'s.
inline std::vector<std::string> run_setting_changes(const std::map<std::string, std::string>& metadata,
                                                    const RunSettings& now) {
  std::vector<std::string> changes;
  for (const auto& [name, value] : now) {
    const auto it = metadata.find(kRunSettingPrefix + name);
    if (it != metadata.end() && it->second != value) changes.push_back(name + " " + it->second + " -> " + value);
  }
  return changes;
}

// Throws (naming the checkpoint and every change) unless the settings are those the checkpoint
// recorded or `allow_change`; returns the changes (empty when none).
inline std::vector<std::string> check_resume_settings(const std::string& path,
                                                      const std::map<std::string, std::string>& metadata,
                                                      const RunSettings& now, bool allow_change) {
  const std::vector<std::string> changes = run_setting_changes(metadata, now);
  if (changes.empty() || allow_change) return changes;
  std::string list;
  for (const auto& c : changes) list += (list.empty() ? "" : ", ") + c;
  gcnet::detail::fail(path, ": the run would not continue exactly, its settings differ from the checkpoint's: ", list,
                      " (to resume anyway, allow it: TrainerOptions::allow_settings_change, "
                      "--allow-settings-change in the examples)");
}

}  // namespace gcnet
