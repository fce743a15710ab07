"""The paper's test suites, the training sets and the demo suites: names, folders, generator columns,
and discovery of the image files on disk.

Every suite is a folder of generators, each holding `0_real` (label 0) and `1_fake` (label 1) folders at
any depth below it: category subfolders (ForenSynths `progan/airplane/0_real`, DiffusionForensics
`adm/imagenet/0_real`) merge into their generator. A folder that holds `0_real`/`1_fake` itself is one
generator, named after the folder.

Forgery masks (optional): a `1_fake_masks` folder beside a `1_fake` folder holds one mask per fake image,
at the same relative path with the extension `.png` (`gen/1_fake/a/x.jpg` -> `gen/1_fake_masks/a/x.png`).
A mask is a greyscale (or any-mode) PNG of the image's size, binarised by one rule
(`bench.engine.decode.binarise_mask`: the brightest channel above 127, or 1 in a 0/1 mask). Real images have no mask: theirs is all zero. `discover` lists the masks it finds per generator;
`bench data check` reports fakes without one and masks whose size differs from their image.

`--suite` takes a name or alias, a group, a comma list of those, or a PATH. Names win over paths: a
folder in the cwd called `demo` is reached as `./demo`. A PATH that ends with a registered suite's folder
(e.g. `/data/Generalization_Test/GANGen-Detection`, or just `.../GANGen-Detection` for a test suite)
is that suite, with its columns and protocol; any other folder is evaluated at 256x256 like most suites.

Layouts (`LAYOUTS`, docs/own-data.md): how a suite's files are found is one adapter per accepted layout, a
`Layout` with `claims(root, suite)` and `generators(root, suite, extras)` returning `GeneratorFiles` (each
generator's real and fake files; `GeneratorFiles.items()` gives its (path, label) pairs). Built in:
- `labels-csv`: a list file given as `--suite PATH/labels.csv` (`path,label[,generator]`, paths relative
  to the file's folder); reals with no generator are shared by every generator;
- `shared-reals`: `ROOT/0_real/` (one pool of reals) and `ROOT/1_fake/<generator>/`: each generator is
  its fakes against the whole pool;
- `generator-folders`: `ROOT/<generator>/[<category>/]{0_real,1_fake}/` (the paper's suites), or
  `ROOT/{0_real,1_fake}` as one generator.
`discover` asks each in turn (the first that claims the root wins); `register_layout` adds another (e.g. a
dataset's own metadata file) in front of the built-in ones, and everything that reads a suite (run, audit,
data check, embed, train) then reads it through `discover`.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from bench.demo.build import DEMO_SUITES
from bench.demo.local import LOCAL_SUITES
from bench.engine.files import name_text
from bench.errors import BenchError, UnknownNameError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
"""Files with these extensions (any case) are image candidates; others are reported, not read."""
LABEL_FOLDERS = {"0_real": 0, "1_fake": 1}
MASK_FOLDER = "1_fake_masks"
"""Beside `1_fake`: the ground-truth forgery mask of each fake (see the module docstring)."""
SKIPPED_FOLDERS = {"__MACOSX"}  # macOS zip debris: mirrors the tree with `._*` resource-fork files

log = logging.getLogger(__name__)

NPR_SOURCE = "https://github.com/chuangchuangtan/NPR-DeepfakeDetection (README: test set downloads)"


@dataclass(frozen=True)
class Suite:
    name: str
    aliases: tuple[str, ...]
    folder: str
    """Relative to the data root (absolute for a PATH suite)."""
    generators: tuple[str, ...]
    """The paper's table columns in order; empty = whatever folders are on disk, sorted."""
    resize: int | None
    """256 = Resize((256, 256)) as the paper's test code; None = native size."""
    title: str
    source: str
    demo: bool = False
    split: str = "test"
    listed_only: bool = False
    """Only the listed generators count (progan4 = 4 of ForenSynths' 20 training classes)."""
    listing: str | None = None
    """A list file that names the suite's images (`labels.csv`, see `LabelsCsv`); `folder` is its folder."""
    resolution: str | None = None
    """The resolution policy its authors evaluate with (bench.engine.protocol), when it is not the one `resize`
    stands for (resize256 or native); `suite_resolution` gives the policy either way."""
    resolution_source: str = ""
    """Where the suite's resolution policy comes from (the authors' test code), or why it is a default."""
    layout: str | None = None
    """The adapter that reads a published layout other than GENERATOR/{0_real,1_fake} (`read_published`);
    None: generator folders."""
    licence: str = ""
    expected: tuple[tuple[str, int | None, int | None], ...] = ()
    """(generator, real images, fake images) as published, which `bench data check` verifies; None where the
    authors publish no count. For shared reals the real count is the shared pool's."""
    counts_source: str = ""
    complete: bool = False
    """Every listed generator must be on disk: a missing one (a WildRF platform folder) is an error, not a
    silently shorter mean."""
    group: str | None = None
    """A group the suite belongs to besides `all` (the in-the-wild sets: `wild`)."""
    paper: bool = False
    """One of the paper's test suites: only its table's columns are scored (`scored_generators`)."""


@dataclass(frozen=True)
class ResolvedSuite:
    suite: Suite
    root: Path
    exists: bool


@dataclass
class GeneratorFiles:
    name: str
    real: list[Path]
    fake: list[Path]
    other: list[Path] = field(default_factory=list)
    """Files under 0_real/1_fake that are not image candidates (other extensions, hidden `.` files)."""
    extra: bool = False
    """A folder that is not one of the suite's listed generators (not a paper column)."""
    has_masks: bool = False
    """The generator carries forgery masks (a `1_fake_masks` folder below it)."""
    masks: dict[Path, Path] = field(default_factory=dict)
    """Fake image -> its mask file, for the fakes whose mask exists."""
    misnamed: list[tuple[Path, str]] = field(default_factory=list)
    """Folders whose name looks like a misspelt label folder, with the name meant (`0_Real` -> `0_real`)."""
    shared_reals: bool = False
    """Its real images are a pool shared with the suite's other generators (`shared-reals`, `labels-csv`)."""

    def items(self) -> Iterator[tuple[Path, int]]:
        """(path, label) of every image: the reals (0) then the fakes (1)."""
        yield from ((path, 0) for path in self.real)
        yield from ((path, 1) for path in self.fake)
    missing: list[Path] = field(default_factory=list)
    """Files a suite's list names that are not on disk (a list layout: SynthWildX's list.csv); not scored."""

    def __post_init__(self) -> None:
        # named after a folder: a name that is not valid UTF-8 becomes text with escapes (files.name_text), as
        # relative paths do, so that it can be written to parquet, JSON and tables (the files keep their paths)
        self.name = name_text(self.name)


EXPECTED_LAYOUT = (
    "expected layout: SUITE/GENERATOR/0_real/*.png and SUITE/GENERATOR/1_fake/*.png (category folders may sit "
    "between GENERATOR and 0_real/1_fake; a folder holding 0_real and 1_fake itself is one generator)"
)
_LABEL_ALIASES = {"real": "0_real", "reals": "0_real", "fake": "1_fake", "fakes": "1_fake"}


def suite_resolution(suite: Suite):
    """The resolution policy a suite is evaluated under by default (a `bench.engine.protocol.Resolution`):
    its declared one, else the one its `resize` stands for."""
    from bench.engine.protocol import parse_resolution, resolution_of_resize

    return parse_resolution(suite.resolution) if suite.resolution else resolution_of_resize(suite.resize)


def meant_label_folder(name: str) -> str | None:
    """The label folder a folder name was probably meant to be (`0_Real`, `0-real`, `real`, `1_fakes`),
    or None. Exact names, the mask folder and hidden folders are not near misses."""
    if name in LABEL_FOLDERS or name == MASK_FOLDER or name.startswith("."):
        return None
    lowered = name.lower().strip()
    if lowered in _LABEL_ALIASES:
        return _LABEL_ALIASES[lowered]
    close = difflib.get_close_matches(lowered, list(LABEL_FOLDERS), n=1, cutoff=0.8)
    return close[0] if close else None


def _suite(name: str, alias: str, folder: str, generators: str, resize: int | None, title: str, source: str) -> Suite:
    return Suite(name, (alias,), f"Generalization_Test/{folder}", tuple(generators.split()), resize, title, source,
                 paper=True)


_PAPER = [
    _suite("forensynths", "testset1", "ForenSynths_test",
           "progan stylegan stylegan2 biggan cyclegan stargan gaugan deepfake", 256,
           "Test Set 1: ForenSynths (GAN table)", "https://github.com/PeterWang512/CNNDetection (README: test set download)"),
    _suite("gangen", "testset2", "GANGen-Detection",
           "AttGAN BEGAN CramerGAN InfoMaxGAN MMDGAN RelGAN S3GAN SNGAN STGAN", None,
           "Test Set 2: GANGen-Detection (GAN table, native size)",
           f"https://github.com/chuangchuangtan/GANGen-Detection; {NPR_SOURCE}"),
    _suite("diffusionforensics", "testset3", "DiffusionForensics",
           "adm ddpm iddpm ldm pndm vqdiffusion sdv1_new sdv2", 256,
           "Test Set 3: DiffusionForensics (diffusion table)", f"https://github.com/ZhendongWang6/DIRE; {NPR_SOURCE}"),
    _suite("ufd", "testset4", "UniversalFakeDetect",
           "dalle glide_100_10 glide_100_27 glide_50_27 guided ldm_100 ldm_200 ldm_200_cfg", 256,
           "Test Set 4: UniversalFakeDetect (diffusion table)",
           f"https://github.com/WisconsinAIVision/UniversalFakeDetect; {NPR_SOURCE}"),
    _suite("diffusion1kstep", "testset5", "Diffusion1kStep",
           "DALLE ddpm guided-diffusion improved-diffusion midjourney", 256,
           "Test Set 5: Diffusion1kStep", f"https://github.com/chuangchuangtan/GANGen-Detection; {NPR_SOURCE}"),
]

_DEMO_SOURCE = "synthetic, written by the harness (bench.demo) under <data root>/demo/"
_LOCAL_SOURCE = "synthetic, written by the harness (bench.demo.local) under <data root>/demo-local-data/"
_FORENSYNTHS_TRAIN = "https://github.com/PeterWang512/CNNDetection (README: training set download)"
_OTHERS = [
    Suite("demo-gan", (), "demo/demo-gan", tuple(DEMO_SUITES["demo-gan"]), None, "Demo: synthetic GAN-like images",
          _DEMO_SOURCE, demo=True),
    Suite("demo-diffusion", (), "demo/demo-diffusion", tuple(DEMO_SUITES["demo-diffusion"]), None,
          "Demo: synthetic diffusion-like images", _DEMO_SOURCE, demo=True),
    Suite("progan4", (), "ForenSynths_train_val/train", ("car", "cat", "chair", "horse"), 256,
          "ForenSynths ProGAN training set, 4 classes", _FORENSYNTHS_TRAIN, split="train", listed_only=True),
    Suite("progan4-val", (), "ForenSynths_train_val/val", ("car", "cat", "chair", "horse"), 256,
          "ForenSynths ProGAN validation set, 4 classes", _FORENSYNTHS_TRAIN, split="val", listed_only=True),
    Suite("demo-train", (), "demo/demo-train", (), None, "Demo: synthetic training set", _DEMO_SOURCE,
          demo=True, split="train"),
    Suite("demo-val", (), "demo/demo-val", (), None, "Demo: synthetic validation set", _DEMO_SOURCE,
          demo=True, split="val"),
    # local forgeries with masks (bench.demo.local): train on one manipulation, test on unseen ones
    Suite("demo-local", (), "demo-local-data/demo-local", tuple(LOCAL_SUITES["demo-local"]), None,
          "Demo: local forgeries with masks (seen: tconv; unseen: shape, blending, generators)",
          _LOCAL_SOURCE, demo=True),
    Suite("demo-local-train", (), "demo-local-data/demo-local-train", (), None, "Demo: local forgeries with masks, training set",
          _LOCAL_SOURCE, demo=True, split="train"),
    Suite("demo-local-val", (), "demo-local-data/demo-local-val", (), None, "Demo: local forgeries with masks, validation set",
          _LOCAL_SOURCE, demo=True, split="val"),
]

# In-the-wild and modern-generator test sets (docs/wild.md). Each entry says where its layout, counts,
# licence and resolution policy come from; what no fetched source states is left unset and said so.
_GRIP = "https://github.com/grip-unina/ClipBased-SyntheticImageDetection (commit c76ef7f)"
_GRIP_NATIVE = (f"native: {_GRIP} main.py feeds the whole image to its artefact detector (Corvi2023, "
                "patch_size None); its CLIP detector resizes the short side to 224 and centre-crops 224")
_UNDOCUMENTED = "resize256: the paper's protocol; the authors' test resolution is not stated in their README"
_WILD = [
    Suite("chameleon", (), "Chameleon/test", ("chameleon",), 256,
          "Chameleon (AIDE, ICLR 2025): in-the-wild images hard for humans", "https://github.com/shilinyan99/AIDE "
          "(README, commit 0137f07: the dataset is sent by the authors on request); test/0_real, test/1_fake",
          resolution_source=_UNDOCUMENTED, licence="academic research only, commercial use prohibited (AIDE README)",
          counts_source="no count in the AIDE README", group="wild"),
    Suite("wildrf", (), "WildRF/test", ("reddit", "twitter", "facebook"), 256,
          "WildRF (Cavia et al. 2024): real and fake images from social platforms, one folder per platform",
          "https://github.com/barcavia/RealTime-DeepfakeDetection-in-the-RealWorld (README, commit 0005fbe: "
          "WildRF/test/{reddit,twitter,facebook}/{0_real,1_fake})",
          resolution_source="resize256: test.py sets no_resize=False, no_crop=True with loadSize 256 "
                            "(options/base_options.py): Resize((256, 256))",
          licence="not stated in the README; the images come from public social media posts",
          counts_source="no count in the README", complete=True, group="wild"),
    Suite("synthwildx", (), "SynthWildX", ("dalle3", "firefly", "midjourney_v5"), None,
          "SynthWildX (Cozzolino et al., CVPRW 2024): images posted on X, 3 commercial generators",
          f"{_GRIP} data/synthwildx/ (list.csv: url,filename,typ; download_synthwildx.py)", resolution_source=_GRIP_NATIVE,
          layout="synthwildx-list", licence="the list: Apache-2.0 (the repository's LICENSE); the images: their X posts",
          expected=(("dalle3", 500, 500), ("firefly", 500, 500), ("midjourney_v5", 500, 500)),
          counts_source="data/synthwildx/list.csv: 500 rows per typ (real, dalle3, firefly, midjourney_v5); the "
                        "500 reals are shared by the three generators, as compute_metrics.py scores each typ "
                        "against every real", group="wild"),
    Suite("synthbuster", (), "synthbuster",
          ("dalle2", "dalle3", "firefly", "glide", "midjourney-v5", "stable-diffusion-1-3", "stable-diffusion-1-4",
           "stable-diffusion-2", "stable-diffusion-xl"), None,
          "Synthbuster (Bammey, IEEE OJSP 2023): 9 diffusion generators prompted from RAISE-1k, beside the RAISE reals",
          "https://zenodo.org/records/10066460 (synthbuster.zip) with the reals real_RAISE_1k unzipped inside, as "
          f"{_GRIP} data/synthbuster_download.sh does; synthbuster/<generator>/*.png beside synthbuster/real_RAISE_1k/",
          resolution_source=_GRIP_NATIVE, layout="synthbuster",
          licence="non-commercial use only (synthbuster_download.sh); the reals under RAISE's terms",
          expected=(("dalle2", 1000, 1000), ("dalle3", 1000, 1000), ("firefly", 1000, 1000),
                    ("midjourney-v5", 1000, 1000)),
          counts_source=f"{_GRIP} data/commercial_tools.csv: 1000 files in each of real_RAISE_1k, dalle2, dalle3, "
                        "firefly, midjourney-v5; no fetched source gives the other five generators' counts",
          group="wild"),
    Suite("cospy-bench", (), "Co-Spy-Bench", (), 256,
          "Co-Spy-Bench (CO-SPY, CVPR 2025): 22 generators x 5 caption sources",
          "https://github.com/Megum1/CO-SPY (commit 310d048: data/test/Co-Spy-Bench/download.py, "
          "dataSets/dataset.py); https://huggingface.co/datasets/ruojiruoli/Co-Spy-Bench",
          resolution_source=_UNDOCUMENTED + " (CO-SPY's own test re-encodes both classes as JPEG 95, see docs/wild.md)",
          layout="cospy", licence="MIT (the code); the images follow their sources' licences (CO-SPY README)",
          counts_source="CoSpyBenchTestDataset scores min(2000, reals, fakes) of each class per caption source and "
                        "model; no per-folder count is published", group="wild"),
    Suite("aigibench", (), "AIGIBench/test", (), 256,
          "AIGIBench (Li et al., NeurIPS 2025 D&B): 25 test subsets incl. CommunityAI and SocialRF",
          "https://github.com/HorizonTEL/AIGIBench (README, commit 0323551: test/<subset>/{0_real,1_fake})",
          resolution_source="resize256: detector_codes/NPR-DeepfakeDetection-main/test.py sets no_resize=False, "
                            "no_crop=True (Resize to loadSize 256)",
          licence="not stated in the README",
          expected=(("CommunityAI", 6000, 6000), ("SocialRF", 3000, 3000), ("FaceSwap", 4000, 4000),
                    ("InSwap", 4000, 4000), ("WFIR", 1000, 1000)),
          counts_source="README's corrected count table (fakes; 'the number of real images and generated images "
                        "are consistent'); it spells InSwap 'ImSwap', the folder tree 'InSwap'", group="wild"),
    Suite("genimage", (), "GenImage", ("midjourney", "sdv4", "sdv5", "adm", "glide", "wukong", "vqdm", "biggan"), 256,
          "GenImage (Zhu et al., NeurIPS 2023): ImageNet classes, 8 generators, val split",
          "https://github.com/GenImage-Dataset/GenImage (Readme.md, commit 613c8c7: <generator>/{train,val}/{ai,nature}; "
          "folder names from data/checksums.csv, e.g. imagenet_ai_0419_sdv4)",
          resolution_source=_UNDOCUMENTED, layout="genimage", licence="not stated in the README",
          counts_source="no per-folder count in the README", group="wild"),
    Suite("sofake-ood", ("so-fake-ood",), "So-Fake-OOD", (), 256,
          "So-Fake-OOD (Huang et al. 2025): Reddit content, commercial generators excluded from training",
          "https://github.com/hzlsaber/So-Fake (README); https://huggingface.co/datasets/saberzl/So-Fake-OOD "
          "(parquet: export to files + labels.csv, docs/wild.md)", resolution_source=_UNDOCUMENTED,
          layout="labels-csv", licence="see the dataset card", counts_source="no count fetched", group="wild"),
    Suite("openfake", (), "OpenFake", (), 256,
          "OpenFake (2025): real photos and modern generators (FLUX, SD 3.5, GPT Image, Ideogram, ...)",
          "https://github.com/vicliv/OpenFake (README); https://huggingface.co/datasets/ComplexDataLab/OpenFake "
          "(parquet with label and model columns: export to files + labels.csv, docs/wild.md)",
          resolution_source=_UNDOCUMENTED, layout="labels-csv",
          licence="CC BY-NC 4.0 (dataset card, commit c1cf451)", counts_source="no count fetched", group="wild"),
]
WILD_SUITES: tuple[str, ...] = tuple(s.name for s in _WILD)

SUITES: dict[str, Suite] = {s.name: s for s in [*_PAPER, *_OTHERS, *_WILD]}
PAPER_SUITES: tuple[str, ...] = tuple(s.name for s in _PAPER)
GROUPS: dict[str, list[str]] = {
    "gan": ["forensynths", "gangen"],
    "diffusion": ["diffusionforensics", "ufd"],
    "all": list(PAPER_SUITES),
    "demo": ["demo-gan", "demo-diffusion"],
    "wild": list(WILD_SUITES),
}
DEMO_FOR_GROUP = {"all": "demo", "gan": "demo-gan", "diffusion": "demo-diffusion"}
"""A group whose suites are none of them on disk falls back to these demo suites (`bench run`), and
`bench table` then shows those suites' tables."""


README_DATA_SECTION = "README.md, section 'Getting the paper's data'"
"""Where the user is sent to get a missing suite."""


def default_data_root() -> Path:
    """`$BENCH_DATA`, else `./datasets` in the current directory."""
    from bench import settings

    return settings.data_root()


def _by_name() -> dict[str, Suite]:
    table = {}
    for suite in SUITES.values():
        table[suite.name] = suite
        for alias in suite.aliases:
            table[alias] = suite
    return table


def known_names() -> list[str]:
    """Everything `--suite` accepts besides a PATH: names, aliases and groups."""
    return sorted([*_by_name(), *GROUPS])


def get_suite(name: str) -> Suite:
    suite = _by_name().get(name.lower())
    if suite is None:
        raise UnknownNameError("suite", name, known_names())
    return suite


def _looks_like_path(token: str) -> bool:
    return os.sep in token or "/" in token or token.startswith((".", "~"))


GENERIC_FOLDER_NAMES = frozenset({"train", "val", "test"})
"""Folder names too common to name a suite alone (WildRF/test is WildRF only with its parent)."""


def suite_for_path(path: Path) -> Suite:
    """The registered suite a folder is (matched on its trailing folder names), else an ad-hoc one."""
    parts = path.parts
    for suite in SUITES.values():
        wanted = tuple(Path(suite.folder).parts)
        ends_with_folder = parts[-len(wanted):] == wanted
        # test-suite folder names are distinctive enough on their own; `train`/`val`/`test` are not
        same_test_folder = (suite.split == "test" and path.name == wanted[-1]
                            and wanted[-1].lower() not in GENERIC_FOLDER_NAMES)
        if ends_with_folder or same_test_folder:
            return replace(suite, folder=str(path))
    return Suite(
        name=name_text(path.name or str(path)), aliases=(), folder=str(path), generators=(), resize=256,
        title=f"folder {path}", source="a local folder",
    )


def suite_for_listing(path: Path) -> Suite:
    """The suite a labels CSV describes: named after its folder (`mine/labels.csv` -> `mine`) or, for any other
    file name, after the file (`mine/test.csv` -> `test`); evaluated at 256x256 like any other folder."""
    path = path.absolute()
    name = path.parent.name if path.stem.lower() == "labels" else path.stem
    return Suite(name=name_text(name or "labels"), aliases=(), folder=str(path.parent), generators=(), resize=256,
                 title=f"list {path}", source="a local list of images", listing=str(path))


def resolve_suites(spec: str, data_root: Path) -> list[ResolvedSuite]:
    """`--suite` -> suites with their roots, in the order given, each once.

    Unknown names raise UnknownNameError (with did-you-mean); a PATH that does not exist raises
    BenchError. Missing registered suites come back with `exists=False`: the caller decides."""
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise BenchError(f"no suite given; use a name, a group or a folder (known: {', '.join(known_names())})")
    by_name = _by_name()
    resolved: list[ResolvedSuite] = []
    seen: set[tuple[Path, str | None]] = set()

    def add(suite: Suite, root: Path) -> None:
        if (root, suite.listing) not in seen:
            seen.add((root, suite.listing))
            resolved.append(ResolvedSuite(suite, root, root.is_dir()))

    for token in tokens:
        key = token.lower()
        if key in GROUPS:
            for name in GROUPS[key]:
                add(SUITES[name], Path(data_root) / SUITES[name].folder)
        elif key in by_name:
            suite = by_name[key]
            add(suite, Path(data_root) / suite.folder)
        else:
            path = Path(token).expanduser()
            if path.is_dir():
                path = path.absolute()
                add(suite_for_path(path), path)
            elif path.is_file() and path.suffix.lower() == ".csv":
                suite = suite_for_listing(path)
                add(suite, Path(suite.folder))
            elif path.exists():
                raise BenchError(f"--suite {token}: is a file; a suite is a folder of generators with 0_real/1_fake, "
                                 "or a labels CSV (path,label[,generator]; see docs/own-data.md)")
            elif _looks_like_path(token):
                raise BenchError(f"--suite {token}: no such folder")
            else:
                raise UnknownNameError("suite", token, known_names())
    return distinct_names(resolved)


def distinct_names(resolved: list[ResolvedSuite]) -> list[ResolvedSuite]:
    """The suites with names that tell them apart: two folders of the same name (`--suite a/good,b/good`)
    would be merged into one suite by name (scores, metrics and run.json are keyed by it), losing one's
    images. Each of them is named after as many of its parent folders as it takes (`a-good`, `b-good`);
    run.json's `suite_roots` records which folder each name is."""
    by_name: dict[str, list[int]] = {}
    for index, item in enumerate(resolved):
        by_name.setdefault(item.suite.name, []).append(index)
    names = [item.suite.name for item in resolved]
    for name, indices in by_name.items():
        if len(indices) < 2:
            continue
        # the folders above the one the name comes from (a labels CSV's suite is named after the file)
        parents = [[_name_part(p) for p in (r.root.parts[:-1] if name_text(r.root.name) == name else r.root.parts)
                    if _name_part(p)]
                   for r in (resolved[i] for i in indices)]
        labels = [str(i) for i in range(1, len(indices) + 1)]  # folders that differ in no parent name
        for depth in range(1, max(len(p) for p in parents) + 1):
            tried = ["-".join(p[-depth:]) for p in parents]
            if len(set(tried)) == len(tried):
                labels = tried
                break
        for index, label in zip(indices, labels):
            names[index] = f"{label}-{name}"
        log.info("suites %s share the name %s: named %s", ", ".join(str(resolved[i].root) for i in indices), name,
                 ", ".join(names[i] for i in indices))
    taken: set[str] = set()
    renamed = []
    for item, name in zip(resolved, names):
        unique, count = name, 1
        while unique in taken:  # a folder that is already called `a-good` beside a renamed one
            count += 1
            unique = f"{name}-{count}"
        taken.add(unique)
        renamed.append(item if unique == item.suite.name else replace(item, suite=replace(item.suite, name=unique)))
    return renamed


def _name_part(folder: str) -> str:
    """A folder name as part of a suite name (file-name safe: the run id joins suite names)."""
    return re.sub(r"[^A-Za-z0-9._]+", "_", folder).strip("_")


def resolve_suites_building_demo(spec: str, data_root: Path, *, quiet: bool = False) -> list[ResolvedSuite]:
    """`resolve_suites`, with the demo data built (or rebuilt when its code changed) first whenever a
    demo suite is asked for: the check is cheap when the data is up to date."""
    resolved = resolve_suites(spec, data_root)
    if any(r.suite.demo for r in resolved):
        from bench.demo import ensure_demo_suites  # builds images: only imported when needed

        ensure_demo_suites(data_root, [r.suite.name for r in resolved if r.suite.demo], quiet=quiet)
        resolved = resolve_suites(spec, data_root)
    return resolved


def _label_of(parts: tuple[str, ...]) -> int | None:
    """The label of a folder: that of its innermost `0_real`/`1_fake` ancestor (or itself)."""
    for part in reversed(parts):
        if part in LABEL_FOLDERS:
            return LABEL_FOLDERS[part]
    return None


def _is_image_candidate(name: str) -> bool:
    # hidden files include macOS `._name.png` resource forks, which are not images despite the name
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_generator(folder: Path, name: str) -> GeneratorFiles | None:
    """All files under `0_real`/`1_fake` folders below `folder`, sorted; None when it has no such folder."""
    real: list[Path] = []
    fake: list[Path] = []
    other: list[Path] = []
    misnamed: list[tuple[Path, str]] = []
    found_label_folder = False
    found_mask_folder = False
    visited = {os.path.realpath(folder)}
    # followlinks: data roots are often symlink farms; `visited` stops loops and double counting
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith(".") or d in SKIPPED_FOLDERS:
                continue
            real_path = os.path.realpath(os.path.join(dirpath, d))
            if real_path not in visited:
                visited.add(real_path)
                keep.append(d)
        dirnames[:] = keep
        misnamed += [(Path(dirpath, d), meant) for d in keep if (meant := meant_label_folder(d)) is not None]
        found_mask_folder = found_mask_folder or MASK_FOLDER in Path(dirpath).relative_to(folder).parts
        label = _label_of(Path(dirpath).relative_to(folder).parts)
        if label is None:
            continue
        found_label_folder = True
        for filename in filenames:
            path = Path(dirpath, filename)
            if _is_image_candidate(filename):
                (fake if label == 1 else real).append(path)
            else:
                other.append(path)
    if not found_label_folder and not misnamed:
        return None
    found = GeneratorFiles(name, sorted(real, key=str), sorted(fake, key=str), sorted(other, key=str),
                           misnamed=misnamed)
    if found_mask_folder:
        found.has_masks = True
        found.masks = {path: mask for path in found.fake if (mask := mask_path(path)) is not None and mask.is_file()}
    return found


def mask_path(image: Path) -> Path | None:
    """Where the forgery mask of an image lives: its innermost `1_fake` folder swapped for `1_fake_masks`,
    the extension for `.png`. None for a real image (its mask is all zero) or a path outside `1_fake`."""
    parts = Path(image).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in LABEL_FOLDERS:
            if parts[i] != "1_fake":
                return None
            return Path(*parts[:i], MASK_FOLDER, *parts[i + 1:-1], Path(parts[-1]).stem + ".png")
    return None


def generator_folders(root: Path) -> dict[str, Path]:
    """Folder name -> folder for each candidate generator under a suite root (or the root itself when
    it holds `0_real`/`1_fake` directly)."""
    if any((root / label).is_dir() for label in LABEL_FOLDERS) or any(
        child.is_dir() and meant_label_folder(child.name) is not None for child in root.iterdir()
    ):
        return {root.name: root}
    return {
        child.name: child
        for child in sorted(root.iterdir(), key=lambda p: p.name)
        if child.is_dir() and not child.name.startswith(".") and child.name not in SKIPPED_FOLDERS
    }


class Layout(Protocol):
    """How a suite's image files are found on disk: one adapter per accepted layout (see the module's
    docstring). `discover` asks each registered layout in turn whether it `claims` a root."""

    name: str
    example: str
    """A short picture of the layout, quoted by messages and docs/own-data.md."""

    def claims(self, root: Path, suite: Suite) -> bool:
        """Whether this layout reads the suite at `root` (cheap: looks at a few names, reads no image)."""

    def generators(self, root: Path, suite: Suite, extras: bool) -> list[GeneratorFiles]:
        """Every generator's real and fake files, in the suite's column order (`in_column_order`). Raise
        BenchError (exit 2) for a layout that cannot be read as it stands, naming the file and what to do."""


def in_column_order(found: list[GeneratorFiles], suite: Suite, extras: bool) -> list[GeneratorFiles]:
    """The suite's columns first (matched case-insensitively, named in the suite's spelling; an exact match
    wins), then the others sorted and marked `extra=True` when the suite has columns (`extras=False` drops
    them). Without columns the order found is kept."""
    if not suite.generators:
        return found
    columns = {g.lower(): g for g in suite.generators}
    listed: dict[str, GeneratorFiles] = {}
    for g in sorted(found, key=lambda g: g.name not in suite.generators):  # exact names take a column first
        column = g.name if g.name in suite.generators else columns.get(g.name.lower())
        if column is not None and column not in listed:
            g.name = column
            listed[column] = g
    others = [g for g in found if all(g is not x for x in listed.values())]
    for g in others:
        g.extra = True
    return [listed[c] for c in suite.generators if c in listed] + (sorted(others, key=lambda g: g.name) if extras else [])


class GeneratorFolders:
    """`ROOT/<generator>/[<category>/]{0_real,1_fake}/`, or `ROOT/{0_real,1_fake}` as one generator."""

    name = "generator-folders"
    example = EXPECTED_LAYOUT

    def claims(self, root: Path, suite: Suite) -> bool:
        return True  # the fallback: any folder is read this way

    def generators(self, root: Path, suite: Suite, extras: bool) -> list[GeneratorFiles]:
        folders = generator_folders(root)
        if len(suite.generators) == 1 and list(folders.values()) == [root]:
            folders = {suite.generators[0]: root}  # a set that is one 0_real/1_fake pair (Chameleon's test/)
        # exact folder names first, so that `dalle` and `DALLE` both on disk give the column to the exact one
        canonical = {name: name for name in folders if name in suite.generators}
        taken = set(canonical.values())
        columns = {g.lower(): g for g in suite.generators}
        for name in folders:
            column = columns.get(name.lower())
            if name not in canonical and column is not None and column not in taken:
                canonical[name] = column
                taken.add(column)
        listed: dict[str, GeneratorFiles] = {}
        others: list[GeneratorFiles] = []
        for folder_name, folder in folders.items():
            column = canonical.get(folder_name)
            if column is None and not extras:
                continue  # not scanned at all: progan4 reads 4 of ForenSynths' 20 class folders
            found = scan_generator(folder, column or folder_name)
            if found is None:
                continue
            if column is None:
                found.extra = bool(suite.generators)
                others.append(found)
            else:
                listed[column] = found
        ordered = [listed[g] for g in suite.generators if g in listed]
        return ordered + sorted(others, key=lambda g: g.name)


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in SKIPPED_FOLDERS)


def images_below(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image candidates, other files) at any depth below a folder, sorted; symlinked folders followed once."""
    images: list[Path] = []
    other: list[Path] = []
    visited = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            real_path = os.path.realpath(os.path.join(dirpath, d))
            if not d.startswith(".") and d not in SKIPPED_FOLDERS and real_path not in visited:
                visited.add(real_path)
                keep.append(d)
        dirnames[:] = keep
        for filename in filenames:
            (images if _is_image_candidate(filename) else other).append(Path(dirpath, filename))
    return sorted(images, key=str), sorted(other, key=str)


class SharedReals:
    """`ROOT/0_real/` (one pool of reals, any sub-folders) and `ROOT/1_fake/<generator>/`: each generator is
    its own fakes against every real. When 0_real has sub-folders of the same names as 1_fake's, they are
    categories of one generator (`0_real/car`, `1_fake/car`) and `generator-folders` reads the root instead."""

    name = "shared-reals"
    example = "ROOT/0_real/*.jpg (the reals, shared) and ROOT/1_fake/<generator>/*.png (one folder per generator)"

    def claims(self, root: Path, suite: Suite) -> bool:
        real, fake = root / "0_real", root / "1_fake"
        if not (real.is_dir() and fake.is_dir()):
            return False
        generators = _subfolders(fake)
        return bool(generators) and not set(generators) <= set(_subfolders(real))

    def generators(self, root: Path, suite: Suite, extras: bool) -> list[GeneratorFiles]:
        fake_root = root / "1_fake"
        loose = sorted(p.name for p in fake_root.iterdir() if p.is_file() and _is_image_candidate(p.name))
        if loose:
            raise BenchError(
                f"{fake_root} holds images ({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}) beside generator "
                f"folders ({', '.join(_subfolders(fake_root)[:3])}): with a shared 0_real pool each fake belongs to a "
                f"generator folder. Move the loose images into one (e.g. 1_fake/other/); layout: {self.example}.")
        reals, other = images_below(root / "0_real")
        misnamed = [(root / d, meant) for d in _subfolders(root) if (meant := meant_label_folder(d)) is not None]
        found = []
        for name in _subfolders(fake_root):
            fakes, fake_other = images_below(fake_root / name)
            if not fakes:
                continue  # an empty generator folder holds nothing to score (bench data check lists it)
            generator = GeneratorFiles(name, list(reals), fakes, other + fake_other, misnamed=misnamed,
                                       shared_reals=True)
            _attach_masks(generator, (root / MASK_FOLDER).is_dir())
            found.append(generator)
        return in_column_order(found, suite, extras)


LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "fake": 1}
"""What a labels CSV's `label` column may hold (case-insensitive)."""


class LabelsCsv:
    """A list file given as `--suite PATH.csv`: one row per image, `path,label[,generator]` (a header row
    naming the columns is optional), paths relative to the file's folder and inside it. Reals with an empty
    generator are shared by every generator; a generator's reals are those plus its own. Without a
    generator column the whole list is one generator, named after the suite."""

    name = "labels-csv"
    example = "PATH/labels.csv with rows path,label[,generator] (label 0/1 or real/fake; paths relative to the file)"

    def claims(self, root: Path, suite: Suite) -> bool:
        return suite.listing is not None

    def generators(self, root: Path, suite: Suite, extras: bool) -> list[GeneratorFiles]:
        listing = Path(suite.listing)
        rows = read_labels_csv(listing, root)
        shared = [path for path, label, generator in rows if label == 0 and not generator]
        names: list[str] = []  # in the order of first appearance; fakes with no generator form the suite's own
        for _, label, generator in rows:
            name = generator or (suite.name if label == 1 else None)
            if name is not None and name not in names:
                names.append(name)
        names = names or [suite.name]
        found = []
        in_pool = set(shared)
        for name in names:
            own = [(path, label) for path, label, generator in rows if (generator or suite.name) == name]
            reals = shared + [path for path, label in own if label == 0 and path not in in_pool]
            generator = GeneratorFiles(name, reals, [path for path, label in own if label == 1],
                                       shared_reals=len(names) > 1 and bool(shared))
            _attach_masks(generator)
            found.append(generator)
        return in_column_order(found, suite, extras)


def read_labels_csv(listing: Path, root: Path) -> list[tuple[Path, int, str]]:
    """(absolute path, label, generator or "") of every row of a labels CSV, checked: each row names an
    existing file inside `root` once, with a label of `LABEL_WORDS`. A bad row is a BenchError (exit 2) naming
    the file, the line and what is wrong (up to five of them)."""
    root_abs = Path(os.path.abspath(root))
    problems: list[str] = []
    rows: list[tuple[Path, int, str]] = []
    seen: dict[tuple[Path, str], int] = {}
    try:
        text = listing.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read the labels CSV {listing}: {error}") from error
    reader = csv.reader(text.splitlines())
    columns = {"path": 0, "label": 1, "generator": 2}
    for line, cells in enumerate(reader, start=1):
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if line == 1 and cells[0].lower() == "path":
            header = [c.lower() for c in cells]
            unknown = [c for c in header if c not in columns]
            if unknown or "label" not in header:
                raise BenchError(f"{listing}, line 1: header {','.join(cells)}: the columns are path,label[,generator] "
                                 f"(in any order){'; unknown: ' + ', '.join(unknown) if unknown else ''}")
            columns = {name: header.index(name) for name in columns if name in header}
            continue
        where = f"line {line}"
        raw_path, raw_label, generator = (cells[i] if (i := columns.get(name)) is not None and i < len(cells) else ""
                                          for name in ("path", "label", "generator"))
        if len(cells) > len(columns):
            problems.append(f"{where}: {len(cells)} cells, expected {len(columns)} ({','.join(columns)})")
            continue
        if not raw_path:
            problems.append(f"{where}: no path")
            continue
        label = LABEL_WORDS.get(raw_label.lower())
        if label is None:
            problems.append(f"{where}: label {raw_label!r} is not 0/1 or real/fake")
            continue
        path = Path(os.path.normpath(root_abs / Path(raw_path).expanduser()))
        if not path.is_relative_to(root_abs):
            problems.append(f"{where}: {raw_path} is outside {root_abs} (paths are relative to the CSV's folder "
                            "and stay inside it)")
            continue
        if not path.is_file():
            problems.append(f"{where}: {raw_path}: no such file")
            continue
        if (path, generator) in seen:
            problems.append(f"{where}: {raw_path} is listed again (first on line {seen[(path, generator)]})")
            continue
        seen[(path, generator)] = line
        rows.append((path, label, generator))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BenchError(f"bad rows in the labels CSV {listing}: {'; '.join(problems[:5])}{more}. Each row is "
                         "path,label[,generator] with label 0/1 or real/fake and the path relative to the CSV's folder.")
    if not rows:
        raise BenchError(f"the labels CSV {listing} lists no image; rows are path,label[,generator]")
    return rows


def _attach_masks(generator: GeneratorFiles, mask_folder: bool = False) -> None:
    """The forgery masks (`1_fake_masks/...`, see the module docstring) of a generator's fakes, where any;
    `mask_folder`: the suite has a mask folder, so fakes without a mask are worth reporting."""
    masks = {path: mask for path in generator.fake if (mask := mask_path(path)) is not None and mask.is_file()}
    if masks or mask_folder:
        generator.has_masks, generator.masks = True, masks


# ------------------------------------------------- the in-the-wild sets' published layouts (docs/wild.md)
# Adapters for the published layouts of the in-the-wild test sets that are not GENERATOR/{0_real,1_fake}
# (`Suite.layout`; docs/wild.md). Each reads a suite root into `GeneratorFiles` (each
# generator's real and fake files), so everything downstream (run, audit, data check) is unchanged.
#
# - `synthbuster`: ROOT/<generator>/*.png beside ROOT/real_RAISE_1k/ (the RAISE-1k reals every generator is
#   scored against), as GRIP's synthbuster_download.sh unpacks it.
# - `genimage`: ROOT/<generator>/val/{ai,nature}/ (GenImage's README: `ai` the generated images, `nature` the
#   ImageNet photos); generator folders by their download names (imagenet_ai_0419_sdv4, ...) or the README's
#   (Stable Diffusion V1.4, ...), reported under short names.
# - `synthwildx-list`: ROOT/list.csv (url,filename,typ) naming ROOT/<typ>/<id>.jpg; typ `real` is the shared
#   real pool, every other typ a generator.
# - `labels-csv`: ROOT/labels.csv (path,label[,generator]), the exported form of sets published as parquet
#   (OpenFake, So-Fake-OOD), read by the generic list reader (`LabelsCsv`, docs/own-data.md):
#   reals without a generator are shared by every generator.
# - `cospy`: ROOT/synthetic/<caption source>/<model>/*.png and ROOT/real_image_examples/<SOURCE>/*.jpg, scored
#   as CO-SPY's CoSpyBenchTestDataset does: the first min(2000, reals, fakes) of each class, sorted by name.
#
# A list that cannot be read as published (an unknown column, a label that is not 0/1, a path outside the
# root, a row listed twice) is a BenchError (exit 2) naming the file and the line: nothing is scored with a
# guessed label. Files a list names that are not on disk are kept apart (`GeneratorFiles.missing`) and named
# by `bench data check`; `bench run` scores the rest and says how many were missing.

COSPY_REALS = {"cc3m": "CC3M", "sbu": "SBU", "textcaps": "TextCaps", "mscoco": "MSCOCO", "flickr": "Flickr"}
"""Co-Spy-Bench caption source -> its folder of reals under real_image_examples/ (CO-SPY's cospy_real.py; the
authors' zip holds CC3M, SBU and TextCaps; MSCOCO val2017 and Flickr30k test are placed there by the user)."""
COSPY_MAX_PER_CLASS = 2000
"""CoSpyBenchTestDataset(num_real=2000)."""
GENIMAGE_FOLDERS = {
    "midjourney": ("imagenet_midjourney", "Midjourney"),
    "sdv4": ("imagenet_ai_0419_sdv4", "Stable Diffusion V1.4"),
    "sdv5": ("imagenet_ai_0424_sdv5", "Stable Diffusion V1.5"),
    "adm": ("imagenet_ai_0508_adm", "ADM"),
    "glide": ("imagenet_glide", "GLIDE"),
    "wukong": ("imagenet_ai_0424_wukong", "Wukong"),
    "vqdm": ("imagenet_ai_0419_vqdm", "VQDM"),
    "biggan": ("imagenet_ai_0419_biggan", "BigGAN"),
}
"""GenImage column -> its folder names: the download archive's (data/checksums.csv) and the README's."""


def read_published(root: Path, suite: Suite, extras: bool = True) -> list[GeneratorFiles]:
    """The generators of a suite root laid out as `suite.layout` says."""
    if suite.layout == "labels-csv":  # the generic list reader (bench.engine.suites.LabelsCsv) on ROOT/labels.csv
        return LabelsCsv().generators(root, replace(suite, listing=str(root / "labels.csv")), extras)
    readers: dict[str, Callable[[Path, Suite], list[GeneratorFiles]]] = {
        "synthbuster": _synthbuster, "genimage": _genimage, "synthwildx-list": _synthwildx, "cospy": _cospy,
    }
    if suite.layout not in readers:
        raise BenchError(f"suite {suite.name}: unknown layout {suite.layout!r}; known: {', '.join(readers)}, labels-csv")
    return in_column_order(readers[suite.layout](root, suite), suite, extras)


def _subfolder_paths(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.name not in SKIPPED_FOLDERS), key=lambda p: p.name)


# ----------------------------------------------------------------------------------------- folders


def _synthbuster(root: Path, suite: Suite) -> list[GeneratorFiles]:
    reals_folder = root / "real_RAISE_1k"
    if not reals_folder.is_dir():
        raise BenchError(f"{suite.name}: the real images folder {reals_folder} is missing: Synthbuster's generators are "
                         "scored against the RAISE-1k reals; unzip real_RAISE_1k.zip inside the synthbuster folder, as "
                         "synthbuster_download.sh does (docs/wild.md)")
    reals, real_other = images_below(reals_folder)
    found = []
    for folder in _subfolder_paths(root):
        if folder == reals_folder:
            continue
        fakes, other = images_below(folder)
        if fakes:
            found.append(GeneratorFiles(folder.name, list(reals), fakes, real_other + other))
    return found


def _genimage(root: Path, suite: Suite) -> list[GeneratorFiles]:
    names = {folder: column for column, folders in GENIMAGE_FOLDERS.items() for folder in folders}
    found = []
    for folder in _subfolder_paths(root):
        column = names.get(folder.name, names.get(folder.name.lower(), folder.name))
        val = folder / "val"
        missing = [str(val / label) for label in ("ai", "nature") if not (val / label).is_dir()]
        if missing:
            raise BenchError(f"{suite.name}: {folder} has no {' or '.join(missing)}: GenImage's layout is "
                             "<generator>/val/{ai,nature} (ai: generated, nature: ImageNet photos); the test images "
                             "are the val split (docs/wild.md)")
        fakes, fake_other = images_below(val / "ai")
        reals, real_other = images_below(val / "nature")
        found.append(GeneratorFiles(column, reals, fakes, real_other + fake_other))
    return found


def _cospy(root: Path, suite: Suite) -> list[GeneratorFiles]:
    synthetic = root / "synthetic"
    if not synthetic.is_dir():
        raise BenchError(f"{suite.name}: {synthetic} is missing: Co-Spy-Bench's layout is synthetic/<caption source>/"
                         "<model>/*.png beside real_image_examples/<SOURCE>/ (CO-SPY's download.py; docs/wild.md)")
    found = []
    for source in _subfolder_paths(synthetic):
        reals_name = COSPY_REALS.get(source.name.lower())
        reals_folder = root / "real_image_examples" / (reals_name or source.name)
        if reals_name is None or not reals_folder.is_dir():
            raise BenchError(f"{suite.name}: no real images for the caption source {source.name}: expected the folder "
                             f"{reals_folder} (sources: {', '.join(f'{k} -> {v}' for k, v in COSPY_REALS.items())}; "
                             "MSCOCO val2017 and Flickr30k test go there by hand, see docs/wild.md)")
        reals, real_other = images_below(reals_folder)
        for model in _subfolder_paths(source):
            fakes, other = images_below(model)
            fakes = [p for p in fakes if p.suffix.lower() == ".png"]  # CoSpyBenchTestDataset reads the .png files
            count = min(COSPY_MAX_PER_CLASS, len(reals), len(fakes))
            if count:
                found.append(GeneratorFiles(f"{source.name}:{model.name}", reals[:count], fakes[:count],
                                            real_other + other))
    return found


# ------------------------------------------------------------------------------------------ lists


def _synthwildx(root: Path, suite: Suite) -> list[GeneratorFiles]:
    def label_of(row: dict[str, str], where: str) -> tuple[int, str]:
        typ = row["typ"].strip()
        if not typ:
            raise ValueError(f"{where}: no typ")
        return (0, "") if typ.lower() == "real" else (1, typ)

    return read_list(root / "list.csv", root, path_column="filename", required=("filename", "typ"),
                     allowed=("url", "filename", "typ"), label_of=label_of)


def read_list(listing: Path, root: Path, *, path_column: str, required: tuple[str, ...], allowed: tuple[str, ...],
              label_of: Callable[[dict[str, str], str], tuple[int, str]],
              default_generator: str | None = None) -> list[GeneratorFiles]:
    """A CSV list with a header row -> generators. `label_of(row, where)` gives (label, generator) or raises
    ValueError with what is wrong; reals with no generator are shared by every generator (fakes with none go to
    `default_generator`). Every bad row is a BenchError naming the file and its line."""
    if not listing.is_file():
        raise BenchError(f"{listing} is missing: this suite's images are listed there (docs/wild.md)")
    root_abs = Path(os.path.abspath(root))
    try:
        text = listing.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {listing}: {error}") from error
    lines = text.splitlines()
    reader = csv.DictReader(lines)
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in allowed]
    absent = [name for name in required if name not in header]
    if unknown or absent:
        what = "; ".join(part for part in (f"unknown columns: {', '.join(unknown)}" if unknown else "",
                                           f"missing columns: {', '.join(absent)}" if absent else "") if part)
        raise BenchError(f"{listing}, line 1: header {','.join(header) or '(empty)'}: {what}; the columns are "
                         f"{','.join(allowed)} ({', '.join(required)} required)")
    problems: list[str] = []
    rows: list[tuple[Path, int, str, int]] = []
    seen: dict[Path, int] = {}
    for line, raw_row in enumerate(reader, start=2):
        where = f"line {line}"
        if None in raw_row or any(value is None for value in raw_row.values()):
            problems.append(f"{where}: {len([v for v in raw_row.values() if v is not None])} cells, expected "
                            f"{len(header)} ({','.join(header)})")
            continue
        row = {key.strip(): value for key, value in raw_row.items()}
        if not any(value.strip() for value in row.values()):
            continue
        raw_path = row[path_column].strip()
        try:
            label, generator = label_of(row, where)
        except ValueError as error:
            problems.append(str(error))
            continue
        path = Path(os.path.normpath(root_abs / raw_path)) if raw_path else None
        if path is None or os.path.isabs(raw_path) or not path.is_relative_to(root_abs) or path == root_abs:
            problems.append(f"{where}: {raw_path or '(no path)'} is not a file inside {root_abs} (paths are relative "
                            "to the list's folder and stay inside it)")
            continue
        if path in seen:
            problems.append(f"{where}: {raw_path} is listed again (first on line {seen[path]})")
            continue
        seen[path] = line
        rows.append((path, label, generator, line))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BenchError(f"{listing}: {'; '.join(problems[:5])}{more}. Nothing was scored: fix the list (docs/wild.md).")
    if not rows:
        raise BenchError(f"{listing} lists no image")
    shared = [(path, line) for path, label, generator, line in rows if label == 0 and not generator]
    names: list[str] = []
    for _, label, generator, _ in rows:
        name = generator or (default_generator if label == 1 else None)
        if name is None and label == 1:
            raise BenchError(f"{listing}: a fake without a generator and no default generator")
        if name is not None and name not in names:
            names.append(name)
    found = []
    for name in names:
        own = [(path, label) for path, label, generator, _ in rows if (generator or default_generator) == name
               and (generator or label == 1)]
        reals = [path for path, _ in shared] + [path for path, label in own if label == 0]
        fakes = [path for path, label in own if label == 1]
        present = [p for p in reals if p.is_file()], [p for p in fakes if p.is_file()]
        missing = [p for p in [*reals, *fakes] if not p.is_file()]
        found.append(GeneratorFiles(name, present[0], present[1], missing=missing))
    return found


def unlisted_images(root: Path, suite: Suite, generators: list[GeneratorFiles]) -> list[Path]:
    """Image files under a list suite's root that its list does not name (extra files), sorted."""
    if suite.layout not in ("synthwildx-list", "labels-csv"):
        return []
    listed = {path for g in generators for path in [*g.real, *g.fake, *g.missing]}
    images, _ = images_below(root)
    return [path for path in images if path not in listed]


class PublishedLayout:
    """A registered suite's own published layout (`Suite.layout`: Synthbuster's reals beside its generator
    folders, GenImage's val/{ai,nature}, SynthWildX's list.csv, ...), read by `read_published` below."""

    name = "published"
    example = "the layout the set's authors publish (docs/wild.md)"

    def claims(self, root: Path, suite: Suite) -> bool:
        return suite.layout is not None

    def generators(self, root: Path, suite: Suite, extras: bool) -> list[GeneratorFiles]:
        return read_published(root, suite, extras)


LAYOUTS: list[Layout] = [PublishedLayout(), LabelsCsv(), SharedReals(), GeneratorFolders()]
"""The accepted layouts, asked in this order; the last (`generator-folders`) claims every folder."""


def register_layout(layout: Layout) -> None:
    """Accept another layout: it is asked before the built-in ones (replacing one of the same name)."""
    LAYOUTS[:] = [layout, *[existing for existing in LAYOUTS if existing.name != layout.name]]


def layout_of(root: Path, suite: Suite) -> Layout:
    """The layout that reads a suite root (the first of `LAYOUTS` that claims it)."""
    return next(layout for layout in LAYOUTS if layout.claims(root, suite))


def discover(root: Path, suite: Suite | None = None, *, extras: bool | None = None) -> list[GeneratorFiles]:
    """The generators under a suite root with their real and fake image files, read by the root's layout
    (`layout_of`).

    Order: the suite's columns first (names matched case-insensitively and reported in the suite's
    spelling), then folders that are not columns, sorted and marked `extra=True`. `extras=False` leaves
    those out; the default keeps them except for `listed_only` suites (progan4: 4 classes of 20).
    Folders with no `0_real`/`1_fake` anywhere below them are not generators and are left out."""
    root = Path(root)
    if not root.is_dir():
        raise BenchError(f"{root} is not a folder")
    suite = suite or suite_for_path(root.absolute())
    if extras is None:
        extras = not suite.listed_only
    return layout_of(root, suite).generators(root, suite, extras)


def scored_generators(suite: Suite, generators: list[GeneratorFiles]) -> tuple[list[GeneratorFiles], list[GeneratorFiles]]:
    """(scored, left out) of a suite's generators, the one rule `bench run`, `bench sweep` and `bench data
    check` share. A paper suite scores its table's columns only, because those are what the paper's means
    are taken over (CNNDetection's test download has crn, imle, san, ... beside the 8 columns of
    ForenSynths; its own test.py would score every folder), and so does an in-the-wild set (its published
    table's); any other suite scores every generator, its listed ones first."""
    if not (suite.paper or suite.group == "wild"):
        return list(generators), []
    return [g for g in generators if not g.extra], [g for g in generators if g.extra]


def left_out_sentence(suite: Suite, left_out: list[GeneratorFiles]) -> str:
    """What `bench run` says (and `bench data check` repeats) of a paper suite's generators it does not score."""
    names = ", ".join(g.name for g in left_out)
    table = "the paper's table" if suite.paper else "its published table"
    return (f"{suite.name}: not scoring {names}: not columns of {table} ({', '.join(suite.generators)}), "
            "over which its means are taken")


def require_scored_generators(root: Path, suite: Suite, generators: list[GeneratorFiles]) -> list[GeneratorFiles]:
    """The generators `bench run` scores; BenchError (exit 2) when that leaves none (a folder under a
    paper suite's name whose generators are none of the paper's columns)."""
    scored, left_out = scored_generators(suite, generators)
    if left_out and not scored:
        raise BenchError(
            f"{left_out_sentence(suite, left_out)}, so nothing would be scored under {root}. Name the generator "
            f"folders as the paper's columns, or evaluate them as a suite of their own from a folder not called "
            f"{root.name} (a folder named after a paper suite is that suite, with its columns and protocol).")
    return scored


def missing_generators(suite: Suite, generators: list[GeneratorFiles]) -> list[str]:
    """The listed generators of a `complete` suite that are not on disk (none for other suites)."""
    if not suite.complete:
        return []
    found = {g.name for g in generators}
    return [name for name in suite.generators if name not in found]


def check_layout(root: Path, generators: list[GeneratorFiles], suite: Suite | None = None) -> None:
    """Raise BenchError (exit 2) when a suite cannot be scored as laid out: no generator with images,
    a folder that looks like a misspelt `0_real`/`1_fake` (which would silently drop its images), or a
    missing generator folder of a suite that must be complete (a WildRF platform)."""
    absent = missing_generators(suite, generators) if suite is not None else []
    if absent:
        expected = ", ".join(str(root / name) for name in absent)
        raise BenchError(f"{suite.name}: {len(absent)} of its {len(suite.generators)} folders missing: {expected} "
                         f"(each with 0_real/ and 1_fake/). Its mean is over all of "
                         f"{', '.join(suite.generators)}; a shorter one is not the published number (docs/wild.md).")
    misnamed = [(path, meant) for g in generators for path, meant in g.misnamed]
    if misnamed:
        shown = "; ".join(f"{_relative(path, root)}: did you mean {meant}?" for path, meant in misnamed[:5])
        more = f" (and {len(misnamed) - 5} more)" if len(misnamed) > 5 else ""
        raise BenchError(f"{root}: folders that look like misspelt label folders, whose images would be left out: "
                         f"{shown}{more}. Rename them (the names are case-sensitive); {EXPECTED_LAYOUT}.")
    if not any(g.real or g.fake for g in generators):
        found = "it is empty" if not any(root.iterdir()) else (
            "no generator folder with 0_real/1_fake below it" if not generators else "0_real/1_fake hold no image files")
        children = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:8]
        listing = f" (it holds: {', '.join(children)})" if children else ""
        raise BenchError(f"suite folder {root} has nothing to score: {found}{listing}; {EXPECTED_LAYOUT}. "
                         f"Image files are {', '.join(sorted(IMAGE_EXTENSIONS))}.")


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


UNIVFD_SAMPLE_SEED = 0
"""validate.py's SEED: ``set_seed()`` (``random.seed(0)`` among others) before each test set is read."""
UNIVFD_SAMPLE_FALLBACK = 100
"""validate.py's ``read_path``: when a class has fewer than ``max_sample`` images, ``max_sample`` falls to 100."""


def walk_order(path: Path) -> tuple:
    """The order ``os.walk`` lists files in when every folder's entries are sorted: a folder's own files
    (by name) before those of its subfolders (by name). validate.py's ``recursively_read`` lists in os.walk's
    order, which the file system decides; sorted names are the reproducible reading of it."""
    *folders, name = Path(path).parts
    return (*((1, folder) for folder in folders), (0, name))


@dataclass(frozen=True)
class Sample:
    real: list[Path]
    fake: list[Path]
    size: int
    """How many of each class were asked for (``max_sample``, or the fallback 100)."""
    note: str | None = None
    """What differs from the request (the fallback; a class shorter than the sample), said beside it."""


def univfd_sample(generator: GeneratorFiles, max_sample: int) -> Sample:
    """The images UnivFD's ``validate.py`` scores of a test set (github.com/WisconsinAIVision/UniversalFakeDetect,
    ``RealFakeDataset.read_path`` with ``--max_sample``, default 1000): both classes' lists in os.walk order,
    then with ``random.seed(0)``: ``random.shuffle(real)``, ``random.shuffle(fake)``, the first ``max_sample`` of
    each; when either class has fewer than ``max_sample`` images, ``max_sample`` falls to 100. The lists are the
    harness's (every image file under the generator's ``0_real``/``1_fake`` folders); validate.py lists only
    names whose text after the first dot is png, jpg, JPEG, jpeg or bmp, so a set with other names shuffles
    another list. The result keeps the generator's order (sorted paths)."""
    import random

    real = sorted(generator.real, key=walk_order)
    fake = sorted(generator.fake, key=walk_order)
    size, note = max_sample, None
    if max_sample > len(real) or max_sample > len(fake):
        size = UNIVFD_SAMPLE_FALLBACK
        note = (f"{generator.name}: {len(real)} real and {len(fake)} fake images, fewer than the sample of "
                f"{max_sample}; drew {UNIVFD_SAMPLE_FALLBACK} of each, as validate.py does")
        if size > len(real) or size > len(fake):
            note += f" (a class with fewer than {UNIVFD_SAMPLE_FALLBACK} is taken whole"
            note += "; validate.py stops on unequal classes)" if len(real) != len(fake) else ")"
    rng = random.Random(UNIVFD_SAMPLE_SEED)  # the same generator as random.seed(0) then random.shuffle
    rng.shuffle(real)
    rng.shuffle(fake)
    chosen_real, chosen_fake = set(real[:size]), set(fake[:size])
    return Sample([p for p in generator.real if p in chosen_real], [p for p in generator.fake if p in chosen_fake],
                  size, note)
