"""The demo trainer's one departure from plain CLIP: captions that also describe another image in
the batch are not used as that image's negatives."""

from __future__ import annotations

import math

import torch

from demo.data import mentions
from demo.train import _codes, _describes, _loss


def test_mentions_reads_the_attributes_back_from_a_caption():
    assert mentions("One of the blue stars , big , at the top .") == {
        "colour": "blue",
        "shape": "star",
        "size": "large",
        "position": "top",
    }
    assert mentions("A small red circle on a dark backdrop") == {
        "colour": "red",
        "shape": "circle",
        "size": "small",
        "background": "dark",
    }
    # two colours named: neither is claimed
    assert "colour" not in mentions("a red or blue square")


def test_a_caption_describes_the_images_it_does_not_contradict():
    red_circle_left = _codes(["a small red circle on the left", "red circle, tiny, at the left"])
    red_circle_right = _codes(["a big red circle on the right"])
    blue_circle = _codes(["a blue circle"])
    captions = torch.tensor([_codes(["a red circle"]), _codes(["a red circle on the right"])])
    images = torch.tensor([red_circle_left, red_circle_right, blue_circle])
    assert _describes(captions, images).tolist() == [
        [True, True, False],  # "a red circle" fits both red circles
        [False, True, False],  # "... on the right" only the right one
    ]


def test_masked_negatives_do_not_count_in_the_loss():
    logits = torch.tensor([[5.0, 4.0, 0.0], [4.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    everyone_differs = torch.eye(3, dtype=torch.bool)
    first_two_alike = everyone_differs.clone()
    first_two_alike[0, 1] = first_two_alike[1, 0] = True
    plain, masked = _loss(logits, everyone_differs), _loss(logits, first_two_alike)
    assert masked < plain
    # with the look-alike gone, rows 0 and 1 only compete with the far third image (logit 0);
    # row 2 still competes with both; the matrix is symmetric, so both directions agree
    rows_0_1 = math.log(1 + math.exp(-5))
    row_2 = math.log(1 + 2 * math.exp(-5))
    expected = (2 * rows_0_1 + row_2) / 3
    assert math.isclose(masked.item(), expected, rel_tol=1e-5)
