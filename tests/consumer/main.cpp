// A user's program: assemble a small network from an installed gcnet, train one step.
#include <gcnet/gcnet.hpp>

#include <cstdio>

using namespace gcnet;

using Net = Seq<Conv2d<>, BatchNorm2d<>, ReLU<>, GlobalAvgPool2d<>, Flatten<>, Linear<>>;

int main() {
  manual_seed(1);
  Net net{Conv2d<>({.in = 3, .out = 8, .kernel = 3, .padding = 1}), BatchNorm2d<>(8), ReLU<>(),
          GlobalAvgPool2d<>(), Flatten<>(), Linear<>(8, 2)};
  Rng rng(2);
  Tensor<> x(Shape{4, 3, 16, 16}), y;
  for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal());
  Tensor<std::int64_t> labels(Shape{4});
  for (index_t i = 0; i < 4; ++i) labels[i] = i % 2;

  CrossEntropyLoss<> loss;
  Sgd<> opt(named_parameters(net), {.lr = 0.1, .momentum = 0.9});
  net.forward(x, y);
  const float before = loss.forward(y, labels);
  for (int step = 0; step < 20; ++step) {
    auto dy = zeros<float>(y.shape());
    loss.backward(dy);
    auto dx = zeros<float>(x.shape());
    net.backward(x, y, dy, dx);
    opt.step();
    net.forward(x, y);
    loss.forward(y, labels);
  }
  const float after = loss.forward(y, labels);
  std::printf("consumer: loss %.4f -> %.4f\n", before, after);
  if (!(after < before)) return 1;
  std::printf("consumer: ok\n");
  return 0;
}
