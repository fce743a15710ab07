"""`torchrun --nproc_per_node N -m bench run`: disjoint, unpadded shares; the same scores and metrics as one
process; a run killed under one N finishes under another without a duplicated or rescored image.

Every run here is a child process with OMP_NUM_THREADS=1 (what torchrun gives each process): CPU
convolutions may round differently with another number of threads, and the claim is bit-identity.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from tests_support import write_suite

from bench.engine.distributed import Processes

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="finds torchrun's workers through /proc (Linux)")

DETECTORS = "lfm,npr"
BATCH = 2
SCORED = re.compile(r"^(?:rank (\d+) of (\d+): )?(\S+)/(\S+): scored (\d+) of (\d+) images \((\d+) scored before\)$", re.M)


def test_shares_are_disjoint_complete_and_unpadded():
    items = list(range(11))
    for world in (1, 2, 3, 4, 12):
        shares = [Processes(rank, world).shard(items) for rank in range(world)]
        flat = sorted(i for share in shares for i in share)
        assert flat == items  # each item exactly once: no padding, nothing missed
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """Two generators; gen_a has an odd number of images, gen_b a file that cannot be decoded."""
    root = write_suite(tmp_path_factory.mktemp("sharded") / "suite", {"gen_a": 12, "gen_b": 12}, size=(64, 64))
    extra = root / "gen_a" / "0_real" / "img_extra.png"
    extra.write_bytes((root / "gen_a" / "0_real" / "img_000.png").read_bytes())
    (root / "gen_b" / "1_fake" / "broken.png").write_bytes(b"not an image")
    return root


def bench_command(suite: Path, output: Path, nproc: int | None) -> list[str]:
    args = ["run", "-vv", "--detector", DETECTORS, "--suite", str(suite), "--weights", "demo", "--workers", "0",
            "--batch-size", str(BATCH), "--output", str(output), "--json"]
    if nproc is None:
        return [sys.executable, "-m", "bench", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "bench", *args]


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    env.pop("BENCH_PART_EVERY", None)
    env.update(extra)
    return env


def run_bench(suite: Path, output: Path, nproc: int | None) -> subprocess.CompletedProcess:
    done = subprocess.run(bench_command(suite, output, nproc), env=environment(), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def run_folders(output: Path) -> dict[str, Path]:
    folders = {}
    for run_json in (output / "runs").glob("*/run.json"):
        folders[json.loads(run_json.read_text())["detector"]] = run_json.parent
    return folders


def assert_same_results(reference: Path, other: Path) -> None:
    ours, theirs = run_folders(reference), run_folders(other)
    assert sorted(ours) == sorted(theirs) == sorted(DETECTORS.split(","))
    for detector in ours:
        a = pd.read_parquet(ours[detector] / "scores.parquet")
        b = pd.read_parquet(theirs[detector] / "scores.parquet")
        assert not b.duplicated(["suite", "path"]).any()
        pd.testing.assert_frame_equal(a, b, check_exact=True)  # every logit, bit for bit
        assert json.loads((ours[detector] / "metrics.json").read_text()) == \
            json.loads((theirs[detector] / "metrics.json").read_text())
        assert (ours[detector] / "skipped.csv").read_text() == (theirs[detector] / "skipped.csv").read_text()


@pytest.fixture(scope="module")
def single(suite, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("single")
    run_bench(suite, output, None)
    return output


def unit_sizes(suite: Path) -> dict[str, int]:
    return {g.name: sum(1 for _ in g.rglob("*.png")) for g in suite.iterdir()}


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(suite, single, tmp_path):
    done = run_bench(suite, tmp_path, 2)
    assert_same_results(single, tmp_path)
    # each unit split between the two ranks, every image scored once: the shares add up to the unit
    sizes = unit_sizes(suite)
    shares: dict[str, dict[int, int]] = {}
    for rank, world, _suite, generator, scored, total, before in SCORED.findall(done.stderr):
        assert (world, int(total), int(before)) == ("2", sizes[generator], 0)
        shares.setdefault(generator, {})[int(rank)] = int(scored)
    assert {g: sum(s.values()) for g, s in shares.items()} == sizes  # per detector group: 1 group here
    assert all(len(s) == 2 and min(s.values()) > 0 for s in shares.values()), shares
    assert len(list((tmp_path / "runs").iterdir())) == 2  # one run folder per detector, by rank 0 alone
    info = json.loads((run_folders(tmp_path)["lfm"] / "run.json").read_text())
    assert info["processes"] == 2 and info["status"] == "finished"
    assert done.stdout.count('"lfm"') == 1  # rank 0 alone printed the metrics


def _workers_of(marker: str) -> dict[int, int]:
    """rank -> pid of the processes started with BENCH_TEST_MARKER=marker (torchrun's workers)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = dict(
                item.split("=", 1) for item in (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                if "=" in item
            )
        except OSError:
            continue
        if environ.get("BENCH_TEST_MARKER") == marker and "RANK" in environ and "TORCHELASTIC_RUN_ID" in environ:
            found[int(environ["RANK"])] = int(proc.name)
    return found


def _part_rows(cache: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p).assign(part=p.name, entry=p.parent.name) for p in cache.glob("*/part-*.parquet")]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["path", "part", "entry"])


@pytest.mark.slow
def test_killed_rank_resumes_with_another_process_count(suite, single, tmp_path):
    marker = uuid.uuid4().hex
    env = environment(BENCH_TEST_MARKER=marker, BENCH_PART_EVERY=str(BATCH))  # a part file per batch
    child = subprocess.Popen(bench_command(suite, tmp_path, 2), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    cache = tmp_path / "cache"
    deadline = time.monotonic() + 600
    try:
        while not list(cache.glob("*/part-r1-*.parquet")):  # rank 1 has flushed a batch: it is mid-run
            assert child.poll() is None, "the run ended before rank 1 wrote a part file"
            assert time.monotonic() < deadline, "rank 1 wrote no part file in 10 minutes"
            time.sleep(0.05)
        workers = _workers_of(marker)
        os.kill(workers[1], signal.SIGKILL)
        child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0  # torchrun stopped rank 0 too: the run did not finish
    assert not run_folders(tmp_path)
    parts = _part_rows(cache)
    total = 2 * sum(unit_sizes(suite).values())  # two detectors
    per_entry = parts.drop_duplicates(["entry", "path"])
    assert 0 < len(per_entry) < total  # killed mid-run
    assert not parts.duplicated(["entry", "path"]).any()  # the two ranks never scored the same image
    assert {p.split("-")[1] for p in parts["part"]} == {"r0", "r1"}

    done = run_bench(suite, tmp_path, 1)  # restarted with one process
    assert_same_results(single, tmp_path)
    # the restart scored exactly the images not finished before: none twice, none missed. Detectors that
    # share a decode are one group (an image is done when both have it); otherwise each is its own
    lines = SCORED.findall(done.stderr)
    groups = len(lines) // len(unit_sizes(suite))
    finished_by_both = {p for p, n in per_entry.groupby("path").size().items() if n == 2}
    before = len(finished_by_both) if groups == 1 else len(per_entry)
    assert groups in (1, 2)
    assert sum(int(line[6]) for line in lines) == before  # "(N scored before)"
    assert sum(int(line[4]) for line in lines) == groups * sum(unit_sizes(suite).values()) - before
    assert not list(cache.glob("*/part-*.parquet"))  # merged and cleaned up


SWEEP = """
import sys
from bench.engine.config import EvalConfig
from bench.engine.distributed import stop_processes
from bench.engine.perturb import parse_sweep
from bench.analyses.sweep import run_sweep
config = EvalConfig(weights="demo", workers=0, batch_size=2, output=sys.argv[2], progress=False)
run_sweep("npr", sys.argv[1], [parse_sweep("jpeg:q=80")], config=config, progress=False)
stop_processes()
"""


@pytest.mark.slow
def test_sweep_under_torchrun_matches_one_process(suite, tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    values = {}
    for nproc in (None, 2):
        output = tmp_path / f"out-{nproc}"
        launcher = [sys.executable] if nproc is None else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
        done = subprocess.run([*launcher, str(script), str(suite), str(output)], env=environment(),
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        sweeps = list((output / "sweeps").glob("*/sweep.json"))
        assert len(sweeps) == 1  # written once, by rank 0
        document = json.loads(sweeps[0].read_text())
        values[nproc] = {level: {d: (v["acc"], v["ap"]) for d, v in per.items()} for level, per in document["values"].items()}
    assert set(values[None]) == {"clean", "jpeg:q=80"}
    assert values[None] == values[2]
