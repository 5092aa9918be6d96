"""Which source files each rule's code hash covers."""

from pathlib import Path

from neuralcode.provenance import module_closure, script_sources, source_hash

PACKAGE = Path(__file__).resolve().parents[1] / "src/neuralcode"


def write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def fake_package(root):
    write(
        root,
        {
            "__init__.py": "",
            "a.py": "from .b import f\nimport os\n",
            "b.py": "def f():\n    from .c import g  # inside a function\n",
            "c.py": "from . import d\nfrom neuralcode.e import h\nfrom .a import x\n",
            "d.py": "import numpy\n",
            "e.py": "",
            "unused.py": "",
            "sub/__init__.py": "",
            "sub/s.py": "from ..a import f\nfrom .t import y\n",
            "sub/t.py": "",
        },
    )


def test_closure_follows_relative_absolute_and_function_level_imports(tmp_path):
    fake_package(tmp_path)
    assert module_closure(tmp_path, "a.py") == ["a.py", "b.py", "c.py", "d.py", "e.py"]
    assert module_closure(tmp_path, "d.py") == ["d.py"]
    assert module_closure(tmp_path, "sub/s.py") == [
        "a.py",
        "b.py",
        "c.py",
        "d.py",
        "e.py",
        "sub/s.py",
        "sub/t.py",
    ]


def test_script_hash_follows_its_bytes_and_its_modules_only(tmp_path):
    root = tmp_path / "neuralcode"
    fake_package(root)
    script = tmp_path / "script.py"
    script.write_text("import sys\nfrom neuralcode.b import f\n")
    assert script_sources(script, root) == ["a.py", "b.py", "c.py", "d.py", "e.py"]
    before = source_hash(script, root)
    (root / "unused.py").write_text("x = 1\n")
    assert source_hash(script, root) == before
    (root / "d.py").write_text("import numpy as np\n")
    after_module = source_hash(script, root)
    assert after_module != before
    script.write_text(script.read_text() + "# a comment\n\n")
    assert source_hash(script, root) == after_module, "comments are not code"
    script.write_text(script.read_text() + "x = 1\n")
    assert source_hash(script, root) != after_module
    # An excluded module changes nothing.
    (root / "e.py").write_text("y = 2\n")
    assert source_hash(script, root, exclude={"e.py"}) == source_hash(
        script, root, exclude={"e.py"}
    )
    before_e = source_hash(script, root, exclude={"e.py"})
    (root / "e.py").write_text("y = 3\n")
    assert source_hash(script, root, exclude={"e.py"}) == before_e
    assert source_hash(script, root) != source_hash(script, root, exclude={"e.py"})


def test_stage_hashes_cover_their_models_and_not_other_stages():
    train = module_closure(PACKAGE, "stages/train.py")
    assert {"training.py", "grouped.py", "models.py", "cnn.py", "data.py"} <= set(train)
    assert "metrics.py" not in train and "stages/measure.py" not in train
    extract = module_closure(PACKAGE, "stages/extract.py")
    assert {"extraction.py", "cnn.py", "probes.py", "views.py"} <= set(extract)
    assert "training.py" not in extract, "editing training would redo extraction"
    measure = module_closure(PACKAGE, "stages/measure.py")
    assert {"metrics.py", "bigcodes.py", "codes.py"} <= set(measure)
    assert not {"training.py", "models.py", "data.py"} & set(measure)


def test_training_script_depends_on_the_cnn_module_and_the_engine():
    script = PACKAGE.parents[1] / "scripts/train.py"
    used = script_sources(script, PACKAGE)
    assert {"cnn.py", "grouped.py", "training.py", "stages/train.py"} <= set(used)
    assert source_hash(script, PACKAGE) != source_hash(
        script, PACKAGE, exclude={"cnn.py"}
    )
