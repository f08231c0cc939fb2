"""The CatalogIndexer TFX component: after an embedding family's Pusher, it embeds the catalog
(every record of the ExampleGen's splits) with the model just pushed and writes a nearest-
neighbour index into that pushed version (``schemas.catalog_index``), so the index is versioned
with the model that built it and the server's search endpoint finds it. When the Pusher pushed
nothing (the model was not blessed), the served version keeps its own index and nothing is
built. It knows no family: the family's factory names the signature and its output.
"""

import json
import os

from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts


class CatalogIndexArtifact(types.Artifact):
    """A catalog index: its files (``schemas.catalog_index``) in the artifact's folder."""

    TYPE_NAME = "fashion.CatalogIndex"  # KFP v2 needs "namespace.TypeName"


@component
def CatalogIndexer(examples: InputArtifact[standard_artifacts.Examples],
                   pushed_model: InputArtifact[standard_artifacts.PushedModel],
                   index: OutputArtifact[CatalogIndexArtifact],
                   signature: Parameter[str], input_name: Parameter[str],
                   output: Parameter[str], kind: Parameter[str] = "hnsw",
                   options: Parameter[str] = "{}"):
    """Indexes the catalog with the pushed model (see the module docstring); ``options`` are
    the index's JSON keyword arguments (``schemas.catalog_index.build``)."""
    from components.catalog_index import logic
    from schemas import catalog_index
    os.makedirs(index.uri, exist_ok=True)
    if pushed_model.get_int_custom_property("pushed") != 1:
        print("CatalogIndexer: nothing was pushed: no index built")
        with open(os.path.join(index.uri, "skipped.json"), "w") as handle:
            json.dump({"reason": "not pushed"}, handle)
        return
    version_dir = pushed_model.get_string_custom_property("pushed_destination")
    patterns = [os.path.join(artifact_utils.get_split_uri([examples], split), "*")
                for split in artifact_utils.decode_split_names(examples.split_names)]
    folder = os.path.join(index.uri, catalog_index.INDEX_FOLDER)
    manifest = logic.build_index(version_dir, patterns, folder, signature, input_name, output,
                                 kind, **json.loads(options))
    # Into the served version: written beside, then moved, so the server never reads half.
    published = catalog_index.publish(folder, version_dir)
    index.set_string_custom_property("published", published)
    print(f"CatalogIndexer: {manifest['items']} items "
          f"({manifest['kind']}, recall@10 vs exact {manifest['recall_at_10_vs_exact']:.3f}) "
          f"in {published}")
