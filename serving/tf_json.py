"""TF Serving's REST JSON, written and read as its C++ code does.

``tensorflow_model_server`` turns JSON into tensors and back in ``util/json_tensor.cc`` (with
rapidjson's ``PrettyWriter``, four-space indents, arrays on one line where the code asks for
it) and prints model status and metadata with protobuf's JSON printer
(``model_servers/http_rest_api_util.cc``). This module follows that code, so a client that
compares bodies, or parses the odd line breaks, sees the same bytes from ``fashion serve``:

- request parsing (``FillPredictRequestFromJson``, ``FillClassifyRegressRequestFromJson``): the
  same rules (dense tensors, row ``instances`` or columnar ``inputs``, ``{"b64": ...}`` bytes,
  NaN/Infinity accepted, text after the first JSON value ignored) and the same error texts;
- responses (``MakeJsonFromTensors``, ``MakeJsonFromClassificationResult``,
  ``MakeJsonFromRegressionResult``, ``MakeJsonFromStatus``): floats as ``absl::StrCat`` writes
  them (six significant digits unless that does not round-trip, then 9 or 17, ``.0`` appended to
  whole numbers), strings raw except for outputs named ``*_bytes`` (base64 objects);
- status and metadata bodies as protobuf's printer writes them (one-space indents, int64 as
  strings, fields with no presence included).

Where TF Serving's order is a hash map's (several outputs, signature maps) the keys are sorted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from decimal import Decimal
from typing import Callable, Optional

import numpy as np

from serving.errors import InvalidRequest

BYTES_SUFFIX = "_bytes"
_DEBUG_LIMIT = 256  # kMaxJsonDebugStringBytes
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_UINT64_MAX = 2 ** 64 - 1
_INT32 = (-(2 ** 31), 2 ** 31 - 1)
_UINT32_MAX = 2 ** 32 - 1

# TensorFlow's DataTypeString names where they differ from tf.DType.name.
_DATA_TYPE_STRING = {"float32": "float", "float64": "double", "float16": "half"}

# rapidjson's parse error texts, for the Python parser's messages.
_PARSE_ERRORS = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
    ("Invalid control character", "Invalid encoding in string."),
)


def data_type_string(dtype) -> str:
    """TensorFlow's ``DataTypeString`` of a ``tf.DType`` (``float``, ``int64``, ``string``)."""
    return _DATA_TYPE_STRING.get(dtype.name, dtype.name)


# ---------------------------------------------------------------------------------------------
# Writing: rapidjson's PrettyWriter

_ESCAPES = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r",
            0x22: b'\\"', 0x5C: b"\\\\"}
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')


def _escape_byte(match) -> bytes:
    code = match.group()[0]
    return _ESCAPES.get(code) or b"\\u00%02X" % code


def request_bytes(text: str) -> bytes:
    """A request string's bytes: the raw body bytes it came from (invalid UTF-8 included, as
    rapidjson keeps them); a lone surrogate from a ``\\u`` escape is refused as rapidjson
    refuses it."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InvalidRequest("JSON Parse error: The surrogate pair in string is invalid.") \
            from None


def json_string(value) -> bytes:
    """A JSON string as rapidjson's Writer writes it: control characters, ``"`` and ``\\``
    escaped, every other byte (UTF-8 or not) written as it is."""
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate from a \u escape
            raw = value.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(value)
    return b'"' + _NEEDS_ESCAPE.sub(_escape_byte, raw) + b'"'


class _Truncated(Exception):
    pass


class PrettyWriter:
    """rapidjson's ``PrettyWriter`` (indent of four spaces) with ``kFormatSingleLineArray``
    switched on and off as TF Serving's code does; ``limit`` stops writing once that many bytes
    are out (``JsonWriterWithLimit``)."""

    def __init__(self, limit: Optional[int] = None):
        self.parts: list[bytes] = []
        self.size = 0
        self.single_line = False
        self._levels: list[list] = []  # [in_array, value_count]
        self._limit = limit

    def _put(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def _indent(self) -> bytes:
        return b" " * (4 * len(self._levels))

    def _prefix(self) -> None:
        if self._limit is not None and self.size >= self._limit:
            raise _Truncated
        if not self._levels:
            return
        level = self._levels[-1]
        if level[0]:
            if level[1] > 0:
                self._put(b", " if self.single_line else b",")
            if not self.single_line:
                self._put(b"\n" + self._indent())
        else:
            if level[1] > 0:
                self._put(b",\n" if level[1] % 2 == 0 else b": ")
            else:
                self._put(b"\n")
            if level[1] % 2 == 0:
                self._put(self._indent())
        level[1] += 1

    def start_object(self) -> None:
        self._prefix()
        self._put(b"{")
        self._levels.append([False, 0])

    def end_object(self) -> None:
        if self._limit is not None and self.size >= self._limit:
            raise _Truncated
        if self._levels.pop()[1]:
            self._put(b"\n" + self._indent())
        self._put(b"}")

    def start_array(self) -> None:
        self._prefix()
        self._put(b"[")
        self._levels.append([True, 0])

    def end_array(self) -> None:
        if self._limit is not None and self.size >= self._limit:
            raise _Truncated
        if self._levels.pop()[1] and not self.single_line:
            self._put(b"\n" + self._indent())
        self._put(b"]")

    def key(self, name: str) -> None:
        self.string(name)

    def string(self, value) -> None:
        self._prefix()
        self._put(json_string(value))

    def raw(self, text: str) -> None:
        self._prefix()
        self._put(text.encode("ascii"))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def decimal(value, dtype) -> str:
    """``WriteDecimal``: a float32/float64 as TF Serving writes it."""
    value = dtype.type(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%.6g" % float(value)
    if dtype.type(float(text)) != value:
        text = "%.*g" % (9 if dtype == np.float32 else 17, float(value))
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def rapidjson_double(value: float) -> str:
    """rapidjson's ``Writer::Double`` (shortest round-trip digits, its ``Prettify`` layout)."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    sign = "-" if value < 0 else ""
    _, digit_tuple, k = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple))
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    length = len(digits)
    kk = length + k
    if 0 <= k and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * (-kk) + digits
    elif length == 1:
        text = digits + "e" + str(kk - 1)
    else:
        text = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return sign + text


def _write_json_value(writer: PrettyWriter, value) -> None:
    if value is None:
        writer.raw("null")
    elif value is True or value is False:
        writer.raw("true" if value else "false")
    elif isinstance(value, int):
        writer.raw(str(value))
    elif isinstance(value, float):
        writer.raw(rapidjson_double(value))
    elif isinstance(value, str):
        writer.string(value)
    elif isinstance(value, list):
        writer.start_array()
        for item in value:
            _write_json_value(writer, item)
        writer.end_array()
    else:
        writer.start_object()
        for name, item in value.items():
            writer.key(name)
            _write_json_value(writer, item)
        writer.end_object()


def debug_string(value) -> str:
    """``JsonValueToDebugString``: a parsed JSON value, single-line arrays, at most ~256 bytes."""
    writer = PrettyWriter(limit=_DEBUG_LIMIT)
    writer.single_line = True
    try:
        _write_json_value(writer, value)
    except _Truncated:
        pass
    return writer.getvalue().decode("utf-8", "replace")


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


# ---------------------------------------------------------------------------------------------
# Reading requests

class _FirstKeyDict(dict):
    """A JSON object where, as with rapidjson's FindMember, the first of repeated keys wins."""


def _object_pairs(pairs):
    result = _FirstKeyDict()
    for key, value in pairs:
        if key not in result:
            result[key] = value
    return result


def _number(text: str):
    value = int(text)
    return value if _INT64[0] <= value <= _UINT64_MAX else float(text)


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def parse_body(body: bytes) -> dict:
    """``ParseJson``: the request object, or InvalidRequest with rapidjson's wording."""
    if not body:
        raise InvalidRequest("JSON Parse error: The document is empty")
    text = body.decode("utf-8", "surrogateescape")
    if not text.strip():
        raise InvalidRequest(f"JSON Parse error: The document is empty. at offset: {len(text)}")
    decoder = json.JSONDecoder(object_pairs_hook=_object_pairs, parse_int=_number,
                               parse_constant=_constant)
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        document, _ = decoder.raw_decode(text, start)  # what follows the value is ignored
    except json.JSONDecodeError as err:
        wording = next((ours for theirs, ours in _PARSE_ERRORS if err.msg.startswith(theirs)),
                       None)
        if wording is None and err.msg.startswith("Expecting ',' delimiter"):
            wording = ("Missing a comma or ']' after an array element." if
                       _in_array(text, err.pos) else
                       "Missing a comma or '}' after an object member.")
        raise InvalidRequest(f"JSON Parse error: {wording or 'Invalid value.'} at offset: "
                             f"{err.pos}") from None
    except RecursionError:
        raise InvalidRequest("JSON Parse error: nesting too deep") from None
    if not isinstance(document, dict):
        raise InvalidRequest(f"JSON Value: {debug_string(document)} Is not object")
    return document


def _in_array(text: str, position: int) -> bool:
    depth = []
    in_string = escaped = False
    for char in text[:position]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth.append(char)
        elif char in "]}" and depth:
            depth.pop()
    return bool(depth) and depth[-1] == "["


def signature_name(document: dict) -> str:
    """The optional ``signature_name`` (``FillSignature``)."""
    if "signature_name" not in document:
        return ""
    name = document["signature_name"]
    if not isinstance(name, str):
        raise InvalidRequest(f"JSON Value: {debug_string(document)} not formatted correctly. "
                             "'signature_name' key must be a string value.")
    return name


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def decode_b64(value) -> bytes:
    """The bytes of a ``{"b64": ...}`` value (``JsonDecodeBase64Object``)."""
    if not _is_b64(value):
        raise InvalidRequest(f"JSON Value: {debug_string(value)} not formatted correctly for "
                             "base64 data")
    text = value["b64"]
    try:  # absl::Base64Unescape takes padded or unpadded, standard or web-safe alphabet
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("Unable to base64 decode") from None


def _type_error(value, dtype) -> InvalidRequest:
    return InvalidRequest(f"JSON Value: {debug_string(value)} Type: {_json_type(value)} is "
                          f"not of expected type: {data_type_string(dtype)}")


def _is_int(value, low, high) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) and low <= value <= high


def _scalar(value, dtype):
    """``AddValueToTensor``: one JSON value as a value of ``dtype`` (a ``tf.DType``)."""
    name = dtype.name
    if dtype.is_floating and name in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        return float(value)
    if name in ("int32", "int16", "int8", "uint8"):
        if not _is_int(value, *_INT32):
            raise _type_error(value, dtype)
        return value
    if name == "string":
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return request_bytes(value)
    if name == "int64":
        if not _is_int(value, *_INT64):
            raise _type_error(value, dtype)
        return value
    if name == "bool":
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if name == "uint32":
        if not _is_int(value, 0, _UINT32_MAX):
            raise _type_error(value, dtype)
        return value
    if name == "uint64":
        if not _is_int(value, 0, _UINT64_MAX):
            raise _type_error(value, dtype)
        return value
    raise InvalidRequest(f"Conversion of JSON Value: {debug_string(value)} to type: "
                         f"{data_type_string(dtype)}")  # UNIMPLEMENTED in TF Serving


def _dense_shape(value) -> list:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level: int, shape: list, dtype, out: list, budget: int) -> None:
    """``FillTensorProto``: checks the nesting and appends the leaf values to ``out``."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise InvalidRequest(f"JSON Value: {debug_string(value)} found at incorrect level: "
                                 f"{level + 1} in the JSON DOM. Expected at level: {rank}")
        if isinstance(value, dict):
            if dtype.name != "string":
                raise _type_error(value, dtype)
            out.append(decode_b64(value))
        else:
            out.append(_scalar(value, dtype))
        if len(out) > budget:
            raise InvalidRequest(f"more than {budget} values in one input")
        return
    if level >= rank:
        raise InvalidRequest(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise InvalidRequest(f"Encountered list at unexpected size: {len(value)} at level: "
                             f"{level} expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, dtype, out, budget)


def _array(values: list, shape: list, dtype) -> np.ndarray:
    if dtype.name == "string":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    return np.array(values, dtype=dtype.as_numpy_dtype).reshape(shape)


def _shape_text(shape: list) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def predict_inputs(document: dict, input_dtypes: dict,
                   budget: Callable[[object], int], requested_signature: str = "") -> tuple:
    """``FillPredictRequestFromJson`` after the signature is known: ``(format, {alias:
    ndarray})`` with format ``"row"`` (``instances``) or ``"columnar"`` (``inputs``).

    ``input_dtypes`` maps the signature's input aliases to ``tf.DType``; ``budget(dtype)`` is
    the largest number of values one input may hold (checked while parsing, before any tensor
    is made); ``requested_signature`` is the request's ``signature_name`` (for the message)."""
    if not input_dtypes:
        raise InvalidRequest("Failed to get input map for signature: "
                             + (requested_signature or "DEFAULT"))
    names = sorted(input_dtypes)
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise InvalidRequest(f"JSON Value: {debug_string(document)} Not formatted correctly "
                             "expecting only one of 'inputs' or 'instances' keys to exist ")
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise InvalidRequest(f"JSON Value: {debug_string(document)} Expecting 'instances' "
                                 "to be an list/array")
        if not instances:
            raise InvalidRequest(f"JSON Value: {debug_string(document)} No values in "
                                 "'instances' array")
        return "row", _from_instances(instances, input_dtypes, names, budget)
    if has_inputs:
        return "columnar", _from_inputs(document["inputs"], input_dtypes, names, budget)
    raise InvalidRequest("Missing 'inputs' or 'instances' key")


def _from_instances(instances: list, input_dtypes: dict, names: list, budget) -> dict:
    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise InvalidRequest("instances is a plain list, but expecting list of objects as "
                             "multiple input tensors required as per tensorinfo_map")

    def is_named(value):
        return isinstance(value, dict) and not _is_b64(value)

    named = is_named(instances[0])
    values: dict[str, list] = {}
    shapes: dict[str, list] = {}
    sizes: dict[str, int] = {}

    def add(item, name, index, keyed):
        if name not in input_dtypes:
            error = InvalidRequest(f"JSON object: does not have named input: {name}")
        else:
            error = None
            dtype = input_dtypes[name]
            shape = _dense_shape(item)
            leaves: list = []
            try:
                _fill(item, 0, shape, dtype, leaves, budget(dtype))
            except InvalidRequest as err:
                error = err
            else:
                if name not in sizes:
                    sizes[name], shapes[name] = len(leaves), shape
                elif sizes[name] != len(leaves):
                    error = InvalidRequest(f"Expecting tensor size: {sizes[name]} but got: "
                                           f"{len(leaves)}")
                elif shapes[name] != shape:
                    error = InvalidRequest(f"Expecting shape {_shape_text(shapes[name])} but "
                                           f"got: {_shape_text(shape)}")
                values.setdefault(name, []).extend(leaves)
                if len(values[name]) > budget(dtype):
                    error = InvalidRequest(f"input {name!r}: more than {budget(dtype)} values")
        if error is not None:
            where = f" key: {name}" if keyed else ""
            raise InvalidRequest(f"Failed to process element: {index}{where} of 'instances' "
                                 f"list. Error: INVALID_ARGUMENT: {error}")

    for index, element in enumerate(instances):
        if named:
            if not is_named(element):
                raise InvalidRequest(f"Expecting object but got list at item {index} of input "
                                     "list")
            for name, item in element.items():
                add(item, name, index, True)
            if set(element) != set(names):
                raise InvalidRequest(f"Failed to process element: {index} of 'instances' list. "
                                     f"JSON object: {debug_string(element)} keys must be equal "
                                     f"to: {','.join(names)}")
        else:
            if is_named(element):
                raise InvalidRequest(f"Expecting value/list but got object at item {index} of "
                                     "input list")
            add(element, names[0], index, False)
    return {name: _array(values[name], [len(instances)] + shapes[name], input_dtypes[name])
            for name in values}


def _from_inputs(value, input_dtypes: dict, names: list, budget) -> dict:
    def tensor(item, name):
        dtype = input_dtypes[name]
        shape = _dense_shape(item)
        leaves: list = []
        _fill(item, 0, shape, dtype, leaves, budget(dtype))
        return _array(leaves, shape, dtype)

    if not isinstance(value, dict) or _is_b64(value):
        if len(input_dtypes) > 1:
            raise InvalidRequest("inputs is a plain value/list, but expecting an object as "
                                 "multiple input tensors required as per tensorinfo_map")
        return {names[0]: tensor(value, names[0])}
    arrays = {}
    for name in names:
        if name not in value:
            raise InvalidRequest(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = tensor(value[name], name)
    return arrays


def _feature_kind(feature: dict) -> str:
    return feature.get("kind", "UNKNOWN")


def _add_feature_value(value, name: str, feature: dict) -> None:
    """``AddValueToFeature``: one JSON value into a feature being built."""
    def check(kind):
        if feature.setdefault("kind", kind) != kind:
            raise InvalidRequest(f"Unexpected element type in feature: {name} expecting type: "
                                 f"{_feature_kind(feature)}")

    if value is None or isinstance(value, list) or (isinstance(value, dict)
                                                    and not _is_b64(value)):
        raise InvalidRequest(f"Feature: {name} has element with unexpected JSON type: "
                             f"{_json_type(value)}")
    if isinstance(value, bool):
        check("int64")
        feature.setdefault("values", []).append(int(value))
    elif isinstance(value, dict):
        check("bytes")
        feature.setdefault("values", []).append(decode_b64(value))
    elif isinstance(value, str):
        check("bytes")
        feature.setdefault("values", []).append(request_bytes(value))
    elif isinstance(value, float):
        check("float")
        feature.setdefault("values", []).append(value)
    else:
        check("int64")
        if value > _INT64[1]:
            raise InvalidRequest(f"Feature: {name} has uint64_t element. Only int64_t is "
                                 "supported.")
        feature.setdefault("values", []).append(value)


def _example(value):
    """``MakeExampleFromJsonObject``: a ``tf.train.Example`` from a JSON object."""
    import tensorflow as tf
    if not isinstance(value, dict):
        raise InvalidRequest(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = tf.train.Example()
    for name, content in value.items():
        feature: dict = {}
        for item in (content if isinstance(content, list) else [content]):
            _add_feature_value(item, name, feature)
        target = example.features.feature[name]
        kind = feature.get("kind")
        if kind == "bytes":
            target.bytes_list.value.extend(feature["values"])
        elif kind == "float":
            target.float_list.value.extend(feature["values"])
        elif kind == "int64":
            target.int64_list.value.extend(feature["values"])
    return example


def classify_regress_input(document: dict):
    """``FillClassifyRegressRequestFromJson``: the TF Serving ``Input`` proto of a
    ``:classify`` / ``:regress`` body."""
    from tensorflow_serving.apis import input_pb2
    proto = input_pb2.Input()
    has_context = "context" in document
    if has_context:
        proto.example_list_with_context.context.CopyFrom(_example(document["context"]))
    if "examples" not in document:
        raise InvalidRequest(f"JSON Value: {debug_string(document)} When method is classify, "
                             "key 'examples' is expected and was not found")
    examples = document["examples"]
    if not isinstance(examples, list):
        raise InvalidRequest(f"JSON Value: {debug_string(document)} Expecting 'examples' value "
                             "to be an list/array")
    if not examples:
        raise InvalidRequest(f"JSON Value: {debug_string(document)} 'examples' value is an "
                             "empty array")
    target = (proto.example_list_with_context.examples if has_context
              else proto.example_list.examples)
    for value in examples:
        target.add().CopyFrom(_example(value))
    return proto


# ---------------------------------------------------------------------------------------------
# Writing responses

def _write_scalar(writer: PrettyWriter, value, dtype: np.dtype, as_bytes: bool) -> None:
    if dtype in (np.float32, np.float64):
        writer.raw(decimal(value, dtype))
    elif dtype == np.bool_:
        writer.raw("true" if value else "false")
    elif dtype.kind in "iu":
        writer.raw(str(int(value)))
    elif dtype == object or dtype.kind == "S":
        if as_bytes:
            writer.start_object()
            writer.key("b64")
            writer.string(base64.b64encode(value))
            writer.end_object()
        else:
            writer.string(value)
    else:
        raise InvalidRequest(f"Failed to write JSON value for tensor type: {dtype.name}")


def _write_values(writer: PrettyWriter, value, dtype: np.dtype, as_bytes: bool) -> None:
    """``AddTensorValues``: ``value`` (an array, or one element of an array of ``dtype``)."""
    if not isinstance(value, np.ndarray) or value.ndim == 0:
        _write_scalar(writer, value[()] if isinstance(value, np.ndarray) else value, dtype,
                      as_bytes)
        return
    writer.start_array()
    for item in value:
        _write_values(writer, item, dtype, as_bytes)
    writer.end_array()


def _is_bytes_output(name: str, array: np.ndarray) -> bool:
    return array.dtype == object and name.endswith(BYTES_SUFFIX)


def predict_response(outputs: dict, request_format: str) -> bytes:
    """``MakeJsonFromTensors``: the body of a ``:predict`` answer."""
    if not outputs:
        raise InvalidRequest("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {name: np.asarray(outputs[name]) for name in names}
    writer = PrettyWriter()
    writer.start_object()
    several = len(names) > 1
    if request_format == "row":
        batch = -1
        for name in names:
            if arrays[name].ndim == 0:
                raise InvalidRequest(f"Tensor name: {name} has no shape information ")
            size = arrays[name].shape[0]
            if batch >= 0 and size != batch:
                raise InvalidRequest(f"Tensor name: {name} has inconsistent batch size: {size} "
                                     f"expecting: {batch}")
            batch = size
        writer.key("predictions")
        writer.start_array()
        for row in range(batch):
            if several:
                writer.start_object()
            writer.single_line = True
            for name in names:
                if several:
                    writer.key(name)
                _write_values(writer, arrays[name][row], arrays[name].dtype,
                              _is_bytes_output(name, arrays[name]))
            writer.single_line = False
            if several:
                writer.end_object()
        writer.end_array()
    else:
        writer.key("outputs")
        if several:
            writer.start_object()
        for name in names:
            if several:
                writer.key(name)
            _write_values(writer, arrays[name], arrays[name].dtype,
                          _is_bytes_output(name, arrays[name]))
        if several:
            writer.end_object()
    writer.end_object()
    return writer.getvalue()


def classify_response(classes: Optional[np.ndarray], scores: Optional[np.ndarray]) -> bytes:
    """``MakeJsonFromClassificationResult``: ``{"results": [[[label, score], ...], ...]}``."""
    shape = (classes if classes is not None else scores).shape
    if shape[0] == 0:
        raise InvalidRequest("Cannot convert empty ClassificationResults to JSON")
    writer = PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.start_array()
    for row in range(shape[0]):
        writer.single_line = True
        writer.start_array()
        for column in range(shape[1]):
            writer.start_array()
            writer.string(classes[row, column] if classes is not None else b"")
            writer.raw(decimal(scores[row, column] if scores is not None else 0.0,
                               np.dtype(np.float32)))
            writer.end_array()
        writer.end_array()
        writer.single_line = False
    writer.end_array()
    writer.end_object()
    return writer.getvalue()


def regress_response(values) -> bytes:
    """``MakeJsonFromRegressionResult``: ``{"results": [v, ...]}`` on one line."""
    if len(values) == 0:
        raise InvalidRequest("Cannot convert empty RegressionResults to JSON")
    writer = PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.single_line = True
    writer.start_array()
    for value in values:
        writer.raw(decimal(value, np.dtype(np.float32)))
    writer.end_array()
    writer.end_object()
    return writer.getvalue()


def error_body(message: str) -> bytes:
    """``MakeJsonFromStatus``: ``{"error": message}`` in PrettyWriter's layout."""
    writer = PrettyWriter()
    writer.start_object()
    writer.key("error")
    writer.string(message)
    writer.end_object()
    return writer.getvalue()


# ---------------------------------------------------------------------------------------------
# Protobuf's JSON printer (model status and metadata)

def _proto_value(field, value, preserve_names: bool):
    from google.protobuf.descriptor import FieldDescriptor as F
    if field.type == F.TYPE_MESSAGE:
        full_name = field.message_type.full_name
        if full_name.startswith("google.protobuf.") and full_name.endswith("Value"):
            inner = value.DESCRIPTOR.fields_by_name["value"]
            return _proto_value(inner, value.value, preserve_names)
        return proto_dict(value, preserve_names)
    if field.type == F.TYPE_ENUM:
        enum = field.enum_type.values_by_number.get(value)
        return enum.name if enum is not None else value
    if field.type in (F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_SINT64, F.TYPE_FIXED64,
                      F.TYPE_SFIXED64):
        return str(value)
    if field.type == F.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def proto_dict(message, preserve_names: bool = True) -> dict:
    """A message as protobuf's C++ JSON printer lays it out with
    ``always_print_fields_with_no_presence``: fields without presence always, in declaration
    order, then the set members of oneofs; map keys sorted."""
    result = {}
    ordered = ([f for f in message.DESCRIPTOR.fields if f.containing_oneof is None]
               + [f for f in message.DESCRIPTOR.fields if f.containing_oneof is not None])
    for field in ordered:
        name = field.name if preserve_names else field.json_name
        value = getattr(message, field.name)
        is_map = (field.message_type is not None
                  and field.message_type.GetOptions().map_entry)
        if is_map:
            value_field = field.message_type.fields_by_name["value"]
            result[name] = {str(k): _proto_value(value_field, value[k], preserve_names)
                            for k in sorted(value)}
        elif field.label == field.LABEL_REPEATED:
            result[name] = [_proto_value(field, v, preserve_names) for v in value]
        elif field.containing_oneof is not None or field.type == field.TYPE_MESSAGE:
            if message.HasField(field.name):
                result[name] = _proto_value(field, value, preserve_names)
        else:
            result[name] = _proto_value(field, value, preserve_names)
    return result


def _printed(data) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def status_response(response) -> bytes:
    """``ToJsonString(GetModelStatusResponse)``."""
    return _printed(proto_dict(response, preserve_names=False)).encode("utf-8")


def metadata_response(model_spec, signature_def_map) -> bytes:
    """``ToJsonString(GetModelMetadataResponse)``: the model spec and the signature map printed
    apart and joined as TF Serving's code joins them."""
    spec = _printed(proto_dict(model_spec))
    signatures = _printed(proto_dict(signature_def_map))
    return ("{\n" + '"model_spec":' + spec + ",\n" + '"metadata": {' + '"signature_def": '
            + signatures + "}\n" + "}\n").encode("utf-8")
