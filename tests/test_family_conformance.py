"""The contract every registered family meets, run the same way over each of them (and over a
throw-away family that lives only in the tests, registered below with one line).

On a tiny seeded catalog every family can learn (``learnable_catalog``), one Transform run with
every family's fragment feeds each family's real ``run_fn``; then, per family: training ran and
recorded its curves, the export loads with every declared signature and method name, every
signature answers, the warm-up records replay, the model server serves every signature, the
infra validator accepts the model as the family's probe asks, the offline metrics compute, and
the model learned (its quality metric clearly above the baseline a model ignoring the image
reaches). A new family gets all of this by registering.
"""

import dataclasses
import json
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import learnable_catalog  # noqa: E402
import pipeline_config as pc  # noqa: E402
from schemas import features as F  # noqa: E402
from schemas.serving_api import CLASSIFY_METHOD, REGRESS_METHOD, read_class_names  # noqa: E402
from trainer.families import registry  # noqa: E402
from trainer.families.spec import resolve  # noqa: E402
from toy_families.brightness.spec import SPEC as TOY_SPEC  # noqa: E402

SPECS = registry.family_specs() + (TOY_SPEC,)
# Enough steps for every family to learn the catalog's cues; the rest of the preset is smoke's.
TRAINING = {"epochs": 3, "steps_per_epoch": 25, "batch_size": 16, "early_stopping_patience": 5}
CLEARLY_ABOVE = 0.1


@pytest.fixture(scope="module", autouse=True)
def toy_family_registered():
    registry.register(TOY_SPEC)  # the throw-away family's one registry line
    yield
    registry.unregister(TOY_SPEC)


@pytest.fixture(scope="module")
def config(tmp_path_factory, toy_family_registered):
    workspace = tmp_path_factory.mktemp("conformance")
    config = pc.get_config("smoke", workspace=str(workspace))
    configs = {name: dataclasses.replace(family, **TRAINING)
               for name, family in config.family_configs.items()}
    return dataclasses.replace(config, family_configs=configs,
                               data=dataclasses.replace(config.data,
                                                        catalog_root=str(workspace / "catalog")))


@pytest.fixture(scope="module")
def transformed(config):
    """ImportExampleGen → ImportSchemaGen → Transform with every family's fragment, run by
    LocalDagRunner as the pipeline runs them; returns the artifacts' folders."""
    from tfx import v1 as tfx

    from components.catalog_import.spans import split_input_pattern
    from pipeline.pipeline import PREPROCESSING_FN, transform_custom_config
    learnable_catalog.write(config.catalog_root)
    example_gen = tfx.components.ImportExampleGen(
        input_base=config.catalog_root, input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=split_input_pattern(split))
            for split in ("train", "eval")]))
    schema_gen = tfx.components.ImportSchemaGen(schema_file=F.SCHEMA_PATH)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=transform_custom_config(config, SPECS))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="conformance", pipeline_root=config.pipeline_root,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        components=[example_gen, schema_gen, transform]))

    def newest(node, output):
        folder = os.path.join(config.pipeline_root, node, output)
        return os.path.join(folder, max(os.listdir(folder), key=int))
    examples = newest("Transform", "transformed_examples")
    records = newest("ImportExampleGen", "examples")
    return {"train": [os.path.join(examples, "Split-train", "*")],
            "eval": [os.path.join(examples, "Split-eval", "*")],
            "transform_graph": newest("Transform", "transform_graph"),
            "raw_train": [os.path.join(records, "Split-train", "*")],
            "raw_eval": os.path.join(records, "Split-eval", "*")}


@pytest.fixture(scope="module", params=SPECS, ids=lambda spec: spec.name)
def trained(request, config, transformed, tmp_path_factory):
    """The family's real ``run_fn`` on the transformed catalog (or on the records themselves,
    for a family without a Transform fragment, as the pipeline wires it)."""
    from tfx import v1 as tfx

    from pipeline.pipeline import trainer_custom_config
    spec = request.param
    raw = spec.transform_fragment is None
    out = tmp_path_factory.mktemp(spec.name)
    fn_args = tfx.components.FnArgs(
        train_files=transformed["raw_train" if raw else "train"],
        eval_files=[transformed["raw_eval"]] if raw else transformed["eval"],
        transform_output=None if raw else transformed["transform_graph"],
        serving_model_dir=str(out / "serving"), model_run_dir=str(out / "run"),
        custom_config=trainer_custom_config(config, spec))
    resolve(spec.run_fn)(fn_args)
    return {"spec": spec, "serving_dir": str(out / "serving"), "run_dir": str(out / "run"),
            "raw_eval": transformed["raw_eval"],
            "loaded": tf.saved_model.load(str(out / "serving"))}


@pytest.fixture(scope="module")
def offline(trained):
    """The family's offline metrics of its model on the raw eval records."""
    spec = trained["spec"]
    return resolve(spec.offline_evaluator)(trained["serving_dir"], trained["raw_eval"])


def _records(pattern, count=4):
    from trainer.export.records import read_records
    return read_records(pattern, count)


def _inputs(signature, records):
    from trainer.export.records import probe_inputs
    return {signature.input_name: np.array(probe_inputs(signature.input_kind, records),
                                           dtype=object)}


def test_training_ran_and_recorded_its_curves(trained):
    with open(os.path.join(trained["run_dir"], "history.json")) as handle:
        history = json.load(handle)
    losses = history["metrics"]["loss"]
    assert len(losses) == TRAINING["epochs"] and all(np.isfinite(losses))
    assert history["resumed_at_epoch"] == 0


def test_a_warm_start_loads_the_whole_export_back(trained, transformed, config, tmp_path):
    """A family that declares warm starts, given its own export as TFX's ``base_model``,
    starts from every variable of it (its history names the model) and exports again."""
    from tfx import v1 as tfx

    from pipeline.pipeline import trainer_custom_config
    spec = trained["spec"]
    if not spec.warm_start:
        pytest.skip(f"{spec.name} declares no warm start")
    raw = spec.transform_fragment is None
    warm = dataclasses.replace(config.family(spec.name), warm_start=True, warm_start_epochs=1,
                               steps_per_epoch=3)
    warm_config = dataclasses.replace(config, family_configs={
        **config.family_configs, spec.name: warm})
    fn_args = tfx.components.FnArgs(
        train_files=transformed["raw_train" if raw else "train"],
        eval_files=[transformed["raw_eval"]] if raw else transformed["eval"],
        transform_output=None if raw else transformed["transform_graph"],
        serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"),
        base_model=trained["serving_dir"],
        custom_config=trainer_custom_config(warm_config, spec))
    resolve(spec.run_fn)(fn_args)
    with open(tmp_path / "run" / "history.json") as handle:
        history = json.load(handle)
    assert history.get("warm_started_from") == trained["serving_dir"], history
    assert len(history["metrics"]["loss"]) == 1  # warm_start_epochs
    assert tf.saved_model.load(str(tmp_path / "serving")).signatures


def test_the_export_declares_every_signature_with_its_method_name(trained):
    from serving.model_manager import read_signature_defs
    defs = read_signature_defs(trained["serving_dir"])
    for signature in trained["spec"].signatures:
        assert signature.name in defs, signature.name
        assert defs[signature.name].method_name == signature.method_name, signature.name
        assert signature.input_name in defs[signature.name].inputs, signature.name


def test_every_declared_signature_answers_one_row_per_input(trained):
    model = trained["loaded"]
    records = _records(trained["raw_eval"])
    for signature in trained["spec"].signatures:
        outputs = model.signatures[signature.name](**{
            k: tf.constant(v) for k, v in _inputs(signature, records).items()})
        for name, value in outputs.items():
            value = value.numpy()
            assert value.shape[0] == len(records), (signature.name, name)
            if value.dtype.kind == "f":
                assert np.isfinite(value).all(), (signature.name, name)


def test_the_warmup_records_replay(trained):
    from serving.warmup import replay_warmup
    assert replay_warmup(trained["loaded"], trained["serving_dir"]) > 0


def test_the_model_server_serves_every_signature(trained, tmp_path):
    """``fashion serve``'s server, in-process, over gRPC: Predict, Classify or Regress as each
    signature's method name says."""
    import shutil

    import grpc
    import portpicker
    from tensorflow_serving.apis import (classification_pb2, prediction_service_pb2_grpc,
                                         regression_pb2)

    from serving.client import ServingClient
    from serving.config_files import ModelSpec
    from serving.server import ModelServer, ServerOptions
    name = trained["spec"].name
    shutil.copytree(trained["serving_dir"], tmp_path / name / "1")
    server = ModelServer([ModelSpec(name, str(tmp_path / name))],
                         ServerOptions(grpc_port=portpicker.pick_unused_port(), poll_seconds=0.2))
    server.start()
    records = _records(trained["raw_eval"], 2)
    try:
        with ServingClient(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available(name, 120)
            for signature in trained["spec"].signatures:
                if signature.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
                    continue
                outputs = client.predict(name, _inputs(signature, records), signature.name)
                assert all(np.asarray(v).shape[0] == 2 for v in outputs.values())
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for signature in trained["spec"].signatures:
                if signature.method_name == CLASSIFY_METHOD:
                    request = classification_pb2.ClassificationRequest()
                    call = stub.Classify
                elif signature.method_name == REGRESS_METHOD:
                    request = regression_pb2.RegressionRequest()
                    call = stub.Regress
                else:
                    continue
                request.model_spec.name, request.model_spec.signature_name = name, signature.name
                for record in records:
                    request.input.example_list.examples.add().ParseFromString(record)
                result = call(request, timeout=60).result
                rows = result.classifications if signature.method_name == CLASSIFY_METHOD \
                    else result.regressions
                assert len(rows) == 2
    finally:
        server.stop()


def test_the_infra_validator_accepts_it(trained):
    from components.infra_validator import logic
    probe = trained["spec"].infra_probe
    report = logic.validate(trained["serving_dir"], _records(trained["raw_eval"]),
                            logic.Probe(probe.signature, probe.input_name, probe.input_kind,
                                        probe.check), timeout_seconds=180)
    assert report.blessed, report.reason


def test_the_offline_metrics_compute(trained, offline):
    spec, result = trained["spec"], offline
    assert result["examples"] > 0
    for key in (spec.quality_metric, spec.baseline_metric):
        assert np.isfinite(result[key]), key


def test_it_learns(trained, offline):
    """Clearly above what a model that ignores the image reaches on the same eval records."""
    spec, result = trained["spec"], offline
    assert result[spec.quality_metric] >= result[spec.baseline_metric] + CLEARLY_ABOVE, (
        spec.name, spec.quality_metric, result[spec.quality_metric], spec.baseline_metric,
        result[spec.baseline_metric])


def test_the_class_names_asset_matches_the_served_classes(trained):
    """One class name per line (the learnable catalog's brand "Saint Laurent" has a space):
    the asset that reports and evaluation read names the score columns the model serves."""
    names = read_class_names(trained["serving_dir"])
    if not names:
        pytest.skip(f"{trained['spec'].name} exports no class names")
    model = trained["loaded"]
    records = _records(trained["raw_eval"], 1)
    served = []
    for signature in trained["spec"].signatures:
        outputs = model.signatures[signature.name](**{
            k: tf.constant(v) for k, v in _inputs(signature, records).items()})
        if "classes" in outputs:
            served.append([c.decode() for c in outputs["classes"].numpy()[0]])
    assert served and all(row == names for row in served)
