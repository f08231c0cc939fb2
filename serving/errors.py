"""Request errors of the model server, each with its gRPC status code and HTTP status.

REST and gRPC front ends raise and catch the same exceptions, so a bad request gets the same
answer over both: gRPC ``INVALID_ARGUMENT`` is HTTP 400, ``NOT_FOUND`` 404, ``RESOURCE_EXHAUSTED``
429 (413 for an oversized body), ``DEADLINE_EXCEEDED`` 504, ``UNAUTHENTICATED`` 401,
``FAILED_PRECONDITION`` 400 and ``INTERNAL`` / ``UNKNOWN`` 500, as TF Serving maps them
(``model_servers/http_server.cc``).
"""

from __future__ import annotations

from http import HTTPStatus


class ServingError(Exception):
    """Base of the request errors; ``grpc_code`` names a ``grpc.StatusCode`` member."""

    grpc_code = "UNKNOWN"
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR


class ModelNotFound(ServingError, LookupError):
    """Unknown model, version or label."""

    grpc_code, http_status = "NOT_FOUND", HTTPStatus.NOT_FOUND


class InvalidRequest(ServingError, ValueError):
    """A malformed request or one the signature cannot take."""

    grpc_code, http_status = "INVALID_ARGUMENT", HTTPStatus.BAD_REQUEST


class Overloaded(ServingError):
    """Too much queued or concurrent work: the request is refused, not queued without bound."""

    grpc_code, http_status = "RESOURCE_EXHAUSTED", HTTPStatus.TOO_MANY_REQUESTS


class RequestTooLarge(ServingError):
    """A request body above the server's size limit."""

    grpc_code, http_status = "RESOURCE_EXHAUSTED", HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class DeadlineExceeded(ServingError):
    """The client's deadline (or the REST timeout) passed before the answer was ready."""

    grpc_code, http_status = "DEADLINE_EXCEEDED", HTTPStatus.GATEWAY_TIMEOUT


class Unauthenticated(ServingError):
    """Authentication is on and the bearer token is missing or wrong."""

    grpc_code, http_status = "UNAUTHENTICATED", HTTPStatus.UNAUTHORIZED


class FailedPrecondition(ServingError):
    """The request names something the model cannot do in its state (TF Serving's
    ``FAILED_PRECONDITION``, e.g. an unknown signature key in gRPC Predict)."""

    grpc_code, http_status = "FAILED_PRECONDITION", HTTPStatus.BAD_REQUEST


class Internal(ServingError):
    """TF Serving's ``INTERNAL`` (e.g. a signature method name refused by
    ``--enable_signature_method_name_check``)."""

    grpc_code, http_status = "INTERNAL", HTTPStatus.INTERNAL_SERVER_ERROR


class Unknown(ServingError):
    """TF Serving's ``UNKNOWN`` (e.g. models of a reloaded config that did not load)."""

    grpc_code, http_status = "UNKNOWN", HTTPStatus.INTERNAL_SERVER_ERROR


class Unimplemented(ServingError):
    """TF Serving's ``UNIMPLEMENTED`` (e.g. a MultiInference task with another method)."""

    grpc_code, http_status = "UNIMPLEMENTED", HTTPStatus.NOT_IMPLEMENTED


class Cancelled(ServingError):
    """The caller went away (its RPC ended or its REST timeout passed) and the model call was
    stopped; TF Serving maps CANCELLED to HTTP 499."""

    grpc_code, http_status = "CANCELLED", 499
