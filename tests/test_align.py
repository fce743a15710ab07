"""--align: every aligned image against PIL's own JPEG encode of the decoded image (bit for bit), the
match-real-quality draw against the real files' estimated qualities, the cache key, run.json and the paired
raw/aligned table of `bench run --align both`."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import chisquare

from bench import api
from bench.cli import main
from bench.engine.align import Alignment, alignment_for, parse_policies
from bench.engine.config import EvalConfig
from bench.engine.decode import DecodeSpec
from bench.engine.jpeg_quality import estimate_jpeg_quality
from bench.errors import BenchError


def noise(seed: int, size=(40, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def pil_jpeg(path: Path, quality: int) -> np.ndarray:
    """What the alignment must give: PIL's JPEG encode of the decoded image at `quality`, read back."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def decoded(path: Path, align, label: int, key: str = "k") -> np.ndarray:
    spec = DecodeSpec(resize=None, even_crop=False, align=align)
    return spec.decode(path, key, label=label).pixels.permute(1, 2, 0).numpy()


def jpeg_real_png_fake(root: Path, n: int = 12, qualities=(70, 80, 90)) -> Path:
    """root/gen/0_real/*.jpg at the given qualities in turn, root/gen/1_fake/*.png (the format shortcut)."""
    for label in ("0_real", "1_fake"):
        (root / "gen" / label).mkdir(parents=True)
    for i in range(n):
        noise(i).save(root / "gen" / "0_real" / f"r{i:02d}.jpg", quality=qualities[i % len(qualities)])
        noise(100 + i).save(root / "gen" / "1_fake" / f"f{i:02d}.png")
    return root


def test_jpeg96_is_pil_jpeg_quality_96_of_every_image_bit_for_bit(tmp_path):
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    noise(1, (37, 29)).save(png)  # odd sizes: no crop under even_crop=False
    noise(2).save(jpg, quality=75)
    align = Alignment("jpeg96")
    for path in (png, jpg):
        for label in (0, 1):
            assert np.array_equal(decoded(path, align, label), pil_jpeg(path, 96))
    raw = DecodeSpec(resize=None, even_crop=False).decode(png).pixels.permute(1, 2, 0).numpy()
    assert not np.array_equal(raw, pil_jpeg(png, 96))  # the re-encode did change the pixels


def test_fakes_jpeg96_touches_fakes_only(tmp_path):
    path = tmp_path / "x.png"
    noise(3).save(path)
    align = Alignment("fakes-jpeg96")
    assert np.array_equal(decoded(path, align, 1), pil_jpeg(path, 96))
    assert np.array_equal(decoded(path, align, 0), np.asarray(Image.open(path).convert("RGB")))


def test_match_real_quality_draws_from_the_real_images_estimated_qualities(tmp_path):
    root = jpeg_real_png_fake(tmp_path / "s", n=9, qualities=(70, 85, 85))
    reals = sorted((root / "gen" / "0_real").iterdir())
    align = alignment_for("match-real-quality", reals)
    # the pool is what was written: PIL's quality q gives libjpeg's table for q, estimated exactly
    assert sorted(align.real_qualities) == sorted([70, 85, 85] * 3)
    keys = [f"gen/1_fake/{i}.png" for i in range(600)]
    drawn = [align.quality_for(1, key) for key in keys]
    assert set(drawn) <= {70, 85}
    counts = Counter(drawn)
    # drawn as the empirical distribution of the reals (1/3 at 70, 2/3 at 85)
    assert chisquare([counts[70], counts[85]], [600 / 3, 1200 / 3]).pvalue > 1e-3
    assert [Alignment("match-real-quality", align.real_qualities).quality_for(1, k) for k in keys] == drawn  # seeded
    assert align.quality_for(0, keys[0]) is None  # reals untouched
    fake = root / "gen" / "1_fake" / "f00.png"
    quality = align.quality_for(1, "gen/1_fake/f00.png")
    assert np.array_equal(decoded(fake, align, 1, "gen/1_fake/f00.png"), pil_jpeg(fake, quality))
    buffer = io.BytesIO()
    Image.open(fake).convert("RGB").save(buffer, format="JPEG", quality=quality)
    assert estimate_jpeg_quality(Image.open(buffer).quantization[0]) == (quality, True)


def test_match_real_quality_without_real_jpegs_leaves_the_fakes(tmp_path):
    png = tmp_path / "r.png"
    noise(4).save(png)
    align = alignment_for("match-real-quality", [png])
    assert align.real_qualities == () and align.quality_for(1, "x") is None


def test_policies_parse_and_unknown_is_a_usage_error(tmp_path, capsys):
    assert parse_policies("both") == ("raw", "jpeg96")
    assert parse_policies("raw, fakes-jpeg96,raw") == ("raw", "fakes-jpeg96")
    assert EvalConfig(align="BOTH").align == "raw,jpeg96"
    with pytest.raises(BenchError, match="known: raw, jpeg96, fakes-jpeg96, match-real-quality, both"):
        parse_policies("jpeg95")
    root = jpeg_real_png_fake(tmp_path / "s", n=2)
    code = main(["run", "--detector", "npr", "--weights", "demo", "--suite", str(root), "--align", "jpeg95",
                 "--output", str(tmp_path / "r")])
    assert code == 2
    assert "unknown policy 'jpeg95'" in capsys.readouterr().err


@pytest.mark.slow
def test_align_both_scores_raw_and_aligned_into_paired_columns(tmp_path, capsys):
    root = jpeg_real_png_fake(tmp_path / "s", n=6)
    out = tmp_path / "results"
    code = main(["run", "--detector", "npr", "--weights", "demo", "--suite", str(root), "--align", "both",
                 "--output", str(out), "--device", "cpu", "--workers", "0", "--resolution", "native"])
    text = capsys.readouterr().out
    assert code == 0
    assert "## raw and aligned: raw, jpeg96" in text and "AP delta jpeg96" in text
    runs = {}
    for folder in sorted((out / "runs").iterdir()):
        info = json.loads((folder / "run.json").read_text())
        runs[info["align"]] = (info, json.loads((folder / "metrics.json").read_text()))
    assert set(runs) == {"raw", "jpeg96"}
    raw_key = runs["raw"][0]["work_keys"]["s/gen"]
    aligned_key = runs["jpeg96"][0]["work_keys"]["s/gen"]
    assert raw_key != aligned_key
    # the paired row shows each run folder's own numbers and their difference
    raw_ap = runs["raw"][1]["suites"]["s"]["generators"]["gen"]["ap"]
    aligned_ap = runs["jpeg96"][1]["suites"]["s"]["generators"]["gen"]["ap"]
    row = next(line for line in text.splitlines() if line.startswith("npr") and " gen " in line)
    cells = row.split()
    assert cells[6] == f"{100 * raw_ap:.1f}" and cells[7] == f"{100 * aligned_ap:.1f}"
    assert cells[8] == f"{100 * (aligned_ap - raw_ap):+.1f}"


@pytest.mark.slow
def test_raw_key_has_no_align_field_and_aligned_keys_differ(tmp_path):
    root = jpeg_real_png_fake(tmp_path / "s", n=2)
    keys = {}
    for policy in ("raw", "jpeg96", "fakes-jpeg96", "match-real-quality"):
        result = api.evaluate("npr", str(root), weights="demo", output=tmp_path / "r", align=policy,
                              progress=False, device="cpu", workers=0, write_run=False, resolution="native")
        keys[policy] = result["npr"].info["work_keys"]["s/gen"]
        assert result.align == policy and result["npr"].info["align"] == policy
    assert len(set(keys.values())) == 4
    cache = tmp_path / "r" / "cache"
    raw_fields = json.loads((cache / keys["raw"] / "key.json").read_text())
    assert "align" not in raw_fields and "align" not in raw_fields["decode"]
    assert json.loads((cache / keys["jpeg96"] / "key.json").read_text())["align"] == "jpeg96"
