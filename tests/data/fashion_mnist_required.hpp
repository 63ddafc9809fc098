#pragma once
// The scene tests need the real Fashion-MNIST files. They are required, not optional: the
// README's install command (scripts/setup-deps) installs Debian's dataset-fashion-mnist, so
// a missing file fails the test with the command that fixes it, instead of a silent skip.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "gcnet/data/fashion_mnist.hpp"

namespace gcnet::test {

inline void require_fashion_mnist() {
  const std::string dir = data::fashion_mnist_dir();
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"}) {
    const auto path = std::filesystem::path(dir) / f;
    INFO("Fashion-MNIST is required: ", path.string(), " is missing. Install Debian's package with "
         "scripts/setup-deps (or sudo apt-get install dataset-fashion-mnist), or point "
         "GCNET_FASHION_MNIST_DIR at a folder holding the four .gz files.");
    REQUIRE(std::filesystem::exists(path));
  }
}

}  // namespace gcnet::test
