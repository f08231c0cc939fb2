"""Catalog search, an extension beside TF Serving's API: the nearest catalog items to a text or
an image, embedded by a served embedding model's version and looked up in the catalog index
built with that same version (``schemas.catalog_index``).

REST: ``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:search`` with ``{"text": "red
striped dress"}`` or ``{"image": {"b64": "..."}}`` and an optional ``"k"`` (default 10, at most
``MAX_K``) answers ``{"model_spec": {"name", "version"}, "results": [{"id", "score", "uri",
"caption", "category"}, ...]}``, best first. Errors are the server's: 400 for a malformed
request, 404 for an unknown model or a version without an index.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

import numpy as np

from schemas import catalog_index
from schemas.serving_api import EMBEDDING_OUTPUT
from serving.errors import InvalidRequest, ModelNotFound
from serving.inference import InferenceService

DEFAULT_K = 10
MAX_K = 1000
MAX_TEXT_CHARS = 2000


class CatalogSearch:
    """Searches the catalog index of a served model version; indexes load on first use and
    are reloaded when their manifest changes (an index rebuilt for the version)."""

    def __init__(self, service: InferenceService):
        self.service = service
        self._indexes: dict = {}  # (model, version) -> (manifest mtime, CatalogIndex)
        self._lock = threading.Lock()

    def index(self, name: str, version: int) -> catalog_index.CatalogIndex:
        folder = catalog_index.index_dir(self.service.model(name).version_path(version))
        manifest = os.path.join(folder, catalog_index.MANIFEST_FILE)
        try:
            mtime = os.path.getmtime(manifest)
        except OSError:
            raise ModelNotFound(f"model {name} version {version} has no catalog index") \
                from None
        with self._lock:
            cached = self._indexes.get((name, version))
            if cached is None or cached[0] != mtime:
                try:
                    cached = (mtime, catalog_index.CatalogIndex(folder))
                except (OSError, ValueError, RuntimeError) as err:
                    raise ModelNotFound(f"model {name} version {version}: catalog index "
                                        f"unreadable ({err})") from None
                self._indexes[(name, version)] = cached
            return cached[1]

    def search(self, name: str, version: Optional[int], label: Optional[str],
               text: Optional[str] = None, image: Optional[bytes] = None, k=DEFAULT_K,
               deadline: Optional[float] = None) -> dict:
        """The ``k`` nearest catalog items to ``text`` or ``image`` (exactly one of them)."""
        if (text is None) == (image is None):
            raise InvalidRequest("a search needs exactly one of 'text' or 'image'")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidRequest(f"'k' must be an integer in 1..{MAX_K}")
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise InvalidRequest("'text' must be a non-empty string")
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidRequest(f"'text' is longer than {MAX_TEXT_CHARS} characters")
        elif not isinstance(image, bytes) or not image:
            raise InvalidRequest("'image' must be non-empty image bytes")
        signature_name, input_name, value = catalog_index.query_signature(text, image)
        signature = self.service.signature(name, version, label, signature_name)
        # The version the embedding came from is the version whose index is searched.
        index = self.index(name, signature.version)
        outputs = self.service.predict(signature, {input_name: np.array([value], object)},
                                       deadline)
        if EMBEDDING_OUTPUT not in outputs:
            raise InvalidRequest(f"signature {signature_name!r} of {name} answers no "
                                 f"{EMBEDDING_OUTPUT!r}")
        try:
            results = index.search(outputs[EMBEDDING_OUTPUT], k)[0]
        except ValueError as err:
            raise InvalidRequest(str(err)) from None
        return {"model_spec": {"name": name, "version": str(signature.version)},
                "results": results}
