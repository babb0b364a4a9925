"""Top-1 / top-5 accuracy of an image classifier over a data loader."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..errors import DataError


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Return, for each k in ``ks``, how many rows of ``logits`` have their label among the top k.

    ``logits`` is ``(N, C)``, ``labels`` is ``(N,)``; k is clipped to C so that top-5 works with fewer
    than 5 classes.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    labels = labels.to(logits.device).reshape(-1)
    if labels.numel() != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} logit rows but {labels.numel()} labels")
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {list(ks)}")
    num_classes = logits.shape[1]
    if logits.shape[0] == 0 or num_classes == 0:
        return [0 for _ in ks]
    kmax = min(max(ks), num_classes)
    pred = logits.topk(kmax, dim=1, largest=True, sorted=True).indices
    hits = pred.eq(labels[:, None])
    return [int(hits[:, : min(k, num_classes)].any(dim=1).sum().item()) for k in ks]


class ClassificationEvaluator:
    """Measure top-1 / top-5 accuracy (percent) of a model over ``loader`` of ``(images, labels)`` batches."""

    def __init__(self, loader: Iterable, device: str | torch.device = "cpu", desc: str = "eval", progress: bool = True) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self.desc = desc
        self.progress = progress

    def evaluate(self, model: nn.Module) -> dict:
        """Return ``{"top1": %, "top5": %, "num_images": int}``; leaves ``model`` in eval mode.

        The model must already be on ``self.device``; only the batches are moved there.
        """
        model.eval()
        correct1 = correct5 = total = 0
        bar = tqdm(self.loader, desc=self.desc, disable=not self.progress, leave=False, dynamic_ncols=True, unit="batch")
        with torch.inference_mode():
            for images, labels in bar:
                images = images.to(self.device)
                labels = torch.as_tensor(labels).to(self.device)
                output = model(images)
                # Some models return (logits, aux...) tuples; the first element holds the logits.
                logits = output[0] if isinstance(output, (tuple, list)) else output
                if not isinstance(logits, torch.Tensor):
                    raise TypeError(f"model returned {type(output).__name__}, expected a logits tensor")
                c1, c5 = topk_correct(logits, labels, ks=(1, 5))
                correct1 += c1
                correct5 += c5
                total += int(labels.numel())
                bar.set_postfix(top1=f"{100.0 * correct1 / total:.2f}", refresh=False)
        bar.close()
        if total == 0:
            raise DataError(f"evaluation '{self.desc}': the data loader yielded no images")
        return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "num_images": total}
