#pragma once
// Shape: up to 6 extents, NCHW by convention for 4-d activations. Extents are
// runtime values; negative extents are rejected at construction.
#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"

namespace gcnet {

class Shape {
 public:
  static constexpr int max_rank = 6;

  Shape() = default;
  Shape(std::initializer_list<index_t> dims) {
    GCNET_CHECK(dims.size() <= max_rank, "Shape: rank ", dims.size(), " exceeds ", max_rank);
    for (index_t d : dims) push_back(d);
  }
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<index_t>(*first));
  }

  void push_back(index_t d) {
    GCNET_CHECK(rank_ < max_rank, "Shape: rank exceeds ", max_rank);
    GCNET_CHECK(d >= 0, "Shape: negative extent ", d, " at dim ", rank_);
    dims_[rank_++] = d;
  }

  int rank() const { return rank_; }
  index_t operator[](int i) const { return dims_[static_cast<std::size_t>(norm(i))]; }
  index_t& operator[](int i) { return dims_[static_cast<std::size_t>(norm(i))]; }
  const index_t* begin() const { return dims_.data(); }
  const index_t* end() const { return dims_.data() + rank_; }

  index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  bool has_zero() const { return std::find(begin(), end(), index_t{0}) != end(); }

  // NCHW accessors for rank-4 shapes.
  index_t n() const { return (*this)[0]; }
  index_t c() const { return (*this)[1]; }
  index_t h() const { return (*this)[2]; }
  index_t w() const { return (*this)[3]; }

  friend bool operator==(const Shape& a, const Shape& b) {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    return s + "]";
  }

 private:
  int norm(int i) const {
    int j = i < 0 ? i + rank_ : i;
    GCNET_CHECK(j >= 0 && j < rank_, "Shape: dim ", i, " out of range for ", str());
    return j;
  }
  std::array<index_t, max_rank> dims_{};
  int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

// Row-major contiguous strides of a shape.
inline std::array<index_t, Shape::max_rank> contiguous_strides(const Shape& s) {
  std::array<index_t, Shape::max_rank> st{};
  index_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[static_cast<std::size_t>(i)] = acc;
    acc *= s[i];
  }
  return st;
}

// Throws unless `s` is a rank-4 NCHW shape with no zero extent; `who` names the layer.
inline void require_nchw(const Shape& s, const std::string& who) {
  GCNET_CHECK(s.rank() == 4, who, ": expected a 4-d NCHW input, got shape ", s.str());
  GCNET_CHECK(!s.has_zero(), who, ": input shape ", s.str(), " has a zero extent");
}

}  // namespace gcnet
