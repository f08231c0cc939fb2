"""The feature-name constants and vocabularies agree with the curated schemas/schema.pbtxt."""

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from schemas import features as F


@pytest.fixture(scope="module")
def schema():
    with open(F.SCHEMA_PATH) as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


def _constant_keys():
    return {value for name, value in vars(F).items()
            if name.isupper() and isinstance(value, str) and "/" in value
            and not value.startswith("/") and name != "SCHEMA_PATH" and name != "SCHEMA_DIR"}


def test_every_key_constant_is_a_schema_feature_and_back(schema):
    schema_names = {f.name for f in schema.feature}
    assert _constant_keys() == schema_names


def test_closed_vocabularies_match_string_domains(schema):
    domains = {d.name: list(d.value) for d in schema.string_domain}
    assert domains["garment_category"] == list(F.GARMENT_CATEGORIES)
    assert domains["super_category"] == list(F.SUPER_CATEGORIES)
    assert domains["attribute"] == list(F.ATTRIBUTE_VOCABULARY)
    assert domains["image_format"] == list(F.IMAGE_FORMATS)
    by_name = {f.name: f for f in schema.feature}
    assert by_name[F.IMAGE_CLASS_TEXT].domain == "garment_category"
    assert by_name[F.OBJECT_GARMENT_TEXT].domain == "garment_category"
    assert by_name[F.OBJECT_CLASS_TEXT].domain == "super_category"
    assert by_name[F.ATTRIBUTES].domain == "attribute"
    assert by_name[F.OBJECT_CLASS_LABEL].int_domain.max == len(F.SUPER_CATEGORIES)


def test_serving_environment_holds_only_the_image(schema):
    assert set(schema.default_environment) == {"TRAINING", "SERVING"}
    serving = {f.name for f in schema.feature if "SERVING" not in f.not_in_environment}
    assert serving == set(F.SERVING_KEYS)


def test_required_keys_are_required(schema):
    by_name = {f.name: f for f in schema.feature}
    for key in F.OD_API_REQUIRED_KEYS:
        assert by_name[key].presence.min_fraction == 1.0, key
    for key in (F.BRAND, F.CAPTION, F.IMAGE_CLASS_TEXT, F.SEGMENTATION_ENCODED):
        assert by_name[key].presence.min_fraction == 0.0, key


def test_every_garment_has_a_detector_super_category():
    assert set(F.GARMENT_SUPER_CATEGORY.values()) == set(F.SUPER_CATEGORIES)
    assert not set(F.GARMENT_CATEGORIES) & set(F.ACCESSORIES)
    assert F.SUPER_CATEGORY_IDS == {"upper_body": 1, "lower_body": 2, "full_body": 3,
                                    "footwear": 4}


def test_readme_documents_every_key():
    with open(F.SCHEMA_DIR + "/README.md") as handle:
        readme = handle.read()
    missing = [key for key in _constant_keys() if f"`{key}`" not in readme]
    assert not missing
