#include <doctest/doctest.h>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/testing/parity.hpp"

using namespace gcnet;

TEST_CASE("Sgd: matches torch.optim.SGD step by step") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/train.safetensors");
  for (const char* v : {"plain", "momentum", "dampening", "nesterov"}) {
    CAPTURE(v);
    const std::string c = std::string("sgd_") + v;
    auto meta = [&](const char* k, double def) {
      return f.metadata().count(c + "." + k) ? f.meta_double(c + "." + k) : def;
    };
    Param<double, Cpu> p(f.tensor<double>(c + ".p0"));
    Sgd<double> opt({{"w", &p}}, {.lr = meta("lr", 0), .momentum = meta("momentum", 0), .dampening = meta("dampening", 0),
                                  .weight_decay = meta("weight_decay", 0), .nesterov = meta("nesterov", 0) != 0});
    for (int s = 0; s < 5; ++s) {
      copy(f.tensor<double>(c + ".g" + std::to_string(s)), p.grad);
      opt.step();
      CHECK(testing::relative_error(p.value, f.tensor<double>(c + ".p" + std::to_string(s + 1))) <= 1e-12);
    }
  }
}

TEST_CASE("Sgd: invalid options are clear errors") {
  Param<float, Cpu> p(full<float>(Shape{2}, 1.0f));
  CHECK_THROWS_WITH_AS(Sgd<float>({{"w", &p}}, {.lr = -1}), doctest::Contains("invalid learning rate -1"), Error);
  CHECK_THROWS_WITH_AS(Sgd<float>({{"w", &p}}, {.lr = 0.1, .nesterov = true}),
                       doctest::Contains("Nesterov momentum requires a momentum"), Error);
}
