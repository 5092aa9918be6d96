"""Which source files a rule's results depend on.

The workflow passes each rule a hash of its script and of the package modules
the script uses, as a param: editing the code behind a rule reruns its jobs,
and only its jobs, whatever the files' modification times say; comments and
formatting are not code here. The modules
are found by reading import statements, at module level and inside
functions, without importing anything.
"""

import ast
import hashlib
from pathlib import Path

PACKAGE = "neuralcode"


def _module_file(root: Path, parts) -> str | None:
    """``a/b.py`` or ``a/b/__init__.py`` under ``root``, if either exists."""
    if not parts:
        return None
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (root / candidate).is_file():
            return candidate.as_posix()
    return None


def _imports(root: Path, path: Path, package: list[str]) -> set[str]:
    """Package modules that the file at ``path`` imports anywhere in it;
    ``package`` is its package's path under ``root`` (relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        bases = []
        if isinstance(node, ast.Import):
            bases = [
                a.name.split(".")[1:]
                for a in node.names
                if a.name.split(".")[0] == PACKAGE
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level:
                base = package[: len(package) - (node.level - 1)] + module
            elif module and module[0] == PACKAGE:
                base = module[1:]
            else:
                continue
            bases = [base]
            # `from . import x` and `from .pkg import mod` name modules too.
            bases += [base + [a.name] for a in node.names]
        for parts in bases:
            module_file = _module_file(root, parts)
            if module_file is not None:
                found.add(module_file)
    return found


def _closure(root: Path, todo: set[str]) -> list[str]:
    seen = set()
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            package = list(Path(rel).parent.parts)
            todo |= _imports(root, root / rel, package) - seen
    return sorted(seen)


def module_closure(root, start: str) -> list[str]:
    """``start`` and every package module it imports, transitively.

    Parameters
    ----------
    root : path-like
        The package directory (``src/neuralcode``).
    start : str
        Path of a module relative to ``root``, e.g. ``"stages/train.py"``.

    Returns
    -------
    list of str
        Sorted paths relative to ``root``.
    """
    return _closure(Path(root), {start})


def script_sources(script, root) -> list[str]:
    """Package modules (paths relative to ``root``) that a script outside the
    package imports, directly or through other package modules."""
    return _closure(Path(root), _imports(Path(root), Path(script), []))


def _code_text(path: Path) -> bytes:
    """The code of a Python file without comments and layout: its syntax tree."""
    return ast.dump(ast.parse(path.read_text(), filename=str(path))).encode()


def source_hash(script, root, exclude=()) -> str:
    """Short sha256 over a rule's script and the package modules it uses
    (:func:`script_sources`) but ``exclude``, by name and syntax tree, so that
    comments and formatting do not count."""
    root = Path(root)
    digest = hashlib.sha256(_code_text(Path(script)))
    for rel in script_sources(script, root):
        if rel not in exclude:
            digest.update(rel.encode() + b"\0" + _code_text(root / rel))
    return digest.hexdigest()[:16]
