"""SAM for semantic segmentation (Semantic Segment Anything): the vote of SAM's masks on a semantic branch."""
import numpy as np
import pytest
import torch

from ptqvision.errors import ConfigError
from ptqvision.eval.sam_semantic import MaskGeneratorSettings, vote


def test_vote_gives_each_mask_the_majority_class_smaller_masks_last():
    classes = torch.tensor([[0, 0, 1, 1],
                            [0, 2, 1, 1],
                            [3, 3, 3, 1],
                            [3, 3, 0, 0]])
    big = np.zeros((4, 4), bool)
    big[:, :2] = True          # the left half: classes 0, 0, 0, 2, 3, 3, 3, 3 -> 3
    small = np.zeros((4, 4), bool)
    small[0:2, 0:2] = True     # inside it, the top-left 2x2: 0, 0, 0, 2 -> 0 (visited after the larger mask)
    tie = np.zeros((4, 4), bool)
    tie[3, 2:] = True          # 0, 0 -> 0
    tie[2, 3] = False
    tie2 = np.zeros((4, 4), bool)
    tie2[1, 2] = tie2[2, 2] = True  # classes 1 and 3, one each: the smaller class wins
    out = vote(classes, [small, big, tie, tie2], num_classes=4)
    expected = torch.tensor([[0, 0, 1, 1],
                             [0, 0, 1, 1],
                             [3, 3, 1, 1],
                             [3, 3, 0, 0]])
    assert torch.equal(out, expected)
    # the majority is taken on the branch's own map, not on what an earlier mask wrote
    assert torch.equal(vote(classes, [], 4), classes)  # no mask: the branch's classes
    empty = np.zeros((4, 4), bool)
    assert torch.equal(vote(classes, [empty], 4), classes)


def test_mask_generator_settings_are_checked():
    assert MaskGeneratorSettings.from_cfg({}).points_per_side == 32
    assert MaskGeneratorSettings.from_cfg({"points_per_side": 8}).points_per_side == 8
    with pytest.raises(ConfigError, match="points_per_sid"):
        MaskGeneratorSettings.from_cfg({"points_per_sid": 8})
    with pytest.raises(ConfigError, match="points_per_batch"):
        MaskGeneratorSettings.from_cfg({"points_per_batch": 0})
