"""Losses on a batch's features: open_clip's ClipLoss and LwF's distillation.

LwF (Li & Hoiem; TiC-CLIP appendix): the previous step's model, frozen, scores the same batch; the
new model's image-to-text and text-to-image similarity distributions are pulled towards the old
one's with a KL divergence at temperature tau (times tau^2, so its gradient scale does not depend
on tau), averaged over the two directions and weighted by `lwf_weight`.

With several processes the features are all-gathered first (with autograd for the student), so
every process computes the loss of the whole global batch, exactly as one process would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gather(x: torch.Tensor, with_grad: bool) -> torch.Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if with_grad:
        import torch.distributed.nn

        return torch.cat(torch.distributed.nn.all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def clip_loss_fn(rank: int = 0, world: int = 1):
    """open_clip's ClipLoss over the global batch (every process computes the whole loss)."""
    from open_clip.loss import ClipLoss

    return ClipLoss(local_loss=False, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world)


def distillation(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
                 t_img: torch.Tensor, t_txt: torch.Tensor, t_scale: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    student = scale * img @ txt.t() / tau
    teacher = (t_scale * t_img @ t_txt.t() / tau).detach()
    kl_i = F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), reduction="batchmean", log_target=True)
    kl_t = F.kl_div(F.log_softmax(student.t(), 1), F.log_softmax(teacher.t(), 1), reduction="batchmean", log_target=True)
    return (kl_i + kl_t) / 2 * tau * tau
