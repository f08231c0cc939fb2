"""End-to-end: the whole DAG on tiny data, through the `fashion` command line; one concern
per test.

Marked ``e2e`` (a few minutes together on 2 cores); CI runs them with the rest.
"""

import dataclasses
import glob
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import pipeline_config as pc
from components.catalog_import.records import to_example
from components.catalog_import.spans import SpanWriter
from components.evaluation_report.logic import read_verdict
from components.synthetic_catalog import generator
from schemas import features as F
from test_pipeline_construction import expected_nodes
from trainer.families import registry

pytestmark = pytest.mark.e2e

FAMILIES = registry.family_names()


def _fashion(*args, check=True, env=None):
    result = subprocess.run([sys.executable, "-m", "fashion_cli", *args], capture_output=True,
                            text=True, timeout=900, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"fashion {' '.join(args)} failed:\n{result.stderr[-5000:]}")
    return result


def _executions_by_node(metadata_path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(connection)
    found = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.split(".", 1)[1]
        found[node] = [metadata_store_pb2.Execution.State.Name(e.last_known_state)
                       for e in store.get_executions_by_context(context.id)]
    return found


@pytest.fixture(scope="module")
def run_temp_dir(tmp_path_factory):
    """The TMPDIR the smoke run is given, to see what it leaves behind."""
    return tmp_path_factory.mktemp("tmp")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, run_temp_dir):
    workspace = tmp_path_factory.mktemp("workspace")
    result = _fashion("run", "--profile", "smoke", "--workspace", str(workspace), "--json",
                      env={**os.environ, "TMPDIR": str(run_temp_dir)})
    return workspace, json.loads(result.stdout)


def _eval_count(workspace):
    return json.load(open(workspace / "catalog" / "span-1" / "summary.json"))["written"]["eval"]


def test_every_component_ran(smoke_run):
    _, summary = smoke_run
    executions = _executions_by_node(summary["metadata"])
    assert set(executions) == expected_nodes(pc.get_config("smoke"))
    for node, states in executions.items():
        assert "COMPLETE" in states, (node, states)


def test_a_run_leaves_no_tfx_package_copies_in_tmp(smoke_run, run_temp_dir):
    """TFX packages itself (49 MB, never removed) for each Beam component unless the runner is
    local (pipeline.beam_staging)."""
    copies = glob.glob(str(run_temp_dir / "*" / "build" / "tfx"))
    assert not copies, copies
    left = sum(f.stat().st_size for f in run_temp_dir.rglob("*") if f.is_file())
    assert left < 5 * 2**20, f"the run left {left / 2**20:.1f} MB in its TMPDIR"


def test_every_family_pushed_a_tf_serving_version(smoke_run):
    workspace, summary = smoke_run
    for family in FAMILIES:
        pushed = summary["pushed_models"][family]
        assert pushed and os.path.dirname(pushed) == os.path.join(str(workspace), "serving",
                                                                   family)
        assert os.path.basename(pushed).isdigit()  # a TF-Serving version folder
        assert os.path.exists(os.path.join(pushed, "saved_model.pb"))
    models_config = open(summary["models_config"]).read()
    assert all(f'name: "{family}"' in models_config for family in FAMILIES)


def test_every_family_was_blessed_and_infra_validated(smoke_run):
    _, summary = smoke_run
    for family in FAMILIES:
        assert summary["evaluation"][family]["blessed"], family  # smoke thresholds are 0
        infra = summary["infra_validation"][family]
        assert infra["blessed"] and infra["examples"] == 4, (family, infra)


def _evaluated_examples(workspace, family) -> int:
    """The eval examples a family is evaluated on: the records, or the eval split its own
    example source (e.g. the category's garment crops) wrote."""
    own = glob.glob(str(workspace / "pipeline_root" / registry.get(family).node_id("Examples") /
                        "examples" / "*" / "Split-eval" / "*"))
    if not own:
        return _eval_count(workspace)
    return sum(1 for _ in tf.data.TFRecordDataset(own, compression_type="GZIP"))


def test_tfma_counts_every_eval_example_and_weights_the_labelled_ones(smoke_run):
    workspace, summary = smoke_run
    for family in [f for f in FAMILIES if registry.get(f).evaluation.kind == "tfma"]:
        overall = summary["evaluation"][family]["slices"]["overall"]
        expected = _evaluated_examples(workspace, family)
        assert overall["example_count"] == expected > 0, family
        # Every synthetic example is labelled, so all of them carry weight 1.
        assert overall["weighted_example_count"] == expected, family


def test_category_is_evaluated_on_one_crop_per_garment_box(smoke_run):
    workspace, summary = smoke_run
    crops = glob.glob(str(workspace / "pipeline_root" / "CategoryExamples" / "examples" / "*" /
                          "crops.json"))
    stats = json.load(open(crops[0]))["eval"]
    assert stats["records"] == _eval_count(workspace)
    assert stats["crops"] + sum(stats["skipped"].values()) >= stats["records_with_boxes"]
    assert summary["evaluation"]["category"]["slices"]["overall"]["example_count"] == \
        stats["crops"]


def test_category_metrics_come_per_category_and_super_category(smoke_run):
    _, summary = smoke_run
    evaluation = summary["evaluation"]["category"]
    overall = evaluation["slices"]["overall"]
    assert 0.0 <= overall["sparse_categorical_accuracy"] <= overall["top_3_accuracy"] <= \
        overall["top_5_accuracy"] <= 1.0
    assert any(k.startswith("image/class/text=") for k in evaluation["slices"])
    assert any(k.startswith("super_category=") for k in evaluation["slices"])


def test_attribute_metrics_are_masked_and_named_per_attribute(smoke_run):
    _, summary = smoke_run
    attributes = summary["evaluation"]["attributes"]["slices"]["overall"]
    assert summary["evaluation"]["attributes"]["blessing_metric"] == "micro_f1_score"
    for metric in ("micro_f1_score", "micro_binary_accuracy", "exact_match"):
        assert 0.0 <= attributes[metric] <= 1.0, metric
    assert "f1_score[pattern:solid]" in attributes  # one result per attribute, by name


def test_reports_state_their_verdict_and_draw_their_sections(smoke_run):
    _, summary = smoke_run
    for family in FAMILIES:
        folder = os.path.dirname(summary["reports"][f"{family}_evaluation"])
        verdict = read_verdict(folder)
        expected = "BLESSED" if summary["evaluation"][family]["blessed"] else "NOT_BLESSED"
        assert verdict["verdict"] == expected == "BLESSED", family
        assert glob.glob(os.path.join(folder, "section_*_bars.png")), family
    category = os.path.dirname(summary["reports"]["category_evaluation"])
    assert glob.glob(os.path.join(category, "section_*_matrix.png"))
    # The brand family's AttentionReport section is in its evaluation report.
    brand = os.path.dirname(summary["reports"]["brand_evaluation"])
    assert glob.glob(os.path.join(brand, "heatmap_*.png"))
    attention = summary["reports"]["brand_attention_report"]
    assert attention.endswith("index.html") and glob.glob(
        os.path.join(os.path.dirname(attention), "gallery_*.png"))


def test_brand_and_attribute_models_serve_their_extra_outputs(smoke_run):
    _, summary = smoke_run
    image = tf.constant([list(generator.generate(3, 1, 96))[0].encoded])
    brand = tf.saved_model.load(summary["pushed_models"]["brand"])
    attention = brand.signatures["attention"](images=image)
    assert attention["attention"].shape == (1, 4, 4)  # 32 px VGG16: block4 is 4x4
    np.testing.assert_allclose(attention["attention"].numpy().sum(), 1.0, rtol=1e-4)
    tagger = tf.saved_model.load(summary["pushed_models"]["attributes"])
    outputs = tagger.signatures["serving_images"](images=image)
    assert outputs["scores"].shape == (1, len(F.ATTRIBUTE_VOCABULARY))
    assert [c.decode() for c in outputs["classes"].numpy()[0]] == list(F.ATTRIBUTE_VOCABULARY)
    tags = outputs["tags"].numpy()[0]
    for family in F.EXCLUSIVE_ATTRIBUTE_FAMILIES:
        members = [i for i, name in enumerate(F.ATTRIBUTE_VOCABULARY)
                   if name.startswith(family + ":")]
        assert tags[members].sum() <= 1, family


def test_transformed_pixels_are_compact(smoke_run):
    workspace, _ = smoke_run
    raw = sum(os.path.getsize(p) for p in glob.glob(str(workspace / "catalog" / "span-1" /
                                                         "*" / "*")))
    transformed = sum(os.path.getsize(p) for p in glob.glob(
        str(workspace / "pipeline_root" / "Transform" / "transformed_examples" / "*" / "*" /
            "*")))
    assert 0 < transformed < raw  # 32 px PNGs, not float32 pixels


def test_pushed_model_answers_examples_and_image_bytes(smoke_run):
    workspace, summary = smoke_run
    model = tf.saved_model.load(summary["pushed_models"]["category"])
    assert {"serving_default", "serving_images", "classify", "transform_features"} <= set(
        model.signatures)
    records = list(generator.generate(99, 2, 96))
    examples = tf.constant([to_example(r).SerializeToString() for r in records])
    by_example = model.signatures["serving_default"](examples=examples)
    by_bytes = model.signatures["serving_images"](images=tf.constant([r.encoded
                                                                       for r in records]))
    scores = by_example["scores"].numpy()
    assert scores.shape[0] == 2 and scores.shape[1] >= 2
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(by_bytes["scores"].numpy(), scores, rtol=1e-4, atol=1e-6)
    names = [c.decode() for c in by_example["classes"].numpy()[0]]
    assert set(names) <= set(F.GARMENT_CATEGORIES)
    assert by_example["top_class"].numpy()[0].decode() == names[int(np.argmax(scores[0]))]
    png = io.BytesIO()
    Image.open(io.BytesIO(records[0].encoded)).convert("L").save(png, format="PNG")
    gray = model.signatures["serving_images"](images=tf.constant([png.getvalue()]))
    assert gray["scores"].shape == (1, scores.shape[1])
    with pytest.raises(tf.errors.InvalidArgumentError):
        model.signatures["serving_images"](images=tf.constant([b"not an image"]))


def test_pushed_model_carries_tf_serving_warmup_requests(smoke_run):
    from tensorflow_serving.apis import prediction_log_pb2
    _, summary = smoke_run
    pushed = summary["pushed_models"]["category"]
    path = os.path.join(pushed, "assets.extra", "tf_serving_warmup_requests")
    model = tf.saved_model.load(pushed)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
    # 3 eval images x (serving_default, serving_images, classify)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log",
                                                            "classify_log"] * 3
    from serving.warmup import replay_warmup
    assert replay_warmup(model, pushed) == 9
    for log in logs:
        if log.HasField("classify_log"):
            request = log.classify_log.request
            assert (request.model_spec.name, request.model_spec.signature_name) == (
                "category", "classify")
            continue
        request = log.predict_log.request
        assert request.model_spec.name == "category"
        signature = model.signatures[request.model_spec.signature_name]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        assert outputs["scores"].shape[0] == 1


def test_evaluate_command_reports_metrics(smoke_run):
    workspace, summary = smoke_run
    data = str(workspace / "catalog" / "span-1" / "eval" / "*")
    result = json.loads(_fashion("evaluate", "--family", "category", "--model",
                                 str(workspace / "serving" / "category"), "--data", data,
                                 "--json").stdout)
    eval_count = json.load(open(workspace / "catalog" / "span-1" / "summary.json"))[
        "written"]["eval"]
    assert result["examples"] == eval_count
    assert 0.0 <= result["accuracy"] <= result["top_3_accuracy"] <= 1.0
    # Labels the model never saw in training count as misses but have no confusion-matrix row.
    assert sum(sum(row) for row in result["confusion_matrix"]["rows_true_columns_predicted"]) \
        == eval_count - result["unknown_labels"]
    brand = json.loads(_fashion("evaluate", "--family", "brand", "--model",
                                str(workspace / "serving" / "brand"), "--data", data,
                                "--json").stdout)
    assert brand["examples"] == eval_count and 0.0 <= brand["accuracy"] <= 1.0
    assert set(brand["per_class"]) <= {b.name for b in generator.BRANDS}
    tags = json.loads(_fashion("evaluate", "--family", "attributes", "--model",
                               str(workspace / "serving" / "attributes"), "--data", data,
                               "--json").stdout)
    assert tags["examples"] == eval_count
    assert 0.0 <= tags["exact_match"] <= tags["binary_accuracy"] <= 1.0
    assert set(tags["per_attribute"]) <= set(F.ATTRIBUTE_VOCABULARY)
    items = json.loads(_fashion("evaluate", "--family", "attributes", "--model",
                                str(workspace / "serving" / "attributes"), "--data", data,
                                "--attribute-families", "item", "--json").stdout)
    assert items["attribute_families"] == ["item"]
    assert all(name.startswith("item:") for name in items["per_attribute"])


def test_evaluate_command_reports_the_detectors_coco_metrics(smoke_run):
    workspace, _ = smoke_run
    data = str(workspace / "catalog" / "span-1" / "eval" / "*")
    result = json.loads(_fashion("evaluate", "--family", "detector", "--model",
                                 str(workspace / "serving" / "detector"), "--data", data,
                                 "--json").stdout)
    assert result["examples"] + result["skipped_without_boxes"] == _eval_count(workspace)
    for key in ("mAP", "mAP_50", "mAP_75", "mAP_small", "mAP_medium", "mAP_large", "AR_1",
                "AR_10", "AR_100", "prior_boxes_mAP"):
        assert 0.0 <= result[key] <= 1.0, key


def test_the_detectors_report_shows_coco_metrics_and_a_gallery(smoke_run):
    _, summary = smoke_run
    report = open(summary["reports"]["detector_evaluation"]).read()
    assert "mAP_50" in report and "AR_100" in report and "prior_boxes_mAP" in report
    assert report.count("data:image/png;base64,") >= 4  # the eval gallery, embedded


def test_the_garments_composite_is_pushed_and_answers_per_detection(smoke_run, tmp_path):
    """detect → crop → classify, served: `fashion predict` on the composite lists each
    detection with its garment category and attributes, and draws them."""
    import shutil

    import portpicker

    from serving.config_files import ModelSpec
    from serving.server import ModelServer, ServerOptions
    from trainer.export.records import read_record_images
    workspace, summary = smoke_run
    pushed = summary["pushed_models"]["garments"]
    assert pushed and 'name: "garments"' in open(summary["models_config"]).read()
    shutil.copytree(pushed, tmp_path / "garments" / "1")
    photos = tmp_path / "photos"  # a folder of images, as a user has them
    photos.mkdir()
    for name, image in read_record_images(
            str(workspace / "catalog" / "span-1" / "eval" / "*"), 3):
        (photos / f"{name}.jpg").write_bytes(image)
    server = ModelServer([ModelSpec("garments", str(tmp_path / "garments"))],
                         ServerOptions(grpc_port=portpicker.pick_unused_port(), poll_seconds=0.2))
    server.start()
    try:
        answer = json.loads(_fashion(
            "predict", str(photos), "--server", f"127.0.0.1:{server.grpc_port}", "--model",
            "garments", "--wait", "120", "--min-score", "0", "--batch-size", "2",
            "--draw", str(tmp_path / "drawn"), "--output", str(tmp_path / "answers"),
            "--json").stdout)
    finally:
        server.stop()
    assert len(answer["predictions"]) == 3
    written = json.load(open(tmp_path / "answers" / "summary.json"))
    assert written["images"] == 3 and len(written["answers"]) == 3
    assert json.load(open(tmp_path / "answers" / written["answers"][0])) == answer[
        "predictions"][0]
    first = answer["predictions"][0]
    assert first["detections"], first
    for detection in first["detections"]:
        assert detection["class"] in F.SUPER_CATEGORIES and len(detection["box"]) == 4
        assert len(detection["garment_categories"]) == 3 and "garment_attributes" in detection
    classified = [d for d in first["detections"] if d["garment_categories"][0]]
    assert all(set(d["garment_categories"]) <= set(F.GARMENT_CATEGORIES) for d in classified)
    assert first["brand"] in {b.name for b in generator.BRANDS}  # of the whole image
    assert len(os.listdir(tmp_path / "drawn")) == 3


def test_the_dual_encoder_indexes_the_catalog_and_answers_searches(smoke_run, tmp_path):
    """The pushed dual encoder carries the catalog index its CatalogIndexer built; `fashion
    serve` answers a text search over REST with catalog items, and `fashion evaluate` prints
    its zero-shot and retrieval metrics beside their baselines."""
    import shutil

    import portpicker

    from schemas import catalog_index
    from serving.config_files import ModelSpec
    from serving.server import ModelServer, ServerOptions
    workspace, summary = smoke_run
    pushed = summary["pushed_models"]["dual_encoder"]
    index = catalog_index.CatalogIndex(catalog_index.index_dir(pushed))
    catalog = _eval_count(workspace) + json.load(open(
        workspace / "catalog" / "span-1" / "summary.json"))["written"]["train"]
    assert len(index) == catalog and index.manifest["recall_at_10_vs_exact"] >= 0.9
    shutil.copytree(pushed, tmp_path / "dual_encoder" / "1")
    server = ModelServer([ModelSpec("dual_encoder", str(tmp_path / "dual_encoder"))],
                         ServerOptions(grpc_port=portpicker.pick_unused_port(),
                                       rest_port=portpicker.pick_unused_port(),
                                       poll_seconds=0.2))
    server.start()
    try:
        answer = json.loads(_fashion(
            "search", "--server", f"127.0.0.1:{server.rest_port}", "--text",
            "a red dress", "-k", "5", "--wait", "120", "--draw", str(tmp_path / "sheet.png"),
            "--json").stdout)
    finally:
        server.stop()
    assert answer["model_spec"] == {"name": "dual_encoder", "version": "1"}
    assert len(answer["results"]) == 5
    assert all(r["id"].startswith("synthetic-") and "#" in r["uri"]
               for r in answer["results"])
    assert os.path.getsize(tmp_path / "sheet.png") > 0
    data = str(workspace / "catalog" / "span-1" / "eval" / "*")
    metrics = json.loads(_fashion("evaluate", "--family", "dual_encoder", "--model",
                                  str(workspace / "serving" / "dual_encoder"), "--data", data,
                                  "--json").stdout)
    for key in ("zero_shot_accuracy", "majority_class_accuracy", "text_to_image_recall_at_5",
                "chance_recall_at_5", "image_to_text_mrr"):
        assert 0.0 <= metrics[key] <= 1.0, key

def test_schema_anomaly_blocks_training_and_pushing(tmp_path):
    catalog = tmp_path / "catalog"
    with SpanWriter(str(catalog), num_shards=1) as writer:
        for record in generator.generate(5, 24, 64):
            example = to_example(record)
            if record.source_id.endswith("3"):
                example.features.feature[F.IMAGE_CLASS_TEXT].bytes_list.value[0] = b"spacesuit"
            writer.add_serialized(record.source_id, example.SerializeToString(), True)
    result = _fashion("run", "--profile", "smoke", "--workspace", str(tmp_path), check=False)
    assert result.returncode == 3
    assert "the run stopped: data violates the curated schema" in result.stderr
    assert "image/class/text" in result.stderr and "Traceback" not in result.stderr
    executions = _executions_by_node(str(tmp_path / "metadata.sqlite"))
    assert "COMPLETE" in executions["ExampleValidator"]
    assert "FAILED" in executions["AnomalyGate"]
    for node in ("Transform", "CategoryTrainer", "CategoryEvaluator", "CategoryPusher"):
        assert "COMPLETE" not in executions.get(node, []), node
    assert not glob.glob(str(tmp_path / "serving" / "category" / "*"))


def test_cli_help_for_every_subcommand():
    for command in ("generate", "convert", "run", "compile", "serve", "predict", "evaluate",
                    "weights"):
        result = _fashion(command, "--help")
        assert "usage: fashion " + command in result.stdout


def test_generate_command_writes_a_span(tmp_path):
    result = _fashion("generate", "--output", str(tmp_path), "--num-images", "12",
                      "--image-size", "64", "--json")
    summary = json.loads(result.stdout)
    assert summary["span"] == 1 and sum(summary["written"].values()) == 12
    assert summary["rejected"] == 0


@pytest.mark.shared_data
def test_pipeline_runs_on_real_ccp_photos(ccp_dir, tmp_path):
    """Real street photos pass the curated schema and the whole DAG (smoke-sized training)."""
    catalog = tmp_path / "catalog"
    converted = json.loads(_fashion("convert", "ccp", "--source", str(ccp_dir), "--output",
                                    str(catalog), "--limit", "240", "--json").stdout)
    assert converted["ccp"]["pixel_with_boxes"] >= 0.95 * converted["ccp"]["pixel"]
    # CCP has category and attribute tags but no brands: the brand family is left out.
    summary = json.loads(_fashion("run", "--profile", "smoke", "--workspace", str(tmp_path),
                                  "--set", f"data.catalog_root={catalog}",
                                  "--set", "families=category,attributes", "--json").stdout)
    executions = _executions_by_node(summary["metadata"])
    assert all("COMPLETE" in states for states in executions.values()), executions
    assert not any(node.startswith("Brand") for node in executions)
    assert summary["pushed_models"]["category"] and summary["pushed_models"]["attributes"]
    # The category is evaluated on one crop per garment box of the eval photos, every crop
    # labelled with its garment.
    overall = summary["evaluation"]["category"]["slices"]["overall"]
    crops = _evaluated_examples(tmp_path, "category")
    assert crops > converted["written"]["eval"]  # several garments per photo
    assert overall["example_count"] == overall["weighted_example_count"] == crops
    # Photos without an annotated attribute family are evaluated but weigh nothing.
    overall = summary["evaluation"]["attributes"]["slices"]["overall"]
    assert overall["example_count"] == converted["written"]["eval"]
    assert overall["weighted_example_count"] == _labelled_examples(
        str(catalog / "span-1" / "eval" / "*"), F.ATTRIBUTES)


def _labelled_examples(pattern, feature):
    count = 0
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)):
        example = tf.train.Example.FromString(record.numpy())
        count += bool(example.features.feature[feature].bytes_list.value)
    return count


def _get_json(url, data=None, timeout=10):
    import urllib.request
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_served_model_answers_alike_over_rest_and_grpc(smoke_run, tmp_path):
    """fashion serve on the pushed model: REST predict on image bytes and gRPC Predict on a
    tf.Example give the same scores. (Swapping in a new version under load, with answers that
    differ, is tested in test_model_server.)"""
    import base64
    import shutil
    import signal
    import time

    import portpicker
    _, summary = smoke_run
    base = tmp_path / "category"
    shutil.copytree(summary["pushed_models"]["category"], base / "1")
    port, grpc_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fashion_cli", "serve", "--model_name=category",
         f"--model_base_path={base}", f"--rest_api_port={port}", f"--port={grpc_port}"],
        stderr=subprocess.PIPE, text=True)
    root = f"http://127.0.0.1:{port}/v1/models/category"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status = _get_json(root)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        record = list(generator.generate(42, 1, 96))[0]
        body = json.dumps({"signature_name": "serving_images",
                           "instances": [{"b64": base64.b64encode(record.encoded).decode()}]})
        answer = _get_json(root + ":predict", body.encode())["predictions"][0]
        assert answer["top_class"] in answer["classes"]
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "category"
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(
            [to_example(record).SerializeToString()]))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"])[0],
                                   answer["scores"], rtol=1e-4, atol=1e-6)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _encoded(image, fmt, **save):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _png_bomb(width, height):
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def served_category(smoke_run, tmp_path_factory):
    """``fashion serve`` (batching on) on a copy of the smoke run's pushed model."""
    import shutil
    import signal

    import portpicker
    _, summary = smoke_run
    base = tmp_path_factory.mktemp("served") / "category"
    shutil.copytree(summary["pushed_models"]["category"], base / "1")
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fashion_cli", "serve", "--model_name=category",
         f"--model_base_path={base}", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--enable_batching"], stderr=subprocess.DEVNULL)
    from serving.client import ServingClient
    with ServingClient(f"127.0.0.1:{grpc_port}") as client:
        client.wait_until_available("category", 120)
    yield grpc_port, rest_port
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_served_images_of_every_kind_get_rgb_answers_or_clear_errors(served_category):
    """Over gRPC: odd colour modes decode to RGB; broken and bomb images are INVALID_ARGUMENT
    and the server keeps answering."""
    from serving.client import ServingClient, ServingClientError
    grpc_port, _ = served_category
    photo = Image.open(io.BytesIO(list(generator.generate(5, 1, 96))[0].encoded)).convert("RGB")
    sixteen = Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257))
    good = {"gray": _encoded(photo.convert("L"), "PNG"),
            "rgba": _encoded(photo.convert("RGBA"), "PNG"),
            "cmyk": _encoded(photo.convert("CMYK"), "JPEG"),
            "16-bit": _encoded(sixteen, "PNG"),
            "gif": _encoded(photo.convert("P"), "GIF"),
            "bmp": _encoded(photo, "BMP")}
    jpeg = _encoded(photo, "JPEG")
    bad = {"non-image": b"%PDF-1.4 not an image", "empty": b"",
           "truncated jpeg": jpeg[:len(jpeg) // 2],
           "png bomb": _png_bomb(60_000, 60_000),
           "gif bomb": b"GIF89a\xff\xff\xff\xff\x00\x00\x00;"}
    with ServingClient(f"127.0.0.1:{grpc_port}") as client:
        reference = client.predict_images("category", [jpeg])[0]
        for name, data in good.items():
            answer = client.predict_images("category", [data])[0]
            assert answer["top_class"] and 0.0 < answer["top_score"] <= 1.0, name
        for name, data in bad.items():
            with pytest.raises(ServingClientError) as err:
                client.predict_images("category", [data])
            assert err.value.code == "INVALID_ARGUMENT", (name, err.value)
        assert "decompression bomb" in str(_error(client, bad["png bomb"]))
        # Still up and answering after every bad request.
        assert client.predict_images("category", [jpeg])[0] == reference


def _error(client, data):
    from serving.client import ServingClientError
    try:
        client.predict_images("category", [data])
    except ServingClientError as err:
        return err
    return None


def test_predict_command_over_grpc_and_rest(served_category, tmp_path):
    grpc_port, rest_port = served_category
    image = tmp_path / "look.jpg"
    image.write_bytes(list(generator.generate(11, 1, 96))[0].encoded)
    by_grpc = json.loads(_fashion("predict", str(image), "--server", f"127.0.0.1:{grpc_port}",
                                  "--top-k", "3", "--json").stdout)
    by_rest = json.loads(_fashion("predict", str(image), "--rest", "--server",
                                  f"127.0.0.1:{rest_port}", "--top-k", "3", "--json").stdout)
    (answer,) = by_grpc["predictions"]
    assert answer["image"] == str(image) and len(answer["top_k"]) == 3
    assert answer["top_class"] in F.GARMENT_CATEGORIES
    assert by_rest["predictions"][0]["top_class"] == answer["top_class"]
    assert abs(by_rest["predictions"][0]["top_score"] - answer["top_score"]) < 1e-4
    missing = _fashion("predict", str(tmp_path / "none.jpg"), "--server",
                       f"127.0.0.1:{grpc_port}", check=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unknown = _fashion("predict", str(image), "--model", "nope", "--server",
                       f"127.0.0.1:{grpc_port}", check=False)
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr


def test_a_retrained_model_worse_than_the_blessed_one_is_not_pushed(smoke_run):
    """Second run on the same workspace: the latest blessed category model is the baseline, and
    a candidate that does not beat it by min_improvement (here an impossible +1.0 accuracy) is
    not blessed, so not pushed."""
    import tensorflow_model_analysis as tfma
    workspace, first = smoke_run
    versions = sorted(os.listdir(workspace / "serving" / "category"))
    second = json.loads(_fashion("run", "--profile", "smoke", "--workspace", str(workspace),
                                 "--set", "families=category",
                                 "--set", "category.min_improvement=1.0", "--json").stdout)
    assert second["pushed_models"]["category"] is None
    assert not second["evaluation"]["category"]["blessed"]
    assert sorted(os.listdir(workspace / "serving" / "category")) == versions
    validation = tfma.load_validation_result(second["evaluation"]["category"]["path"])
    failed = [f for failure in validation.metric_validations_per_slice
              for f in failure.failures]
    assert failed and all(f.metric_key.is_diff for f in failed)  # failed on the change only
    report = os.path.dirname(second["reports"]["category_evaluation"])
    verdict = read_verdict(report)
    assert verdict["verdict"] == "NOT_BLESSED" and verdict["failures"]


def _saved_epochs(checkpoints):
    """The epochs BackupAndRestore has saved under the checkpoint folder (a file being written
    is skipped)."""
    for path in checkpoints.glob("*/phase-0/training_metadata.json"):
        try:
            yield json.loads(path.read_text())["epoch"]
        except (ValueError, KeyError, OSError):
            continue


def test_a_killed_run_resumes_at_its_last_finished_epoch(tmp_path):
    """``fashion run`` killed during training, then run again: the new run (new Transform
    output, same data) resumes the training where it stopped, and the checkpoints of the
    finished training and of superseded ones are removed."""
    import signal
    import time
    workspace = tmp_path / "ws"
    args = [sys.executable, "-m", "fashion_cli", "run", "--profile", "smoke", "--workspace",
            str(workspace), "--set", "families=category", "--set", "category.epochs=6",
            "--set", "category.early_stopping_patience=100", "--json"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    checkpoints = workspace / "checkpoints" / "category"
    try:
        deadline = time.monotonic() + 600
        while True:
            if max(_saved_epochs(checkpoints), default=0) >= 2:
                break
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no epoch was checkpointed"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # a crash, not a clean stop
        process.wait()
    (key,) = [p.name for p in checkpoints.iterdir()]
    (checkpoints / "0123456789abcdef").mkdir()  # an older training's leftovers
    summary = json.loads(_fashion("run", *args[4:]).stdout)
    model_runs = sorted(glob.glob(str(workspace / "pipeline_root" / "CategoryTrainer" /
                                      "model_run" / "*")), key=lambda p: int(os.path.basename(p)))
    history = json.load(open(os.path.join(model_runs[-1], "history.json")))
    resumed = history["resumed_at_epoch"]
    assert resumed >= 2, history  # not from scratch
    assert len(history["metrics"]["loss"]) == 6 - resumed  # only the epochs left were run
    assert summary["pushed_models"]["category"]
    assert not checkpoints.exists() or not list(checkpoints.iterdir()), (key, list(
        checkpoints.iterdir()))


def test_runs_lists_each_familys_metrics_blessing_and_pushed_version(smoke_run):
    workspace, summary = smoke_run
    listed = json.loads(_fashion("runs", "--workspace", str(workspace), "--limit", "20",
                                 "--json").stdout)["runs"]
    first = listed[-1]  # the smoke run itself (later tests add runs)
    assert first["spans"] == [1] and not first["failed"]
    for family in FAMILIES:
        result = first["families"][family]
        assert result["blessed"] is True, family
        assert result["pushed_version"] == os.path.basename(summary["pushed_models"][family])
        assert result["metrics"], family
    assert first["component_seconds"]["CategoryTrainer"] > 0


def test_a_new_span_retrains_warm_and_is_served_without_a_failed_request(smoke_run):
    """A second span like the first (no drift) retrains category warm-started from its latest
    blessed model, is compared with it and pushed, while ``fashion serve`` on the serving folder
    keeps answering and picks the new version up."""
    import base64
    import signal
    import threading
    import time

    import portpicker
    workspace, _ = smoke_run
    serving = workspace / "serving" / "category"
    before = sorted(os.listdir(serving), key=int)
    port = portpicker.pick_unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fashion_cli", "serve", "--model_name=category",
         f"--model_base_path={serving}", f"--rest_api_port={port}",
         f"--port={portpicker.pick_unused_port()}", "--file_system_poll_wait_seconds=1"],
        stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}/v1/models/category"
    image = list(generator.generate(99, 1, 96))[0].encoded
    body = json.dumps({"signature_name": "serving_images",
                       "instances": [{"b64": base64.b64encode(image).decode()}]}).encode()
    answered, failed, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                answer = _get_json(root + ":predict", body)
                answered.append(answer["predictions"][0]["top_class"])
            except Exception as err:  # noqa: BLE001 (every failure counts)
                failed.append(repr(err))
            time.sleep(0.05)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get_json(root)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        _fashion("generate", "--output", str(workspace / "catalog"), "--num-images", "60",
                 "--seed", "8", "--image-size", "96")
        start = time.monotonic()
        second = json.loads(_fashion(
            "run", "--profile", "smoke", "--workspace", str(workspace), "--set",
            "families=category", "--set", "category.warm_start=true", "--set",
            "category.min_improvement=-1.0", "--json").stdout)
        seconds = time.monotonic() - start
        pushed = second["pushed_models"]["category"]
        assert pushed and os.path.basename(pushed) not in before
        deadline = time.monotonic() + 60
        while True:  # the server loads the new version by itself
            versions = [s["version"] for s in _get_json(root)["model_version_status"]
                        if s["state"] == "AVAILABLE"]
            if os.path.basename(pushed) in versions:
                break
            assert time.monotonic() < deadline, versions
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        stop.set()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert not failed, failed[:3]
    assert len(answered) > 20
    runs = sorted(glob.glob(str(workspace / "pipeline_root" / "CategoryTrainer" / "model_run"
                                / "*")), key=lambda p: int(os.path.basename(p)))
    history = json.load(open(os.path.join(runs[-1], "history.json")))
    assert history["warm_started_from"].startswith(str(workspace / "pipeline_root" /
                                                       "CategoryTrainer" / "model"))
    assert second["evaluation"]["category"]["blessed"]
    print(f"warm-started category retraining: {seconds:.0f} s, CategoryTrainer "
          f"{second['component_seconds']['CategoryTrainer']} s")


def test_a_drop_that_drifted_stops_the_run_with_a_report(smoke_run, tmp_path):
    """``fashion drop`` of darker photos into the smoke workspace: converted into the next span,
    compared with the last accepted one, the run stops before training (exit 3) naming the
    cause, the report stays in reports/drift/span-2 and no model is pushed. Last in this file:
    it leaves a drifted span in the shared workspace."""
    workspace, _ = smoke_run
    served = {family: sorted(os.listdir(workspace / "serving" / family)) for family in FAMILIES}
    drop = tmp_path / "drop.tfrecord"
    with tf.io.TFRecordWriter(str(drop)) as out:
        for record in generator.generate(11, 60, 96):
            pixels = np.asarray(Image.open(io.BytesIO(record.encoded)), np.float32) * 0.35
            buffer = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
            darker = dataclasses.replace(record, encoded=buffer.getvalue(), format="jpeg")
            out.write(to_example(darker).SerializeToString())
    last = max(int(name.split("-")[1]) for name in os.listdir(workspace / "catalog")
               if name.startswith("span-"))
    result = _fashion("drop", str(drop), "--profile", "smoke", "--workspace", str(workspace),
                      check=False)
    assert result.returncode == 3, result.stderr[-3000:]
    assert f"span-{last + 1} drifted from span-{last}" in result.stderr
    assert "brightness" in result.stderr and "Traceback" not in result.stderr
    report = workspace / "reports" / "drift" / f"span-{last + 1}"
    verdict = json.loads((report / "drift.json").read_text())
    assert "brightness" in verdict["failed"] and (report / "index.html").is_file()
    executions = _executions_by_node(str(workspace / "metadata.sqlite"))
    assert "FAILED" in executions["CatalogDriftValidator"]  # earlier spans passed
    assert served == {family: sorted(os.listdir(workspace / "serving" / family))
                      for family in FAMILIES}

