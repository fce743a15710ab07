"""torchrun for training: BatchNorm statistics over the global batch (`GlobalBatchNorm`); the process
layout (`Processes`, `start_processes`) is `bench.engine.distributed`'s, shared with evaluation."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from bench.engine.distributed import Processes, start_processes

__all__ = ["GlobalBatchNorm", "Processes", "convert_batchnorm", "start_processes"]


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(SUM) that autograd sees through: every process's loss depends on every process's
    sums, so the gradient of the sums is itself summed over processes."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span every process's share of the global batch.

    For CPU/gloo, where torch's SyncBatchNorm refuses to run ("expected input tensor to be on GPU"). The
    per-channel sums are all-reduced in forward and their gradients in backward: the same maths as
    SyncBatchNorm. Same state dict keys as BatchNorm, so checkpoints do not change."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        totals = _SumOverProcesses.apply(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.view(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / n  # two passes: as exact as BatchNorm's
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (n / (n - 1)) if n > 1 else var.detach()
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm -> global-batch BatchNorm for distributed training (state dict keys unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    plain = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in plain:
                replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                              child.track_running_stats)
                replacement.load_state_dict(child.state_dict())
                replacement.train(child.training)
                setattr(parent, name, replacement)
    return model
