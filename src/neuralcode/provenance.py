"""Which source files a rule's results depend on.

The workflow passes a hash of these files to each rule as a param, so that
editing the code behind a rule reruns its jobs, and only its jobs (Snakemake
itself tracks only the rule's script). The files are found by reading import
statements, at module level and inside functions, without importing anything.
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


def _imports(root: Path, rel: str) -> set[str]:
    """Package modules that the module at ``rel`` imports anywhere in it."""
    package = list(Path(rel).parent.parts)
    found = set()
    for node in ast.walk(ast.parse((root / rel).read_text(), filename=rel)):
        bases = []
        if isinstance(node, ast.Import):
            bases = [
                a.name.split(".")[1:]
                for a in node.names
                if a.name.split(".")[0] == PACKAGE
            ]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".") if node.module else []
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
    root = Path(root)
    seen, todo = set(), [start]
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo.extend(_imports(root, rel) - seen)
    return sorted(seen)


def source_hash(root, start: str) -> str:
    """Short sha256 over the files of :func:`module_closure` (names and bytes)."""
    digest = hashlib.sha256()
    for rel in module_closure(root, start):
        digest.update(rel.encode() + b"\0" + (Path(root) / rel).read_bytes())
    return digest.hexdigest()[:16]
