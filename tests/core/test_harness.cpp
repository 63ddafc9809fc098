// The gradient checker must catch each way a layer can break the contract.
#include <doctest/doctest.h>

#include "gcnet/testing/gradient_check.hpp"
#include "support/channel_scale.hpp"

using namespace gcnet;

namespace {
enum class Bug { None, AssignsDx, WrongDx, SkipsParamEntry, AccumulatesParamGrad, SkipsOutput, SlightlyWrongSmallGrad };

template <Bug bug>
class Buggy : public test::ChannelScale<double> {
 public:
  using test::ChannelScale<double>::ChannelScale;
  void forward(const Tensor<double>& x, Tensor<double>& y) {
    test::ChannelScale<double>::forward(x, y);
    if constexpr (bug == Bug::SkipsOutput) y[y.numel() - 1] = std::numeric_limits<double>::quiet_NaN();
  }
  void backward(const Tensor<double>& x, const Tensor<double>& y, const Tensor<double>& dy, Tensor<double>& dx) {
    Tensor<double> saved_grad;
    if constexpr (bug == Bug::AccumulatesParamGrad) saved_grad = clone(weight().grad);
    if constexpr (bug == Bug::AssignsDx) fill(dx, 0.0);
    test::ChannelScale<double>::backward(x, y, dy, dx);
    if constexpr (bug == Bug::WrongDx) dx[0] += 0.1;
    if constexpr (bug == Bug::SkipsParamEntry) weight().grad[1] = std::numeric_limits<double>::quiet_NaN();
    if constexpr (bug == Bug::SlightlyWrongSmallGrad) weight().grad[1] *= 1.01;
    if constexpr (bug == Bug::AccumulatesParamGrad) {
      bool first = false;
      for (index_t i = 0; i < saved_grad.numel(); ++i) first = first || std::isnan(saved_grad[i]);
      if (!first) add_into(weight().grad, saved_grad);
    }
  }
};

template <Bug bug>
testing::GradCheckResult check(double input_scale = 1.0) {
  manual_seed(1);
  Buggy<bug> layer(3);
  testing::GradCheckOptions o;
  o.input_probes = 1000;  // every input entry
  o.input_scale = input_scale;
  return testing::check_gradients(layer, Shape{2, 3, 2, 2}, o);
}
}  // namespace

TEST_CASE("gradient check passes a correct layer") {
  auto r = check<Bug::None>();
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.checked == 24 + 6);
  CHECK(r.directions == 3 * 2);  // input, weight and bias, two random directions each
}
TEST_CASE("gradient check catches a 1% error in a gradient of size 1e-6 (errors relative to the tensor's scale)") {
  // With inputs ~1e-6 the weight gradients are ~1e-6: an absolute error criterion below 1
  // (|a - n| <= 1e-5) could never see this; the tensor-relative one must.
  CHECK(check<Bug::None>(1e-6).ok);
  auto r = check<Bug::SlightlyWrongSmallGrad>(1e-6);
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("weight") != std::string::npos);
}
TEST_CASE("gradient check catches dx assigned instead of accumulated") {
  auto r = check<Bug::AssignsDx>();
  CHECK_FALSE(r.ok);
}
TEST_CASE("gradient check catches a wrong data gradient") {
  auto r = check<Bug::WrongDx>();
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("dx[0]") != std::string::npos);
}
TEST_CASE("gradient check catches an unwritten parameter gradient") {
  auto r = check<Bug::SkipsParamEntry>();
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("'weight' entry 1 not written") != std::string::npos);
}
TEST_CASE("gradient check catches accumulated parameter gradients") {
  auto r = check<Bug::AccumulatesParamGrad>();
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("accumulated instead of assigned") != std::string::npos);
}
TEST_CASE("gradient check catches an unwritten output element") {
  auto r = check<Bug::SkipsOutput>();
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("output element 23 not written") != std::string::npos);
}
