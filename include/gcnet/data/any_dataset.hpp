#pragma once
// AnyDataset: any Dataset (loader.hpp) behind one type, so a program that reads either the
// generated scenes or a folder compiles one DataLoader and one Trainer, not one per source.
// Copies share the wrapped dataset (it is const and thread-safe by the Dataset contract).
#include <memory>

#include "gcnet/data/loader.hpp"

namespace gcnet::data {

class AnyDataset {
 public:
  template <Dataset D>
  explicit AnyDataset(D dataset) : impl_(std::make_shared<Model<D>>(std::move(dataset))) {}

  index_t size() const { return impl_->size(); }
  Sample get(index_t i, Rng& rng) const { return impl_->get(i, rng); }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual index_t size() const = 0;
    virtual Sample get(index_t i, Rng& rng) const = 0;
  };
  template <class D>
  struct Model final : Concept {
    explicit Model(D d) : dataset(std::move(d)) {}
    index_t size() const override { return static_cast<index_t>(dataset.size()); }
    Sample get(index_t i, Rng& rng) const override { return dataset.get(i, rng); }
    D dataset;
  };
  std::shared_ptr<const Concept> impl_;
};

}  // namespace gcnet::data
