"""Tests for ptqvision.eval: top-k counting and the classification evaluator."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ptqvision  # noqa: F401  (before torchvision)
from ptqvision.errors import DataError
from ptqvision.eval import ClassificationEvaluator, topk_correct


def test_topk_correct_hand_made_logits() -> None:
    logits = torch.tensor(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.0],  # label 0: rank 1
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.0],  # label 3: rank 4 -> top-5 only
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.0],  # label 5: rank 6 -> neither
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 3.0],  # label 6: rank 1
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 3.0],  # label 2: rank 5 -> top-5 only
        ]
    )
    labels = torch.tensor([0, 3, 5, 6, 2])
    assert topk_correct(logits, labels) == [2, 4]
    assert topk_correct(logits, labels, ks=(1, 2, 4, 7)) == [2, 2, 3, 5]


def test_topk_correct_fewer_classes_than_k() -> None:
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 2.0], [5.0, 4.0, 3.0]])
    labels = torch.tensor([2, 2, 1])
    # With 3 classes, top-5 covers every class, so every row counts.
    assert topk_correct(logits, labels, ks=(1, 5)) == [1, 3]


def test_topk_correct_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        topk_correct(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))


class FixedLogits(nn.Module):
    """Returns a preset logits row for each input, chosen by the input's first value (an index)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training, "evaluator must put the model in eval mode"
        return self.table[x[:, 0].long()]


def _loader(num: int, labels: list[int], batch_size: int) -> DataLoader:
    index = torch.arange(num, dtype=torch.float32)[:, None].repeat(1, 4)
    return DataLoader(TensorDataset(index, torch.tensor(labels)), batch_size=batch_size)


def test_evaluator_exact_accuracy_with_partial_last_batch() -> None:
    num_classes, num = 10, 7
    table = torch.zeros(num, num_classes)
    for i in range(num):
        table[i] = torch.arange(num_classes, dtype=torch.float32).roll(i)  # argmax = (9 + i) % 10
    top1 = [(9 + i) % 10 for i in range(num)]
    # Rows 0-2 correct at top-1, rows 3-4 only at top-5 (rank 3), rows 5-6 wrong at top-5 (rank 8).
    labels = top1[:3] + [(top1[3] - 2) % 10, (top1[4] - 2) % 10] + [(top1[5] - 7) % 10, (top1[6] - 7) % 10]
    model = FixedLogits(table).train()
    result = ClassificationEvaluator(_loader(num, labels, batch_size=3), progress=False).evaluate(model)
    assert result["num_images"] == 7 and isinstance(result["num_images"], int)
    assert result["top1"] == 100.0 * 3 / 7
    assert result["top5"] == 100.0 * 5 / 7
    assert not model.training


def test_evaluator_two_class_model_and_tuple_output() -> None:
    class TwoClass(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = torch.stack([x[:, 0], -x[:, 0]], dim=1)  # class 0 iff x > 0
            return logits, torch.zeros(1)

    x = torch.tensor([[1.0], [-1.0], [2.0], [-3.0]])
    y = torch.tensor([0, 0, 0, 1])
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    result = ClassificationEvaluator(loader, progress=False).evaluate(TwoClass())
    assert result == {"top1": 75.0, "top5": 100.0, "num_images": 4}


def test_evaluator_empty_loader_raises() -> None:
    loader = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), batch_size=2)
    with pytest.raises(DataError) as exc:
        ClassificationEvaluator(loader, progress=False, desc="val").evaluate(nn.Identity())
    assert "\n" not in str(exc.value) and "val" in str(exc.value)


def test_evaluator_progress_bar_runs(capsys: pytest.CaptureFixture) -> None:
    table = torch.eye(3)
    loader = _loader(3, [0, 1, 1], batch_size=1)
    result = ClassificationEvaluator(loader, progress=True, desc="demo").evaluate(FixedLogits(table))
    assert result["num_images"] == 3 and result["top1"] == 100.0 * 2 / 3
    assert "demo" in capsys.readouterr().err  # the bar was drawn
