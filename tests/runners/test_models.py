from __future__ import annotations

import numpy as np
import pytest
import torch

from runners import (
    ClassifierWithPreprocess,
    TrialConfig,
    apply_unfrozen_depth,
    build_model,
    count_stages,
    make_optimizer,
    model_data_config,
    stage_groups,
)

FAMILIES = ["test_resnet", "test_efficientnet", "test_vit"]


def _config(backbone: str, depth: int = -1, head: str = "single", head_type: str = "linear") -> TrialConfig:
    return TrialConfig(
        backbone=backbone, unfrozen_depth=depth, head=head, head_type=head_type, head_hidden=16, head_dropout=0.1,
        height=32, width=32, lr=1e-2,
    )


@pytest.mark.parametrize(
    "backbone,stages",
    [
        ("test_resnet", 5), ("test_efficientnet", 6), ("test_vit", 7), ("test_convnext", 5),
        ("efficientnet_b0", 8), ("resnext50_32x4d", 5), ("tiny_vit_21m_224", 5), ("convnext_tiny", 5),
        ("efficientnet_b5", 8),
    ],
)
def test_count_stages_from_timm_metadata(backbone: str, stages: int) -> None:
    assert count_stages(backbone) == stages
    before = count_stages.cache_info().hits
    assert count_stages(backbone) == stages
    assert count_stages.cache_info().hits == before + 1


def test_count_stages_without_group_matcher_uses_feature_info() -> None:
    # MetaFormer (CAFormer) has no group_matcher; stem + 4 stages from feature_info.
    assert count_stages("caformer_s18") == 5


def test_explicit_stages_of_test_resnet() -> None:
    model = build_model(_config("test_resnet", depth=1))
    trainable = {n.split(".")[0] for n, p in model.net.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}
    apply_unfrozen_depth(model, 0)
    assert {n for n, p in model.net.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    apply_unfrozen_depth(model, 5)
    assert all(p.requires_grad for p in model.net.parameters())  # the stem (conv1, bn1) included


@pytest.mark.parametrize("backbone", FAMILIES)
def test_depth_beyond_stages_names_backbone_and_count(backbone: str) -> None:
    n = count_stages(backbone)
    with pytest.raises(ValueError, match=rf"{backbone}.*{n} stages"):
        build_model(_config(backbone, depth=n + 1))


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=gen), torch.arange(n) % 18


@pytest.mark.parametrize("backbone", FAMILIES)
def test_each_depth_trains_exactly_the_last_stages(backbone: str) -> None:
    n = count_stages(backbone)
    for k in [*range(n + 1), -1]:
        torch.manual_seed(0)
        cfg = _config(backbone, depth=k)
        model = build_model(cfg)
        groups = stage_groups(model.net)
        kk = n if k == -1 else k
        expected = set(groups[-1]).union(*groups[n - kk : n])
        trainable = {name for name, p in model.net.named_parameters() if p.requires_grad}
        assert trainable == expected, f"{backbone} k={k}"

        net = ClassifierWithPreprocess(model, *[model_data_config(model)[key] for key in ("mean", "std")])
        before = {name: t.clone() for name, t in model.net.state_dict().items()}
        optimizer = make_optimizer(model, cfg)
        optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert optimized == {id(p) for p in model.parameters() if p.requires_grad}
        net.train()
        frozen_norms = [m for name, m in model.net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
                        and not any(p.requires_grad for p in m.parameters())]
        assert all(not m.training for m in frozen_norms)
        x, y = _batch()
        for _ in range(2):  # two steps: zero-initialised last norms (ResNet) block gradients on the first
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
        after = model.net.state_dict()
        for name, p in model.net.named_parameters():
            if name in trainable:
                assert not torch.equal(before[name], after[name]), f"{backbone} k={k}: {name} did not train"
            else:
                assert p.grad is None
                assert torch.equal(before[name], after[name]), f"{backbone} k={k}: frozen {name} changed"
        for m in frozen_norms:
            prefix = next(name for name, mod in model.net.named_modules() if mod is m)
            assert torch.equal(before[f"{prefix}.running_mean"], after[f"{prefix}.running_mean"])
            assert torch.equal(before[f"{prefix}.running_var"], after[f"{prefix}.running_var"])


def test_trainable_batchnorm_still_updates_stats() -> None:
    model = build_model(_config("test_resnet", depth=1))
    bn = model.net.layer4[0].bn1
    before = bn.running_mean.clone()
    model.train()
    assert bn.training and not model.net.bn1.training
    model(torch.randn(4, 3, 32, 32))
    assert not torch.equal(before, bn.running_mean)


def test_unknown_backbone_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"resnet5O.*resnet50"):
        build_model(_config("resnet5O"))
    with pytest.raises(ValueError, match="Unknown backbone"):
        count_stages("no_such_net_at_all")


def test_preprocess_takes_uint8_nhwc_or_float_nchw() -> None:
    torch.manual_seed(0)
    model = build_model(_config("test_efficientnet")).eval()
    data = model_data_config(model)
    net = ClassifierWithPreprocess(model, data["mean"], data["std"]).eval()
    x, _ = _batch(3)
    with torch.no_grad():
        from_uint8 = net(x)
        from_float = net(x.permute(0, 3, 1, 2).float())
        manual = model((x.permute(0, 3, 1, 2).float() / 255 - torch.tensor(data["mean"]).view(1, 3, 1, 1))
                       / torch.tensor(data["std"]).view(1, 3, 1, 1))
    torch.testing.assert_close(from_uint8, from_float)
    torch.testing.assert_close(from_uint8, manual, rtol=1e-4, atol=1e-5)


def test_model_data_config_from_name_config_and_model() -> None:
    assert model_data_config("tf_efficientnet_lite0")["mean"] == pytest.approx((0.5, 0.5, 0.5))
    cfg = _config("test_resnet")
    by_config, by_model = model_data_config(cfg), model_data_config(build_model(cfg))
    assert by_config["mean"] == by_model["mean"] and by_config["std"] == by_model["std"]
    assert np.allclose(model_data_config("convnext_tiny")["mean"], (0.485, 0.456, 0.406))


@pytest.mark.parametrize("head", ["single", "multi", "ordinal"])
def test_preprocessed_classifier_exports_to_onnx(tmp_path, head: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = build_model(_config("test_efficientnet", head=head)).eval()
    data = model_data_config(model)
    net = ClassifierWithPreprocess(model, data["mean"], data["std"]).eval()
    x, _ = _batch(2)
    path = tmp_path / "model.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["images"], output_names=["scores"],
                      dynamic_axes={"images": {0: "n"}}, dynamo=False)
    session = ort.InferenceSession(str(path))
    x3, _ = _batch(3)  # another batch size through the same graph
    (out,) = session.run(None, {"images": x3.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, net(x3).numpy(), atol=1e-4)


@pytest.mark.parametrize("backbone", [*FAMILIES, "test_convnext"])
@pytest.mark.parametrize("head", ["single", "multi", "ordinal"])
def test_mlp_head_replaces_the_classifier_and_always_trains(backbone: str, head: str) -> None:
    model = build_model(_config(backbone, depth=0, head=head, head_type="mlp"))
    mlp = model.net.get_classifier()
    layers = [type(m) for m in mlp]
    assert layers == [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Linear]
    assert mlp[0].out_features == 16 and mlp[3].p == 0.1 and mlp[4].out_features == {"single": 18, "multi": 8, "ordinal": 52}[head]
    mlp_names = {n for n, p in model.net.named_parameters() if any(p is q for q in mlp.parameters())}
    assert mlp_names <= model.head_names
    assert {n for n, p in model.net.named_parameters() if p.requires_grad} == set(model.head_names)
    x, _ = _batch(4)
    model.train()
    assert model(x.permute(0, 3, 1, 2).float()).shape == (4, 18)
    assert mlp[1].training  # the head's BatchNorm trains with the head at unfrozen_depth 0
    assert int(mlp[1].num_batches_tracked) == 1


def test_drop_rate_reaches_timm() -> None:
    model = build_model(_config("test_efficientnet").replace(drop_rate=0.3))
    assert model.net.drop_rate == 0.3


@pytest.mark.parametrize("head", ["single", "multi", "ordinal"])
def test_mlp_head_round_trips_through_safetensors_and_onnx(tmp_path, head: str) -> None:
    from safetensors.torch import save_file

    from search.deploy.graph import build_checkpoint, build_ensemble, export_onnx, onnx_predict, onnx_session

    torch.manual_seed(0)
    config = _config("test_efficientnet", head=head, head_type="mlp")
    model = build_model(config)
    model.train()
    for _ in range(2):  # non-trivial BatchNorm running statistics in the head
        model(torch.randn(8, 3, 32, 32))
    path = tmp_path / "member.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    member, _, _ = build_checkpoint(config.to_dict(), path)
    data = model_data_config(model)
    original = ClassifierWithPreprocess(model, data["mean"], data["std"]).eval()
    x, _ = _batch(3)
    with torch.no_grad():
        torch.testing.assert_close(member(x), original(x))
    net = build_ensemble([member], [1.0])
    export_onnx(net, tmp_path / "ensemble.onnx", 32, 32)
    got = onnx_predict(onnx_session(tmp_path / "ensemble.onnx"), x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-4)


@pytest.mark.parametrize(
    ("backbone", "stem"), [("tiny_vit_21m_224", ("patch_embed.",)), ("efficientnet_b5", ("conv_stem.", "bn1."))]
)
def test_gpu_backbones_build_at_a_small_input_with_their_depth_groups(backbone: str, stem: tuple[str, ...]) -> None:
    # The GPU studies' TinyViT and EfficientNet-B5, random init: any input size, three mlp heads,
    # and exactly the last two stages plus the head train.
    config = TrialConfig(backbone=backbone, pretrained=False, unfrozen_depth=2, head="multi", head_type="mlp",
                         head_hidden=32, height=64, width=48)
    model = build_model(config)
    n = count_stages(backbone)
    groups = stage_groups(model.net)
    assert model.n_stages == n and len(groups) == n + 1 and all(name.startswith(stem) for name in groups[0])
    trainable = {name for name, p in model.net.named_parameters() if p.requires_grad}
    assert trainable == set(groups[-1]).union(*groups[n - 2 : n])
    mlp = {id(p) for p in model.net.get_classifier().parameters()}
    assert {name for name, p in model.net.named_parameters() if id(p) in mlp} <= model.head_names
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 48)).shape == (1, 18)


def test_a_head_registered_in_one_place_is_a_valid_choice_and_builds() -> None:
    from runners.heads import HEADS, Head

    # a throw-away head: 36 logits, the class score the larger of each class's two
    HEADS.add("pairs", Head(name="pairs", outputs=36,
                            class_scores=lambda logits, c: logits.view(-1, 18, 2).amax(2)))
    try:
        model = build_model(_config("test_resnet", head="pairs")).eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            raw, scores = model.net(x), model(x)
        assert raw.shape == (2, 36) and torch.equal(scores, raw.view(2, 18, 2).amax(2))
    finally:
        HEADS.remove("pairs")
    with pytest.raises(ValueError, match=r"head must be one of \['single', 'multi', 'ordinal'\] but got 'pairs'"):
        _config("test_resnet", head="pairs")
