"""Several Beam workers give what one gives: StatisticsGen and Transform run by LocalDagRunner
on the DirectRunner in one process, then in ``multi_processing`` mode with two worker
processes, on the same span. A known failure of distributed runs is silently dropped or
duplicated records; counts and contents must match exactly (statistics' floating-point sums
may differ in the last bits because the workers add in another order)."""

import dataclasses
import glob
import os

import numpy as np
import pytest

import pipeline_config as pc
from components.catalog_import.spans import SpanWriter
from components.synthetic_catalog import generator

pytestmark = pytest.mark.e2e


def _run(workspace, catalog_root, beam: pc.BeamConfig):
    """The preprocessing pipeline (ImportExampleGen → StatisticsGen, ImportSchemaGen →
    Transform) on ``beam``; returns the config."""
    from tfx import v1 as tfx

    from pipeline.beam_staging import skip_staging_for_local_runners
    from pipeline.pipeline import create_preprocessing_pipeline
    config = dataclasses.replace(pc.get_config("smoke", workspace=str(workspace)), beam=beam)
    config = pc.replace_nested(config, "data.catalog_root", str(catalog_root))
    skip_staging_for_local_runners()
    tfx.orchestration.LocalDagRunner().run(create_preprocessing_pipeline(config))
    return config


def _newest(config, node, output):
    folder = os.path.join(config.pipeline_root, node, output)
    return os.path.join(folder, max(os.listdir(folder), key=int))


def _statistics(config, split):
    from tensorflow_metadata.proto.v0 import statistics_pb2
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    with open(os.path.join(_newest(config, "StatisticsGen", "statistics"), f"Split-{split}",
                           "FeatureStats.pb"), "rb") as handle:
        statistics.ParseFromString(handle.read())
    return statistics.datasets[0]


def _transformed(config, split):
    """Every transformed example, canonically serialized (tf.Example's feature map has no
    fixed order on the wire), sorted."""
    import tensorflow as tf
    files = glob.glob(os.path.join(_newest(config, "Transform", "transformed_examples"),
                                   f"Split-{split}", "*"))
    return sorted(tf.train.Example.FromString(record.numpy()).SerializeToString(
        deterministic=True) for record in tf.data.TFRecordDataset(files,
                                                                  compression_type="GZIP"))


@pytest.fixture(scope="module")
def one_and_two_workers(tmp_path_factory):
    catalog = tmp_path_factory.mktemp("catalog")
    with SpanWriter(str(catalog), num_shards=4) as writer:
        for record in generator.generate(21, 160, 64):
            writer.add(record)
    single = _run(tmp_path_factory.mktemp("single"), catalog, pc.BeamConfig())
    multi = _run(tmp_path_factory.mktemp("multi"), catalog,
                 pc.BeamConfig(direct_num_workers=2, direct_running_mode="multi_processing"))
    return single, multi


@pytest.mark.parametrize("split", ["train", "eval"])
def test_statistics_match(one_and_two_workers, split):
    single, multi = (_statistics(config, split) for config in one_and_two_workers)
    assert single.num_examples == multi.num_examples > 0
    features = lambda d: {f.path.step[-1]: f for f in d.features}  # noqa: E731
    one, two = features(single), features(multi)
    assert set(one) == set(two)
    for name, feature in one.items():
        other = two[name]
        kind = feature.WhichOneof("stats")
        common = lambda f: getattr(f, kind).common_stats  # noqa: E731
        assert common(feature).num_non_missing == common(other).num_non_missing, name
        assert common(feature).tot_num_values == common(other).tot_num_values, name
        if kind == "string_stats":
            counts = lambda f: sorted((b.label, b.sample_count)  # noqa: E731
                                      for b in f.string_stats.rank_histogram.buckets)
            assert counts(feature) == counts(other), name
        elif kind == "num_stats":
            assert np.isclose(feature.num_stats.mean, other.num_stats.mean, rtol=1e-9), name
            assert feature.num_stats.min == other.num_stats.min, name
            assert feature.num_stats.max == other.num_stats.max, name


@pytest.mark.parametrize("split", ["train", "eval"])
def test_transformed_examples_match(one_and_two_workers, split):
    single, multi = (_transformed(config, split) for config in one_and_two_workers)
    assert len(single) == len(multi) > 0
    assert single == multi  # the same records, none dropped or duplicated
    assets = [os.path.join(_newest(config, "Transform", "transform_graph"), "transform_fn",
                            "assets") for config in one_and_two_workers]
    names = sorted(os.listdir(assets[0]))
    assert names and names == sorted(os.listdir(assets[1]))
    for name in names:  # vocabularies: the same values, counted alike
        assert open(os.path.join(assets[0], name), "rb").read() == \
            open(os.path.join(assets[1], name), "rb").read(), name
