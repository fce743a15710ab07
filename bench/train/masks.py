"""Which training images get their forgery mask: `--mask-selection none|random|all|active`.

The masks stand in for a human annotator (the suite's ground truth in `1_fake_masks`): a run "requests"
the mask of an image and from then on trains the detector's interpretation regulariser on it (LAE). The
pool is the training fakes that have a mask on disk; real images never need one (theirs is all zero).

- `none`: no masks; the batches carry none and the regulariser contributes nothing.
- `all`: every fake in the pool, from the first step.
- `random`: `budget` (a count, see `budget_count`) fakes of the pool drawn with a generator seeded by the
  run's seed, from the first step.
- `active` (the LAE paper's loop: train, score the unmasked pool, request masks, continue): plain training
  for `mask_query_epoch` epochs, then the model in eval mode scores every fake of the pool (the val
  protocol's decode, no augmentation) and the run requests the masks of the `budget` most informative
  ones, then training continues with them. Criterion: the fakes the model finds least fake, i.e. with the
  lowest probability of "fake" (the largest classification loss): those are the challenging candidates
  whose decision most needs to come from the right place. Ties go to the lower item index, so the choice
  is a function of the model (and so of the seed) alone.

`masks.json` in the run folder records the selection: the rule, the budget, the pool size, when the
masks were requested and, per granted image, its path relative to the training set (and its score);
for `active`, every candidate's score (item index -> probability of fake).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.train.recipe import mix_seed

CRITERION = "lowest probability of fake among the unmasked fakes (largest classification loss); ties: lower index"


def budget_count(budget: float, n_images: int, n_pool: int) -> int:
    """Masks allowed: round(budget x training images), at most the pool, at least one for a positive
    budget on a non-empty pool (a run asking for masks gets some)."""
    count = int(round(budget * n_images))
    if budget > 0 and count == 0:
        count = 1
    return min(count, n_pool)


def select_random(pool: list[int], count: int, seed: int) -> list[int]:
    """`count` indices of `pool` drawn without replacement by a generator seeded with the run's seed."""
    generator = torch.Generator().manual_seed(mix_seed(seed, "masks"))
    order = torch.randperm(len(pool), generator=generator).tolist()
    return sorted(sorted(pool)[i] for i in order[:count])


def select_active(scores: dict[int, float], count: int) -> list[int]:
    """The `count` pool indices with the lowest probability of fake (`scores`: index -> probability)."""
    ranked = sorted(scores, key=lambda index: (scores[index], index))
    return sorted(ranked[:count])


def record(selection: str, budget: float, n_images: int, pool: dict[int, Path], granted: list[int], root: Path,
           items, *, epoch: int | None = None, scores: dict[int, float] | None = None) -> dict:
    """The `masks.json` record of a selection."""
    rows = []
    for index in granted:
        row = {"index": index, "image": items[index][0].relative_to(root).as_posix(),
               "mask": pool[index].relative_to(root).as_posix()}
        if scores is not None:
            row["p_fake"] = scores[index]
        rows.append(row)
    return {
        "selection": selection, "budget": budget, "n_train_images": n_images, "n_pool": len(pool),
        "n_granted": len(granted), "fraction_of_train": len(granted) / n_images if n_images else 0.0,
        "criterion": CRITERION if selection == "active" else None,
        "requested_after_epoch": epoch, "granted": rows,
        "candidate_scores": {str(i): p for i, p in sorted(scores.items())} if scores is not None else None,
    }
