"""Caption-to-class text similarity with a CLIP text tower: the sentence embedding of TiC-CLIP's
DataCompNet filter, which follows LAIONet in keeping a caption only when its embedding is close to
its class's text (LAIONet used CLIP's text encoder for this).

`tic evalsets --caption-model ARCH --caption-pretrained P` builds one; the data side only sees a
function (texts, class texts) -> cosine similarities, so `ticdata` stays free of torch. Weights come
as for `tic eval --pretrained`: a local file or an open_clip tag already in the cache, never a
download."""

from __future__ import annotations

import numpy as np
import torch

from ticdata.errors import UserError


class CaptionScorer:
    """Cosine similarity of each caption's text embedding with its class text's (cached per class)."""

    def __init__(self, arch: str, pretrained: str, cache_dir: str | None = None, device: str = "cpu", batch: int = 256):
        import open_clip

        from tic_train.pretrained_eval import resolve_pretrained
        from tic_train.tiny import quiet_model_creation, register_configs

        register_configs()
        if ":" in arch or "/" in arch or open_clip.get_model_config(arch) is None:
            raise UserError(f"--caption-model {arch[:80]!r}: not a local open_clip config (tic loads only local models)")
        self.weights = resolve_pretrained(arch, pretrained, cache_dir, "--caption-pretrained")
        try:
            with quiet_model_creation():
                self.model = open_clip.create_model(arch, pretrained=str(self.weights), device=device)
        except Exception as e:  # noqa: BLE001 - open_clip, torch and safetensors each raise their own kinds
            raise UserError(f"{self.weights}: not weights of a {arch} model tic can load ({type(e).__name__})") from None
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.device, self.batch, self.arch = torch.device(device), batch, arch
        self._class_cache: dict[str, np.ndarray] = {}

    @torch.no_grad()
    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length text embeddings, one row per text (float32)."""
        out = []
        for i in range(0, len(texts), self.batch):
            tokens = self.tokenizer(texts[i:i + self.batch]).to(self.device)
            f = self.model.encode_text(tokens).float()
            out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
        width = self.model.text_projection.shape[-1] if getattr(self.model, "text_projection", None) is not None else 0
        return np.concatenate(out) if out else np.zeros((0, width), np.float32)

    def __call__(self, texts: list[str], class_texts: list[str]) -> np.ndarray:
        """Cosine similarity of texts[i] with class_texts[i]."""
        missing = sorted(set(class_texts) - set(self._class_cache))
        for t, e in zip(missing, self.embed(missing)):
            self._class_cache[t] = e
        if not texts:
            return np.zeros(0, np.float32)
        caps = self.embed(texts)
        cls = np.stack([self._class_cache[t] for t in class_texts])
        return (caps * cls).sum(axis=1)

    def describe(self) -> dict:
        return {"model": self.arch, "weights": str(self.weights)}
