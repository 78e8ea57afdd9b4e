"""The one writer of the YAML the pipeline generates: Flux objects, Flux Operator objects, the child pipeline,
``config``.

PyYAML's dumper writes a mapping or list met twice in the data as an anchor
(``&id001``) and aliases (``*id001``) to it (``Serializer.anchor_node``). A generated
file is read by people and by several YAML readers (kubectl, Flux's kustomize-controller,
GitLab), and one with aliases is neither what it looks like to a reviewer nor what every
reader accepts. So generated YAML never holds an anchor or an alias: every value is
written out where it is used. (Generated data is built from plain mappings and lists,
never recursive, so writing shared values out always ends.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _PlainDumper(yaml.SafeDumper):
    """The safe dumper, writing every value out: no anchors, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any, **options: Any) -> str:
    """``data`` as one YAML document, keys in insertion order, without anchors or aliases.

    ``options``: PyYAML's emitter options (``width``, ``default_flow_style``, ...).
    """
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, **options)


def dump_all(documents: Iterable[Any], **options: Any) -> str:
    """``documents`` as a multi-document YAML stream (``---`` between them), as :func:`dump` writes each."""
    return yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False, **options)
