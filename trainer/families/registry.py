"""The registry of model families: the only list of them.

Each line names a family's folder; its ``spec.py`` defines ``SPEC`` (``trainer.families.spec``).
Adding a family is its folder plus one line here. Importing this module imports no TensorFlow and
no model code (specs name code by dotted path), so ``pipeline/`` and the command line can ask it.

Tests and plugins can add families and composites at run time with :func:`register` (undone by
:func:`unregister`), e.g. a throw-away family that lives under ``tests/``.
"""

from __future__ import annotations

import importlib

from trainer.families.spec import CompositeSpec, FamilySpec

# The built-in families, in the order the pipeline wires their branches.
FAMILY_PACKAGES = (
    "trainer.families.category",
    "trainer.families.attributes",
    "trainer.families.brand",
    "trainer.families.detector",
    "trainer.families.dual_encoder",
)
# The built-in composite nodes (built from several families' blessed models).
COMPOSITE_PACKAGES = ("trainer.composites.garments",)

_registered: list = []


def _load(package: str):
    spec = getattr(importlib.import_module(f"{package}.spec"), "SPEC", None)
    if not isinstance(spec, (FamilySpec, CompositeSpec)):
        raise TypeError(f"{package}.spec must define SPEC, a FamilySpec or CompositeSpec")
    return spec


def family_specs() -> tuple:
    """Every family's spec, built-in ones first."""
    specs = [_load(p) for p in FAMILY_PACKAGES]
    specs += [s for s in _registered if isinstance(s, FamilySpec)]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"families registered twice: {duplicates}")
    return tuple(specs)


def composite_specs() -> tuple:
    """Every composite node's spec."""
    return tuple(_load(p) for p in COMPOSITE_PACKAGES) + tuple(
        s for s in _registered if isinstance(s, CompositeSpec))


def family_names() -> tuple:
    """The names of every family, in registry order."""
    return tuple(spec.name for spec in family_specs())


def get(name: str) -> FamilySpec:
    """The spec of family ``name`` (ValueError naming the known families otherwise)."""
    for spec in family_specs():
        if spec.name == name:
            return spec
    raise ValueError(f"unknown family {name!r}; choose from {family_names()}")


def register(spec) -> None:
    """Adds a family or composite at run time (tests, plugins)."""
    if not isinstance(spec, (FamilySpec, CompositeSpec)):
        raise TypeError("register takes a FamilySpec or a CompositeSpec")
    _registered.append(spec)
    try:
        family_specs()  # refuses a name already taken
    except ValueError:
        _registered.remove(spec)
        raise


def unregister(spec) -> None:
    """Removes a family or composite added by :func:`register`."""
    _registered.remove(spec)
