"""bench.engine.perturb: each perturbation against an independent computation (PIL, OpenCV's tables by the
IJG formula, torchvision's Gaussian blur, numpy), parsing, determinism, and where decode applies it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur as tv_gaussian_blur

from bench.engine.decode import DecodeSpec, ImageDataset, decode_image
from bench.engine.perturb import CHAINS, DEFAULT_GRIDS, blur_radius, parse, parse_sweep
from bench.errors import BenchError

# ITU-T T.81 Annex K.1, tables K.1 and K.2 (luminance, chrominance), natural (row-major) order
STD_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
            14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
            49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]


def ijg_table(quality: int) -> list[int]:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (force_baseline), by hand."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (value * scale + 50) // 100)) for value in STD_LUMA]


def photo(size=(96, 64), seed=0) -> Image.Image:
    """Smooth structure plus texture, so that compression and blur have something to change."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 90 * np.sin(x / 7.0 + c) * np.cos(y / 5.0 - c) for c in range(3)], axis=-1)
    array = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB")).astype(np.int16)


def roundtrip(img: Image.Image, **options) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.mark.parametrize("quality", [100, 75, 30])
def test_jpeg_equals_pil_save_at_that_quality(quality):
    img = photo()
    out = parse(f"jpeg:q={quality}")(img)
    assert np.array_equal(pixels(out), pixels(roundtrip(img, format="JPEG", quality=quality)))
    assert not np.array_equal(pixels(out), pixels(img))  # lossy even at 100 (4:2:0 chroma)


@pytest.mark.parametrize("quality", [95, 75, 50, 30])
def test_jpeg_cv2_writes_the_ijg_table_for_its_quality(quality):
    # guards against passing the quality under the wrong flag, which OpenCV ignores (quality 95)
    data = parse(f"jpeg-cv2:q={quality}").encode(photo())
    with Image.open(io.BytesIO(data)) as written:
        assert written.format == "JPEG"
        assert list(written.quantization[0]) == ijg_table(quality)


def test_jpeg_cv2_is_opencvs_encoder_and_decoder():
    import cv2

    img = photo()
    perturbation = parse("jpeg-cv2:q=75")
    out = pixels(perturbation(img))
    by_hand = cv2.imdecode(np.frombuffer(perturbation.encode(img), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(out, by_hand.astype(np.int16))
    assert np.abs(out - pixels(parse("jpeg:q=75")(img))).mean() < 3  # same quality: close to PIL's (or equal)


def test_webp_equals_pil_save_and_quality_matters():
    img = photo()
    out = parse("webp:q=80")(img)
    assert np.array_equal(pixels(out), pixels(roundtrip(img, format="WEBP", quality=80)))
    error_80 = np.abs(pixels(out) - pixels(img)).mean()
    error_10 = np.abs(pixels(parse("webp:q=10")(img)) - pixels(img)).mean()
    assert error_10 > error_80 > 0


@pytest.mark.parametrize("sigma", [0.5, 1, 2, 3])
def test_blur_matches_torchvision_within_one_grey_level(sigma):
    img = photo((80, 72))
    radius = blur_radius(sigma)
    assert radius == int(4 * sigma + 0.5)
    # scipy's "reflect" border repeats the edge pixel: numpy's "symmetric"; pad by hand, blur the padded
    # image with torchvision's kernel of the same size, cut the padding away
    padded = np.pad(np.asarray(img), ((radius, radius), (radius, radius), (0, 0)), mode="symmetric")
    tensor = torch.from_numpy(padded).permute(2, 0, 1).float()
    reference = tv_gaussian_blur(tensor, [2 * radius + 1] * 2, [float(sigma)] * 2)
    reference = reference[:, radius:-radius, radius:-radius].round().permute(1, 2, 0).numpy()
    out = pixels(parse(f"blur:sigma={sigma}")(img))
    assert np.abs(out - reference).max() <= 1
    assert np.abs(out - pixels(img)).mean() > 1  # it did blur


def test_blur_acts_per_channel_and_sigma_zero_is_identity():
    img = photo()
    assert np.array_equal(pixels(parse("blur:sigma=0")(img)), pixels(img))
    red_only = np.zeros((40, 40, 3), np.uint8)
    red_only[:, 20:, 0] = 255
    out = pixels(parse("blur:sigma=2")(Image.fromarray(red_only)))
    assert out[..., 1:].max() == 0 and out[..., 0].max() == 255  # no leaking between channels


def test_resize_halves_and_goes_back():
    img = photo((96, 64))
    half = parse("resize:scale=0.5")(img)
    assert half.size == (48, 32)
    assert np.array_equal(pixels(half), pixels(img.resize((48, 32), Image.BILINEAR)))
    back = parse("resize:scale=0.5,back=1,interp=bicubic")(img)
    assert back.size == img.size
    by_hand = img.resize((48, 32), Image.BICUBIC).resize((96, 64), Image.BICUBIC)
    assert np.array_equal(pixels(back), pixels(by_hand))
    assert parse("resize:scale=1.5")(img).size == (144, 96)


def test_crop_keeps_the_centred_fraction():
    img = photo((100, 60))
    out = parse("crop:keep=0.5")(img)
    assert out.size == (50, 30)
    assert np.array_equal(pixels(out), pixels(img)[15:45, 25:75])


def test_noise_is_reproducible_per_path_and_differs_between_paths():
    img = Image.new("RGB", (64, 64), (128, 128, 128))  # mid-grey: no clipping, so the std shows
    noise = parse("noise:std=10")
    first = pixels(noise(img, "gen/0_real/a.png"))
    assert np.array_equal(first, pixels(noise(img, "gen/0_real/a.png")))
    assert np.array_equal(first, pixels(parse("noise:std=10.0")(img, "gen/0_real/a.png")))
    assert not np.array_equal(first, pixels(noise(img, "gen/0_real/b.png")))
    assert not np.array_equal(first, pixels(parse("noise:std=20")(img, "gen/0_real/a.png")))
    assert abs((first - 128).std() - 10) < 0.5
    assert abs((first - 128).mean()) < 0.5


def test_gray_is_the_601_luma_in_three_channels():
    img = photo()
    out = pixels(parse("gray")(img))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    rgb = pixels(img).astype(np.float64)
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    assert np.abs(out[..., 0] - luma).max() <= 1


def test_reencode_png_is_lossless_and_reencode_jpeg_is_jpeg():
    img = photo()
    assert np.array_equal(pixels(parse("reencode:png")(img)), pixels(img))
    assert np.array_equal(pixels(parse("reencode:jpeg:q=90")(img)), pixels(parse("jpeg:q=90")(img)))
    assert parse("reencode:jpeg").spec == "reencode:jpeg:q=95"
    assert parse("reencode:png").spec == "reencode:png"


def test_chains_equal_their_steps_by_hand():
    img = photo((96, 64))
    # repost: resize 0.75 bicubic, JPEG 80, JPEG 90
    step = img.resize((72, 48), Image.BICUBIC)
    step = roundtrip(roundtrip(step, format="JPEG", quality=80), format="JPEG", quality=90)
    assert np.array_equal(pixels(parse("chain:repost")(img)), pixels(step))
    # social: long side capped at 1080 (bicubic), JPEG 85; small images are only compressed
    big = photo((1300, 975), seed=1)
    by_hand = roundtrip(big.resize((1080, 810), Image.BICUBIC), format="JPEG", quality=85)
    assert np.array_equal(pixels(parse("chain:social")(big)), pixels(by_hand))
    assert np.array_equal(pixels(parse("chain:social")(img)), pixels(roundtrip(img, format="JPEG", quality=85)))
    assert set(CHAINS) == {"social", "repost"}


def test_specs_are_canonical_and_bad_specs_are_usage_errors():
    assert parse("blur:sigma=2").spec == parse("blur:sigma=2.0").spec == "blur:sigma=2"
    assert parse("resize:scale=0.5").spec == "resize:scale=0.5,back=0,interp=bilinear"
    assert parse("JPEG:q=75").spec == "jpeg:q=75"
    assert parse("gray").spec == "gray" and parse("chain:social").spec == "chain:social"
    assert parse(None) is None and parse("none") is None
    for bad in ["jpeg:q=0", "jpeg:q=abc", "blur:sigma=-1", "sharpen:amount=1", "jpeg:quality=75",
                "resize:scale=0.5,interp=cubic", "chain:instagram", "jpeg:q=90,80", "crop:keep=1.5", "jpeg:75"]:
        with pytest.raises(BenchError):
            parse(bad)


def test_sweep_grids():
    grid = parse_sweep("jpeg:q=100,70,40")
    assert grid.parameter == "q" and [level.spec for level in grid.levels] == ["jpeg:q=100", "jpeg:q=70", "jpeg:q=40"]
    assert [grid.value(level) for level in grid.levels] == [100, 70, 40]
    fixed = parse_sweep("resize:scale=0.5,0.75,back=1")
    assert [level.spec for level in fixed.levels] == ["resize:scale=0.5,back=1,interp=bilinear",
                                                      "resize:scale=0.75,back=1,interp=bilinear"]
    assert [level.q for level in parse_sweep("jpeg").levels] == [100, 90, 80, 70, 60, 50, 40, 30]
    assert [level.sigma for level in parse_sweep("blur").levels] == [0, 1, 2, 3, 4]
    assert set(DEFAULT_GRIDS) == {"jpeg", "blur", "resize", "noise"}
    assert parse_sweep("gray").levels == (parse("gray"),)
    for bad in ["jpeg:q=90,90", "resize:scale=0.5,0.75,back=0,1"]:
        with pytest.raises(BenchError):
            parse_sweep(bad)


def test_decode_applies_the_perturbation_before_the_protocol(tmp_path):
    path = tmp_path / "a.png"
    photo((130, 90)).save(path)
    spec = DecodeSpec(resize=256, perturbation=parse("jpeg:q=50"))
    by_hand = roundtrip(Image.open(path).convert("RGB"), format="JPEG", quality=50).resize((256, 256), Image.BILINEAR)
    assert np.array_equal(spec.decode(path).pixels.permute(1, 2, 0).numpy(), np.asarray(by_hand))
    # native size: the perturbed size is what gets cropped to even (130x90 -> 65x45 -> 64x44)
    native = decode_image(path, None, perturbation=parse("resize:scale=0.5"))
    assert tuple(native.pixels.shape) == (3, 44, 64) and native.cropped_to_even
    assert native.original_size == (130, 90)


def test_random_perturbations_are_seeded_by_the_relative_path(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 32), (100, 150, 200)).save(tmp_path / name)
    spec = DecodeSpec(resize=None, perturbation=parse("noise:std=5"))
    with pytest.raises(ValueError):
        spec.decode(tmp_path / "a.png")  # no key: would depend on where the data root is
    items = [(tmp_path / "a.png", 0), (tmp_path / "b.png", 1)]
    first = ImageDataset(items, spec, keys=["x/a.png", "x/b.png"])
    again = ImageDataset(list(reversed(items)), spec, keys=["x/b.png", "x/a.png"])
    assert torch.equal(first[0]["pixels"], again[1]["pixels"])  # order does not matter, the key does
    assert not torch.equal(first[0]["pixels"], first[1]["pixels"])
    moved = ImageDataset(items, spec, keys=["elsewhere/a.png", "x/b.png"])
    assert not torch.equal(first[0]["pixels"], moved[0]["pixels"])


def test_bench_list_perturbations_names_each_with_its_defaults(capsys):
    from bench.cli import main
    from bench.engine.perturb import REGISTRY

    assert main(["list", "perturbations"]) == 0
    out = capsys.readouterr().out
    rows = {row.split()[0]: row for row in out.splitlines() if row.strip()}
    assert set(REGISTRY) <= set(rows)
    assert "q=75" in rows["jpeg"] and rows["jpeg"].endswith("jpeg:q=100,90,80,70,60,50,40,30")
    assert rows["blur"].endswith("blur:sigma=0,1,2,3,4") and "scale=0.5 in (0, 100], back=0, interp=bilinear" in rows["resize"]
    assert "chain:social = fit:side=1080 -> jpeg:q=85" in out


@pytest.mark.parametrize("spec", ["crop:keep=0.6", "resize:scale=0.5", "resize:scale=0.5,back=1", "jpeg:q=90",
                                  "chain:repost"])
@pytest.mark.parametrize("resize", [None, 256])
def test_masks_follow_the_perturbations_geometry(tmp_path, spec, resize):
    # the image is white exactly where its mask is set: after decoding both, they must still coincide
    mask = np.zeros((90, 130), bool)
    mask[10:60, 30:100] = True
    Image.fromarray(np.where(mask[..., None], 255, 0).repeat(3, 2).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "a_mask.png")
    decode = DecodeSpec(resize=resize, perturbation=parse(spec))
    image = decode.decode(tmp_path / "a.png")
    warped = decode.decode_mask(tmp_path / "a_mask.png", image.original_size).numpy()
    white = image.pixels[0].numpy() > 127
    assert warped.shape == white.shape
    assert (warped != white).mean() < 0.02  # only interpolated edge pixels may disagree


def test_blur_is_scipys_filter_rounded_once_and_about_one_grey_level_above_univfds():
    """docs/conventions.md: UnivFD's validate.py (and CNNDetection's data/datasets.py) run gaussian_filter per
    channel with output= the uint8 image, truncating each axis's pass; the harness rounds once."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    ours = np.asarray(parse("blur:sigma=2")(image, "k")).astype(int)
    exact = gaussian_filter(np.asarray(image, dtype=np.float64), sigma=(2, 2, 0), mode="reflect", truncate=4.0)
    assert np.abs(ours - np.clip(np.rint(exact), 0, 255)).max() <= 1  # float32 vs float64 at .5 ties only
    assert (ours == np.clip(np.rint(exact), 0, 255)).mean() > 0.99
    official = np.array(image)
    for channel in range(3):
        gaussian_filter(official[:, :, channel], output=official[:, :, channel], sigma=2)
    difference = ours - official.astype(int)
    assert difference.min() >= 0 and difference.max() <= 2
    assert 0.7 < difference.mean() < 1.3
