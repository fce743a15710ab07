"""Name -> detector registry with did-you-mean errors.

Built-in detectors register with the ``@register_detector`` decorator when their module is imported.
Outside packages add detectors through the entry-point group ``bench.detectors``: each entry point names
a zero-argument callable returning a :class:`detectors.base.Detector` (or the Detector itself); the
entry point's name is the detector's name. Entry points are loaded lazily, on the first lookup of a name
that is not built in, or when the full list is asked for.

A family of names can also resolve lazily through a prefix (``timm:<model_name>``): ``@register_prefix``
registers a function of the rest of the name that returns the Detector or raises UnknownNameError. Such
names are never listed one by one (timm has over a thousand); ``list_prefixes()`` says which exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from bench.errors import BenchError, UnknownNameError
from detectors.base import Detector

ENTRY_POINT_GROUP = "bench.detectors"

_BUILDERS: dict[str, Callable[[], Detector]] = {}
_PREFIXES: dict[str, tuple[Callable[[str], Detector], str]] = {}
_entry_points_loaded = False


def register_detector(builder: Callable[[], Detector]) -> Callable[[], Detector]:
    """Decorator: register ``builder`` under its function name with ``_`` turned into ``-``."""
    name = builder.__name__.replace("_", "-")
    if name in _BUILDERS:
        raise ValueError(f"detector {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def register_prefix(prefix: str, description: str) -> Callable:
    """Decorator: names ``<prefix>:<rest>`` resolve to ``resolver(rest)``, built on each lookup."""

    def decorate(resolver: Callable[[str], Detector]) -> Callable[[str], Detector]:
        if prefix in _PREFIXES:
            raise ValueError(f"detector prefix {prefix!r} is registered twice")
        _PREFIXES[prefix] = (resolver, description)
        return resolver

    return decorate


BUILTIN_MODULES = (
    "detectors.lfm",
    "detectors.npr",
    "detectors.cnndetection",
    "detectors.lae",
    "detectors.univfd",
    "detectors.safe",
    "detectors.timm_backbones",
)
"""The built-in detector modules, as data: importing one runs its ``@register_detector`` and
``@register_prefix`` decorators. The registry never imports them by name, so the detector modules depend on
the registry and not the other way round (a new built-in detector is one file plus one line here)."""

_builtins_loaded = False


def _builtin() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    _builtins_loaded = True


def list_prefixes() -> dict[str, str]:
    """``{prefix: what names under it are}`` for the lazily resolved families (``timm``)."""
    _builtin()
    return {prefix: description for prefix, (_, description) in sorted(_PREFIXES.items())}


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _BUILDERS:
            continue  # a built-in name wins; an outside package cannot shadow it
        _BUILDERS[entry.name] = _entry_point_builder(entry)


def _entry_point_builder(entry) -> Callable[[], Detector]:
    def build() -> Detector:
        target = entry.load()
        detector = target() if callable(target) and not isinstance(target, Detector) else target
        if not isinstance(detector, Detector):
            raise BenchError(
                f"entry point {entry.name!r} ({entry.value}) in group {ENTRY_POINT_GROUP!r} returned "
                f"{type(detector).__name__}, not a detectors.base.Detector"
            )
        return detector

    return build


def list_detectors() -> list[str]:
    _builtin()
    _load_entry_points()
    return sorted(_BUILDERS)


def get_detector(name: str) -> Detector:
    _builtin()
    prefix, colon, rest = name.partition(":")
    if colon and prefix in _PREFIXES and name not in _BUILDERS:
        resolver = _PREFIXES[prefix][0]
        detector = resolver(rest)
        if detector.name != name:
            raise BenchError(f"detector prefix {prefix!r} resolved {name!r} to a detector called {detector.name!r}")
        return detector
    if name not in _BUILDERS:
        _load_entry_points()
    if name not in _BUILDERS:
        known = list(_BUILDERS) + [f"{prefix}:<name>" for prefix in _PREFIXES]
        raise UnknownNameError("detector", name, known)
    detector = _BUILDERS[name]()
    if detector.name != name:
        raise BenchError(f"detector registered as {name!r} calls itself {detector.name!r}")
    return detector


def get_detectors(names: str) -> list[Detector]:
    """Comma-separated names -> detectors, in the order given, without duplicates."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise BenchError("no detector named; give --detector NAME[,NAME...] (see `bench list detectors`)")
    return [get_detector(n) for n in dict.fromkeys(wanted)]
