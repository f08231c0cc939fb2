"""Pipeline configuration: profiles, family presets from the registry, validation, overrides."""

import dataclasses

import pytest

import pipeline_config as pc
from trainer.backbones.configs import EFFICIENTNET_INPUT_SIZES
from trainer.families import registry
from trainer.families.attributes.config import AttributesConfig
from trainer.families.brand.config import BrandConfig
from trainer.families.category.config import CategoryConfig


@pytest.mark.parametrize("profile", pc.PROFILES)
def test_profiles_are_valid_and_round_trip(profile):
    config = pc.get_config(profile, workspace="/tmp/w")
    assert config.profile == profile
    base = pc.DATA_PROFILES.get(profile, profile)
    if base == profile:
        assert config.families == registry.family_names()  # every family trains by default
    else:  # a data profile trains the families that have a preset for its data
        assert config.families == tuple(spec.name for spec in registry.family_specs()
                                        if profile in spec.presets)
    for spec in registry.family_specs():
        section = config.family(spec.name)
        assert isinstance(section, spec.config_class)
        # Profiles ask each family for its preset (a data profile falls back to its base's).
        assert section == spec.preset(profile if profile in spec.presets else base)
        assert spec.config_from_dict(dataclasses.asdict(section)) == section, spec.name
    assert config.metadata_path == "/tmp/w/metadata.sqlite"
    assert config.serving_model_dir("category") == "/tmp/w/serving/category"


def test_the_ccp_profile_reads_real_photos_with_pretrained_trunks():
    config = pc.get_config("ccp")
    assert config.data.source == "ccp" and config.families == (
        "category", "attributes", "detector", "dual_encoder")
    assert config.data.resolved_ccp_dir.endswith("/shared/datasets/ccp")
    for family in config.families:
        assert config.family(family).weights == "efficientnet-lite0-imagenet", family
    for family in ("category", "attributes"):
        section = config.family(family)
        assert section.transfer_mode == "hybrid" and section.cached_feature_views > 0
        assert 0 < section.fine_tune_learning_rate < section.learning_rate
    assert config.family("brand") == registry.get("brand").preset("default")
    with pytest.raises(pc.ConfigError, match="data source"):
        pc.DataConfig(source="instagram")


def test_full_profile_runs_efficientnet_at_the_variant_size():
    category = pc.get_config("full").family("category")
    assert category.resolved_backbone_size == EFFICIENTNET_INPUT_SIZES[category.backbone]
    # The default upsamples the stored 96 px crops for the pretrained Lite0.
    default = pc.get_config("default")
    assert default.family("category").resolved_backbone_size > default.transform.stored_size


@pytest.mark.parametrize("kwargs,match", [
    ({"backbone": "b12"}, "backbone"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"dropout": 1.5}, "dropout"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"weights": ""}, "weights"),
    ({"blessing_threshold": 1.5}, "blessing_threshold"),
])
def test_invalid_category_values_fail(kwargs, match):
    with pytest.raises(pc.ConfigError, match=match):
        CategoryConfig(**kwargs)


@pytest.mark.parametrize("cls,kwargs,match", [
    (CategoryConfig, {"transfer_mode": "distill"}, "transfer_mode"),
    (CategoryConfig, {"transfer_mode": "hybrid", "epochs": 5, "frozen_epochs": 5},
     "frozen_epochs"),
    (CategoryConfig, {"imbalance": "smote"}, "imbalance"),
    (BrandConfig, {"max_class_weight": 0.5}, "max_class_weight"),
    (AttributesConfig, {"loss": "focal"}, "loss"),
    (AttributesConfig, {"imbalance": "class_weights"}, "multi-label"),
    (BrandConfig, {"backbone_size": 100}, "multiple of 32"),
])
def test_invalid_family_values_fail(cls, kwargs, match):
    with pytest.raises(pc.ConfigError, match=match):
        cls(**kwargs)


def test_families_override_from_the_command_line():
    config = pc.replace_nested(pc.get_config("smoke"), "families", "category, brand")
    assert config.families == ("category", "brand")
    with pytest.raises(pc.ConfigError, match="families"):
        pc.replace_nested(config, "families", "category,segmenter")
    with pytest.raises(pc.ConfigError, match="twice"):
        pc.replace_nested(config, "families", "brand,brand")


def test_unknown_profile_fails():
    with pytest.raises(pc.ConfigError, match="unknown profile"):
        pc.get_config("huge")


def test_family_overrides_convert_types():
    config = pc.get_config("smoke")
    changed = pc.replace_nested(config, "category.epochs", "4")
    assert changed.family("category").epochs == 4 and config.family("category").epochs == 1
    changed = pc.replace_nested(changed, "category.augmentation.flip", "false")
    assert changed.family("category").augmentation.flip is False
    assert changed.family("brand") == config.family("brand")
    with pytest.raises(pc.ConfigError, match="no field"):
        pc.replace_nested(config, "category.nope", "1")
    with pytest.raises(pc.ConfigError, match="is not a int"):
        pc.replace_nested(config, "category.epochs", "many")
    with pytest.raises(pc.ConfigError, match="epochs"):
        pc.replace_nested(config, "category.epochs", "0")
    with pytest.raises(pc.ConfigError, match="is a family"):
        pc.replace_nested(config, "category", "1")
    with pytest.raises(pc.ConfigError, match="families: category"):
        pc.replace_nested(config, "categroy.epochs", "1")


def test_unknown_family_is_refused():
    with pytest.raises(pc.ConfigError, match="unknown family"):
        pc.get_config("smoke").family("segmenter")


def test_config_is_frozen():
    config = pc.get_config("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.family("category").epochs = 3
    with pytest.raises(TypeError):
        config.family_configs["category"] = None


def test_beam_args_come_from_config():
    beam = pc.BeamConfig(direct_num_workers=2, direct_running_mode="multi_processing")
    assert "--direct_num_workers=2" in beam.args()
    assert "--direct_running_mode=multi_processing" in beam.args()
