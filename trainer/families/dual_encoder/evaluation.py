"""The dual encoder's offline evaluation (TFMA has no retrieval or zero-shot metric): it serves
the exported model's signatures on eval records, as a client calls them, and scores

* zero-shot category classification: each record's image against one prompt per category
  present in the records (the model's prompt, e.g. "a photo of a {label}"): accuracy and macro
  F1, beside the majority class;
* zero-shot attributes: per exclusive attribute family (colour, pattern, ...) the best of its
  values' prompts, macro F1 averaged over the families, beside always answering each family's
  most frequent value; for ``item:`` tags (several per image) the m best-scoring tags, m the
  median tag count, micro F1, beside the m most frequent tags;
* retrieval between the records' images and captions, both ways: Recall@1/5/10 and MRR, beside
  a random ranking's. Records with the same (normalised) caption are relevant to each other's
  queries: a catalog repeats captions.

With ``output_dir`` it writes a few text queries with their top images (``queries/``), which
the report shows.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Callable, Optional

import numpy as np

from schemas import features as F
from schemas.serving_api import (EMBED_TEXT, EMBEDDING_OUTPUT, EXAMPLES_INPUT, SERVING_DEFAULT,
                                 TEXT_INPUT, latest_version)
from trainer.evaluation import metrics, reports, retrieval
from trainer.export.records import call_in_batches, catalog_item

QUERIES_FOLDER = "queries"
QUERY_COUNT, QUERY_TOP = 4, 5
KS = (1, 5, 10)


class Embedder:
    """An exported embedding model's image and text signatures, batched."""

    def __init__(self, model_dir: str, batch_size: int = 64):
        import tensorflow as tf

        from schemas.serving_api import register_text_ops
        register_text_ops()
        self.export_dir = latest_version(model_dir)
        loaded = tf.saved_model.load(self.export_dir)
        self._images = loaded.signatures[SERVING_DEFAULT]
        self._texts = loaded.signatures[EMBED_TEXT]
        self._batch_size = batch_size
        from trainer.families.dual_encoder.export import read_info
        self.info = read_info(self.export_dir)

    def records(self, serialized: list) -> np.ndarray:
        """Image embeddings of serialized tf.Examples."""
        return call_in_batches(self._images, EXAMPLES_INPUT, serialized, EMBEDDING_OUTPUT,
                               self._batch_size)

    def texts(self, texts: list) -> np.ndarray:
        """Text embeddings."""
        return call_in_batches(self._texts, TEXT_INPUT, texts, EMBEDDING_OUTPUT,
                               self._batch_size)


def _zero_shot(embedder: Embedder, images: np.ndarray, labels: list, prompt: str) -> dict:
    """Classification metrics of prompting the labels' names (one label per image)."""
    from trainer.families.dual_encoder.captions import prompts
    names = sorted(set(labels))
    scores = images @ embedder.texts(prompts(prompt, names)).T
    return metrics.classification_metrics(labels, scores, names, top_k=(3,))


def _item_tags(embedder: Embedder, images: np.ndarray, tags: list, prompt: str) -> dict:
    """Micro F1 of the m best-scoring tags per image (m: the median tag count) and of the m
    most frequent tags."""
    from trainer.families.dual_encoder.captions import prompts
    names = sorted({t for row in tags for t in row})
    truth = np.array([[name in row for name in names] for row in tags], bool)
    m = max(1, int(np.median(truth.sum(axis=1))))
    scores = images @ embedder.texts(prompts(prompt, names)).T
    predicted = np.zeros_like(truth)
    np.put_along_axis(predicted, np.argsort(-scores, axis=1)[:, :m], True, axis=1)
    frequent = np.zeros_like(truth)
    frequent[:, np.argsort(-truth.sum(axis=0), kind="stable")[:m]] = True

    def micro_f1(found):
        tp, fp, fn = (truth & found).sum(), (~truth & found).sum(), (truth & ~found).sum()
        return float(2 * tp / max(1, 2 * tp + fp + fn))
    return {"zero_shot_item_micro_f1": micro_f1(predicted),
            "frequent_items_micro_f1": micro_f1(frequent), "item_tags_per_image": m,
            "item_examples": int(len(tags))}


def evaluate(model_dir: str, data_pattern: str, batch_size: int = 64,
             progress: Optional[Callable] = None, output_dir: Optional[str] = None) -> dict:
    """Zero-shot and retrieval metrics of the embedding model at ``model_dir`` on the records
    of ``data_pattern`` (see the module docstring)."""
    import tensorflow as tf

    from trainer.export.records import record_dataset
    from trainer.families.dual_encoder.captions import normalize
    embedder = Embedder(model_dir, batch_size)
    prompt = embedder.info.get("prompt", "a photo of a {label}")
    serialized = [record.numpy() for record in record_dataset(data_pattern)]
    if not serialized:
        raise ValueError(f"no records in {data_pattern}")
    parsed = [catalog_item(record) for record in serialized]
    images = embedder.records(serialized)
    if progress:
        progress(len(serialized))
    result = {"model": embedder.export_dir, "data": data_pattern, "examples": len(parsed)}

    labelled = [i for i, p in enumerate(parsed) if p["category"]]
    if labelled:
        found = _zero_shot(embedder, images[labelled], [parsed[i]["category"] for i in labelled],
                           prompt)
        result.update({"zero_shot_accuracy": found["accuracy"],
                       "zero_shot_macro_f1": found["macro_f1"],
                       "zero_shot_top_3_accuracy": found.get("top_3_accuracy", 1.0),
                       "majority_class_accuracy": found["majority_class_accuracy"],
                       "zero_shot_classes": len(found["per_class"]),
                       "zero_shot_examples": found["examples"],
                       "chance_accuracy": 1.0 / len(found["per_class"])})
    family_f1, family_baseline = {}, {}
    for family in F.EXCLUSIVE_ATTRIBUTE_FAMILIES:
        rows = [(i, a.split(":", 1)[1]) for i, p in enumerate(parsed) for a in p["attributes"]
                if a.startswith(family + ":")]
        if len({value for _, value in rows}) < 2:
            continue
        found = _zero_shot(embedder, images[[i for i, _ in rows]], [v for _, v in rows],
                           prompt)
        family_f1[family] = found["macro_f1"]
        values = [v for _, v in rows]
        majority = max(set(values), key=values.count)
        # Always answering the most frequent value: F1 2p/(1+p) on it, 0 on the others.
        share = values.count(majority) / len(values)
        family_baseline[family] = 2 * share / (1 + share) / len(set(values))
        result[f"zero_shot_{family}_macro_f1"] = found["macro_f1"]
    if family_f1:
        result["zero_shot_attribute_macro_f1"] = float(np.mean(list(family_f1.values())))
        result["frequent_value_attribute_macro_f1"] = float(
            np.mean(list(family_baseline.values())))
    tagged = [(i, [a for a in p["attributes"] if a.startswith("item:")])
              for i, p in enumerate(parsed)]
    tagged = [(i, row) for i, row in tagged if row]
    if len(tagged) >= 2:
        result.update(_item_tags(embedder, images[[i for i, _ in tagged]],
                                 [row for _, row in tagged], prompt))

    captioned = [i for i, p in enumerate(parsed) if p["caption"]]
    if len(captioned) >= 2:
        captions = [parsed[i]["caption"] for i in captioned]
        canonical = [c.decode() for c in normalize(tf.constant(captions)).numpy()]
        relevant = np.array([[a == b for b in canonical] for a in canonical], bool)
        texts = embedder.texts(captions)
        similarity = texts @ images[captioned].T  # text queries × image gallery
        result.update(retrieval.recall_and_mrr(similarity, relevant, KS, "text_to_image_"))
        result.update(retrieval.recall_and_mrr(similarity.T, relevant, KS, "image_to_text_"))
        result.update(retrieval.chance_recall_and_mrr(relevant, KS, "chance_"))
        result["retrieval_examples"] = len(captioned)
        result["distinct_captions"] = len(set(canonical))
        if output_dir:
            _write_queries(output_dir, embedder, prompt, parsed, serialized, images)
    if len(result) == 3:
        raise ValueError(f"no record in {data_pattern} has a caption, category or attribute "
                         "to evaluate the embeddings against")
    return result


def _write_queries(folder: str, embedder: Embedder, prompt: str, parsed: list,
                   serialized: list, images: np.ndarray) -> None:
    """``QUERY_COUNT`` category prompts with their ``QUERY_TOP`` images, as contact sheets."""
    from trainer.evaluation.plots import contact_sheet
    from trainer.export.records import examples_to_images
    from trainer.families.dual_encoder.captions import prompts
    categories = sorted({p["category"] for p in parsed if p["category"]})[:QUERY_COUNT]
    queries = prompts(prompt, categories) or [p["caption"] for p in parsed[:QUERY_COUNT]]
    target = os.path.join(folder, QUERIES_FOLDER)
    os.makedirs(target, exist_ok=True)
    scores = embedder.texts(queries) @ images.T
    written = []
    for index, (query, row) in enumerate(zip(queries, scores)):
        top = np.argsort(-row)[:QUERY_TOP]
        sheet = contact_sheet(examples_to_images([serialized[i] for i in top]),
                              [f"{row[i]:.2f} {parsed[i]['category']}" for i in top],
                              title=f"“{query}”")
        name = f"{index:02d}.png"
        sheet.save(os.path.join(target, name))
        written.append({"query": query, "file": name,
                        "top": [{"id": parsed[i]["id"], "score": float(row[i])} for i in top]})
    with open(os.path.join(target, "queries.json"), "w") as handle:
        json.dump(written, handle, indent=2)


def report(evaluation_uri: str, model_uri: str) -> reports.EvaluationSummary:
    """The metrics beside their baselines, zero-shot F1 per attribute family, and the text
    queries with their top images."""
    summary = reports.read_offline_evaluation(evaluation_uri)
    overall = summary.overall
    bars = {k: overall[k] for k in sorted(overall)
            if k.startswith(("text_to_image_", "image_to_text_", "chance_"))}
    if bars:
        summary.sections.append(reports.Section("Retrieval on the eval split (chance_: a "
                                                "random ranking)", bars=bars))
    families = {k[len("zero_shot_"):-len("_macro_f1")]: v for k, v in overall.items()
                if k.startswith("zero_shot_") and k.endswith("_macro_f1")}
    if families:
        summary.sections.append(reports.Section("Zero-shot macro F1", bars=families))
    folder = os.path.join(evaluation_uri, QUERIES_FOLDER)
    listing = os.path.join(folder, "queries.json")
    if os.path.exists(listing):
        with open(listing) as handle:
            queries = json.load(handle)
        figures = []
        for query in queries:
            with open(os.path.join(folder, query["file"]), "rb") as handle:
                data = base64.b64encode(handle.read()).decode()
            figures.append(f"<figure><img src='data:image/png;base64,{data}'></figure>")
        summary.sections.append(reports.Section("Text queries and their top eval images",
                                                html="".join(figures)))
    return summary
