"""Several Beam workers give what one gives. On the same span, StatisticsGen, Transform and
the TFMA Evaluator run on the DirectRunner in one process, then on two other engines: the
DirectRunner with two worker processes (``multi_processing``), and a local Beam cluster (a job
service and an SDK worker pool in processes of their own, reached through Beam's portability
APIs as Flink or Spark are; :mod:`pipeline.beam_cluster`) with two workers. A known failure of
distributed runs is silently dropped or duplicated records: counts and contents must match
exactly, metrics to floating-point summation order (the workers add in another order)."""

import dataclasses
import glob
import os

import numpy as np
import pytest

import pipeline_config as pc
from components.catalog_import.spans import SpanWriter
from components.synthetic_catalog import generator

pytestmark = pytest.mark.e2e

FAMILY = "brand"  # trained on Transform's output (with its vocabulary), evaluated by TFMA
ENGINES = ("two worker processes", "local Beam cluster")


def _config(workspace, catalog_root, beam: pc.BeamConfig):
    config = dataclasses.replace(pc.get_config("smoke", workspace=str(workspace),
                                               families=(FAMILY,)), beam=beam)
    return pc.replace_nested(config, "data.catalog_root", str(catalog_root))


def _run(workspace, catalog_root, beam: pc.BeamConfig):
    """The preprocessing pipeline (ImportExampleGen → StatisticsGen, ImportSchemaGen →
    Transform) on ``beam``; returns the config."""
    from tfx import v1 as tfx

    from pipeline.beam_staging import skip_staging_for_local_runners
    from pipeline.pipeline import create_preprocessing_pipeline
    config = _config(workspace, catalog_root, beam)
    skip_staging_for_local_runners()
    tfx.orchestration.LocalDagRunner().run(create_preprocessing_pipeline(config))
    return config


def _evaluate(config, examples_uri: str, model_uri: str) -> str:
    """The family's Evaluator (its EvalConfig, on the eval split) of an imported model on
    imported examples, on ``config.beam``; returns the evaluation's folder."""
    from tfx import v1 as tfx

    from pipeline.pipeline import family_evaluator
    from trainer.families import registry
    examples = tfx.dsl.Importer(
        source_uri=examples_uri, artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'}).with_id("Examples")
    model = tfx.dsl.Importer(source_uri=model_uri,
                             artifact_type=tfx.types.standard_artifacts.Model).with_id("Model")
    evaluator = family_evaluator(registry.get(FAMILY), config.family(FAMILY),
                                 examples.outputs["result"], model.outputs["result"],
                                 None).with_id("Evaluator")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="evaluation", pipeline_root=os.path.join(config.workspace_dir, "eval"),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(config.workspace_dir, "eval.sqlite")),
        components=[examples, model, evaluator], beam_pipeline_args=config.beam.args()))
    return _newest_in(os.path.join(config.workspace_dir, "eval", "Evaluator", "evaluation"))


def _newest_in(folder):
    return os.path.join(folder, max(os.listdir(folder), key=int))


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
def runs(tmp_path_factory):
    """``{engine: config}``: the whole pipeline in one process, then the preprocessing
    pipeline and the Evaluator (of that run's model, on its examples) on each other engine."""
    from pipeline import runner
    from pipeline.beam_cluster import LocalBeamCluster
    catalog = tmp_path_factory.mktemp("catalog")
    with SpanWriter(str(catalog), num_shards=4) as writer:
        for record in generator.generate(21, 160, 64):
            writer.add(record)
    single = _config(tmp_path_factory.mktemp("single"), catalog, pc.BeamConfig())
    runner.run(single, log=lambda message: None)
    examples = _newest(single, "ImportExampleGen", "examples")
    model = _newest(single, f"{FAMILY.capitalize()}Trainer", "model")
    found = {"one process": single}
    found[ENGINES[0]] = _run(tmp_path_factory.mktemp("multi"), catalog, pc.BeamConfig(
        direct_num_workers=2, direct_running_mode="multi_processing"))
    with LocalBeamCluster(str(tmp_path_factory.mktemp("cluster-state")), workers=2) as cluster:
        found[ENGINES[1]] = _run(tmp_path_factory.mktemp("cluster"), catalog,
                                 cluster.beam_config())
        for engine in ENGINES:
            _evaluate(found[engine], examples, model)
        worker_log = open(cluster.state()["logs"][1]).read()
    # the cluster's pool started SDK workers of its own
    assert worker_log.count("Starting worker") >= 2, worker_log[-2000:]
    return found


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("split", ["train", "eval"])
def test_statistics_match(runs, engine, split):
    single, multi = (_statistics(runs[name], split) for name in ("one process", engine))
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


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("split", ["train", "eval"])
def test_transformed_examples_match(runs, engine, split):
    pair = [runs["one process"], runs[engine]]
    single, multi = (_transformed(config, split) for config in pair)
    assert len(single) == len(multi) > 0
    assert single == multi  # the same records, none dropped or duplicated
    assets = [os.path.join(_newest(config, "Transform", "transform_graph"), "transform_fn",
                            "assets") for config in pair]
    names = sorted(os.listdir(assets[0]))
    assert names and names == sorted(os.listdir(assets[1]))
    for name in names:  # vocabularies: the same values, counted alike
        assert open(os.path.join(assets[0], name), "rb").read() == \
            open(os.path.join(assets[1], name), "rb").read(), name


def _metrics(evaluation: str) -> dict:
    """``{(slice, metric): value}`` of every slice TFMA wrote."""
    import tensorflow_model_analysis as tfma
    found = {}
    for result in tfma.load_metrics(evaluation):
        key = str(result.slice_key)
        for entry in result.metric_keys_and_values:
            value = entry.value
            kind = value.WhichOneof("type")
            number = (value.double_value.value if kind == "double_value" else
                      value.unknown_type.value if kind == "unknown_type" else None)
            if number is not None:
                found[(key, entry.key.name, entry.key.sub_key.SerializeToString(
                    deterministic=True))] = number
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_evaluation_metrics_match(runs, engine):
    """The same model on the same examples: the pipeline's own Evaluator in one process, and
    the same Evaluator on ``engine``."""
    single = _metrics(_newest(runs["one process"], f"{FAMILY.capitalize()}Evaluator",
                              "evaluation"))
    multi = _metrics(_newest_in(os.path.join(runs[engine].workspace_dir, "eval", "Evaluator",
                                             "evaluation")))
    assert single and set(single) == set(multi)
    counts = [key for key in single if key[1] == "example_count"]
    assert counts and all(single[key] == multi[key] > 0 for key in counts)
    for key, value in single.items():
        assert np.isclose(value, multi[key], rtol=1e-6, atol=1e-9), key
