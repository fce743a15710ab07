"""`bench data check`: which suites are under a data root, their generators with real/fake counts, and
the files `bench run` would have to skip, with the reason for each (bench.api.check_data).

Each file is opened and verified (`full` decodes every file as `bench run` does, which also catches
truncated JPEGs). On native-size suites, files are also checked against the limits `bench run` applies:
the smallest side the model takes (default lfm: about 24 px) and the native-size pixel limit. Broken
symlinks, symlink loops and animated images are listed with their reason; a folder that looks like a
misspelt `0_real`/`1_fake` (`0_Real`, `real`, `1-fake`) makes the suite unusable, as `bench run` refuses it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine.files import file_problem, path_text
from bench.engine.suites import README_DATA_SECTION
from bench.errors import BenchError
from bench.outputs.textable import format_table

SHOWN_PER_SUITE = 20


@dataclass
class GeneratorReport:
    name: str
    n_real: int
    n_fake: int
    extra: bool
    bad: list[tuple[Path, str]] = field(default_factory=list)
    bad_real: int = 0
    bad_fake: int = 0
    has_masks: bool = False
    n_masks: int = 0
    bad_masks: list[tuple[Path, str]] = field(default_factory=list)
    odd_masks: list[tuple[Path, str]] = field(default_factory=list)
    """Masks that are usable but not 0/255 grey (0/1, colour, other levels, all zero), with what they hold."""
    """Fakes of a generator that carries masks whose mask is missing or does not fit the image."""

    @property
    def usable_real(self) -> int:
        return self.n_real - self.bad_real

    @property
    def usable_fake(self) -> int:
        return self.n_fake - self.bad_fake

    @property
    def usable(self) -> bool:
        return self.usable_real > 0 and self.usable_fake > 0

    def problem(self) -> str:
        if self.usable:
            return ""
        if not self.usable_real and not self.usable_fake:
            return "empty: no usable image"
        return f"one class only: no usable {'real' if not self.usable_real else 'fake'} image"


def _default_specs(data_root: Path) -> list[tuple[str, bool]]:
    from bench.engine.suites import PAPER_SUITES, SUITES

    specs = [(name, False) for name in PAPER_SUITES]
    specs += [(s.name, False) for s in SUITES.values() if s.name not in PAPER_SUITES and (data_root / s.folder).is_dir()]
    return specs


def requested_suites(specs: list[str] | None, data_root: Path) -> list:
    """[(ResolvedSuite, named explicitly?)] in the order asked, each suite once; no specs: the paper suites
    and the demo and training sets present."""
    from bench.engine.suites import GROUPS, distinct_names, resolve_suites

    if not specs:
        pairs = _default_specs(data_root)
    else:
        tokens = [t.strip() for value in specs for t in value.split(",") if t.strip()]
        pairs = [(t, t.lower() not in GROUPS) for t in tokens]
    chosen: dict[Path, tuple] = {}
    for token, explicit in pairs:
        for resolved in resolve_suites(token, data_root):
            previous = chosen.get(resolved.root)
            chosen[resolved.root] = (resolved, explicit or (previous is not None and previous[1]))
    named = distinct_names([resolved for resolved, _ in chosen.values()])  # as `bench run` names them
    return [(resolved, explicit) for resolved, (_, explicit) in zip(named, chosen.values())]


def check_files(generators, resize: int | None, full: bool, workers: int, label: str, *, min_side: int = 2,
                max_pixels: int | None = None, progress: bool = True) -> list[GeneratorReport]:
    """Open (and verify, or fully decode) every image file; collect the unusable ones per generator.
    `progress`: a bar with an ETA on stderr (on a terminal)."""
    from tqdm import tqdm

    from bench.engine.decode import UnusableImage, check_image

    def check(path: Path) -> str | None:
        try:
            check_image(path, resize, full=full, min_side=min_side, max_pixels=max_pixels)
        except UnusableImage as error:
            return error.reason
        return None

    def check_mask(path: Path, mask: Path | None) -> tuple[str | None, str | None]:
        if mask is None:
            return "no mask", None
        return _mask_problem(path, mask)

    reports = []
    total = sum(len(g.real) + len(g.fake) for g in generators)
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
        total=total, unit="file", desc=f"checking {label}", file=sys.stderr, leave=False, disable=not progress or None
    ) as bar:
        for g in generators:
            report = GeneratorReport(g.name, len(g.real), len(g.fake), g.extra)
            for path in g.other:
                hidden = path.name.startswith(".")
                report.bad.append((path, "hidden file (not read)" if hidden else f"not an image file ({path.suffix or 'no extension'})"))
            for kind, paths in (("real", g.real), ("fake", g.fake)):
                for path, reason in zip(paths, pool.map(check, paths), strict=True):
                    bar.update()
                    if reason is not None:
                        report.bad.append((path, reason))
                        setattr(report, f"bad_{kind}", getattr(report, f"bad_{kind}") + 1)
            if g.has_masks:
                report.has_masks, report.n_masks = True, len(g.masks)
                masks = [g.masks.get(path) for path in g.fake]
                for path, (reason, kind) in zip(g.fake, pool.map(check_mask, g.fake, masks), strict=True):
                    if reason is not None:
                        report.bad_masks.append((path, reason))
                    elif kind != "0/255":
                        report.odd_masks.append((g.masks[path], kind))
            reports.append(report)
    return reports


def _mask_problem(image: Path, mask: Path) -> tuple[str | None, str | None]:
    """(why a fake's mask cannot be used with it, what a usable mask holds): a problem is an unreadable mask
    or one not of the image's size; the kind is a key of `bench.engine.decode.MASK_KINDS`, read by the
    binarisation rule `bench run` uses (`read_mask`)."""
    from PIL import Image

    from bench.engine.decode import UnusableImage, read_mask

    if file_problem(image) is not None:
        return None, None  # the image itself is reported as unusable
    try:
        with Image.open(image) as img:
            image_size = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None, None  # the image itself is reported as unusable
    problem = file_problem(mask)
    if problem is not None:
        return f"unreadable mask ({problem})", None
    try:
        with Image.open(mask) as img:
            mask_size = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return f"unreadable mask ({type(error).__name__})", None
    if mask_size != image_size:
        return f"mask is {mask_size[0]}x{mask_size[1]}, the image {image_size[0]}x{image_size[1]}", None
    try:
        _, kind = read_mask(mask, image_size)
    except UnusableImage as error:
        return f"unreadable mask ({error.reason})", None
    return None, kind


def _protocol(suite) -> str:
    from bench.engine.suites import suite_resolution

    policy = suite_resolution(suite)
    if policy.name == "native":
        return "native size (odd sizes cropped to even)"
    if policy.name == "resize256":
        return "resized to 256x256"
    return f"resolution policy {policy.spec}"


@dataclass
class Limits:
    """The native-size limits of `bench run`: the model's smallest side (probed once, when first needed)
    and the pixel limit."""

    detector: str
    max_pixels: int | None
    _min_side: int | None = None

    def min_side(self) -> int:
        if self._min_side is None:
            self._min_side = _min_side_of(self.detector)
        return self._min_side


@functools.cache
def _min_side_of(detector: str) -> int:
    from bench.engine.decode import model_min_side
    from detectors import get_detector

    # random weights: which sizes a model takes depends on its layers, not on their values
    return model_min_side(get_detector(detector).build())


def count_lines(resolved, generators) -> tuple[list[str], bool]:
    """The suite's counts against the published ones (`Suite.expected`), the files its list names that are not
    on disk and the images under it that its list does not name: (report lines, counts as published?)."""
    from bench.engine.suites import unlisted_images

    suite = resolved.suite
    lines: list[str] = []
    matches = True
    by_name = {g.name: g for g in generators}
    if suite.expected:
        rows = []
        for name, n_real, n_fake in suite.expected:
            g = by_name.get(name)
            found = (len(g.real), len(g.fake)) if g else (0, 0)
            differs = [f"{what} {got} of {want}" for what, got, want in (("real", found[0], n_real), ("fake", found[1], n_fake))
                       if want is not None and got != want]
            matches = matches and not differs
            rows.append([name, found[0], "-" if n_real is None else n_real, found[1], "-" if n_fake is None else n_fake,
                         ("DIFFERS: " + ", ".join(differs)) if differs else ("absent" if g is None else "as published")])
        lines.append(f"published counts ({suite.counts_source}):")
        lines.append(format_table(["generator", "real", "published", "fake", "published", ""], rows,
                                  [False, True, True, True, True, False]))
    elif suite.counts_source:
        lines.append(f"published counts: none to check ({suite.counts_source})")
    missing = [path for g in generators for path in g.missing]
    if missing:
        matches = False
        lines.append(f"listed but not on disk: {len(set(missing))} file(s) (not scored)")
        lines += [f"  {path_text(_relative(path, resolved.root))}" for path in sorted(set(missing))[:SHOWN_PER_SUITE]]
        if len(set(missing)) > SHOWN_PER_SUITE:
            lines.append(f"  ... and {len(set(missing)) - SHOWN_PER_SUITE} more")
    extra = unlisted_images(resolved.root, suite, generators)
    if extra:
        matches = False
        lines.append(f"on disk but not listed: {len(extra)} image file(s) (not scored)")
        lines += [f"  {path_text(_relative(path, resolved.root))}" for path in extra[:SHOWN_PER_SUITE]]
        if len(extra) > SHOWN_PER_SUITE:
            lines.append(f"  ... and {len(extra) - SHOWN_PER_SUITE} more")
    return lines, matches


def _relative(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


def report_suite(resolved, full: bool, workers: int, limits: Limits | None = None) -> tuple[bool, list[str]]:
    """(usable?, report lines) for one suite."""
    usable, lines, _ = report_suite_counts(resolved, full, workers, limits)
    return usable, lines


def report_suite_counts(resolved, full: bool, workers: int, limits: Limits | None = None,
                        progress: bool = True) -> tuple[bool, list[str], bool]:
    """(usable?, report lines, counts as published?) for one suite."""
    from bench.engine.decode import MASK_KINDS, default_max_pixels
    from bench.engine.suites import (
        EXPECTED_LAYOUT,
        discover,
        layout_of,
        left_out_sentence,
        missing_generators,
        scored_generators,
    )

    limits = limits or Limits("lfm", default_max_pixels())

    suite = resolved.suite
    head = f"## {suite.name}" + (f" ({', '.join(suite.aliases)})" if suite.aliases else "") + f": {suite.title}"
    if not resolved.exists:
        return False, [
            head, f"MISSING: expected at {path_text(resolved.root)}",
            f"published at {suite.source}", f"how to get it: {README_DATA_SECTION}",
        ], True
    lines = [head, f"found at {path_text(resolved.root)}; {suite.split} split, {_protocol(suite)}"]
    generators = discover(resolved.root, suite)  # a layout that does not match is exit 2 naming file and line
    layout = layout_of(resolved.root, suite)
    if layout.name != "generator-folders":
        shared = " (the real images are shared by every generator)" if any(g.shared_reals for g in generators) else ""
        described = f"{suite.layout}, as its authors publish it (docs/wild.md)" if layout.name == "published" \
            else f"{layout.name}, {layout.example}"
        lines.append(f"layout: {described}{shared}")
    if not generators:
        empty = not any(resolved.root.iterdir())
        lines.append("UNUSABLE: " + ("the folder is empty" if empty else "no generator folder with 0_real/1_fake below it"))
        lines.append(EXPECTED_LAYOUT)
        return False, lines, True
    native = {}
    if suite.resize is None:
        native = {"min_side": limits.min_side(), "max_pixels": limits.max_pixels}
        shown_limit = "none" if limits.max_pixels is None else f"{limits.max_pixels / 1e6:.1f} MP"
        lines.append(f"native-size limits: at least {native['min_side']} px a side ({limits.detector}), "
                     f"at most {shown_limit}")
    reports = check_files(generators, suite.resize, full, workers, suite.name, **native, progress=progress)
    scored, left_out = scored_generators(suite, generators)
    unscored = {g.name for g in left_out}
    rows = [
        [r.name + (" (not scored)" if r.name in unscored else " (extra)" if r.extra else ""), r.n_real, r.n_fake, r.bad_real + r.bad_fake,
         len(r.bad) - r.bad_real - r.bad_fake, r.problem()]
        for r in reports
    ]
    lines.append(format_table(["generator", "real", "fake", "unusable", "not images", "problem"], rows,
                              [False, True, True, True, True, False]))
    on_disk = {g.name for g in generators}
    absent = [g for g in suite.generators if g not in on_disk]
    if absent:
        lines.append(f"missing generators (listed columns not on disk): {', '.join(absent)}")
    extras = [r.name for r in reports if r.extra]
    if left_out:  # a paper suite: as `bench run` says it, in its words
        lines.append(f"NOT SCORED by bench run: {left_out_sentence(suite, left_out)}")
    elif extras:
        lines.append(f"extra generators (not columns of this suite; evaluated after them): {', '.join(extras)}")
    bad = [(path, reason) for r in reports for path, reason in r.bad]
    if bad:
        lines.append(f"unusable files: {len(bad)}")
        for path, reason in bad[:SHOWN_PER_SUITE]:
            shown = path.relative_to(resolved.root) if path.is_relative_to(resolved.root) else path
            lines.append(f"  {path_text(shown)}: {reason}")
        if len(bad) > SHOWN_PER_SUITE:
            lines.append(f"  ... and {len(bad) - SHOWN_PER_SUITE} more")
    with_masks = [r for r in reports if r.has_masks]
    if with_masks:
        lines.append("forgery masks (1_fake_masks): " + ", ".join(f"{r.name} {r.n_masks}/{r.n_fake}" for r in with_masks))
        bad_masks = [(path, reason) for r in with_masks for path, reason in r.bad_masks]
        if bad_masks:
            lines.append(f"missing or mismatched masks: {len(bad_masks)}")
            for path, reason in bad_masks[:SHOWN_PER_SUITE]:
                shown = path.relative_to(resolved.root) if path.is_relative_to(resolved.root) else path
                lines.append(f"  {path_text(shown)}: {reason}")
            if len(bad_masks) > SHOWN_PER_SUITE:
                lines.append(f"  ... and {len(bad_masks) - SHOWN_PER_SUITE} more")
        odd = [(path, kind) for r in with_masks for path, kind in r.odd_masks]
        if odd:
            lines.append(f"WARNING: {len(odd)} mask(s) are not 0/255 grey; `bench run` reads them by the rule in "
                         "docs/conventions.md (Forgery masks):")
            for path, kind in odd[:SHOWN_PER_SUITE]:
                shown = path.relative_to(resolved.root) if path.is_relative_to(resolved.root) else path
                lines.append(f"  {path_text(shown)}: {MASK_KINDS[kind]}")
            if len(odd) > SHOWN_PER_SUITE:
                lines.append(f"  ... and {len(odd) - SHOWN_PER_SUITE} more")
    counted, as_published = count_lines(resolved, generators)
    lines += counted
    scored_names = {g.name for g in scored}
    usable = any(r.usable for r in reports if r.name in scored_names)
    if not scored:
        lines.append(f"UNUSABLE: bench run would score nothing here: none of its generators is a column of the "
                     f"paper's {suite.name} table")
    elif not usable:
        lines.append("UNUSABLE: no generator has both usable real and usable fake images")
    absent_columns = missing_generators(suite, generators)
    if absent_columns:
        usable = False
        lines.append(f"UNUSABLE: missing folder(s) {', '.join(str(resolved.root / name) for name in absent_columns)}: "
                     f"{suite.name}'s mean is over all of {', '.join(suite.generators)} (`bench run` refuses it)")
    misnamed = [(path, meant) for g in generators for path, meant in g.misnamed]
    if misnamed:
        usable = False
        lines.append(f"UNUSABLE: {len(misnamed)} folder(s) look like misspelt label folders (`bench run` refuses "
                     "the suite until they are renamed; names are case-sensitive):")
        for path, meant in misnamed[:SHOWN_PER_SUITE]:
            shown = path.relative_to(resolved.root) if path.is_relative_to(resolved.root) else path
            lines.append(f"  {path_text(shown)}: did you mean {meant}?")
    return usable, lines, as_published


@dataclass
class SuiteCheck:
    """One suite's part of a data check: the report lines `bench data check` prints."""

    resolved: object
    explicit: bool
    """Named by the user (by name, alias or PATH), not reached through a group or the default listing."""
    usable: bool
    lines: list[str]
    as_published: bool = True
    """Counts match the published ones, no listed file is missing and no image is unlisted."""


@dataclass
class DataCheck:
    data_root: Path
    suites: list[SuiteCheck] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time of the check."""

    @property
    def n_usable(self) -> int:
        return sum(s.usable for s in self.suites)

    @property
    def failures(self) -> list[str]:
        """Suites named explicitly that are missing or unusable (`bench data check` exits 2 on these)."""
        return [f"{s.resolved.suite.name} is {'missing' if not s.resolved.exists else 'unusable'}"
                for s in self.suites if s.explicit and not s.usable]

    @property
    def count_failures(self) -> list[str]:
        """Suites named explicitly whose files differ from the published counts or list (exit 1)."""
        return [f"{s.resolved.suite.name}: files differ from the published counts or list"
                for s in self.suites if s.explicit and s.usable and not s.as_published]


def check_data(data_root: str | Path | None = None, suites: list[str] | None = None, *, full: bool = False,
               workers: int | None = None, detector: str = "lfm", max_pixels: str | None = None,
               on_suite: Callable[[SuiteCheck], None] | None = None, progress: bool = True) -> DataCheck:
    """Check every requested suite under the data root (`suites`: names, groups or paths; None: the paper
    suites plus the demo and training sets present). `on_suite` sees each suite's report as it is done;
    `progress`: a bar per suite with an ETA on stderr (on a terminal) while its files are opened."""
    import time

    started = time.perf_counter()
    from bench.engine.decode import default_max_pixels, parse_max_pixels
    from bench.engine.suites import default_data_root
    from detectors import get_detector

    if workers is not None and workers < 1:
        raise BenchError("--workers must be at least 1")
    workers = workers or min(8, os.cpu_count() or 1)
    get_detector(detector)  # an unknown name fails now, with did-you-mean
    limits = Limits(detector, default_max_pixels() if max_pixels is None else parse_max_pixels(max_pixels))
    root = (Path(data_root).expanduser() if data_root else default_data_root()).absolute()
    result = DataCheck(root)
    for resolved, explicit in requested_suites(suites, root):
        usable, lines, as_published = report_suite_counts(resolved, full, workers, limits, progress)
        result.suites.append(SuiteCheck(resolved, explicit, usable, lines, as_published))
        if on_suite is not None:
            on_suite(result.suites[-1])
    result.seconds = time.perf_counter() - started
    return result
