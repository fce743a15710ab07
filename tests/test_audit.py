"""bench audit: JPEG quality estimates against known encoders, and the trivial-score shortcut warnings on
folders built to have (or not have) a format, size or quality shortcut."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.analyses.audit import estimate_jpeg_quality, inspect_file
from bench.cli import main
from bench.engine.perturb import parse


def image(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def write_folder(root: Path, real: dict, fake: dict, n: int = 12) -> Path:
    """root/gen/{0_real,1_fake}/i.EXT, each class saved with its own options: {"format", "size", ...}."""
    for label, options in (("0_real", real), ("1_fake", fake)):
        folder = root / "gen" / label
        folder.mkdir(parents=True)
        for i in range(n):
            save = dict(options)
            fmt, size = save.pop("format"), save.pop("size", (48, 40))
            if callable(fmt):
                fmt = fmt(i)
            extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
            image(i + 100 * (label == "1_fake"), size).save(folder / f"{i}.{extension}", format=fmt, **save)
    return root


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 90, 95, 100])
def test_quality_estimate_is_exact_for_pil_and_opencv(quality):
    buffer = io.BytesIO()
    image(0).save(buffer, format="JPEG", quality=quality)
    assert estimate_jpeg_quality(Image.open(buffer).quantization[0]) == (quality, True)
    written = Image.open(io.BytesIO(parse(f"jpeg-cv2:q={quality}").encode(image(0))))
    assert estimate_jpeg_quality(written.quantization[0]) == (quality, True)


def test_quality_estimate_of_a_non_standard_table_is_marked_approximate(tmp_path):
    table = [3] * 64  # flat: no IJG quality gives it; the IJG tables with entries near 3 are q 95-99
    path = tmp_path / "custom.jpg"
    image(0).save(path, format="JPEG", qtables=[table, table])
    facts = inspect_file(path, 0, "custom.jpg")
    assert facts.format == "JPEG" and facts.quality_exact is False and 95 <= facts.jpeg_quality <= 99
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert inspect_file(broken, 1, "broken.png").format == "unreadable"


def audit(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["audit", "--suite", str(root), "--workers", "2", *extra])
    return code, capsys.readouterr().out


def test_jpeg_reals_png_fakes_warn_with_trivial_ap_100(tmp_path, capsys):
    root = write_folder(tmp_path / "suite", {"format": "JPEG", "quality": 90}, {"format": "PNG"})
    code, out = audit(root, capsys)
    assert code == 0
    assert "WARNING (strong shortcut): suite/gen: format alone separates the classes (JPEG -> real): trivial AP 100.0" in out
    assert "JPEG 100%" in out and "PNG 100%" in out and "| 90" not in out
    assert "no shortcut" not in out
    code, out = audit(root, capsys, "--json")
    generator = json.loads(out)[0]["generators"][0]
    assert generator["real"]["jpeg_quality"] == {"median": 90, "min": 90, "max": 90, "approximate": 0}
    by_prop = {s["prop"]: s for s in generator["shortcuts"]}
    assert by_prop["format"]["ap"] == pytest.approx(1.0) and by_prop["format"]["warn"]
    assert by_prop["size"]["ap"] == pytest.approx(0.5) and not by_prop["size"]["warn"]  # equal sizes


def test_size_and_quality_shortcuts(tmp_path, capsys):
    root = write_folder(tmp_path / "sizes", {"format": "PNG", "size": (64, 64)}, {"format": "PNG", "size": (96, 80)})
    _, out = audit(root, capsys)
    assert "size alone separates the classes (larger -> fake): trivial AP 100.0" in out
    assert "format alone" not in out
    root = write_folder(tmp_path / "quality", {"format": "JPEG", "quality": 95}, {"format": "JPEG", "quality": 75})
    _, out = audit(root, capsys)
    assert "jpeg quality alone separates the classes (lower quality -> fake): trivial AP 100.0" in out
    assert "format alone" not in out


def test_balanced_formats_give_no_warning(tmp_path, capsys):
    mixed = {"format": lambda i: "JPEG" if i % 2 else "PNG"}
    root = write_folder(tmp_path / "mixed", mixed, mixed)
    _, out = audit(root, capsys)
    assert "WARNING" not in out and "no shortcut" in out
    assert "JPEG 50%, PNG 50%" in out or "PNG 50%, JPEG 50%" in out
    assert "50.0 / 50.0 (no separation)" in out  # the trivial format score carries no information, no direction


def test_missing_suite_is_a_usage_error(tmp_path, capsys):
    assert main(["audit", "--suite", "forensynths", "--data-root", str(tmp_path)]) == 2
