"""bench.engine.decode: decoding equals the official torchvision/PIL path; bad files give the right reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision import transforms
from torchvision.transforms.functional import pil_to_tensor

from bench.engine.decode import (
    Batch,
    DecodeSpec,
    ImageDataset,
    UnusableImage,
    check_image,
    collate_by_size,
    decode_image,
)
from detectors import Preprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        # mostly above 255 (clipped by PIL's conversion), some below
        return Image.fromarray(rng.integers(0, 1024, (height, width), dtype=np.uint16))
    if mode == "P":
        rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        return rgb.quantize(16)
    if mode == "F":
        return Image.fromarray(rng.uniform(-20, 300, (height, width)).astype(np.float32))
    if mode == "1":
        return Image.frombytes("1", size, rng.bytes((width + 7) // 8 * height))
    if mode == "I":
        return Image.fromarray(rng.integers(-100, 400, (height, width), dtype=np.int32))
    bytes_per_pixel = len(Image.new(mode, (1, 1)).tobytes())
    return Image.frombytes(mode, size, rng.bytes(width * height * bytes_per_pixel))


def official(path: Path, resize: int | None) -> torch.Tensor:
    """What the paper's test code gets: open -> convert('RGB') -> [Resize((256, 256))] -> tensor."""
    img = Image.open(path).convert("RGB")
    if resize is not None:
        img = transforms.Resize((resize, resize))(img)
    return pil_to_tensor(img)


MODES_AND_FORMATS = [
    ("RGB", "png"), ("RGB", "jpg"), ("RGBA", "png"), ("L", "png"), ("LA", "png"), ("P", "png"),
    ("CMYK", "jpg"), ("CMYK", "tif"), ("I;16", "png"), ("1", "png"), ("F", "tif"), ("I", "tif"),
    ("RGB", "bmp"), ("RGB", "webp"),
]
SIZES = [(1, 1), (3, 5), (17, 9), (64, 48), (256, 256)]


@pytest.mark.parametrize("mode,fmt", MODES_AND_FORMATS)
def test_decode_equals_torchvision_resize256(tmp_path, mode, fmt):
    for i, size in enumerate(SIZES):
        path = tmp_path / f"img{i}.{fmt}"
        random_image(mode, size, seed=i).save(path)
        decoded = decode_image(path, 256)
        assert decoded.pixels.dtype == torch.uint8
        assert decoded.pixels.shape == (3, 256, 256)
        assert decoded.original_size == size
        assert not decoded.cropped_to_even
        assert torch.equal(decoded.pixels, official(path, 256)), (mode, fmt, size)


@pytest.mark.parametrize("mode,fmt", MODES_AND_FORMATS)
def test_decode_native_equals_official_then_top_left_even_crop(tmp_path, mode, fmt):
    for i, size in enumerate(SIZES[1:]):
        path = tmp_path / f"img{i}.{fmt}"
        random_image(mode, size, seed=i).save(path)
        width, height = size
        expected = official(path, None)[:, : height - height % 2, : width - width % 2]
        decoded = decode_image(path, None)
        assert torch.equal(decoded.pixels, expected), (mode, fmt, size)
        assert decoded.cropped_to_even == bool(width % 2 or height % 2)
        uncropped = decode_image(path, None, even_crop=False)
        assert torch.equal(uncropped.pixels, official(path, None))
        assert not uncropped.cropped_to_even


def test_sixteen_bit_greyscale_is_clipped_like_pil_convert(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 100, 255, 256, 1000, 65535]] * 2, dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    pixels = decode_image(path, None).pixels
    assert pixels[:, 0, :].tolist() == [[0, 100, 255, 255, 255, 255]] * 3


def test_preprocessing_normalize_matches_totensor_normalize():
    """The one normalisation (scoring, training, explanations) against torchvision's two transforms, bit
    for bit: the NPR residual amplifies any re-association of the arithmetic."""
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)) for _ in range(3)]
    reference = torch.stack([
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(transforms.ToTensor()(img)) for img in images
    ])
    batch = torch.stack([pil_to_tensor(img) for img in images])
    preprocessing = Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert torch.equal(preprocessing.normalize(batch), reference)
    assert torch.equal(preprocessing.normalize(batch[0]), reference[0])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_bilevel_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side pixels, all black: a few tens of KB."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    pixels = zlib.compressobj(9)
    idat = b"".join(pixels.compress(row) for _ in range(side)) + pixels.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> dict[str, Path]:
    """One file per case the decoder must handle."""
    folder = tmp_path_factory.mktemp("messy")
    noise = random_image("RGB", (64, 48), seed=3)
    files = {
        "empty.png": b"",
        "text.png": b"this is not an image\n",
        "truncated.png": encoded(noise, "PNG")[: int(len(encoded(noise, "PNG")) * 0.6)],
        "truncated.jpg": encoded(noise, "JPEG", quality=95)[: int(len(encoded(noise, "JPEG", quality=95)) * 0.6)],
        "bomb.png": huge_bilevel_png(15000),
        "cmyk.jpg": encoded(random_image("CMYK", (20, 12)), "JPEG"),
        "grey16.png": encoded(random_image("I;16", (10, 8)), "PNG"),
        "palette.png": encoded(random_image("P", (10, 8)), "PNG"),
        "rgba.png": encoded(random_image("RGBA", (10, 8)), "PNG"),
        "grey.png": encoded(random_image("L", (10, 8)), "PNG"),
        "tiny.png": encoded(random_image("RGB", (1, 1)), "PNG"),
        "odd.png": encoded(random_image("RGB", (7, 5)), "PNG"),
        "no_end_chunk.png": encoded(random_image("RGB", (6, 4)), "PNG")[:-12],  # verify() fails, decoding works
        "fälschung_图像 ü.png": encoded(random_image("RGB", (8, 6)), "PNG"),
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


UNUSABLE = {
    "empty.png": "empty file",
    "text.png": "not an image (cannot identify image file)",
    "truncated.png": "truncated image",
    "truncated.jpg": "truncated image",
    "bomb.png": "decompression bomb (225000000 pixels > limit 178956970)",
}


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_files_give_their_reason(messy_folder, name):
    with pytest.raises(UnusableImage) as caught:
        decode_image(messy_folder[name], 256)
    assert caught.value.reason == UNUSABLE[name]
    with pytest.raises(UnusableImage) as caught:
        check_image(messy_folder[name], 256, full=True)
    assert caught.value.reason == UNUSABLE[name]


@pytest.mark.parametrize("name", ["empty.png", "text.png", "truncated.png", "bomb.png"])
def test_fast_check_catches_what_verify_sees(messy_folder, name):
    with pytest.raises(UnusableImage) as caught:
        check_image(messy_folder[name], 256)
    assert caught.value.reason == UNUSABLE[name]


def test_the_rest_decodes_in_both_protocols(messy_folder):
    for name, path in messy_folder.items():
        if name in UNUSABLE or name == "tiny.png":
            continue
        for resize in (256, None):
            decoded = decode_image(path, resize)
            assert torch.equal(decoded.pixels, official(path, resize)[:, : decoded.pixels.shape[1], : decoded.pixels.shape[2]])
        check_image(path, None)


def test_one_pixel_image_is_too_small_at_native_size_only(messy_folder):
    with pytest.raises(UnusableImage, match=r"too small \(1x1\)"):
        decode_image(messy_folder["tiny.png"], None)
    with pytest.raises(UnusableImage, match=r"too small \(1x1\)"):
        check_image(messy_folder["tiny.png"], None)
    assert decode_image(messy_folder["tiny.png"], 256).pixels.shape == (3, 256, 256)


def test_odd_size_is_cropped_at_the_bottom_right(messy_folder):
    decoded = decode_image(messy_folder["odd.png"], None)
    assert decoded.original_size == (7, 5)
    assert decoded.cropped_to_even
    assert decoded.pixels.shape == (3, 4, 6)
    full = pil_to_tensor(Image.open(messy_folder["odd.png"]).convert("RGB"))
    assert torch.equal(decoded.pixels, full[:, :4, :6])


def test_truncated_files_load_on_request_without_leaking_the_pil_flag(messy_folder):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for name in ("truncated.png", "truncated.jpg"):
        decoded = decode_image(messy_folder[name], None, load_truncated=True)
        assert decoded.pixels.shape == (3, 48, 64)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UnusableImage, match="cannot read file"):
        decode_image(tmp_path / "gone.png", 256)
    with pytest.raises(UnusableImage, match=r"not a regular file \(a folder\)"):
        decode_image(tmp_path, 256)


def test_bomb_warning_level_decodes_and_error_level_does_not(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    warned, refused = tmp_path / "warned.png", tmp_path / "refused.png"
    random_image("RGB", (12, 12)).save(warned)  # 144 pixels: above the limit, under twice it
    random_image("RGB", (15, 14)).save(refused)  # 210 pixels: above twice the limit
    with pytest.warns(Image.DecompressionBombWarning):
        assert decode_image(warned, None).pixels.shape == (3, 12, 12)
    with pytest.raises(UnusableImage, match=r"decompression bomb \(210 pixels > limit 200\)"):
        decode_image(refused, None)


def test_dataset_never_raises_and_collates_by_size(messy_folder):
    names = ["odd.png", "empty.png", "grey.png", "rgba.png", "cmyk.jpg", "text.png", "tiny.png"]
    dataset = ImageDataset([(messy_folder[n], 1) for n in names], DecodeSpec(resize=None))
    samples = [dataset[i] for i in range(len(dataset))]
    assert [s["index"] for s in samples] == list(range(len(names)))
    assert [s["reason"] for s in samples] == [
        None, "empty file", None, None, None, "not an image (cannot identify image file)", "too small (1x1)"]
    batch = collate_by_size(samples)
    assert isinstance(batch, Batch)
    assert batch.failed == [(1, "empty file"), (5, "not an image (cannot identify image file)"), (6, "too small (1x1)")]
    assert batch.cropped == [0]
    assert [(indices, tuple(t.shape)) for indices, t in batch.groups] == [
        ([0], (1, 3, 4, 6)), ([2, 3], (2, 3, 8, 10)), ([4], (1, 3, 12, 20))]
    assert all(t.dtype == torch.uint8 for _, t in batch.groups)
    assert torch.equal(batch.groups[1][1][1], dataset[3]["pixels"])


def test_collate_mixed_sizes_synthetic():
    def sample(i, h, w):
        return {"index": i, "pixels": torch.full((3, h, w), i, dtype=torch.uint8), "reason": None, "cropped": False}

    batch = collate_by_size([sample(0, 4, 6), sample(1, 8, 8), sample(2, 4, 6),
                             {"index": 3, "pixels": None, "reason": "truncated image", "cropped": False}])
    assert [indices for indices, _ in batch.groups] == [[0, 2], [1]]
    assert batch.groups[0][1][:, 0, 0, 0].tolist() == [0, 2]
    assert batch.failed == [(3, "truncated image")]
    assert collate_by_size([]).groups == []


def test_dataloader_with_worker_processes(messy_folder):
    names = ["odd.png", "grey.png", "text.png", "palette.png", "rgba.png"]
    dataset = ImageDataset([(messy_folder[n], 0) for n in names], DecodeSpec(resize=256))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_by_size)
    seen, failed = [], []
    for batch in loader:
        failed += batch.failed
        for indices, pixels in batch.groups:
            assert pixels.shape[1:] == (3, 256, 256)
            seen += indices
    assert sorted(seen) == [0, 1, 3, 4]
    assert failed == [(2, "not an image (cannot identify image file)")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs a CUDA device")
def test_batch_pins_memory_in_a_dataloader(messy_folder):
    dataset = ImageDataset([(messy_folder["grey.png"], 0), (messy_folder["empty.png"], 0)], DecodeSpec(resize=256))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_by_size, pin_memory=True)
    batch = next(iter(loader))
    assert batch.groups[0][1].is_pinned()
    assert batch.failed == [(1, "empty file")]
