"""The imports a pickle may make and still be accepted: things safe to call with attacker arguments.

The reference is the set of globals that ``torch.load(weights_only=True)`` lets a checkpoint import
(``torch._weights_only_unpickler._get_allowed_globals``, torch 2.13): tensor and storage classes,
dtypes, quantization schemes, the ``torch._utils._rebuild_*`` functions, ``collections.OrderedDict``
and ``Counter``, ``builtins.set``/``bytearray``/``complex`` and ``_codecs.encode``. Each builds data;
none reads or writes files, imports modules or evaluates code, whatever its arguments. To these,
numpy's own array reconstruction is added (``numpy.ndarray``, ``numpy.dtype``, ``_reconstruct``,
``scalar``): it builds arrays from the bytes it is given, and any object it could be handed has to
come through an import that is itself checked here. Nothing else is allowed: not ``torch.nn``
modules (their ``__setstate__`` runs hooks), not fickling's or picklescan's wider lists.

Names are matched after Python 2 names are mapped as the unpickler maps them (``__builtin__`` ->
``builtins``), so a protocol 2 pickle cannot spell an allowed name another way to pass.
"""

from __future__ import annotations

import _compat_pickle

_TORCH_DTYPES = (
    "bfloat16 bits16 bits1x8 bits2x4 bits4x2 bits8 bool complex128 complex32 complex64 float16 float32 "
    "float4_e2m1fn_x2 float64 float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu "
    "int1 int2 int3 int4 int5 int6 int7 int8 int16 int32 int64 qint32 qint8 quint2x4 quint4x2 quint8 "
    "uint1 uint2 uint3 uint4 uint5 uint6 uint7 uint8 uint16 uint32 uint64"
).split()
_STORAGE_KINDS = "BFloat16 Bool Byte Char ComplexDouble ComplexFloat Double Float Half Int Long Short".split()
_QUANTIZED_STORAGES = ("QInt32Storage", "QInt8Storage", "QUInt2x4Storage", "QUInt4x2Storage", "QUInt8Storage")
_TENSOR_KINDS = "BFloat16 Bool Byte Char Double Float Half Int Long Short".split()
_SPARSE_KINDS = "BFloat16 Byte Char Double Float Half Int Long Short".split()
_REBUILDERS = (
    "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_device_tensor_from_numpy", "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor", "_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_qtensor",
    "_rebuild_sparse_tensor", "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
    "_rebuild_wrapper_subclass",
)
_QSCHEMES = ("per_channel_affine", "per_channel_affine_float_qparams", "per_channel_symmetric",
             "per_tensor_affine", "per_tensor_symmetric")


def _torch_names() -> set[str]:
    names = {
        "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device", "_codecs.encode",
        "builtins.bytearray", "builtins.set", "builtins.complex", "torch._tensor._rebuild_from_type_v2",
        "torch.storage.TypedStorage", "torch.storage.UntypedStorage",
    }
    names |= {f"torch.{dtype}" for dtype in _TORCH_DTYPES}
    names |= {f"torch.{qscheme}" for qscheme in _QSCHEMES}
    names |= {f"torch._utils.{function}" for function in _REBUILDERS}
    for prefix in ("torch", "torch.cuda"):
        names |= {f"{prefix}.{kind}Storage" for kind in _STORAGE_KINDS}
        names |= {f"{prefix}.{kind}Tensor" for kind in _TENSOR_KINDS}
    names |= {f"torch.{storage}" for storage in _QUANTIZED_STORAGES}
    for prefix in ("torch.sparse", "torch.cuda.sparse"):
        names |= {f"{prefix}.{kind}Tensor" for kind in _SPARSE_KINDS}
    return names


_NUMPY = {f"{module}.{name}" for module in ("numpy.core.multiarray", "numpy._core.multiarray")
          for name in ("_reconstruct", "scalar")} | {"numpy.ndarray", "numpy.dtype"}
SAFE_GLOBALS: frozenset[str] = frozenset(_torch_names() | _NUMPY)


def canonical(module: str, name: str) -> tuple[str, str]:
    """``(module, name)`` as the unpickler resolves it (Python 2 names mapped to Python 3 ones)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def is_allowed(module: str, name: str) -> bool:
    """True when importing ``module.name`` is on the allow-list."""
    module, name = canonical(module, name)
    return f"{module}.{name}" in SAFE_GLOBALS
