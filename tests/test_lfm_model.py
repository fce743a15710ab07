"""The LFM model: structure, regularisers and their statistics, eval-mode equivalences."""

from __future__ import annotations

import pytest
import torch

from lfm import LFM, LFMConfig, RankBasedLinearDropout, random_k_per_channel, top_k_per_channel
from lfm.model import NPRResidual, SlicedNPRResidual


def test_parameter_count_matches_the_official_model():
    model = LFM()
    assert sum(p.numel() for p in model.parameters()) == 725_641
    # the two frozen residual kernels (2 x 3x3x2x2) are counted but not trained
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 725_641 - 72


def test_eval_logits_have_shape_b():
    model = LFM().eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, 64, 64)).shape == (3,)


def test_npr_residual_equals_nearest_interpolation_and_slicing():
    x = torch.randn(2, 3, 10, 14)
    down_up = torch.nn.functional.interpolate(torch.nn.functional.interpolate(x, scale_factor=0.5, mode="nearest"),
                                              scale_factor=2, mode="nearest")
    expected = x - down_up
    assert torch.equal(NPRResidual()(x), expected)
    assert torch.equal(SlicedNPRResidual()(x), expected)


def test_npr_residual_rejects_odd_sizes_clearly():
    with pytest.raises(ValueError, match="even"):
        NPRResidual()(torch.randn(1, 3, 9, 10))


def test_top_k_equals_torch_topk():
    maps = torch.randn(2, 5, 7, 6)
    got = top_k_per_channel(maps, 4)
    assert torch.equal(got, torch.topk(maps.flatten(2), 4, dim=-1).values)
    assert (got[..., :-1] >= got[..., 1:]).all()  # descending


@pytest.mark.parametrize("mode", ["paper", "official"])
def test_rbld_drop_rate_by_rank(mode):
    torch.manual_seed(0)
    k, trials = 16, 20_000
    layer = RankBasedLinearDropout(mode).train()
    ranked = torch.ones(trials, 4, k)
    out = layer(ranked)
    drop_rate = (out == 0).float().mean(dim=(0, 1))
    expected = torch.linspace(0.3, 0.1, k) if mode == "paper" else torch.full((k,), 0.1)
    # 80k Bernoulli draws per rank: standard error < 0.0017, so 0.01 is > 5 sigma
    assert torch.allclose(drop_rate, expected, atol=0.01)
    if mode == "paper":
        assert drop_rate[0] > drop_rate[-1] + 0.15  # the strongest response is dropped most
    # kept values are rescaled so that the expectation is unchanged
    assert torch.allclose(out.mean(dim=(0, 1)), torch.ones(k), atol=0.02)


def test_rbld_is_identity_in_eval():
    layer = RankBasedLinearDropout("paper").eval()
    x = torch.randn(2, 3, 16)
    assert torch.equal(layer(x), x)


def test_random_k_gradients_land_only_on_sampled_positions():
    torch.manual_seed(1)
    maps = torch.randn(2, 3, 5, 5, requires_grad=True)
    sampled = random_k_per_channel(maps, 4)
    sampled.sum().backward()
    flat_grad = maps.grad.flatten(2)
    assert ((flat_grad != 0).sum(-1) == 4).all()  # exactly K positions per channel, without replacement
    values = maps.detach().flatten(2)
    for b in range(2):
        for c in range(3):
            picked = values[b, c][flat_grad[b, c] != 0]
            assert torch.equal(picked.sort(descending=True).values, sampled[b, c].detach())


def test_training_returns_main_and_auxiliary_logits():
    model = LFM().train()
    main, aux = model(torch.randn(2, 3, 64, 64))
    assert main.shape == aux.shape == (2,)
    assert isinstance(LFM(LFMConfig(rks=False)).train()(torch.randn(2, 3, 64, 64)), torch.Tensor)


@pytest.mark.parametrize(
    "config",
    [LFMConfig(), LFMConfig(pooling="gap", rbld="off", rks=False), LFMConfig(pooling="attention", rbld="off", rks=False),
     LFMConfig(input="rgb"), LFMConfig(k=1), LFMConfig(k=64), LFMConfig(rbld="official", rks=False)],
)
def test_every_variant_runs_forward_and_backward(config):
    model = LFM(config).train()
    out = model(torch.randn(2, 3, 96, 96))
    main = out[0] if isinstance(out, tuple) else out
    (main.sum() + (out[1].sum() if isinstance(out, tuple) else 0)).backward()
    assert model.head.weight.grad is not None and model.salience.layer1[0].weight.grad is not None


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="pooling"):
        LFMConfig(pooling="max")
    with pytest.raises(ValueError, match="Random-K"):
        LFMConfig(pooling="gap", rks=True)


def test_top_16_pooling_on_a_crafted_map_and_inside_the_model():
    """K=16, the paper's value, without ../shared: on maps whose values are known permutations the pooled
    vector is each channel's 16 largest values, largest first, channel-major, as torch.topk gives them;
    in the eval-mode model the head sees exactly that vector of the 1x1 reduction's output."""
    generator = torch.Generator().manual_seed(0)
    n = 81  # a 9x9 map
    maps = torch.stack([torch.stack([torch.randperm(n, generator=generator).float() * (c + 1) for c in range(64)])
                        for _ in range(2)]).view(2, 64, 9, 9)
    pooled = top_k_per_channel(maps, 16)
    by_construction = torch.arange(n - 1, n - 17, -1).float()[None, None, :] * torch.arange(1, 65).float()[None, :, None]
    assert torch.equal(pooled, by_construction.expand(2, 64, 16))
    assert torch.equal(pooled, torch.topk(maps.flatten(2), 16, dim=-1).values)

    torch.manual_seed(0)
    model = LFM().eval()
    assert model.config.k == 16
    seen = {}
    model.reduce.register_forward_hook(lambda module, args, out: seen.__setitem__("maps", out))
    model.head.register_forward_hook(lambda module, args, out: seen.__setitem__("features", args[0]))
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 96, 96))
        expected = torch.topk(seen["maps"].flatten(2), 16, dim=-1).values.flatten(1)  # [2, 64 x 16]
        assert expected.shape == (2, 1024)
        assert torch.equal(seen["features"], expected)
        assert torch.allclose(logits, model.head(expected).squeeze(1))
