#pragma once
// Plugins of a ResNet bottleneck, as types (mmdet's `plugins=[dict(cfg=..., stages=..., position=...)]`).
//   Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>   GCNet r16 on c3-c5
//   Dcn<Stages<0, 1, 1, 1>>                                             DCN replacing conv2 on c3-c5
// A plugin names a block SPEC: a type giving the block type for any (T, B) (`type<T, B>`), how to
// build it for a channel count (`make<T, B>(channels)`, where constructor arguments such as the
// ratio or the pooling live in the spec's template arguments) and its state-dict name (mmdet's
// abbreviation). Block types themselves (GCBlock<R, F>, SELayer<>, NonLocal2d<>, SimplifiedNL<>)
// are accepted too: plugin_spec<> maps them to their spec.
#include <array>
#include <ratio>
#include <tuple>
#include <type_traits>

#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#if __has_include("gcnet/layers/sync_batch_norm2d.hpp")
#include "gcnet/layers/sync_batch_norm2d.hpp"
#define GCNET_HAS_SYNC_BATCH_NORM 1
#else
#define GCNET_HAS_SYNC_BATCH_NORM 0
#endif
#if __has_include("gcnet/layers/deform_conv2d_pack.hpp")
#include "gcnet/layers/deform_conv2d_pack.hpp"
#define GCNET_HAS_DEFORM_CONV 1
#else
#define GCNET_HAS_DEFORM_CONV 0
#endif

namespace gcnet::resnet {

// Which of the four stages (c2..c5) a plugin or DCN applies to, as mmdet's `stages=(F, T, T, T)`.
template <int S0, int S1, int S2, int S3>
struct Stages {
  static constexpr std::array<bool, 4> on{S0 != 0, S1 != 0, S2 != 0, S3 != 0};
};
using AllStages = Stages<1, 1, 1, 1>;

// Where in the bottleneck a plugin runs: after conv1's ReLU, after conv2's ReLU, or after bn3
// (before the residual add).
enum class Position { AfterConv1, AfterConv2, AfterConv3 };
struct AfterConv1 { static constexpr Position value = Position::AfterConv1; };
struct AfterConv2 { static constexpr Position value = Position::AfterConv2; };
struct AfterConv3 { static constexpr Position value = Position::AfterConv3; };

// ---- block specs ---------------------------------------------------------------------------

// mmcv ContextBlock; name "context_block".
template <StdRatio Ratio = std::ratio<1, 16>, fusion::Fusion F = fusion::Add, Pooling P = Pooling::Attention>
struct GC {
  template <Scalar T, Backend B>
  using type = GCBlock<Ratio, F, T, B>;
  static constexpr const char* name = "context_block";
  template <Scalar T, Backend B>
  static type<T, B> make(index_t channels) { return type<T, B>(channels, P); }
  // Multiply-accumulates at C x H x W: mask conv and context (attention pooling), transforms.
  static double flops(index_t c, index_t h, index_t w) {
    const double p = double(c * Ratio::num / Ratio::den), hw = double(h * w);
    const int branches = (F::add ? 1 : 0) + (F::mul ? 1 : 0);
    return (P == Pooling::Attention ? 2.0 * c * hw : 0.0) + branches * 2.0 * c * p;
  }
};

// mmdet SELayer; mmdet has no SE plugin, the name is ours: "se_block".
template <index_t Ratio = 16>
struct SE {
  template <Scalar T, Backend B>
  using type = SELayer<T, B>;
  static constexpr const char* name = "se_block";
  template <Scalar T, Backend B>
  static type<T, B> make(index_t channels) { return type<T, B>(channels, Ratio); }
  static double flops(index_t c, index_t, index_t) { return 2.0 * double(c) * double(c / Ratio); }
};

// mmcv NonLocal2d; name "nonlocal_block".
template <index_t Reduction = 2, NonLocalMode Mode = NonLocalMode::EmbeddedGaussian, bool UseScale = true>
struct NL {
  template <Scalar T, Backend B>
  using type = NonLocal2d<T, B>;
  static constexpr const char* name = "nonlocal_block";
  template <Scalar T, Backend B>
  static type<T, B> make(index_t channels) {
    return type<T, B>({.in_channels = channels, .reduction = Reduction, .use_scale = UseScale, .mode = Mode});
  }
  // g / theta / phi and the output conv, plus the two HW x HW products.
  static double flops(index_t c, index_t h, index_t w) {
    const double ci = double(std::max<index_t>(c / Reduction, 1)), hw = double(h * w);
    return 4.0 * c * ci * hw + 2.0 * hw * hw * ci;
  }
};

// The simplified NL block of the GCNet paper; the name is ours: "simplified_nl_block".
struct SNL {
  template <Scalar T, Backend B>
  using type = SimplifiedNL<T, B>;
  static constexpr const char* name = "simplified_nl_block";
  template <Scalar T, Backend B>
  static type<T, B> make(index_t channels) { return type<T, B>(channels); }
  static double flops(index_t c, index_t h, index_t w) { return 2.0 * c * double(h * w) + double(c) * c; }
};

// Block type -> spec, so Plugin<GCBlock<std::ratio<1, 4>>, ...> reads as the block it builds.
template <class X>
struct plugin_spec { using type = X; };  // already a spec
template <StdRatio R, fusion::Fusion F, Scalar T, Backend B>
struct plugin_spec<GCBlock<R, F, T, B>> { using type = GC<R, F>; };
template <Scalar T, Backend B>
struct plugin_spec<SELayer<T, B>> { using type = SE<>; };
template <Scalar T, Backend B>
struct plugin_spec<NonLocal2d<T, B>> { using type = NL<>; };
template <Scalar T, Backend B>
struct plugin_spec<SimplifiedNL<T, B>> { using type = SNL; };

// ---- features of a ResNet type -------------------------------------------------------------

template <class Block, class Where, class StageSet>
struct Plugin {
  using spec = typename plugin_spec<Block>::type;
  static constexpr Position position = Where::value;
  using stages = StageSet;
};

// conv2 of the bottleneck as a type: Conv2d, or a deformable conv (engineer A's packs).
struct PlainConv {
  template <Scalar T, Backend B>
  using type = Conv2d<T, B>;
};
#if GCNET_HAS_DEFORM_CONV
struct DeformConv {  // mmdet dict(type='DCN')
  template <Scalar T, Backend B>
  using type = DeformConv2dPack<T, B>;
};
struct ModulatedDeformConv {  // mmdet dict(type='DCNv2')
  template <Scalar T, Backend B>
  using type = ModulatedDeformConv2dPack<T, B>;
};
#else
// Until the deformable convolutions exist, DCN stages use a plain Conv2d (no conv_offset).
using DeformConv = PlainConv;
using ModulatedDeformConv = PlainConv;
#endif

template <class StageSet, class Conv = DeformConv>
struct Dcn {
  using stages = StageSet;
  using conv = Conv;
};
template <class StageSet>
using DcnV2 = Dcn<StageSet, ModulatedDeformConv>;

// Norm layer type, e.g. Norm<FrozenBatchNorm2d<>>: the layer named with any (T, B) and rebound
// to the backbone's; each is constructible from (index_t channels). Other norm layers plug in by
// specializing rebind_norm.
template <class N, Scalar T, Backend B>
struct rebind_norm;
template <Scalar T0, Backend B0, Scalar T, Backend B>
struct rebind_norm<BatchNorm2d<T0, B0>, T, B> { using type = BatchNorm2d<T, B>; };
template <Scalar T0, Backend B0, Scalar T, Backend B>
struct rebind_norm<FrozenBatchNorm2d<T0, B0>, T, B> { using type = FrozenBatchNorm2d<T, B>; };
#if GCNET_HAS_SYNC_BATCH_NORM
template <Scalar T0, Backend B0, Scalar T, Backend B>
struct rebind_norm<SyncBatchNorm2d<T0, B0>, T, B> { using type = SyncBatchNorm2d<T, B>; };
#endif
template <class N>
struct Norm {
  template <Scalar T, Backend B>
  using type = typename rebind_norm<N, T, B>::type;
};

// Deep 3-conv stem (ResNetV1c / V1d): stem.0 .. stem.8 instead of conv1 / bn1.
struct DeepStem {};

// ResNeXt: grouped 3x3 with width = floor(planes * BaseWidth / 64) * Groups.
template <index_t Groups, index_t BaseWidth>
struct ResNeXt {
  static constexpr index_t groups = Groups, base_width = BaseWidth;
};

template <int... V>
struct Ints {
  static_assert(sizeof...(V) == 4, "one value per stage");
  static constexpr std::array<index_t, 4> values{V...};
};
// Per-stage strides and dilations (mmseg's dilated ResNet); ContractDilation halves the first
// block's dilation of a dilated stage.
template <class Strides, class Dilations, bool ContractDilation = true>
struct Dilated {
  static constexpr std::array<index_t, 4> strides = Strides::values, dilations = Dilations::values;
  static constexpr bool contract = ContractDilation;
};
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
struct is_plugin : std::false_type {};
template <class Bl, class W, class S>
struct is_plugin<Plugin<Bl, W, S>> : std::true_type {};
template <class X>
struct is_dcn : std::false_type {};
template <class S, class C>
struct is_dcn<Dcn<S, C>> : std::true_type {};
template <class X>
struct is_norm : std::false_type {};
template <class N>
struct is_norm<Norm<N>> : std::true_type {};
template <class X>
struct is_resnext : std::false_type {};
template <index_t G, index_t W>
struct is_resnext<ResNeXt<G, W>> : std::true_type {};
template <class X>
struct is_dilated : std::false_type {};
template <class S, class D, bool C>
struct is_dilated<Dilated<S, D, C>> : std::true_type {};

// The first feature satisfying Pred, else Default.
template <template <class> class Pred, class Default, class... F>
struct find_feature { using type = Default; };
template <template <class> class Pred, class Default, class F0, class... F>
struct find_feature<Pred, Default, F0, F...> {
  using type = std::conditional_t<Pred<F0>::value, F0, typename find_feature<Pred, Default, F...>::type>;
};

template <class X, std::size_t Stage>
constexpr bool plugin_on() {
  if constexpr (is_plugin<X>::value) return X::stages::on[Stage];
  else return false;
}
template <class X, std::size_t Stage>
constexpr bool dcn_on() {
  if constexpr (is_dcn<X>::value) return X::stages::on[Stage];
  else return false;
}
template <class X>
struct conv_of { using type = typename X::conv; };
template <>
struct conv_of<void> { using type = PlainConv; };
}  // namespace detail

// A block spec placed at a position, built for (T, B): what a bottleneck holds.
template <class Spec, Position P>
struct Placed {
  using spec = Spec;
  static constexpr Position position = P;
};

// The plugins of stage `Stage`, in declaration order, as std::tuple<Placed<...>...>.
namespace detail {
template <class X, std::size_t Stage>
struct placed_on { using type = std::tuple<>; };
template <class Bl, class W, class S, std::size_t Stage>
struct placed_on<Plugin<Bl, W, S>, Stage> {
  using P = Plugin<Bl, W, S>;
  using type = std::conditional_t<S::on[Stage], std::tuple<Placed<typename P::spec, P::position>>, std::tuple<>>;
};
}  // namespace detail
template <std::size_t Stage, class... F>
using stage_plugins =
    decltype(std::tuple_cat(std::declval<typename detail::placed_on<F, Stage>::type>()..., std::tuple<>{}));

template <std::size_t Stage, class... F>
struct stage_conv {
  template <class X>
  struct on : std::bool_constant<detail::dcn_on<X, Stage>()> {};
  using type = typename detail::conv_of<typename detail::find_feature<on, void, F...>::type>::type;
};

}  // namespace gcnet::resnet
