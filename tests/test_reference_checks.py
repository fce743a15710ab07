"""Decisions that move reported numbers, each checked against an independent computation (hand formulas,
brute force, scikit-learn, torchvision, PIL, the official code's constants), for the kinds of bug that
earlier planted-bug audits found surviving the suite (issue 21): a threshold on the wrong scale, the side of
a tie, a calibration rule ignored, rounding against truncation, another model's normalisation, LAE's
regulariser on the wrong class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import accuracy_score

from bench.engine.calibration import fit_calibration
from bench.engine.decode import decode_image
from bench.engine.metrics import equal_error_rate, metrics_from_logits, metrics_from_scores
from bench.engine.perturb import parse

# ------------------------------------------------------------------ thresholds on the right scale


def _rows(paths, labels, logits):
    return pd.DataFrame({"path": paths, "label": labels, "logit": logits})


# reals of two ForenSynths-like categories; logits chosen around both thresholds: 0.3 is fake by
# prob > 0.5 (sigmoid(0.3) = 0.574) but below a probability threshold of 0.5 read as a logit
REAL_LOGITS = {"progan/car/0_real/a.png": -2.0, "progan/car/0_real/b.png": 0.3, "progan/car/0_real/c.png": 0.45,
               "progan/cat/0_real/a.png": -0.2, "progan/cat/0_real/b.png": 0.0, "progan/cat/0_real/c.png": 25.0}
FAKE_LOGITS = {"progan/car/1_fake/a.png": 0.2, "progan/cat/1_fake/a.png": 3.0, "progan/cat/1_fake/b.png": -1.0}


def _generator():
    paths = [*REAL_LOGITS, *FAKE_LOGITS]
    labels = [0] * len(REAL_LOGITS) + [1] * len(FAKE_LOGITS)
    return paths, labels, [*REAL_LOGITS.values(), *FAKE_LOGITS.values()]


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_per_source_real_accuracy_and_acc_use_the_precisions_threshold(precision):
    """float32: the official validate.py's `sigmoid(logit) > 0.5` in float32 (torch); float64: `logit > 0`.
    Per source, r_acc is the share of its reals not called fake, by the same rule as ACC."""
    paths, labels, logits = _generator()
    if precision == "float32":
        called_fake = (torch.sigmoid(torch.tensor(logits, dtype=torch.float32)) > 0.5).numpy()
    else:
        called_fake = np.array(logits) > 0
    result = metrics_from_scores(_rows(paths, labels, logits), prob_precision=precision)
    assert result["acc"] == pytest.approx(accuracy_score(labels, called_fake.astype(int)))
    expected = {}
    for source in ("car", "cat"):
        rows = [i for i, p in enumerate(paths) if labels[i] == 0 and f"/{source}/" in p]
        expected[source] = {"n_real": len(rows), "r_acc": float(np.mean(~called_fake[rows]))}
    assert result["real_sources"] == expected
    # by hand, the same: car reals -2.0 (real), 0.3 and 0.45 (fake); cat -0.2 and 0.0 (real), 25 (fake)
    assert expected["car"]["r_acc"] == pytest.approx(1 / 3) and expected["cat"]["r_acc"] == pytest.approx(2 / 3)


def test_per_source_calibrated_accuracy_compares_logits_with_the_logit_threshold():
    paths, labels, logits = _generator()
    for precision in ("float32", "float64"):
        result = metrics_from_scores(_rows(paths, labels, logits), prob_precision=precision, calibrated_logit=0.4)
        assert result["real_sources"]["car"]["r_acc_cal"] == pytest.approx(2 / 3)  # -2.0, 0.3 <= 0.4
        assert result["real_sources"]["cat"]["r_acc_cal"] == pytest.approx(2 / 3)  # -0.2, 0.0
        assert result["acc_cal"] == pytest.approx(accuracy_score(labels, (np.array(logits) > 0.4).astype(int)))


# ----------------------------------------------------------------------------- ties and the EER


def brute_force_eer_threshold(labels, logits):
    """The documented rule, with loops: among t in {every logit, min - 1}, minimise |FPR - FNR| where FPR
    is the share of reals with logit > t and FNR the share of fakes with logit <= t; the lowest t on a tie."""
    real = [v for v, y in zip(logits, labels) if y == 0]
    fake = [v for v, y in zip(logits, labels) if y == 1]
    best = None
    for t in sorted(set(logits) | {min(logits) - 1.0}):
        fpr = sum(v > t for v in real) / len(real)
        fnr = sum(v <= t for v in fake) / len(fake)
        gap = abs(fpr - fnr)
        if best is None or gap < best[0] - 1e-12:
            best = (gap, t)
    return best[1]


def test_eer_threshold_is_the_lowest_of_tied_candidates():
    rng = np.random.default_rng(0)
    ties_seen = 0
    for _ in range(200):
        n = int(rng.integers(4, 12))
        labels = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        logits = rng.integers(-3, 4, n).astype(float)  # few distinct values: many ties
        chosen = fit_calibration("x", pd.DataFrame({"label": labels, "logit": logits}), "eer", "set", ["set"])
        assert chosen.threshold_logit == brute_force_eer_threshold(labels.tolist(), logits.tolist()), (labels, logits)
        real, fake = logits[labels == 0], logits[labels == 1]
        gaps = [abs(np.mean(real > t) - np.mean(fake <= t)) for t in np.unique(np.r_[logits, logits.min() - 1])]
        ties_seen += sum(abs(g - min(gaps)) < 1e-12 for g in gaps) > 1
    assert ties_seen > 20  # the cases above do exercise tied candidates


def test_equal_error_rate_on_tied_scores_by_hand():
    # every score tied: the ROC has only (0, 0) and (1, 1); FNR = 1 - TPR meets FPR half way
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.7, 0.7, 0.7, 0.7])) == pytest.approx(0.5)
    # one real tied with one fake at 0.5: ROC points (0, 0), (0, 0.5), (0.5, 1), (1, 1); FNR - FPR is 0.5 at
    # (0, 0.5) and -0.5 at (0.5, 1): it crosses half way, at FPR 0.25
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9])
    assert equal_error_rate(labels, scores) == pytest.approx(0.25)
    # the crossing exactly on a ROC point: reals 0.1, 0.2, fakes 0.15, 0.3 -> at t = 0.2 FPR = FNR = 0.5
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.15, 0.3])) == pytest.approx(0.5)


# --------------------------------------------------------------------- the calibration rule is used


def test_each_calibration_rule_gives_its_own_threshold():
    """real95 by hand (the smallest real logit with at least 95% of the reals at or below it) and eer by brute
    force, on a set where the two differ."""
    reals = np.arange(40, dtype=float)  # 0 .. 39: 95% of 40 = 38 reals at or below 37
    fakes = np.arange(20, 60, dtype=float) + 0.5
    scores = pd.DataFrame({"label": [0] * 40 + [1] * 40, "logit": np.r_[reals, fakes]})
    real95 = fit_calibration("x", scores, "real95", "set", ["set"])
    eer = fit_calibration("x", scores, "eer", "set", ["set"])
    assert (real95.rule, real95.threshold_logit) == ("real95", 37.0)
    assert (eer.rule, eer.threshold_logit) == ("eer", brute_force_eer_threshold(scores["label"].tolist(),
                                                                                scores["logit"].tolist()))
    assert eer.threshold_logit != real95.threshold_logit
    # and what the metrics report at each: ACC at `logit > t`, by scikit-learn
    for calibration in (real95, eer):
        result = metrics_from_logits(scores["label"], scores["logit"], calibrated_logit=calibration.threshold_logit)
        expected = accuracy_score(scores["label"], (scores["logit"] > calibration.threshold_logit).astype(int))
        assert result["acc_cal"] == pytest.approx(expected)


# --------------------------------------------------------------- rounding against truncation


def _noise(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(301, 231), (231, 301), (229, 224), (226, 227), (200, 150)])
def test_center_crop_is_torchvisions_on_odd_differences(tmp_path, size):
    """A detector's own protocol crops as torchvision's CenterCrop: offsets int(round((W - 224) / 2)) (Python's
    round: 38.5 -> 38, 3.5 -> 4, 2.5 -> 2) and black padding around an image smaller than the crop."""
    from torchvision.transforms import CenterCrop

    image = _noise(*size)
    path = tmp_path / "image.png"
    image.save(path)
    ours = decode_image(path, None, even_crop=False, center_crop=224).pixels
    theirs = torch.from_numpy(np.asarray(CenterCrop(224)(image)).copy()).permute(2, 0, 1)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(("width", "height", "scale", "expected"), [
    (301, 231, 0.5, (150, 116)),  # 150.5 -> 150 and 115.5 -> 116: Python's round, half to even
    (233, 217, 0.3, (70, 65)),  # 69.9 -> 70 (truncation would give 69), 65.1 -> 65
    (3, 3, 0.1, (1, 1)),  # never below 1x1
])
def test_resize_perturbation_target_size_is_rounded(width, height, scale, expected):
    """docs: resize:scale=F resizes to (round(W*F), round(H*F)), at least 1x1; the pixels are PIL's resize to
    that size."""
    image = _noise(width, height)
    out = parse(f"resize:scale={scale}")(image, "k")
    assert out.size == expected
    assert np.array_equal(np.asarray(out), np.asarray(image.resize(expected, Image.BILINEAR)))


@pytest.mark.parametrize(("width", "height", "keep"), [(301, 231, 0.5), (233, 217, 0.3), (100, 100, 0.77)])
def test_crop_perturbation_size_and_offsets(width, height, keep):
    """crop:keep=F keeps round(W*F) x round(H*F) pixels, the extra pixel of an odd difference on the right
    and bottom (offsets (W - w) // 2, PIL's box), checked on numpy slices of the image."""
    image = _noise(width, height)
    w, h = round(width * keep), round(height * keep)
    left, top = (width - w) // 2, (height - h) // 2
    out = parse(f"crop:keep={keep}")(image, "k")
    assert np.array_equal(np.asarray(out), np.asarray(image)[top:top + h, left:left + w])


# ------------------------------------------------------------- each peer's own normalisation


# The constants as the official code writes them (each cited), not the harness's names for them.
OFFICIAL_NORMALISATION = {
    # UnivFD validate.py: MEAN["clip"], STD["clip"] (github.com/WisconsinAIVision/UniversalFakeDetect)
    "univfd": ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
    # SAFE data/datasets.py: the eval transform is CenterCrop then ToTensor, no Normalize (github.com/Ouxiang-Li/SAFE)
    "safe": None,
    # CNNDetection data/datasets.py: Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    "cnndetection": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    # NPR data/datasets.py: the same ImageNet Normalize (github.com/chuangchuangtan/NPR-DeepfakeDetection)
    "npr": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_NORMALISATION))
def test_each_peers_input_is_its_official_to_tensor_and_normalize(name):
    from torchvision import transforms

    from detectors import get_detector
    from detectors.weights import get_weights_entry

    detector = get_detector(name)
    preprocessing = detector.preprocessing
    entry = get_weights_entry(f"{detector.weights_family}:{detector.default_weights}")
    assert entry.preprocessing is None or entry.preprocessing == preprocessing  # the official weights' own
    image = _noise(40, 32, seed=5)
    steps = [transforms.ToTensor()]
    if OFFICIAL_NORMALISATION[name] is not None:
        steps.append(transforms.Normalize(*OFFICIAL_NORMALISATION[name]))
    expected = transforms.Compose(steps)(image)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    assert torch.allclose(preprocessing.normalize(pixels), expected, atol=1e-6, rtol=0)


# -------------------------------------------------------------- LAE's regulariser, on which images


@pytest.mark.parametrize("regularise_reals", [False, True])
def test_lae_regulariser_reaches_only_the_images_it_should(regularise_reals):
    """The interpretation term is a mean, over the fakes that have a mask (and, with regularise_reals, the
    reals, whose mask is empty), of the per-cell BCE between sigmoid(local) and the mask's share of forged
    pixels per cell; written here with log-sigmoids and explicit pooling."""
    from lae import LAE, LAEConfig, lae_loss

    torch.manual_seed(0)
    config = LAEConfig(reconstruction_weight=0.0, interpretation_weight=1.0, regularise_reals=regularise_reals)
    model = LAE(config).train()
    x = torch.randn(4, 3, 32, 32)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])  # real, fake with a mask, fake without one, real
    has_mask = torch.tensor([False, True, False, False])
    masks = torch.zeros(4, 32, 32, dtype=torch.bool)
    masks[1, 8:24, 4:20] = True
    masks[2, :, :16] = True  # a mask the run did not grant: must not count
    output = model(x)
    local = output.local.double()
    cells = local.shape[-1]
    share = masks.double().reshape(4, cells, 32 // cells, cells, 32 // cells).mean(dim=(2, 4))

    def cell_bce(i):
        z, y = local[i], share[i]
        return (-(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z))).mean()

    chosen = [1] + ([0, 3] if regularise_reals else [])
    logit = output.logit.double()
    classification = (-(target.double() * F.logsigmoid(logit) + (1 - target.double()) * F.logsigmoid(-logit))).mean()
    expected = classification + torch.stack([cell_bce(i) for i in chosen]).mean()
    got = lae_loss(output, target, config, masks, has_mask)
    assert float(got.detach()) == pytest.approx(float(expected.detach()), abs=1e-5)
    # and the regulariser is not the same on the other images: the check above can tell them apart
    others = torch.stack([cell_bce(i) for i in (0, 2, 3)]).mean().detach()
    assert abs(float(others) - float(torch.stack([cell_bce(i) for i in chosen]).mean())) > 1e-3


# ------------------------------------------------------------ the best checkpoint, on ties


def test_best_checkpoint_keeps_the_earliest_of_equal_epochs():
    """Val ACC first, then AP; an equal later epoch does not replace the best, an undefined AP never wins a
    tie. Expected best epochs written out by hand for a history with ties."""
    from bench.train.loop import better

    history = [
        {"acc": 0.80, "ap": 0.90},  # 1: first
        {"acc": 0.80, "ap": 0.90},  # 2: equal: 1 stays
        {"acc": 0.80, "ap": 0.95},  # 3: same ACC, better AP
        {"acc": 0.80, "ap": float("nan")},  # 4: tie on ACC, undefined AP: 3 stays
        {"acc": 0.85, "ap": 0.10},  # 5: better ACC wins whatever the AP
        {"acc": 0.85, "ap": 0.10},  # 6: equal: 5 stays
        {"acc": 0.70, "ap": 1.00},  # 7: worse ACC
    ]
    best, best_epoch, chosen = None, None, []
    for epoch, metrics in enumerate(history, start=1):
        if better(metrics, best):
            best, best_epoch = metrics, epoch
        chosen.append(best_epoch)
    assert chosen == [1, 1, 3, 3, 5, 5, 5]


# ------------------------------------------------------------ the report marks the best value


class _Cells:
    """The per-generator table of a `bench report` page: rows of (text, is-best) cells, read with the
    standard library's HTML parser."""

    def __init__(self, html: str) -> None:
        from html.parser import HTMLParser

        rows: list[list[tuple[str, bool]]] = []

        class Parser(HTMLParser):
            cell = None

            def handle_starttag(self, tag, attrs):
                if tag == "tr":
                    rows.append([])
                elif tag in ("td", "th"):
                    self.cell = ["", "best" in (dict(attrs).get("class") or "").split()]

            def handle_data(self, data):
                if self.cell is not None:
                    self.cell[0] += data

            def handle_endtag(self, tag):
                if tag in ("td", "th") and self.cell is not None and rows:
                    rows[-1].append((self.cell[0].strip(), self.cell[1]))
                    self.cell = None

        Parser().feed(html)
        self.rows = rows


def test_report_marks_the_highest_acc_and_ap_of_each_row_as_best(tmp_path):
    from sklearn.metrics import average_precision_score
    from test_report import make_run, report

    folders = [make_run(tmp_path / name, name, "suite-x", ["g1", "g2"], seed=seed)
               for name, seed in (("alpha", 1), ("beta", 2), ("gamma", 3))]
    html, _ = report(tmp_path, *folders)
    expected = {}
    for generator in ("g1", "g2"):
        values = []
        for folder in folders:
            scores = pd.read_parquet(folder / "scores.parquet")
            part = scores[scores["generator"] == generator]
            acc = ((part["prob"] > 0.5).astype(int) == part["label"]).mean()
            values.append((acc, average_precision_score(part["label"], part["prob"])))
        expected[generator] = [max(v[0] for v in values), max(v[1] for v in values)]
    rows = {}
    for row in _Cells(html).rows:  # the first table that lists the generators is the per-generator one
        if row and row[0][0] in ("g1", "g2"):
            rows.setdefault(row[0][0], row[1:])
    assert set(rows) == {"g1", "g2"}
    for generator, cells in rows.items():
        acc_cells, ap_cells = cells[0::2][:3], cells[1::2][:3]  # (ACC, AP) per run, three runs
        for metric_cells, best in zip((acc_cells, ap_cells), expected[generator]):
            marked = [text for text, is_best in metric_cells if is_best]
            assert marked and all(text == f"{100 * best:.1f}" for text in marked), (generator, metric_cells, best)
            assert [t for t, _ in metric_cells].count(f"{100 * best:.1f}") == len(marked)
