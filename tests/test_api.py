"""The Python API (bench.api): the examples of the README and docs/python-api.md run, results are what an
independent computation gives, the results schema is versioned, and the code keeps one scoring loop and one
normalisation."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from tests_support import write_suite

from bench import api
from bench.cli import main
from bench.engine.results import SCHEMA_VERSION, NewerSchemaError, read_run
from bench.errors import BenchError
from detectors import export_state_dict, get_detector

REPO = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's 'Python API' section has no python code block"
    return match.group(1)


def test_readme_python_example_is_short():
    code = readme_python_example()
    lines = [line for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) <= 15, "the README promises evaluate, predict and load in under 15 lines"
    assert "api.evaluate(" in code and "api.load_detector(" in code and "api.predict(" in code


PYTHON_API_PAGE = REPO / "docs" / "python-api.md"
RUN_BY_HAND = ("Explain and embed", "Measure", "Robustness", "Train")
"""Sections of docs/python-api.md whose examples take minutes on a shared CPU: checked against the
functions' signatures here, not executed."""


def python_api_sections() -> list[tuple[str, list[str]]]:
    """(heading, python code blocks) per `##` section of docs/python-api.md, in page order."""
    parts = re.split(r"^## (.+)$", PYTHON_API_PAGE.read_text(encoding="utf-8"), flags=re.M)
    return [(heading, re.findall(r"```python\n(.*?)```", body, re.S)) for heading, body in zip(parts[1::2], parts[2::2])]


def api_uses(code: str):
    """(name, the call node or None) of every `api.<name>` the code uses."""
    import ast

    tree = ast.parse(code)
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "api":
            yield node.attr, calls.get(id(node))


def test_python_api_page_uses_only_names_and_keywords_that_exist():
    """Every example of docs/python-api.md, executed or not: each `api.<name>` exists, and each call binds
    to the function's signature (evaluate's extra keywords must be EvalConfig fields, train_config's
    keys TrainConfig fields)."""
    import ast
    import dataclasses
    import inspect

    sections = python_api_sections()
    headings = [heading for heading, _ in sections]
    for name in RUN_BY_HAND:  # the page's sections still exist under these names
        assert any(h.startswith(name) for h in headings), name
    config_fields = {f.name for f in dataclasses.fields(api.EvalConfig)}
    recipe_fields = {f.name for f in dataclasses.fields(api.TrainConfig)}
    checked = 0
    for heading, blocks in sections:
        for code in blocks:
            for name, call in api_uses(code):
                assert name in dir(api), f"{heading}: api.{name} does not exist"
                if call is None:
                    continue
                keywords = [k.arg for k in call.keywords if k.arg]
                signature = inspect.signature(getattr(api, name))
                signature.bind_partial(*[None] * len(call.args), **dict.fromkeys(keywords))  # TypeError if not
                if name == "evaluate":
                    assert set(keywords) - {"config"} <= config_fields, f"{heading}: {keywords}"
                if name == "train_config" and isinstance(call.args[0], ast.Dict):
                    keys = {k.value for k in call.args[0].keys}
                    assert keys <= recipe_fields, f"{heading}: {sorted(keys - recipe_fields)}"
                checked += 1
    assert checked >= 25  # the page shows every verb's function


@pytest.mark.slow
def test_readme_and_python_api_page_examples_run(tmp_path, demo_data_root, monkeypatch, capsys):
    """The README's example, then those of docs/python-api.md in page order in one namespace, as a reader
    would paste them (one test, so that the page's evaluation reuses the README's cached scores)."""
    (tmp_path / "datasets").symlink_to(demo_data_root)  # the examples read datasets/demo/... in the cwd
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "datasets"))
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results"))
    readme: dict = {}
    exec(compile(readme_python_example(), "README.md", "exec"), readme)
    out = capsys.readouterr().out
    assert " real" in out or " fake" in out  # the predictions were printed with their verdicts
    assert (readme["result"]["lfm"].folder / "metrics.json").is_file()
    assert len(readme["scores"]) == 32  # 4 generators x (4 real + 4 fake)
    namespace: dict = {}
    executed = []
    for heading, blocks in python_api_sections():
        if heading.startswith(RUN_BY_HAND):
            continue
        for code in blocks:
            exec(compile(code, f"docs/python-api.md ({heading})", "exec"), namespace)
        executed.append(heading)
    assert len(executed) >= 5, executed
    out = capsys.readouterr().out
    assert " fake" in out or " real" in out  # predictions were printed with their verdicts
    result = namespace["result"]
    assert result["lfm"].folder.is_dir() and (result["lfm"].folder / "metrics.json").is_file()
    assert namespace["exact"]["lfm"].folder is None  # write_run=False wrote nothing
    assert namespace["exact"]["lfm"].metrics["prob_precision"] == "float64"
    assert [o.status for o in namespace["outcomes"]] == ["ok"]
    assert namespace["page"].is_file() and namespace["page"].stat().st_size > 10_000


@pytest.fixture
def random_lfm():
    """A randomly initialised LFM with non-trivial BatchNorm statistics (a fixed model, not a trained one)."""
    torch.manual_seed(3)
    detector = get_detector("lfm")
    model = detector.build()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return detector, model


def test_evaluate_a_loaded_model_gives_sklearn_metrics_and_the_cli_agrees(tmp_path, random_lfm, capsys):
    detector, model = random_lfm
    weights = tmp_path / "lfm.pth"
    torch.save(export_state_dict(model, detector), weights)
    suite = write_suite(tmp_path / "suite", {"gen": 6})
    loaded = api.load_detector("lfm", str(weights))
    result = api.evaluate([loaded], str(suite / "gen"), output=str(tmp_path / "results"), workers=0, batch_size=4)
    run = result["lfm"]
    scores = run.scores
    assert len(scores) == 12 and run.skipped.empty
    # independent: sklearn on the returned scores, and the official float32 sigmoid of the plain model
    expected_ap = average_precision_score(scores["label"], scores["prob"])
    assert math.isclose(run.metrics["mean"]["ap"], expected_ap, abs_tol=1e-12)
    acc = float(((scores["prob"] > 0.5) == (scores["label"] == 1)).mean())
    assert math.isclose(run.metrics["mean"]["acc"], acc)
    assert run.folder is not None and read_run(run.folder).metrics == json.loads((run.folder / "metrics.json").read_text())
    # the CLI is a thin layer over the same call: same numbers
    assert main(["run", "--detector", "lfm", "--suite", str(suite / "gen"), "--weights", str(weights),
                 "--output", str(tmp_path / "results"), "--workers", "0", "--json"]) == 0
    cli_metrics = json.loads(capsys.readouterr().out)["lfm"]
    assert cli_metrics["mean"]["ap"] == pytest.approx(expected_ap, abs=1e-12)


def test_evaluate_without_a_run_folder_and_unknown_options(tmp_path, random_lfm):
    detector, model = random_lfm
    weights = tmp_path / "lfm.pth"
    torch.save(export_state_dict(model, detector), weights)
    suite = write_suite(tmp_path / "suite", {"gen": 3})
    result = api.evaluate("lfm", str(suite / "gen"), weights=str(weights), output=str(tmp_path / "r"),
                          workers=0, write_run=False)
    assert result["lfm"].folder is None and not (tmp_path / "r" / "runs").exists()
    assert len(result["lfm"].scores) == 6
    with pytest.raises(BenchError, match="EvalConfig fields"):
        api.evaluate("lfm", str(suite / "gen"), weights=str(weights), no_such_option=1)
    with pytest.raises(BenchError, match="batch-size"):
        api.evaluate("lfm", str(suite / "gen"), weights=str(weights), batch_size=0)


def test_predict_matches_the_plain_model(tmp_path, random_lfm):
    from PIL import Image
    from torchvision import transforms

    detector, model = random_lfm
    weights = tmp_path / "lfm.pth"
    torch.save(export_state_dict(model, detector), weights)
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(64, 48), (100, 80)]):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    result = api.predict("lfm", paths, weights=str(weights), device="cpu")
    transform = transforms.Compose([transforms.Resize((256, 256)), transforms.ToTensor(),
                                    transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with torch.no_grad():
        expected = model.eval()(torch.stack([transform(Image.open(p).convert("RGB")) for p in paths]))
    assert [p.path for p in result.predictions] == [str(p) for p in paths]
    got = torch.tensor([p.logit for p in result.predictions])
    assert torch.allclose(got, expected, atol=1e-4)


def test_a_run_from_a_newer_schema_is_refused_with_a_message(tmp_path, random_lfm, capsys):
    detector, model = random_lfm
    weights = tmp_path / "lfm.pth"
    torch.save(export_state_dict(model, detector), weights)
    suite = write_suite(tmp_path / "suite", {"gen": 2})
    result = api.evaluate("lfm", str(suite / "gen"), weights=str(weights), output=str(tmp_path / "results"),
                          workers=0)
    folder = result["lfm"].folder
    info = json.loads((folder / "run.json").read_text())
    assert info["schema_version"] == SCHEMA_VERSION
    assert json.loads((folder / "metrics.json").read_text())["schema_version"] == SCHEMA_VERSION
    info["schema_version"] = SCHEMA_VERSION + 1
    (folder / "run.json").write_text(json.dumps(info))
    with pytest.raises(NewerSchemaError, match="upgrade"):
        read_run(folder)
    # every reader goes through read_run: bench table says so too, with exit 2
    capsys.readouterr()
    assert main(["table", "--suite", "forensynths", "--results", str(tmp_path / "results")]) == 2
    assert "newer than this lfm-bench understands" in capsys.readouterr().err
    # a version-1 folder (before the field existed) still reads
    del info["schema_version"]
    (folder / "run.json").write_text(json.dumps(info))
    assert read_run(folder).detector == "lfm"


def _tracked_python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed.stdout.split() if name.split("/")[0] in ("bench", "detectors", "lfm")]


def test_one_scoring_loop_and_one_normalisation():
    """Scoring DataLoaders live in bench/engine/scoring.py only (training builds its own batches of crops), and
    only Preprocessing.normalize turns pixels into model input (divides by 255 and standardises; drawing
    code that scales pixels to [0, 1] for display does not count)."""
    loaders, normalisations = [], []
    for path in _tracked_python_files():
        text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("#"))
        relative = path.relative_to(REPO).as_posix()
        if "DataLoader(" in text:
            loaders.append(relative)
        if re.search(r"/\s*255|\.div\(\s*255", text) and re.search(r"\bstd\b", text):
            normalisations.append(relative)
    assert sorted(loaders) == ["bench/engine/scoring.py", "bench/train/loop.py"]
    assert normalisations == ["detectors/base.py"]


def test_run_result_is_a_mapping_of_detector_results_with_fractions():
    """issue 22, item 12: `.items()`, `.keys()`, `in` and iteration over detector names, and the unit said."""
    from collections.abc import Mapping

    from bench.api import DetectorResult, RunResult

    def one(name: str) -> DetectorResult:
        return DetectorResult(detector=name, display_name=name.upper(), weights=f"{name}:demo", weights_sha256="0" * 64,
                              metrics={"mean": {"ap": 0.862}}, scores=None, skipped=None, info={})

    result = RunResult({"npr": one("npr"), "lfm": one("lfm")}, ["demo-gan"], True, None, "cpu", 1.0)
    assert isinstance(result, Mapping)
    assert list(result) == list(result.keys()) == ["npr", "lfm"]  # the order given, not sorted
    assert "lfm" in result and "cnndetection" not in result and len(result) == 2
    assert [(name, run.detector) for name, run in result.items()] == [("npr", "npr"), ("lfm", "lfm")]
    assert result.get("cnndetection") is None and result["lfm"] is result.runs["lfm"]
    for doc in (RunResult.__doc__, DetectorResult.__doc__):
        assert "fractions in [0, 1]" in doc or "a fraction in [0, 1]" in doc
        assert "x100" in doc
