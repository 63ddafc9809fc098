#pragma once
// ResNet backbones as type expressions: the compile-time spelling of ResNetBackbone
// (models/resnet.hpp). A feature that changes the code picks the backbone's type (Norm, the
// deformable kind, the deep stem); every other feature only fills in ResNetOptions values, so
// e.g. all of
//   ResNet<Depth50>
//   ResNet<Depth50, Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>>
//   ResNet<Depth101, Plugin<SELayer<>, AfterConv3, AllStages>, ResNeXt<32, 4>>
// derive from the same ResNetBackbone<float, Cpu> and add only a constructor.
// Features (any order, each at most once except Plugin):
//   Plugin<Block, AfterConv1|2|3, Stages<...>>  Block: GCBlock<Ratio, Fusion>, SELayer<>,
//                                  SimplifiedNL<>, NonLocal2d<>, or a spec (GC<...>, SE<r>, SNL, NL<...>)
//   Dcn<Stages<...>> / DcnV2<Stages<...>>   deformable conv2 on those stages
//   Norm<FrozenBatchNorm2d<>> / Norm<SyncBatchNorm2d<>>   (default BatchNorm2d)
//   DeepStem          (ResNetV1c / V1d)
//   ResNeXt<G, W>     grouped 3x3 convs
//   Dilated<Ints<strides>, Ints<dilations>, contract> / D8   (mmseg's output stride 8)
// The depth is the first argument: Depth50, Depth101, Depth152, or Blocks<n1, n2, n3, n4>.
// Anything else fails to compile in unknown_resnet_feature<X> / misplaced_resnet_feature<X>,
// whose error names X.
#include <array>
#include <ratio>
#include <type_traits>

#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/deform_conv2d_pack.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/models/resnet.hpp"

namespace gcnet::resnet {

using gcnet::Position;

// Which of the four stages (c2..c5) a plugin or DCN applies to, as mmdet's `stages=(F, T, T, T)`.
template <int S0, int S1, int S2, int S3>
struct Stages {
  static constexpr std::array<bool, 4> on{S0 != 0, S1 != 0, S2 != 0, S3 != 0};
};
using AllStages = Stages<1, 1, 1, 1>;

struct AfterConv1 { static constexpr Position value = Position::AfterConv1; };
struct AfterConv2 { static constexpr Position value = Position::AfterConv2; };
struct AfterConv3 { static constexpr Position value = Position::AfterConv3; };

// ---- block specs: a plugin kind with its constructor arguments ---------------------------
// The global-context family becomes a ContextPlugin VALUE; other kinds a CustomPlugin factory.

// mmcv ContextBlock; name "context_block".
template <StdRatio Ratio = std::ratio<1, 16>, fusion::Tag F = fusion::Add, Pooling P = Pooling::Attention>
struct GC {
  static GlobalContextOptions options() { return gc_options(0, {Ratio::num, Ratio::den}, P, F::value); }
};
// mmdet SELayer; "se_block".
template <index_t Ratio = 16>
struct SE {
  static GlobalContextOptions options() { return se_options(0, Ratio); }
};
// The GCNet paper's simplified NL; "simplified_nl_block".
struct SNL {
  static GlobalContextOptions options() { return snl_options(0); }
};
// mmcv NonLocal2d; name "nonlocal_block".
template <index_t Reduction = 2, NonLocalMode Mode = NonLocalMode::EmbeddedGaussian, bool UseScale = true>
struct NL {
  static constexpr const char* name = "nonlocal_block";
  template <Scalar T, Backend B>
  static PluginHandle<T, B> make(index_t channels) {
    return make_block_plugin(name, NonLocal2d<T, B>({.in_channels = channels, .reduction = Reduction,
                                                     .use_scale = UseScale, .mode = Mode}),
                             [](const Shape& in) {
                               // g / theta / phi and the output conv, plus the two HW x HW products.
                               const double c = double(in.c()), ci = double(std::max<index_t>(in.c() / Reduction, 1)),
                                            hw = double(in.h() * in.w());
                               return double(in.n()) * (4.0 * c * ci * hw + 2.0 * hw * hw * ci);
                             });
  }
};

// Block type -> spec, so Plugin<GCBlock<std::ratio<1, 4>>, ...> reads as the block it builds.
template <class X>
struct plugin_spec { using type = X; };  // already a spec
template <StdRatio R, fusion::Tag F, Scalar T, Backend B>
struct plugin_spec<GCBlock<R, F, T, B>> { using type = GC<R, F>; };
template <Scalar T, Backend B>
struct plugin_spec<SELayer<T, B>> { using type = SE<>; };
template <Scalar T, Backend B>
struct plugin_spec<NonLocal2d<T, B>> { using type = NL<>; };
template <Scalar T, Backend B>
struct plugin_spec<SimplifiedNL<T, B>> { using type = SNL; };

// ---- features ------------------------------------------------------------------------------

template <class Block, class Where, class StageSet>
struct Plugin {
  using spec = typename plugin_spec<Block>::type;
  static constexpr Position position = Where::value;
  using stages = StageSet;
};

// conv2 deformable (mmdet dict(type='DCN') / 'DCNv2') on the chosen stages.
struct DeformConv {
  template <Scalar T, Backend B>
  using type = DeformConv2dPack<T, B>;
};
struct ModulatedDeformConv {
  template <Scalar T, Backend B>
  using type = ModulatedDeformConv2dPack<T, B>;
};
template <class StageSet, class Conv = DeformConv>
struct Dcn {
  using stages = StageSet;
  using conv = Conv;
};
template <class StageSet>
using DcnV2 = Dcn<StageSet, ModulatedDeformConv>;

// Norm layer type, e.g. Norm<FrozenBatchNorm2d<>>: named with any (T, B) and rebound to the
// backbone's; other norm layers plug in by specializing rebind_norm.
template <class N, Scalar T, Backend B>
struct rebind_norm;
template <Scalar T0, Backend B0, Scalar T, Backend B>
struct rebind_norm<BatchNorm2d<T0, B0>, T, B> { using type = BatchNorm2d<T, B>; };
template <Scalar T0, Backend B0, Scalar T, Backend B>
struct rebind_norm<FrozenBatchNorm2d<T0, B0>, T, B> { using type = FrozenBatchNorm2d<T, B>; };
template <Scalar T0, Backend B0, Scalar T, Backend B>
struct rebind_norm<SyncBatchNorm2d<T0, B0>, T, B> { using type = SyncBatchNorm2d<T, B>; };
template <class N>
struct Norm {
  template <Scalar T, Backend B>
  using type = typename rebind_norm<N, T, B>::type;
};

// Deep 3-conv stem (ResNetV1c / V1d): stem.0 .. stem.8 instead of conv1 / bn1.
struct DeepStem {};

// ResNeXt: grouped 3x3 with width = floor(planes * BaseWidth / 64) * Groups.
template <index_t Groups, index_t BaseWidth>
struct ResNeXt {};

template <int... V>
struct Ints {
  static_assert(sizeof...(V) == 4, "one value per stage");
  static constexpr std::array<index_t, 4> values{V...};
};
// Per-stage strides and dilations (mmseg's dilated ResNet); ContractDilation halves the first
// block's dilation of a dilated stage.
template <class Strides, class Dilations, bool ContractDilation = true>
struct Dilated {};
// mmseg's output stride 8: strides (1, 2, 1, 1), dilations (1, 1, 2, 4), contract_dilation.
using D8 = Dilated<Ints<1, 2, 1, 1>, Ints<1, 1, 2, 4>, true>;

// Depths: blocks per stage.
template <index_t N0, index_t N1, index_t N2, index_t N3>
struct Blocks {
  static constexpr std::array<index_t, 4> blocks{N0, N1, N2, N3};
  static constexpr index_t depth = 3 * (N0 + N1 + N2 + N3) + 2;
};
using Depth50 = Blocks<3, 4, 6, 3>;
using Depth101 = Blocks<3, 4, 23, 3>;
using Depth152 = Blocks<3, 8, 36, 3>;

// ---- resolving the features ----------------------------------------------------------------

namespace detail {
template <class X>
inline constexpr bool dependent_false = false;

// What kind of feature X is.
enum class Kind { Unknown, Plugin, Dcn, Norm, DeepStem, ResNeXt, Dilated, Depth };
template <class X>
struct kind_of { static constexpr Kind value = Kind::Unknown; };
template <class Bl, class W, class S>
struct kind_of<Plugin<Bl, W, S>> { static constexpr Kind value = Kind::Plugin; };
template <class S, class C>
struct kind_of<Dcn<S, C>> { static constexpr Kind value = Kind::Dcn; };
template <class N>
struct kind_of<Norm<N>> { static constexpr Kind value = Kind::Norm; };
template <>
struct kind_of<DeepStem> { static constexpr Kind value = Kind::DeepStem; };
template <index_t G, index_t W>
struct kind_of<ResNeXt<G, W>> { static constexpr Kind value = Kind::ResNeXt; };
template <class S, class D, bool C>
struct kind_of<Dilated<S, D, C>> { static constexpr Kind value = Kind::Dilated; };
template <index_t A, index_t B2, index_t C, index_t D>
struct kind_of<Blocks<A, B2, C, D>> { static constexpr Kind value = Kind::Depth; };

// The compile errors: instantiated only for a bad feature; the error's context names it.
template <class X>
struct unknown_resnet_feature {
  static_assert(dependent_false<X>,
                "not a ResNet feature (see models/resnet_features.hpp: Plugin, Dcn, DcnV2, Norm, DeepStem, ResNeXt, "
                "Dilated, D8)");
};
template <class X>
struct misplaced_resnet_feature {
  static_assert(dependent_false<X>,
                "misplaced ResNet feature: the depth (Depth50, Blocks<...>) is the first argument, and every feature "
                "but Plugin may appear once");
};
template <class Depth>
struct not_a_depth {
  static_assert(dependent_false<Depth>, "the first argument of ResNet<...> must be a depth: Depth50, Depth101, "
                                        "Depth152 or Blocks<n1, n2, n3, n4>");
};

template <class... F>
constexpr int count_kind(Kind k) {
  (void)k;  // unused with an empty pack
  return ((kind_of<F>::value == k ? 1 : 0) + ... + 0);
}
template <class X, class... F>
constexpr bool check_feature() {
  constexpr Kind k = kind_of<X>::value;
  if constexpr (k == Kind::Unknown) {
    (void)sizeof(unknown_resnet_feature<X>);
    return false;
  } else if constexpr (k == Kind::Depth || (k != Kind::Plugin && count_kind<F...>(k) > 1)) {
    (void)sizeof(misplaced_resnet_feature<X>);
    return false;
  } else {
    return true;
  }
}
template <class Depth, class... F>
constexpr bool check_features() {
  if constexpr (kind_of<Depth>::value != Kind::Depth) {
    (void)sizeof(not_a_depth<Depth>);
    return false;
  } else {
    return (check_feature<F, F...>() && ... && true);
  }
}

// The first feature of a kind, else Default.
template <Kind K, class Default, class... F>
struct find_kind { using type = Default; };
template <Kind K, class Default, class F0, class... F>
struct find_kind<K, Default, F0, F...> {
  using type = std::conditional_t<kind_of<F0>::value == K, F0, typename find_kind<K, Default, F...>::type>;
};

template <class X, Scalar T, Backend B>
struct deform_type { using type = void; };
template <class S, class C, Scalar T, Backend B>
struct deform_type<Dcn<S, C>, T, B> { using type = typename C::template type<T, B>; };

// Options from one feature.
template <Scalar T, Backend B, class X>
void apply(ResNetOptions& o, std::vector<CustomPlugin<T, B>>& custom) {
  if constexpr (kind_of<X>::value == Kind::Plugin) {
    using S = typename X::spec;
    if constexpr (requires { S::options(); }) {
      o.plugins.push_back({.block = S::options(), .position = X::position, .stages = X::stages::on});
    } else {
      custom.push_back({.position = X::position, .stages = X::stages::on,
                        .make = [](index_t c) { return S::template make<T, B>(c); }});
    }
  } else if constexpr (kind_of<X>::value == Kind::Dcn) {
    o.dcn_stages = X::stages::on;
  } else if constexpr (kind_of<X>::value == Kind::ResNeXt) {
    []<index_t G, index_t W>(ResNetOptions& opt, ResNeXt<G, W>*) {
      opt.groups = G;
      opt.base_width = W;
    }(o, static_cast<X*>(nullptr));
  } else if constexpr (kind_of<X>::value == Kind::Dilated) {
    []<class S, class D, bool C>(ResNetOptions& opt, Dilated<S, D, C>*) {
      opt.strides = S::values;
      opt.dilations = D::values;
      opt.contract_dilation = C;
    }(o, static_cast<X*>(nullptr));
  }
}
}  // namespace detail

// The backbone type of a feature list.
template <Scalar T, Backend B, class... F>
using backbone_of = ResNetBackbone<
    T, B, typename detail::find_kind<detail::Kind::Norm, Norm<BatchNorm2d<>>, F...>::type::template type<T, B>,
    typename detail::deform_type<typename detail::find_kind<detail::Kind::Dcn, void, F...>::type, T, B>::type,
    (detail::count_kind<F...>(detail::Kind::DeepStem) > 0)>;

}  // namespace gcnet::resnet

namespace gcnet {

// The type expression: Depth and Features fill in the options (what the caller's options set
// for the same things is replaced; plugins are appended), the base does all the work.
template <Scalar T, Backend B, class Depth, class... Features>
class BasicResNet : public resnet::backbone_of<T, B, Features...> {
  static_assert(resnet::detail::check_features<Depth, Features...>());

 public:
  // The runtime type this expression fills in (the one that is compiled).
  using backbone_type = resnet::backbone_of<T, B, Features...>;

  explicit BasicResNet(ResNetOptions o = {}) : backbone_type(fill(o), custom()) {}

 private:
  static ResNetOptions& fill(ResNetOptions& o) {
    o.blocks = Depth::blocks;
    std::vector<CustomPlugin<T, B>> unused;
    (resnet::detail::apply<T, B, Features>(o, unused), ...);
    return o;
  }
  static std::vector<CustomPlugin<T, B>> custom() {
    ResNetOptions unused;
    std::vector<CustomPlugin<T, B>> c;
    (resnet::detail::apply<T, B, Features>(unused, c), ...);
    return c;
  }
};

template <class Depth, class... Features>
using ResNet = BasicResNet<float, Cpu, Depth, Features...>;

// mmdet/mmseg ResNetV1c: the deep stem.
template <class Depth, class... Features>
using ResNetV1c = ResNet<Depth, resnet::DeepStem, Features...>;

// Common backbones.
using ResNet50 = ResNet<resnet::Depth50>;
using ResNet101 = ResNet<resnet::Depth101>;
using ResNeXt50_32x4d = ResNet<resnet::Depth50, resnet::ResNeXt<32, 4>>;
using ResNeXt101_32x4d = ResNet<resnet::Depth101, resnet::ResNeXt<32, 4>>;
using ResNetV1cD8_50 = ResNetV1c<resnet::Depth50, resnet::D8>;
// GCNet: ResNet-50 with GC r16 (r4) after conv3 on c3-c5.
using GcResNet50 = ResNet<resnet::Depth50, resnet::Plugin<GCBlock<std::ratio<1, 16>>, resnet::AfterConv3,
                                                          resnet::Stages<0, 1, 1, 1>>>;
using GcResNet50R4 = ResNet<resnet::Depth50, resnet::Plugin<GCBlock<std::ratio<1, 4>>, resnet::AfterConv3,
                                                            resnet::Stages<0, 1, 1, 1>>>;

}  // namespace gcnet
