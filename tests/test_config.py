"""Pipeline configuration: profiles, validation, overrides."""

import dataclasses

import pytest

import pipeline_config as pc


@pytest.mark.parametrize("profile", sorted(pc.PROFILES))
def test_profiles_are_valid_and_round_trip(profile):
    config = pc.get_config(profile, workspace="/tmp/w")
    assert config.profile == profile
    for family, cls in (("category", pc.CategoryConfig), ("attributes", pc.AttributesConfig),
                        ("brand", pc.BrandConfig)):
        section = getattr(config, family)
        assert cls.from_dict(dataclasses.asdict(section)) == section, family
    assert config.metadata_path == "/tmp/w/metadata.sqlite"
    assert config.serving_model_dir("category") == "/tmp/w/serving/category"


def test_full_profile_uses_the_variant_input_size():
    config = pc.get_config("full")
    assert config.category.input_size == pc.EFFICIENTNET_INPUT_SIZES[config.category.backbone]


@pytest.mark.parametrize("kwargs,match", [
    ({"backbone": "b12"}, "backbone"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"dropout": 1.5}, "dropout"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"weights": ""}, "weights"),
])
def test_invalid_category_values_fail(kwargs, match):
    with pytest.raises(pc.ConfigError, match=match):
        pc.CategoryConfig(**kwargs)


@pytest.mark.parametrize("cls,kwargs,match", [
    (pc.CategoryConfig, {"transfer_mode": "distill"}, "transfer_mode"),
    (pc.CategoryConfig, {"transfer_mode": "hybrid", "epochs": 5, "frozen_epochs": 5},
     "frozen_epochs"),
    (pc.CategoryConfig, {"imbalance": "smote"}, "imbalance"),
    (pc.BrandConfig, {"max_class_weight": 0.5}, "max_class_weight"),
    (pc.AttributesConfig, {"loss": "focal"}, "loss"),
    (pc.AttributesConfig, {"imbalance": "class_weights"}, "multi-label"),
    (pc.BrandConfig, {"image_size": 100}, "multiple of 32"),
])
def test_invalid_family_values_fail(cls, kwargs, match):
    with pytest.raises(pc.ConfigError, match=match):
        cls(**kwargs)


def test_families_override_from_the_command_line():
    config = pc.replace_nested(pc.get_config("smoke"), "families", "category, brand")
    assert config.families == ("category", "brand")
    with pytest.raises(pc.ConfigError, match="families"):
        pc.replace_nested(config, "families", "category,detector")


def test_unknown_profile_fails():
    with pytest.raises(pc.ConfigError, match="unknown profile"):
        pc.get_config("huge")


def test_nested_overrides_convert_types():
    config = pc.get_config("smoke")
    changed = pc.replace_nested(config, "category.epochs", "4")
    assert changed.category.epochs == 4 and config.category.epochs == 1
    changed = pc.replace_nested(changed, "category.augmentation.flip", "false")
    assert changed.category.augmentation.flip is False
    with pytest.raises(pc.ConfigError, match="no field"):
        pc.replace_nested(config, "category.nope", "1")
    with pytest.raises(pc.ConfigError, match="is not a int"):
        pc.replace_nested(config, "category.epochs", "many")
    with pytest.raises(pc.ConfigError, match="epochs"):
        pc.replace_nested(config, "category.epochs", "0")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        pc.get_config("smoke").category.epochs = 3


def test_beam_args_come_from_config():
    beam = pc.BeamConfig(direct_num_workers=2, direct_running_mode="multi_processing")
    assert "--direct_num_workers=2" in beam.args()
    assert "--direct_running_mode=multi_processing" in beam.args()
