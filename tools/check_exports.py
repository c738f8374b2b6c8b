"""Checks that each csscert module's ``__all__`` matches how the other modules use it.

Two rules, for every module under ``src/csscert``:

* every name that another csscert module imports from it (``from csscert.x import name``,
  anywhere in the file, relative imports included) must be in its ``__all__``, if it has one;
* every entry of its ``__all__`` must exist in it (defined, assigned or imported at module
  level, or a submodule of the package).

Importing a submodule (``from csscert import signing``) is not a use of ``__all__`` and is
not checked. The modules are read with :mod:`ast`, never imported.

Prints one offending (module, name) pair per line and exits 1; exits 0 when all is well.
Usage: ``python tools/check_exports.py [SRC_DIR]`` (default: the repository's ``src``).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "csscert"
DEFAULT_SRC = Path(__file__).resolve().parent.parent / "src"


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    exports: list[str] | None = None  # None: the module has no __all__
    exports_line: int = 0
    defined: set[str] = field(default_factory=set)
    dynamic: bool = False  # a module-level __getattr__ can provide any name


def module_name(src: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _targets(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Tuple | ast.List):
        for element in node.elts:
            yield from _targets(element)
    elif isinstance(node, ast.Starred):
        yield from _targets(node.value)


def _strings(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return None


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, including those inside module-level if/try/with blocks."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _top_level(stmt.body)
            yield from _top_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _top_level(stmt.body)
            for handler in stmt.handlers:
                yield from _top_level(handler.body)
            yield from _top_level(stmt.orelse)
            yield from _top_level(stmt.finalbody)
        elif isinstance(stmt, ast.With):
            yield from _top_level(stmt.body)


def read_module(module: Module) -> list[str]:
    """Fill in what ``module`` defines and exports; returns problems with ``__all__`` itself."""
    problems: list[str] = []
    for stmt in _top_level(module.tree.body):
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.defined.add(stmt.name)
            if stmt.name == "__getattr__":
                module.dynamic = True
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                if alias.name != "*":
                    module.defined.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                module.defined.update(_targets(target))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
                module.exports = _strings(stmt.value)
                module.exports_line = stmt.lineno
                if module.exports is None:
                    problems.append(f"{module.name} __all__: not a literal list of strings")
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
            module.defined.update(_targets(stmt.target))
            if isinstance(stmt.target, ast.Name) and stmt.target.id == "__all__" and stmt.value is not None:
                more = _strings(stmt.value)
                if more is None:
                    problems.append(f"{module.name} __all__: not a literal list of strings")
                elif isinstance(stmt, ast.AugAssign):
                    module.exports = [*(module.exports or []), *more]
                else:
                    module.exports = more
                    module.exports_line = stmt.lineno
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            module.defined.update(_targets(stmt.target))
    return problems


def imported_names(module: Module) -> Iterator[tuple[str, str, int]]:
    """(module imported from, name, line) for every ``from csscert... import name`` in ``module``."""
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = module.name.split(".")
            if not module.is_package:
                base = base[:-1]
            if node.level > 1:
                base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        if source != PACKAGE and not source.startswith(PACKAGE + "."):
            continue
        for alias in node.names:
            if alias.name != "*":
                yield source, alias.name, node.lineno


def check(src: Path) -> list[str]:
    modules: dict[str, Module] = {}
    problems: list[str] = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        name, is_package = module_name(src, path)
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError as exc:
            problems.append(f"{name} (file): does not parse: {exc}")
            continue
        modules[name] = Module(name, path, is_package, tree)
    for module in modules.values():
        problems.extend(read_module(module))

    # Rule 1: what other modules import must be exported.
    importers: dict[tuple[str, str], list[str]] = {}
    for module in modules.values():
        for source, name, line in imported_names(module):
            target = modules.get(source)
            if target is None or target is module or target.exports is None:
                continue
            if f"{source}.{name}" in modules:  # a submodule, not an attribute
                continue
            if name not in target.exports:
                importers.setdefault((source, name), []).append(f"{module.name}:{line}")
    for (source, name), where in sorted(importers.items()):
        problems.append(f"{source} {name}: imported by {', '.join(where)}, not in __all__")

    # Rule 2: what is exported must exist.
    for module in sorted(modules.values(), key=lambda m: m.name):
        if module.exports is None or module.dynamic:
            continue
        for name in module.exports:
            if name not in module.defined and f"{module.name}.{name}" not in modules:
                problems.append(f"{module.name} {name}: in __all__ (line {module.exports_line}), not defined")
        seen: set[str] = set()
        for name in module.exports:
            if name in seen:
                problems.append(f"{module.name} {name}: listed twice in __all__")
            seen.add(name)
    return problems


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT_SRC
    if not (src / PACKAGE).is_dir():
        print(f"check_exports: no {PACKAGE} package under {src}", file=sys.stderr)
        return 2
    problems = check(src)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
