"""Any timm model as a detector: ``timm:<model_name>`` (``timm:resnet50``, ``timm:vit_small_patch16_224``,
``timm:resnet50.tv_in1k`` with a pretrained tag).

The model is ``timm.create_model(name, num_classes=1)``: timm's architecture with a one-logit head,
checkpoints in timm's own key names (``{'model': ...}`` and ``module.`` wrappers are unwrapped as for every
detector). Preprocessing is timm's pretrained config for the name, read without building the model:
mean, std and interpolation; ``--protocol own`` is timm's eval transform, resize to
``floor(input_size / crop_pct)`` then a centre crop of ``input_size`` (timm resizes the shorter side; the
harness's own-protocol resize is square, the same for square images). ViT-style models that can
interpolate their position embeddings are built with ``dynamic_img_size=True`` (and ``dynamic_img_pad``),
so the paper's 256x256 protocol and native sizes work; models that cannot take another size get a fixed
``input_size`` (a centre crop under every protocol).

``bench train --init imagenet`` loads timm's pretrained weights from a local file, never the network:
``$BENCH_WEIGHTS_DIR/timm-<model_name>.safetensors`` (or ``.pth``/``.bin``/``.npz``), then the files timm
itself cached (the Hugging Face hub cache, torch.hub's checkpoints folder).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from bench import settings
from bench.errors import BenchError, did_you_mean
from detectors.base import INTERPOLATIONS, Detector, Preprocessing
from detectors.registry import register_prefix

logger = logging.getLogger(__name__)

PREFIX = "timm"
LOCAL_SUFFIXES = (".safetensors", ".pth", ".bin", ".npz")
DYNAMIC_SIZE = {"dynamic_img_size": True, "dynamic_img_pad": True}


class TimmDetector(nn.Module):
    """A timm model with one output, returning logits of shape [B]. Keys are timm's under ``net.``."""

    def __init__(self, model_name: str, build_kwargs: dict | None = None) -> None:
        import timm

        super().__init__()
        self.net = timm.create_model(model_name, pretrained=False, num_classes=1, **(build_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def _check_name(model_name: str) -> None:
    import timm

    if model_name and timm.is_model(model_name):
        return
    close = did_you_mean(model_name, timm.list_models())
    hint = f" Did you mean: {', '.join(f'{PREFIX}:{c}' for c in close)}?" if close else ""
    raise BenchError(
        f"Unknown timm model {model_name!r} (detector {PREFIX}:{model_name}).{hint} "
        "`python -c \"import timm; print(timm.list_models())\"` lists the names timm knows."
    )


def pretrained_cfg(model_name: str):
    """timm's pretrained config of the name (its default tag when none is given), or None."""
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(model_name)
    except RuntimeError as error:  # a tag the architecture does not have
        import timm

        arch = model_name.split(".", 1)[0]
        tags = timm.list_pretrained(f"{arch}.*")
        raise BenchError(
            f"timm has no pretrained tag {model_name!r}: {error}. Tags of {arch}: {', '.join(tags) or 'none'}"
        ) from error


@lru_cache(maxsize=64)
def build_kwargs(model_name: str) -> tuple[tuple[str, bool], ...]:
    """Extra ``create_model`` arguments: a dynamic input size where the architecture supports it.

    Probed by building the model on the meta device (no memory, no weights); architectures that do not
    take the arguments raise TypeError."""
    import timm

    try:
        with torch.device("meta"):
            timm.create_model(model_name, pretrained=False, num_classes=1, **DYNAMIC_SIZE)
    except TypeError as error:
        if "dynamic_img" not in str(error):
            raise
        return ()
    except (NotImplementedError, RuntimeError) as error:  # an initialiser that cannot run on meta tensors
        logger.info("timm:%s: could not probe for a dynamic input size (%s); building it as it is", model_name, error)
        return ()
    return tuple(DYNAMIC_SIZE.items())


def preprocessing_for(model_name: str) -> Preprocessing:
    cfg = pretrained_cfg(model_name)
    if cfg is None:  # an architecture without pretrained weights: timm's defaults
        return Preprocessing(even_crop=False)
    size = int(cfg.input_size[-1])
    crop_pct = cfg.crop_pct or 1.0
    interpolation = cfg.interpolation if cfg.interpolation in INTERPOLATIONS else "bilinear"
    fixed = bool(cfg.fixed_input_size) and not build_kwargs(model_name)
    if len(cfg.mean) != 3 or len(cfg.std) != 3:
        raise BenchError(f"timm model {model_name!r} takes {len(cfg.mean)} input channels; detectors take RGB")
    return Preprocessing(
        mean=tuple(float(v) for v in cfg.mean), std=tuple(float(v) for v in cfg.std), interpolation=interpolation,
        even_crop=False, own_resize=math.floor(size / crop_pct), own_crop=size, input_size=size if fixed else None,
    )


def local_pretrained_file(model_name: str) -> Path:
    """timm's ImageNet weights for the name on this machine, without any download; BenchError naming
    where to put the file when there is none."""
    cfg = pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise BenchError(f"timm has no pretrained weights for {model_name!r}; train it from scratch (no --init)")
    weights_dir = settings.weights_dir()
    stem = f"timm-{model_name}"
    candidates = [weights_dir / f"{stem}{suffix}" for suffix in LOCAL_SUFFIXES] if weights_dir else []
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in dict.fromkeys(filter(None, (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin"))):
            cached = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(cached, str):  # a path; None or a sentinel when it is not cached
                candidates.append(Path(cached))
    if cfg.url:
        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name)
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None:
        return found
    expected = weights_dir / f"{stem}.safetensors" if weights_dir else Path("$BENCH_WEIGHTS_DIR") / f"{stem}.safetensors"
    source = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
    raise BenchError(
        f"--init imagenet for timm:{model_name} needs timm's pretrained weights on this machine; none found "
        f"(looked at: {', '.join(str(p) for p in candidates) or 'no candidate'}). Nothing is downloaded: put "
        f"the file at {expected} (from {source}; licence {cfg.license or 'see the model card'}), or let timm "
        f"cache it once with `python -c \"import timm; timm.create_model('{model_name}', pretrained=True)\"`."
    )


def _imagenet_init(model_name: str):
    def init(model: nn.Module) -> Path:
        import timm

        path = local_pretrained_file(model_name)
        # timm adapts the file as when it downloads it (filters, a new one-logit head); custom_load (npz)
        # only for npz files
        overlay = {"file": str(path), "custom_load": path.suffix == ".npz"}
        pretrained = timm.create_model(model_name, pretrained=True, num_classes=1, pretrained_cfg_overlay=overlay,
                                       **dict(build_kwargs(model_name)))
        model.net.load_state_dict(pretrained.state_dict(), strict=True)
        logger.info("timm:%s initialised from %s", model_name, path)
        return path

    return init


@register_prefix(PREFIX, "any timm model with a one-logit head, e.g. timm:resnet50 (timm.list_models() names them)")
def timm_detector(model_name: str) -> Detector:
    _check_name(model_name)
    name = f"{PREFIX}:{model_name}"
    kwargs = dict(build_kwargs(model_name))

    def build() -> nn.Module:
        return TimmDetector(model_name, kwargs)

    return Detector(
        name=name,
        display_name=f"timm {model_name}",
        build_model=build,
        weights_family=name,
        default_weights=None,
        preprocessing=preprocessing_for(model_name),
        key_map=(("", "net."),),
        train_lr=1e-4,  # the harness's recipe (Adam 1e-4, as LFM and CNNDetection); --lr changes it
        imagenet_init=_imagenet_init(model_name),
        description=f"timm {model_name} with a one-logit head (timm's preprocessing config)",
        reference="PyTorch Image Models (timm), github.com/huggingface/pytorch-image-models",
    )
