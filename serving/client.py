"""A small client for TF-Serving-compatible servers (``fashion serve`` or ``tensorflow/serving``).

It speaks only the public API (the ``tensorflow-serving-api`` gRPC stubs, or the documented REST
paths), so the same code works against either server. ``predict_images`` sends encoded image
bytes to the ``serving_images`` signature the pipeline's classifiers export and returns one
ranked answer per image; ``detect_images`` sends them to a detector (OD API outputs) and returns
each image's detections; ``search`` asks this server's catalog search extension.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Optional, Sequence

import numpy as np

from schemas.features import SUPER_CATEGORIES
from schemas.serving_api import (CLASSES_OUTPUT, DETECTION_OUTPUTS, IMAGES_INPUT, SCORES_OUTPUT,
                                 SERVING_DEFAULT, SERVING_IMAGES)


class ServingClientError(RuntimeError):
    """The server answered with an error; ``code`` is the gRPC code name or HTTP status."""

    def __init__(self, code, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class ServingClient:
    """Calls one server at ``target`` (``host:port``) over ``grpc`` or ``rest``."""

    def __init__(self, target: str, protocol: str = "grpc", token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, timeout: float = 30.0):
        if protocol not in ("grpc", "rest"):
            raise ValueError(f"protocol must be grpc or rest, not {protocol!r}")
        self.target, self.protocol, self.timeout = target, protocol, timeout
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._root_certificates = root_certificates
        self._channel = None
        if protocol == "grpc":
            import grpc
            from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
            if root_certificates is not None:
                self._channel = grpc.secure_channel(
                    target, grpc.ssl_channel_credentials(root_certificates=root_certificates))
            else:
                self._channel = grpc.insecure_channel(target)
            self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
            self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # REST plumbing --------------------------------------------------------------------------
    def _rest(self, path: str, body: Optional[dict] = None) -> dict:
        scheme = "https" if self._root_certificates is not None else "http"
        headers = {"Content-Type": "application/json"}
        headers.update({k.title(): v for k, v in self._metadata})
        request = urllib.request.Request(
            f"{scheme}://{self.target}{path}", headers=headers,
            data=None if body is None else json.dumps(body).encode())
        context = (ssl.create_default_context(cadata=self._root_certificates.decode())
                   if self._root_certificates is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=context) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", err.reason)
            except ValueError:
                message = err.reason
            raise ServingClientError(err.code, message) from None

    def _grpc(self, method, request):
        import grpc
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise ServingClientError(err.code().name, err.details()) from None

    @staticmethod
    def _model_path(model: str, version: Optional[int], label: Optional[str]) -> str:
        path = f"/v1/models/{model}"
        if version is not None:
            path += f"/versions/{version}"
        elif label:
            path += f"/labels/{label}"
        return path

    @staticmethod
    def _spec(model_spec, model, version, label, signature=""):
        model_spec.name = model
        if version is not None:
            model_spec.version.value = version
        elif label:
            model_spec.version_label = label
        model_spec.signature_name = signature

    # API ------------------------------------------------------------------------------------
    def status(self, model: str) -> list[dict]:
        """``[{"version": int, "state": "AVAILABLE", ...}]`` for each known version."""
        if self.protocol == "rest":
            return [{"version": int(s["version"]), "state": s["state"],
                     "error": s["status"].get("error_message", "")}
                    for s in self._rest(self._model_path(model, None, None))[
                        "model_version_status"]]
        from tensorflow_serving.apis import get_model_status_pb2
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self._grpc(self._models.GetModelStatus, request)
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return [{"version": s.version, "state": names(s.state),
                 "error": s.status.error_message} for s in response.model_version_status]

    def wait_until_available(self, model: str, timeout: float = 60.0) -> int:
        """Waits until some version of ``model`` is AVAILABLE; returns that version."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                versions = [s["version"] for s in self.status(model)
                            if s["state"] == "AVAILABLE"]
                if versions:
                    return max(versions)
            except (ServingClientError, OSError) as err:
                last = err
            time.sleep(0.5)
        raise TimeoutError(f"model {model!r} at {self.target} not AVAILABLE after {timeout} s"
                           + (f" (last error: {last})" if last else ""))

    def signatures(self, model: str, version: Optional[int] = None,
                   label: Optional[str] = None) -> dict:
        """``{signature: {"inputs": [names], "outputs": [names], "method_name": str}}`` of a
        served model version (TF Serving's GetModelMetadata)."""
        if self.protocol == "rest":
            found = self._rest(self._model_path(model, version, label) + "/metadata")[
                "metadata"]["signature_def"]["signature_def"]
            return {name: {"inputs": sorted(d.get("inputs", {})),
                           "outputs": sorted(d.get("outputs", {})),
                           "method_name": d.get("method_name", "")}
                    for name, d in found.items()}
        from tensorflow_serving.apis import get_model_metadata_pb2
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec, model, version, label)
        request.metadata_field.append("signature_def")
        response = self._grpc(self._prediction.GetModelMetadata, request)
        found = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(found)
        return {name: {"inputs": sorted(d.inputs), "outputs": sorted(d.outputs),
                       "method_name": d.method_name}
                for name, d in found.signature_def.items()}

    def predict(self, model: str, inputs: dict, signature: str = "",
                version: Optional[int] = None, label: Optional[str] = None) -> dict:
        """Predict with named numpy inputs; returns named numpy outputs."""
        if self.protocol == "rest":
            def encode(array):
                if array.dtype == object or array.dtype.kind == "S":
                    return [{"b64": base64.b64encode(v).decode()} for v in array.tolist()]
                return array.tolist()
            body = {"inputs": {k: encode(np.asarray(v)) for k, v in inputs.items()}}
            if signature:
                body["signature_name"] = signature
            outputs = self._rest(self._model_path(model, version, label) + ":predict",
                                 body)["outputs"]
            if not isinstance(outputs, dict):
                # TF Serving answers a signature's only output without its name: the name is
                # in the signature's metadata.
                names = self.signatures(model, version, label).get(
                    signature or SERVING_DEFAULT, {}).get("outputs", [])
                if len(names) != 1:
                    raise ServingClientError("RESPONSE", "expected named outputs")
                outputs = {names[0]: outputs}
            return {k: np.asarray(v) for k, v in outputs.items()}
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._grpc(self._prediction.Predict, request)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def predict_images(self, model: str, images: Sequence[bytes], top_k: int = 5,
                       signature: str = SERVING_IMAGES, version: Optional[int] = None,
                       label: Optional[str] = None) -> list[dict]:
        """Ranked classes for each encoded image: ``{"top_class", "top_score", "top_k"}``."""
        outputs = self.predict(model, {IMAGES_INPUT: np.array(list(images), dtype=object)},
                               signature, version, label)
        scores = np.asarray(outputs[SCORES_OUTPUT], np.float64)
        classes = outputs[CLASSES_OUTPUT]
        answers = []
        for row in range(scores.shape[0]):
            order = np.argsort(-scores[row])[:top_k]
            names = [c.decode() if isinstance(c, bytes) else str(c) for c in classes[row]]
            ranked = [[names[i], round(float(scores[row, i]), 6)] for i in order]
            answers.append({"top_class": ranked[0][0], "top_score": ranked[0][1],
                            "top_k": ranked})
        return answers

    def detect_images(self, model: str, images: Sequence[bytes], signature: str = SERVING_DEFAULT,
                      input_name: str = "inputs", min_score: float = 0.0,
                      version: Optional[int] = None, label: Optional[str] = None) -> list[dict]:
        """Each encoded image's detections scoring at least ``min_score``: ``{"detections":
        [{"class", "class_id", "score", "box": [ymin, xmin, ymax, xmax] normalised, ...}]}``.

        Other outputs with one value per detection (a composite's classification of each
        detected garment) are added to each detection under their names, and outputs with one
        value per image (a composite's brand) to the image's answer; a per-detection 0/1 vector
        whose columns an output of per-image strings names becomes the list of the names that
        are set.
        """
        outputs = self.predict(model, {input_name: np.array(list(images), dtype=object)},
                               signature, version, label)
        missing = [k for k in DETECTION_OUTPUTS if k not in outputs]
        if missing:
            raise ServingClientError("RESPONSE", f"not a detector's answer: no {missing}")
        boxes = np.asarray(outputs[DETECTION_OUTPUTS[0]])
        rows, slots = boxes.shape[:2]
        extras, column_names, per_image = {}, {}, {}
        for key, value in sorted(outputs.items()):
            value = np.asarray(value)
            if key in DETECTION_OUTPUTS or value.ndim == 0 or value.shape[0] != rows:
                continue
            if value.ndim == 1:
                per_image[key] = value
            elif value.shape[1] == slots:
                extras[key] = value
            elif value.ndim == 2 and value.dtype.kind in "OSU":
                column_names[value.shape[1]] = value
        answers = []
        for row in range(rows):
            found = []
            for index in range(int(outputs["num_detections"][row])):
                score = float(outputs["detection_scores"][row][index])
                class_id = int(outputs["detection_classes"][row][index])
                if score < min_score:
                    continue
                detection = {"class": SUPER_CATEGORIES[class_id - 1]
                             if 0 < class_id <= len(SUPER_CATEGORIES) else str(class_id),
                             "class_id": class_id, "score": round(score, 6),
                             "box": [round(float(v), 6) for v in boxes[row][index]]}
                for key, value in extras.items():
                    detection[key] = _plain(value[row][index], column_names, row)
                found.append(detection)
            answers.append({"detections": found, **{
                key: _plain(value[row], {}, row) for key, value in per_image.items()}})
        return answers


    def search(self, model: str, text: Optional[str] = None, image: Optional[bytes] = None,
               k: int = 10, version: Optional[int] = None,
               label: Optional[str] = None) -> dict:
        """The ``k`` catalog items nearest to ``text`` or ``image`` (this server's ``:search``
        REST extension, ``serving.search``; a REST client's call):
        ``{"model_spec": {...}, "results": [{"id", "score", "uri", "caption", ...}]}``."""
        if self.protocol != "rest":
            raise ValueError("catalog search is a REST extension: use a client with "
                             "protocol='rest' on the server's REST port")
        body: dict = {"k": int(k)}
        if text is not None:
            body["text"] = text
        if image is not None:
            body["image"] = {"b64": base64.b64encode(image).decode()}
        return self._rest(self._model_path(model, version, label) + ":search", body)

def _plain(value, column_names: dict, row: int):
    """A JSON-able value: text decoded, numbers rounded; a 0/1 vector with named columns as the
    names that are set."""
    value = np.asarray(value)
    if value.ndim == 1 and value.dtype.kind == "f" and value.shape[0] in column_names:
        names = column_names[value.shape[0]][row]
        return [_plain(names[i], {}, row) for i in np.flatnonzero(value >= 0.5)]
    if value.ndim:
        return [_plain(v, column_names, row) for v in value]
    item = value.item()
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return round(item, 6) if isinstance(item, float) else item
