"""Spec: load YAML with line/column marks, validate it, normalise it into `Spec` objects."""

from trtbuild.spec.loader import load_spec
from trtbuild.spec.model import Spec

__all__ = ["Spec", "load_spec"]
