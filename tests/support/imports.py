"""Which project modules a source file imports, read from its syntax tree (nothing is imported).

Names are dotted and relative to the package: ``core.errors``, ``door.charts``, ``cli``. A package's
``__init__.py`` is named after the package (``door``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import faas_deployment

PACKAGE = Path(faas_deployment.__file__).resolve().parent


def module_name(path: Path) -> str:
    """``path``'s dotted name under the package (``core/errors.py`` -> ``core.errors``)."""
    parts = path.resolve().relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = PACKAGE.joinpath(*dotted.split(".")) if dotted else PACKAGE
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _resolve(package: str, module: str, names: list[str]) -> set[str]:
    """``from <package>.<module> import <names>``: the submodules named, else the module itself."""
    base = ".".join(p for p in (package, module) if p)
    found = {f"{base}.{n}" if base else n for n in names if _is_module(f"{base}.{n}" if base else n)}
    if len(found) < len(names) and base:
        found.add(base)
    return found


def _skipped(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` blocks: their imports are never run."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def project_imports(path: Path, *, module_level_only: bool = False, runtime_only: bool = False,
                    root: Path | None = None) -> set[str]:
    """The project modules ``path`` imports, as dotted names under the package.

    Relative imports are resolved from ``path``'s place (``root`` if given stands for the package
    directory, for probe files); ``faas_deployment.x`` absolute imports too. With ``module_level_only``
    only the module body counts; with ``runtime_only`` imports under ``if TYPE_CHECKING:`` do not.
    """
    tree = ast.parse(path.read_text(), str(path))
    if root is not None:
        package = ""
    else:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if module_level_only:
        nodes = [n for n in tree.body if not (runtime_only and _skipped(n))]
    else:
        nodes = []
        stack: list[ast.AST] = [tree]
        while stack:
            node = stack.pop()
            if runtime_only and _skipped(node):
                continue
            nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".") if package else []
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            found |= _resolve(base, node.module or "", [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "faas_deployment":
            found |= _resolve("", ".".join(node.module.split(".")[1:]), [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found |= {a.name.partition(".")[2] for a in node.names if a.name.startswith("faas_deployment.")}
    return found


def source_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (the templates are not modules)."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "template" not in p.relative_to(PACKAGE).parts}
