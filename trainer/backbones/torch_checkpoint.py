"""Reads PyTorch checkpoints in the legacy (pre-1.6, non-zip) format with pickle and numpy only,
so converting shipped weights never makes PyTorch a dependency.

The legacy format is five pickles in a row and then raw storage bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version (1001);
3. system info (byte order, sizes of short/int/long);
4. the object itself (here a state dict), whose tensors reference storages through
   ``persistent_id`` tuples ``("storage", storage class, key, location, elements, view)`` and are
   rebuilt by ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``;
5. the list of storage keys in file order; each storage then follows as an int64 element count
   and its elements' raw bytes.

:func:`write_legacy_checkpoint` writes the same format (tests use it for round trips).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct

import numpy as np

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

# PyTorch storage class name -> numpy dtype.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointFormatError(ValueError):
    """The file is not a legacy PyTorch checkpoint this reader understands."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    """A storage whose bytes come after the object pickle."""

    def __init__(self, storage_type: _StorageType, elements: int, key: str = ""):
        self.dtype = storage_type.dtype
        self.elements = elements
        self.key = key
        self.array = None


class _LazyTensor:
    """A tensor whose storage is filled in after the object pickle has been read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array
        if not self.size:
            return np.array(flat[self.offset], dtype=flat.dtype.newbyteorder("="))
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.ascontiguousarray(view).astype(flat.dtype.newbyteorder("="))


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(tensor, *unused):
    return tensor


class _Unpickler(pickle.Unpickler):
    """Resolves only the handful of globals a state dict needs; anything else is refused, so a
    checkpoint cannot run code while it is read."""

    def __init__(self, file, storages: dict):
        super().__init__(file, encoding="latin1")
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointFormatError(f"checkpoint refers to {module}.{name}, which a weights "
                                    "file should not contain")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, elements = saved_id[:5]
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError(f"unexpected persistent id {saved_id[:2]}")
        if len(saved_id) > 5 and saved_id[5] is not None:
            raise CheckpointFormatError("storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type, int(elements))
        return self._storages[key]


def _materialise(value):
    if isinstance(value, _LazyTensor):
        return value.to_numpy()
    if isinstance(value, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in value.items())
    return value


def read_legacy_checkpoint(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """The state dict in a legacy PyTorch checkpoint at ``path``: names → numpy arrays (in file
    order). Raises :class:`CheckpointFormatError` for anything else (a zip-format checkpoint,
    a truncated file, a pickle with other globals)."""
    with open(path, "rb") as file:
        data = file.read()
    if data[:2] == b"PK":
        raise CheckpointFormatError(f"{path} is a zip-format PyTorch checkpoint (PyTorch >= 1.6); "
                                    "only the legacy format is read here")
    stream = io.BytesIO(data)
    try:
        if pickle.load(stream) != MAGIC_NUMBER:
            raise CheckpointFormatError(f"{path} is not a legacy PyTorch checkpoint")
        if pickle.load(stream) != PROTOCOL_VERSION:
            raise CheckpointFormatError(f"{path}: unsupported checkpoint protocol version")
        system = pickle.load(stream)
        if not system.get("little_endian", True):
            raise CheckpointFormatError(f"{path}: big-endian checkpoints are not supported")
        storages: dict = {}
        state = _Unpickler(stream, storages).load()
        keys = pickle.load(stream)
        for key in keys:
            storage = storages[key]
            (elements,) = struct.unpack("<q", stream.read(8))
            if elements != storage.elements:
                raise CheckpointFormatError(f"{path}: storage {key} has {elements} elements, "
                                            f"expected {storage.elements}")
            raw = stream.read(elements * storage.dtype.itemsize)
            if len(raw) != elements * storage.dtype.itemsize:
                raise CheckpointFormatError(f"{path} is truncated (storage {key})")
            storage.array = np.frombuffer(raw, dtype=storage.dtype)
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, struct.error) as err:
        raise CheckpointFormatError(f"{path} is not a readable legacy PyTorch checkpoint: "
                                    f"{err}") from err
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"{path} holds a {type(state).__name__}, not a state dict")
    return _materialise(state)


class _Global:
    """Pickles as a reference to ``module.name`` (a GLOBAL opcode) without importing it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce wants a callable
        raise TypeError("a stand-in for a PyTorch global")


class _Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table is extensible
    dispatch = dict(pickle._Pickler.dispatch)

    def save_stand_in(self, obj: _Global):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = save_stand_in

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", _storage_name(obj.dtype)), obj.key, "cpu",
                    obj.elements)
        return None


class _TensorReduce:
    """Pickles as ``_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())``."""

    def __init__(self, storage: "_Storage", size: tuple, stride: tuple):
        self.storage, self.size, self.stride = storage, size, stride

    def __reduce__(self):
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, 0, self.size, self.stride, False, collections.OrderedDict()))


def _storage_name(dtype) -> str:
    for name, numpy_dtype in _STORAGE_DTYPES.items():
        if np.dtype(numpy_dtype) == np.dtype(dtype).newbyteorder("="):
            return name
    raise ValueError(f"no PyTorch storage for dtype {dtype}")


def write_legacy_checkpoint(path: str, state: dict) -> None:
    """Writes ``state`` (names → numpy arrays) in PyTorch's legacy checkpoint format."""
    storages, tensors = [], collections.OrderedDict()
    for name, array in state.items():
        array = np.array(array, order="C")  # ascontiguousarray would make a scalar 1-d
        storage = _Storage(_StorageType(_storage_name(array.dtype)), array.size,
                           key=str(len(storages)))
        storage.array = array.reshape(-1).astype(storage.dtype)
        storages.append(storage)
        stride = tuple(int(s // array.itemsize) for s in array.strides)
        tensors[name] = _TensorReduce(storage, tuple(array.shape), stride)
    with open(path, "wb") as file:
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION,
                       {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 8}}):
            pickle.dump(header, file, protocol=2)
        _Pickler(file, protocol=2).dump(tensors)
        pickle.dump([storage.key for storage in storages], file, protocol=2)
        for storage in storages:
            file.write(struct.pack("<q", storage.elements))
            file.write(storage.array.tobytes())
