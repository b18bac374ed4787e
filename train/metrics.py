"""Retrieval and zero-shot classification metrics on embeddings, in bounded memory.

Retrieval (CLIP_benchmark's definitions): text-to-image recall@k ("image_retrieval_recall@k") is
the share of captions whose image is among the k images scoring highest for it; image-to-text
recall@k ("text_retrieval_recall@k") is the share of images with at least one of their captions
among the k captions scoring highest. An image may have several captions. Scores are computed
`chunk` rows at a time, so memory is chunk x N, not N x N.

Zero-shot classification: top-1 and top-5 accuracy, and the mean over classes present of each
class's recall (balanced accuracy, CLIP_benchmark's "mean_per_class_recall").

Rank convention: an item counts as retrieved at k when fewer than k others score strictly higher
than it (ties resolve in its favour; with float embeddings ties are measure-zero).
"""

from __future__ import annotations

import torch

KS = (1, 5, 10)


@torch.no_grad()
def retrieval(img: torch.Tensor, txt: torch.Tensor, text_image: torch.Tensor, ks=KS, chunk: int = 1024) -> dict:
    """`img` (N, d) and `txt` (M, d) L2-normalised; `text_image[m]` is the image of caption m."""
    n, m = len(img), len(txt)
    text_image = text_image.long()
    t2i_rank = torch.empty(m, dtype=torch.long)
    for a in range(0, m, chunk):
        s = txt[a : a + chunk] @ img.t()  # (c, N)
        pos = s.gather(1, text_image[a : a + chunk, None])
        t2i_rank[a : a + chunk] = (s > pos).sum(1)
    i2t_rank = torch.empty(n, dtype=torch.long)
    for a in range(0, n, chunk):
        s = img[a : a + chunk] @ txt.t()  # (c, M)
        mine = text_image[None, :] == torch.arange(a, min(a + chunk, n))[:, None]
        best = torch.where(mine, s, torch.full_like(s, -torch.inf)).max(1, keepdim=True).values
        i2t_rank[a : a + chunk] = (s > best).sum(1)
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = float((t2i_rank < k).float().mean())
        out[f"text_retrieval_recall@{k}"] = float((i2t_rank < k).float().mean())
    return out


@torch.no_grad()
def zero_shot(img: torch.Tensor, classifier: torch.Tensor, labels: torch.Tensor, chunk: int = 4096) -> dict:
    """`img` (N, d) normalised, `classifier` (C, d) normalised class embeddings, `labels` (N,)."""
    labels = labels.long()
    top1 = torch.empty(len(img), dtype=torch.bool)
    top5 = torch.empty(len(img), dtype=torch.bool)
    pred = torch.empty(len(img), dtype=torch.long)
    k = min(5, classifier.shape[0])
    for a in range(0, len(img), chunk):
        logits = img[a : a + chunk] @ classifier.t()
        y = labels[a : a + chunk, None]
        rank = (logits > logits.gather(1, y)).sum(1)
        top1[a : a + chunk] = rank < 1
        top5[a : a + chunk] = rank < k
        pred[a : a + chunk] = logits.argmax(1)
    recalls = [float((pred[labels == c] == c).float().mean()) for c in labels.unique().tolist()]
    return {"acc1": float(top1.float().mean()), "acc5": float(top5.float().mean()),
            "mean_per_class_recall": sum(recalls) / len(recalls) if recalls else float("nan")}


@torch.no_grad()
def classifier_weights(model, tokenizer, classnames: list[str], templates: list[str], device, batch: int = 256) -> torch.Tensor:
    """One embedding per class: the normalised mean of its prompts' normalised text embeddings
    (the zero-shot head of CLIP and CLIP_benchmark)."""
    out = []
    for name in classnames:
        prompts = [t.replace("{c}", name) for t in templates]
        embs = []
        for a in range(0, len(prompts), batch):
            e = model.encode_text(tokenizer(prompts[a : a + batch]).to(device)).float()
            embs.append(torch.nn.functional.normalize(e, dim=-1))
        mean = torch.cat(embs).mean(0)
        out.append(mean / mean.norm())
    return torch.stack(out)
