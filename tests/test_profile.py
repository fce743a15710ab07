"""`bench profile`: counts in the paper's convention, the --json shape, the stored file, errors.

No timing is asserted here: speed is measured by the scripts in benchmarks/, not checked by tests.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bench.analyses.profile import RESULT_KEYS, count_flops, count_macs, count_params
from bench.cli import main
from detectors import get_detector

# Facts measured on the official code (../shared/README.md): parameters and thop MACs at 256x256.
PAPER_FIGURES = {
    "lfm": (725_641, 1.6089e9),
    "npr": (1_437_761, 2.2869e9),
    "cnndetection": (23_510_081, 5.3965e9),
}


@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_params_and_macs_match_the_papers_convention(name):
    params, macs = PAPER_FIGURES[name]
    model = get_detector(name).build()
    counted_params, _ = count_params(model)
    counted_macs = count_macs(model, 256)
    assert counted_params == params
    assert counted_macs == pytest.approx(macs, rel=0.005)
    assert round(counted_macs / 1e9, 4) == macs / 1e9  # and to the 4 digits the reference gives


def lfm_layer_macs(size: int) -> dict[str, int]:
    """LFM's multiply-accumulates at size x size, by hand from the architecture (lfm/model.py's docstring):
    a conv's MACs are Cout x Hout x Wout x Cin x k x k; each 2x2 conv (no padding) shrinks the map by one,
    each 2x2 max-pool halves it (floor)."""
    macs = {
        "residual.down": 3 * (size // 2) ** 2 * 3 * 2 * 2,  # 2x2 stride 2: the top-left pixel of each block
        "residual.up (over its output)": 3 * size**2 * 3 * 2 * 2,
        "residual.up (over its input)": 3 * (size // 2) ** 2 * 3 * 2 * 2,
    }
    side, in_channels = size, 3
    for i, out_channels in enumerate((64, 128, 256, 512), start=1):
        side -= 1
        macs[f"salience.layer{i} conv"] = out_channels * side * side * in_channels * 2 * 2
        macs[f"salience.layer{i} bn"] = 4 * out_channels * side * side  # thop: 4 operations per element
        in_channels = out_channels
        if i < 4:
            side //= 2
    macs["reduce"] = 64 * side * side * 512  # 1x1, bias-free
    macs["head"] = 64 * 16 * 1  # Linear(1024 -> 1)
    return macs


def test_lfm_counts_equal_a_hand_count_from_the_layer_shapes():
    macs = lfm_layer_macs(256)
    convolutions = sum(v for k, v in macs.items() if "conv" in k or k in ("residual.down", "reduce", "head"))
    # thop's convention (the paper's "FLOPs"): convolutions, BatchNorm, the transposed conv over its output
    thop_convention = convolutions + sum(v for k, v in macs.items() if k.endswith(" bn")) + macs[
        "residual.up (over its output)"]
    # torch.utils.flop_counter: 2 per MAC of convolutions (a transposed one over its input) and matmuls only
    flop_counter_convention = 2 * (convolutions + macs["residual.up (over its input)"])
    model = get_detector("lfm").build()
    assert count_macs(model, 256) == thop_convention
    assert count_flops(model, 256) == flop_counter_convention
    # and the figures measured on the official code (../shared/README.md): 1.6089 G and 3.153 GFLOPs
    assert round(thop_convention / 1e9, 4) == 1.6089 and round(flop_counter_convention / 1e9, 3) == 3.153
    # another size moves every term: 128x128
    small = lfm_layer_macs(128)
    assert count_macs(model, 128) == sum(v for k, v in small.items() if "over its input" not in k)


def test_frozen_residual_kernels_are_not_trainable():
    params, trainable = count_params(get_detector("lfm").build())
    assert params - trainable == 2 * 3 * 3 * 2 * 2


def test_transposed_convolution_is_charged_over_its_output():
    # thop 0.1.1's rule, which the paper's LFM figure needs: output elements x in channels x kernel area
    model = nn.Sequential(nn.ConvTranspose2d(3, 5, kernel_size=2, stride=2, bias=False))
    assert count_macs(model, 8) == (5 * 16 * 16) * 3 * 4


def test_counting_leaves_the_model_unchanged():
    model = get_detector("lfm").build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, 64)
    count_flops(model, 64)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(hasattr(m, "total_ops") for m in model.modules())


def quick(*extra: str) -> list[str]:
    """A profile run that takes a second or two: small input, one timed call."""
    return ["profile", "--device", "cpu", "--batch-size", "2", "--input-size", "64", "--warmup", "0",
            "--repeats", "1", *extra]


def test_json_output_has_exactly_the_documented_keys_and_is_stored(tmp_path, capsys):
    assert main(quick("--detector", "lfm,npr", "--output", str(tmp_path), "--json")) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout holds the JSON and nothing else
    assert [r["detector"] for r in printed] == ["lfm", "npr"]
    for result in printed:
        assert set(result) == set(RESULT_KEYS)
        assert result["settings"]["batch_size"] == 2 and result["settings"]["input_size"] == 64
        assert result["latency_ms"] > 0 and result["throughput_img_s"] > 0 and result["peak_memory_mb"] >= 0
        assert result["device"].startswith("cpu") and result["torch_version"] == torch.__version__
        stored = json.loads((tmp_path / "profile" / f"{result['detector']}.json").read_text())
        assert stored == result
    assert printed[0]["params"] == 725_641


def test_results_root_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path))
    assert main(quick("--detector", "lfm")) == 0
    out = capsys.readouterr()
    assert "lfm" in out.out and "725,641" in out.out  # the readable table on stdout
    assert "stored" in out.err  # progress on stderr
    assert (tmp_path / "profile" / "lfm.json").is_file()


def test_unknown_detector_is_a_usage_error_with_suggestions(tmp_path, capsys):
    assert main(quick("--detector", "lfn", "--output", str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert "Did you mean" in err and "lfm" in err
    assert not (tmp_path / "profile").exists()


@pytest.mark.parametrize("size", ["63", "16"])
def test_input_size_the_detector_cannot_take_is_a_usage_error(size, tmp_path, capsys):
    # odd: the NPR residual needs even sizes; 16: too few positions left for Top-K (K=16)
    assert main(quick("--detector", "lfm", "--input-size", size, "--output", str(tmp_path))) == 2
    assert "--input-size" in capsys.readouterr().err
