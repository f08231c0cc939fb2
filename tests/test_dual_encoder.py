"""The dual encoder's parts on tiny inputs: caption normalisation, the vocabulary learned from
captions, the contrastive losses (hand-checked on a 3×3 case), the clipped temperature, the
retrieval metrics against hand counts and a random ranking, the catalog index against exact
search, and a search round trip through the REST server and ``fashion search``."""

import io
import json
import math
import threading

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("keras_hub")
faiss = pytest.importorskip("faiss")

from schemas import catalog_index  # noqa: E402
from trainer.evaluation import retrieval  # noqa: E402
from trainer.families.dual_encoder import captions, config as dual_config  # noqa: E402
from trainer.families.dual_encoder import model as dual  # noqa: E402


def _normalized(*texts):
    return [t.decode() for t in captions.normalize(tf.constant(list(texts))).numpy()]


def test_captions_get_one_canonical_word_per_synonym():
    assert _normalized("A Grey TEE, and striped Trousers!", "a t shirt", "tshirts",
                       "teeth", "a HANDBAG") == [
        "a gray t-shirt and stripes pants", "a t-shirt", "t-shirt", "teeth", "a bag"]
    # Idempotent: a normalised caption (training) and a query normalised again agree.
    once = _normalized("a polka dot jumper")[0]
    assert once == "a dots sweater" and _normalized(once) == [once]


def test_prompts_name_labels_as_captions_do():
    assert captions.prompts("a photo of a {label}", ["t_shirt", "color:red"]) == [
        "a photo of a t shirt", "a photo of a red"]


def test_the_vocabulary_is_learned_from_the_captions():
    vocabulary = dual.learn_vocabulary(["a person wearing a red dress",
                                        "a person wearing blue jeans"] * 10, 100)
    assert vocabulary[:2] == ["[PAD]", "[UNK]"]
    assert {"person", "wearing", "red", "dress", "jeans"} <= set(vocabulary)
    assert "zebra" not in vocabulary
    with pytest.raises(ValueError, match="no captions"):
        dual.learn_vocabulary(["", ""], 100)


LOGITS = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]], np.float32)


def test_the_softmax_loss_by_hand():
    """Distinct captions: the mean of the two directions' cross-entropies on the diagonal."""
    def row_loss(row, i):
        return -(row[i] - math.log(sum(math.exp(v) for v in row)))
    expected = (np.mean([row_loss(LOGITS[i], i) for i in range(3)])
                + np.mean([row_loss(LOGITS.T[i], i) for i in range(3)])) / 2
    assert float(dual.softmax_loss(np.array([0, 1, 2]), LOGITS)) == pytest.approx(expected,
                                                                                  rel=1e-5)
    # Images 0 and 1 share a caption: each has two right texts, half the target on each.
    shared = float(dual.softmax_loss(np.array([7, 7, 2]), LOGITS))
    targets = np.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1.0]])
    log_softmax = LOGITS - np.log(np.exp(LOGITS).sum(axis=1, keepdims=True))
    log_softmax_t = LOGITS.T - np.log(np.exp(LOGITS.T).sum(axis=1, keepdims=True))
    expected = (-(targets * log_softmax).sum(axis=1).mean()
                - (targets * log_softmax_t).sum(axis=1).mean()) / 2
    assert shared == pytest.approx(expected, rel=1e-5)


def test_the_sigmoid_loss_by_hand():
    def log_sigmoid(x):
        return -math.log1p(math.exp(-x))
    expected = -np.mean([sum(log_sigmoid((1 if i == j else -1) * LOGITS[i, j])
                             for j in range(3)) for i in range(3)])
    assert float(dual.sigmoid_loss(np.array([0, 1, 2]), LOGITS)) == pytest.approx(expected,
                                                                                  rel=1e-5)
    # A shared caption turns the off-diagonal pair positive.
    assert float(dual.sigmoid_loss(np.array([7, 7, 2]), LOGITS)) == pytest.approx(
        expected + 2 * (-log_sigmoid(0.0) + log_sigmoid(-0.0)), rel=1e-5)


def test_the_temperature_starts_at_007_and_the_scale_is_clipped_at_100():
    layer = dual.ContrastiveLogits(initial_temperature=0.07, max_scale=100.0)
    image = tf.constant([[1.0, 0.0]])
    text = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(layer(image, text).numpy(), [[1 / 0.07, 0.0]], rtol=1e-5)
    layer.log_scale.assign(math.log(1000.0))
    assert float(layer.scale()) == pytest.approx(100.0)
    np.testing.assert_allclose(layer(image, text).numpy(), [[100.0, 0.0]], rtol=1e-5)
    sigmoid = dual.ContrastiveLogits(initial_bias=-10.0, learn_bias=True)
    assert float(sigmoid.bias) == -10.0 and sigmoid.bias.trainable


def test_a_frozen_text_tower_needs_pretrained_weights():
    from pipeline_config import ConfigError
    with pytest.raises(ConfigError, match="must train"):
        dual_config.DualEncoderConfig(train_text_tower=False)
    dual_config.DualEncoderConfig(train_text_tower=False, text_encoder_dir="/models/text")


def test_the_text_tower_embeds_unit_vectors():
    config = dual_config.smoke()
    tower = dual.text_tower(config, dual.learn_vocabulary(["a red dress", "blue jeans"] * 5,
                                                          60))
    out = tower(tf.constant(["a red dress", "never seen words", ""]), training=False).numpy()
    assert out.shape == (3, config.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(out[:2], axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(out[2]).all()  # an empty text has no token to average: no NaN


def test_recall_and_mrr_by_hand():
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.4, 0.6, 0.1]])
    relevant = np.eye(3, dtype=bool)
    # Ranks of the right item: 1, 2 (0.8 ahead of 0.3), 3 (0.1 last).
    assert retrieval.ranks_of_first_relevant(similarity, relevant).tolist() == [1, 2, 3]
    result = retrieval.recall_and_mrr(similarity, relevant, (1, 2))
    assert result == {"recall_at_1": pytest.approx(1 / 3), "recall_at_2": pytest.approx(2 / 3),
                      "mrr": pytest.approx((1 + 1 / 2 + 1 / 3) / 3)}
    # A constant model gains nothing from ties: every item ties, the relevant one ranks last.
    assert retrieval.ranks_of_first_relevant(np.zeros((3, 3)), relevant).tolist() == [3, 3, 3]
    # Relevant items tying with each other (the same caption twice) do not push a query down.
    twins = np.array([[0.9, 0.9, 0.1]])
    assert retrieval.ranks_of_first_relevant(twins, np.array([[True, True, False]])).tolist() \
        == [1]


def test_chance_retrieval_matches_random_rankings():
    rng = np.random.default_rng(0)
    relevant = rng.random((40, 40)) < 0.08
    relevant[np.arange(40), np.arange(40)] = True
    exact = retrieval.chance_recall_and_mrr(relevant, (1, 5))
    sampled = [retrieval.recall_and_mrr(rng.random((40, 40)), relevant, (1, 5))
               for _ in range(300)]
    for key in exact:
        assert exact[key] == pytest.approx(np.mean([s[key] for s in sampled]), abs=0.02), key


def _unit(rows, dim, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_hnsw_index_finds_what_exact_search_finds(tmp_path):
    embeddings, queries = _unit(3000, 32), _unit(100, 32, seed=1)
    flat = catalog_index.build(embeddings, "flat")
    assert catalog_index.recall_against_exact(flat, embeddings, queries, 10) == 1.0
    hnsw = catalog_index.build(embeddings, "hnsw", hnsw_neighbours=32, ef_search=128)
    assert catalog_index.recall_against_exact(hnsw, embeddings, queries, 10) >= 0.95
    items = [{"id": f"item-{i}", "uri": f"file#{i}"} for i in range(len(embeddings))]
    folder = catalog_index.write(str(tmp_path / "index"), hnsw, items, {"kind": "hnsw"})
    loaded = catalog_index.CatalogIndex(folder)
    assert len(loaded) == 3000 and loaded.manifest["items"] == 3000
    found = loaded.search(embeddings[42], k=3)[0]
    assert found[0]["id"] == "item-42" and found[0]["score"] == pytest.approx(1.0, abs=1e-5)
    scores, ids = catalog_index.exact_search(embeddings, queries[:1], 5)
    assert [r["id"] for r in catalog_index.CatalogIndex(catalog_index.write(
        str(tmp_path / "flat"), flat, items, {})).search(queries[0], 5)[0]] == [
        f"item-{i}" for i in ids[0]]
    with pytest.raises(ValueError, match="dimensions"):
        loaded.search(np.zeros((1, 8)), 3)
    with pytest.raises(ValueError, match="holds"):
        catalog_index.write(str(tmp_path / "bad"), hnsw, items[:5], {})


class _ColourEmbedder(tf.Module):
    """An embedding model whose embedding is an image's mean colour (unit length), and whose
    text embedding is the colour a word names: enough for a search to have a right answer."""

    COLOURS = {"red": [1.0, 0.1, 0.1], "green": [0.1, 1.0, 0.1], "blue": [0.1, 0.1, 1.0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def images(self, images):
        def colour(encoded):
            pixels = tf.cast(tf.io.decode_png(encoded, channels=3), tf.float32)
            return tf.reduce_mean(pixels, axis=[0, 1]) + 1.0
        return {"embedding": tf.math.l2_normalize(
            tf.map_fn(colour, images, fn_output_signature=tf.float32), axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def examples(self, examples):
        parsed = tf.io.parse_example(examples, {
            "image/encoded": tf.io.FixedLenFeature([], tf.string)})
        return self.images(parsed["image/encoded"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def text(self, text):
        rows = [tf.where(tf.strings.regex_full_match(text, f".*{name}.*")[:, None],
                         tf.constant([value]), 0.0) for name, value in self.COLOURS.items()]
        return {"embedding": tf.math.l2_normalize(tf.add_n(rows) + 1e-3, axis=1)}


def _png(colour):
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    """A served colour embedder (version 1) whose catalog of 30 records is indexed by the
    pipeline's indexing logic."""
    from components.catalog_index import logic
    from components.catalog_import.records import FashionRecord, to_example
    from serving import model_manager
    root = tmp_path_factory.mktemp("search")
    module = _ColourEmbedder()
    version = root / "model" / "1"
    tf.saved_model.save(module, str(version), signatures={
        "serving_default": module.examples.get_concrete_function(),
        "serving_images": module.images.get_concrete_function(),
        "embed_text": module.text.get_concrete_function()})
    colours = {"red": (220, 20, 20), "green": (20, 200, 30), "blue": (30, 30, 210)}
    path = root / "catalog.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(30):
            name = list(colours)[index % 3]
            writer.write(to_example(FashionRecord(
                source_id=f"item-{index:02d}", encoded=_png(colours[name]), format="png",
                height=8, width=8, caption=f"a {name} dress")).SerializeToString())
    manifest = logic.build_index(str(version), [str(path)],
                                 catalog_index.index_dir(str(version)), "serving_default",
                                 "examples", "embedding", "flat")
    assert manifest["items"] == 30 and manifest["recall_at_10_vs_exact"] == 1.0
    model = model_manager.ServedModel("looks", str(root / "model"))
    model.poll()
    return {"models": {"looks": model}, "model_dir": str(root / "model"),
            "catalog": str(path)}


def test_search_round_trip_through_the_server(searchable):
    from serving import rest
    from serving.client import ServingClient, ServingClientError
    from serving.inference import InferenceService
    server = rest.make_server(rest.RestApi(InferenceService(searchable["models"])), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = f"127.0.0.1:{server.server_address[1]}"
        with ServingClient(target, "rest") as client:
            answer = client.search("looks", text="something green", k=5)
            assert answer["model_spec"] == {"name": "looks", "version": "1"}
            assert len(answer["results"]) == 5
            assert all("green" in r["caption"] for r in answer["results"])
            # Each item's URI is its record: the catalog file and the record's position.
            assert all(r["uri"] == f"{searchable['catalog']}#{int(r['id'][-2:])}"
                       for r in answer["results"])
            # A signature's only output comes back unnamed over REST; the client names it.
            embedded = client.predict("looks", {"text": np.array([b"red"], dtype=object)},
                                      "embed_text")
            assert list(embedded) == ["embedding"] and embedded["embedding"].shape == (1, 3)
            by_image = client.search("looks", image=_png((25, 35, 205)), k=3, version=1)
            assert all("blue" in r["caption"] for r in by_image["results"])
            for body, code in (({"k": 3}, 400), ({"text": "red", "k": 0}, 400),
                               ({"text": "red", "image": {"b64": "AAAA"}}, 400),
                               ({"image": "not b64 object"}, 400)):
                with pytest.raises(ServingClientError) as failure:
                    client._rest("/v1/models/looks:search", body)
                assert failure.value.code == code, body
            with pytest.raises(ServingClientError) as failure:
                client.search("nope", text="red")
            assert failure.value.code == 404
        with ServingClient(target, "grpc") as grpc_client, pytest.raises(ValueError,
                                                                         match="REST"):
            grpc_client.search("looks", text="red")
    finally:
        server.shutdown()


def test_a_version_without_an_index_is_not_found(searchable, tmp_path):
    from serving import model_manager, rest
    from serving.inference import InferenceService
    import shutil
    shutil.copytree(searchable["model_dir"], tmp_path / "model")
    shutil.rmtree(catalog_index.index_dir(str(tmp_path / "model" / "1")))
    model = model_manager.ServedModel("bare", str(tmp_path / "model"))
    model.poll()
    api = rest.RestApi(InferenceService({"bare": model}))
    status, _, payload = api.handle("POST", "/v1/models/bare:search",
                                    json.dumps({"text": "red"}).encode())
    assert status == 404 and "no catalog index" in json.loads(payload)["error"]


def test_fashion_search_locally_and_draws_a_contact_sheet(searchable, tmp_path, capsys):
    import fashion_cli
    sheet = tmp_path / "sheet.png"
    assert fashion_cli.main(["search", "--local", searchable["model_dir"], "--text",
                             "a red one", "-k", "4", "--draw", str(sheet), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [r["caption"] for r in answer["results"]] == ["a red dress"] * 4
    from PIL import Image
    assert Image.open(sheet).size[0] >= 4 * 100
    assert fashion_cli.main(["search", "--local", searchable["model_dir"]]) == 2


def test_a_local_savedmodel_text_encoder_replaces_the_bert(tmp_path):
    """``text_encoder_dir``: a local SavedModel (strings → sentence vectors) is the text tower's
    encoder, frozen when ``train_text_tower`` is off; only the projection trains."""
    class Encoder(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(tf.random.stateless_normal([64, 16], seed=[1, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def encode(self, text):
            words = tf.strings.split(text)
            ids = tf.strings.to_hash_bucket_fast(words, 64)
            return {"pooled_output": tf.reduce_mean(
                tf.gather(self.table, ids).to_tensor(), axis=1)}
    encoder = Encoder()
    tf.saved_model.save(encoder, str(tmp_path / "text"),
                        signatures={"serving_default": encoder.encode.get_concrete_function()})
    config = dual_config.DualEncoderConfig(text_encoder_dir=str(tmp_path / "text"),
                                           train_text_tower=False, embedding_dim=8)
    tower = dual.text_tower(config, vocabulary=[])
    out = tower(tf.constant(["a red dress", "blue jeans"])).numpy()
    assert out.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    trainable = {w.path.split("/")[0] for w in tower.trainable_weights}
    assert trainable == {"text_projection"}, trainable


def test_a_killed_training_keeps_its_finished_phases(tmp_path, monkeypatch):
    """Hybrid transfer: the cached-feature phase finishes, the fine-tuning phase is killed; the
    rerun keeps the first phase's weights and history and trains only the second."""
    import dataclasses

    from trainer import training
    from trainer.families.dual_encoder import trainer as dual_trainer
    config = dataclasses.replace(dual_config.smoke(), weights="none", transfer_mode="hybrid",
                                 epochs=2, frozen_epochs=1, cached_feature_views=1,
                                 batch_size=4, early_stopping_patience=5)
    rng = np.random.default_rng(0)
    captions = [f"a {c} dress" for c in ("red", "blue", "green", "black")] * 4
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    once = tf.data.Dataset.from_tensor_slices((images, captions)).batch(4)
    train = once.repeat()
    towers = dual_trainer.build_towers(config, 32, dual.learn_vocabulary(captions, 60))
    compile_model = dual_trainer.compiler(config, training.distribution_scope())
    checkpoints = str(tmp_path / "checkpoints")
    real_fit, calls = training.fit, []

    def killed_in_phase_two(model, *args, **kwargs):
        calls.append(model.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_fit(model, *args, **kwargs)
    monkeypatch.setattr(training, "fit", killed_in_phase_two)
    with pytest.raises(KeyboardInterrupt):
        dual_trainer.train(towers, config, once, train, once, compile_model, 2, checkpoints)
    assert calls == ["dual_encoder_on_features", "dual_encoder"]

    calls.clear()
    monkeypatch.setattr(training, "fit", lambda model, *a, **k: (calls.append(model.name),
                                                                 real_fit(model, *a, **k))[1])
    fresh = dual_trainer.build_towers(config, 32, dual.learn_vocabulary(captions, 60))
    # What the first phase left in the trunk (frozen there, and saved with the phase).
    saved = next(w for w in towers.trunk.weights if "kernel" in w.path).numpy().copy()
    kernel = next(w for w in fresh.trunk.weights if "kernel" in w.path)
    history = dual_trainer.train(fresh, config, once, train, once, compile_model, 2,
                                 checkpoints)
    assert calls == ["dual_encoder"]  # the cached-feature phase is not redone
    assert not np.allclose(kernel.numpy(), saved)  # the fine-tuning phase trained the trunk
    assert len(history["loss"]) == 2 and history.resumed_at_epoch == 1
    assert not (tmp_path / "checkpoints").exists()  # removed once training completes
