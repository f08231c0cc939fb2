"""TF Serving's text-proto config files, read the way ``tensorflow_model_server`` reads them.

``--model_config_file`` is a ``ModelServerConfig`` (its proto ships with tensorflow-serving-api).
``--batching_parameters_file`` (``BatchingParameters``), ``--monitoring_config_file``
(``MonitoringConfig``) and ``--ssl_config_file`` (``SSLConfig``) use protos the pip package does
not ship, so their messages are declared here with TF Serving's field names and types (wrapper
types included), in a private descriptor pool; a file written for TF Serving parses unchanged.
"""

from __future__ import annotations

import dataclasses

from google.protobuf import (descriptor_pb2, descriptor_pool, message_factory, text_format,
                             wrappers_pb2)

from serving.batching import BatchingOptions
from serving.model_manager import VersionPolicy

_T = descriptor_pb2.FieldDescriptorProto
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", 1, _T.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
        ("batch_timeout_micros", 2, _T.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
        ("max_enqueued_batches", 3, _T.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
        ("num_batch_threads", 4, _T.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
        ("thread_pool_name", 5, _T.TYPE_MESSAGE, ".google.protobuf.StringValue", False),
        ("allowed_batch_sizes", 6, _T.TYPE_INT64, None, True),
        ("pad_variable_length_inputs", 7, _T.TYPE_BOOL, None, False),
    ],
    "PrometheusConfig": [
        ("enable", 1, _T.TYPE_BOOL, None, False),
        ("path", 2, _T.TYPE_STRING, None, False),
    ],
    "MonitoringConfig": [
        ("prometheus_config", 1, _T.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", False),
    ],
    "SSLConfig": [
        ("server_key", 1, _T.TYPE_STRING, None, False),
        ("server_cert", 2, _T.TYPE_STRING, None, False),
        ("custom_ca", 3, _T.TYPE_STRING, None, False),
        ("client_verify", 4, _T.TYPE_BOOL, None, False),
    ],
}
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


class ConfigError(ValueError):
    """A config file is unreadable, malformed or inconsistent."""


def _build_classes() -> dict:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="fashion/tf_serving_configs.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    for message, fields in _MESSAGES.items():
        entry = proto.message_type.add(name=message)
        for name, number, kind, type_name, repeated in fields:
            field = entry.field.add(name=name, number=number, type=kind,
                                    label=_T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
    pool.Add(proto)
    factory = message_factory.MessageFactory(pool)
    return {name: factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
            for name in _MESSAGES}


_CLASSES = _build_classes()


def _parse(path: str, message):
    try:
        with open(path) as handle:
            text_format.Parse(handle.read(), message)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    except text_format.ParseError as err:
        raise ConfigError(f"{path}: {err}") from None
    return message


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One served model: name, base path, version policy and labels."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: tuple = ()


def model_specs_from_proto(config, origin: str = "config") -> list[ModelSpec]:
    """``ModelSpec``s of a ``ModelServerConfig`` message (``model_config_list``)."""
    specs = []
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ConfigError(f"{origin}: every model needs a name and a base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{origin}: model {model.name}: platform "
                              f"{model.model_platform!r} is not served (only tensorflow)")
        policy = model.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        try:
            if choice == "all":
                version_policy = VersionPolicy("all")
            elif choice == "specific":
                version_policy = VersionPolicy("specific",
                                               versions=tuple(policy.specific.versions))
            else:
                version_policy = VersionPolicy("latest", policy.latest.num_versions or 1)
        except ValueError as err:
            raise ConfigError(f"{origin}: model {model.name}: {err}") from None
        specs.append(ModelSpec(model.name, model.base_path, version_policy,
                               tuple(sorted(model.version_labels.items()))))
    if not specs:
        raise ConfigError(f"{origin}: no model in model_config_list")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: model names repeat: {names}")
    return specs


def read_model_config(path: str) -> list[ModelSpec]:
    """Reads a TF Serving ``ModelServerConfig`` text proto."""
    from tensorflow_serving.config import model_server_config_pb2
    return model_specs_from_proto(_parse(path, model_server_config_pb2.ModelServerConfig()), path)


def read_batching_parameters(path: str) -> BatchingOptions:
    """Reads a ``BatchingParameters`` text proto (unset fields keep the defaults)."""
    message = _parse(path, _CLASSES["BatchingParameters"]())
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                 "num_batch_threads"):
        if message.HasField(name):
            values[name] = getattr(message, name).value
    if message.allowed_batch_sizes:
        values["allowed_batch_sizes"] = tuple(message.allowed_batch_sizes)
    if message.pad_variable_length_inputs:
        raise ConfigError(f"{path}: pad_variable_length_inputs is not supported")
    try:
        return BatchingOptions(**values)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None


def read_monitoring_config(path: str):
    """The Prometheus path of a ``MonitoringConfig`` text proto, or None when it is off."""
    message = _parse(path, _CLASSES["MonitoringConfig"]())
    prometheus = message.prometheus_config
    if not prometheus.enable:
        return None
    path_value = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not path_value.startswith("/"):
        raise ConfigError(f"{path}: prometheus_config.path must start with '/'")
    return path_value


@dataclasses.dataclass(frozen=True)
class SslSettings:
    """PEM contents of an ``SSLConfig`` (TF Serving puts the PEM text in the file itself)."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


def read_ssl_config(path: str) -> SslSettings:
    message = _parse(path, _CLASSES["SSLConfig"]())
    if not message.server_key or not message.server_cert:
        raise ConfigError(f"{path}: server_key and server_cert (PEM text) are required")
    if message.client_verify and not message.custom_ca:
        raise ConfigError(f"{path}: client_verify needs custom_ca")
    return SslSettings(message.server_key, message.server_cert, message.custom_ca,
                       message.client_verify)
