// gcnet_plot_log: draws the loss and lr curves of a training log as an SVG.
//   gcnet_plot_log WORK_DIR/20240101_120000.log.json [-o curve.svg]
// Without -o the SVG goes next to the log, named like it with .svg instead of .log.json.
#include <cstdio>
#include <string>

#include "gcnet/train/log_plot.hpp"

int main(int argc, char** argv) {
  std::string log_path, out_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "-o" || a == "--out") && i + 1 < argc) {
      out_path = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s LOG.json [-o OUT.svg]\n", argv[0]);
      return 0;
    } else if (log_path.empty() && !a.empty() && a[0] != '-') {
      log_path = a;
    } else {
      std::fprintf(stderr, "gcnet_plot_log: unexpected argument '%s' (usage: %s LOG.json [-o OUT.svg])\n", a.c_str(),
                   argv[0]);
      return 2;
    }
  }
  if (log_path.empty()) {
    std::fprintf(stderr, "usage: %s LOG.json [-o OUT.svg]\n", argv[0]);
    return 2;
  }
  if (out_path.empty()) {
    const std::string ext = ".log.json";
    out_path = log_path.size() > ext.size() && log_path.compare(log_path.size() - ext.size(), ext.size(), ext) == 0
                   ? log_path.substr(0, log_path.size() - ext.size()) + ".svg"
                   : log_path + ".svg";
  }
  try {
    gcnet::plot_train_log(log_path, out_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_plot_log: %s\n", e.what());
    return 1;
  }
  std::printf("%s\n", out_path.c_str());
  return 0;
}
