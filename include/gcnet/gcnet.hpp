#pragma once
// Everything of gcnet's CPU side in one include: tensors, layers, combinators, modules, blocks,
// backbones and necks, detection operations, losses, optimizers, checkpoints, data, the trainer
// and the testing tools. Not included, because they need more than the CPU target links:
//   gcnet/dist/mpi_communicator.hpp   MPI data parallel (link gcnet::mpi)
//   gcnet/dist/nccl_communicator.hpp  NCCL collectives (CUDA builds)
//   gcnet/cuda/*                      the CUDA backend (nvcc translation units)
#include "gcnet/core/backend.hpp"
#include "gcnet/core/context.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/core/fields.hpp"
#include "gcnet/core/init.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/param.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/core/rois.hpp"
#include "gcnet/core/shape.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/core/transfer.hpp"

#include "gcnet/kernels/blas.hpp"
#include "gcnet/kernels/elementwise.hpp"

#include "gcnet/compose/applied_to_each.hpp"
#include "gcnet/compose/branch.hpp"
#include "gcnet/compose/chain.hpp"
#include "gcnet/compose/identity.hpp"
#include "gcnet/compose/repeat.hpp"
#include "gcnet/compose/residual.hpp"
#include "gcnet/compose/seq.hpp"
#include "gcnet/compose/tap.hpp"

#include "gcnet/layers/avg_pool2d.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/conv_transpose2d.hpp"
#include "gcnet/layers/deform_conv2d.hpp"
#include "gcnet/layers/deform_conv2d_pack.hpp"
#include "gcnet/layers/dropout2d.hpp"
#include "gcnet/layers/flatten.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/layers/global_avg_pool2d.hpp"
#include "gcnet/layers/layer_norm.hpp"
#include "gcnet/layers/linear.hpp"
#include "gcnet/layers/max_pool2d.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/resize_bilinear.hpp"
#include "gcnet/layers/sigmoid.hpp"
#include "gcnet/layers/softmax.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/layers/upsample_nearest.hpp"

#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/global_context.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"

#include "gcnet/models/composed_bottleneck.hpp"
#include "gcnet/models/counting.hpp"
#include "gcnet/models/feature_maps.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/res_block.hpp"
#include "gcnet/models/resnet.hpp"

#include "gcnet/ops/rois.hpp"

#include "gcnet/loss/bce_with_logits.hpp"
#include "gcnet/loss/cross_entropy.hpp"
#include "gcnet/loss/l1.hpp"
#include "gcnet/loss/smooth_l1.hpp"
#include "gcnet/optim/clip_grad.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/optim/param_groups.hpp"
#include "gcnet/optim/sgd.hpp"

#include "gcnet/io/checkpoint.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/io/safetensors_writer.hpp"

#include "gcnet/data/datasets.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/data/transforms.hpp"

#include "gcnet/dist/communicator.hpp"
#include "gcnet/dist/data_parallel.hpp"

#include "gcnet/train/trainer.hpp"

#include "gcnet/testing/copy_check.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
