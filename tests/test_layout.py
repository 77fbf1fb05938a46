"""The architecture, checked: which layer may import which, and what the docs cite.

Layers, bottom up: ``vocab`` (plain Python) < ``core`` (numpy only; prints nothing,
opens no files) < ``io`` (files) < ``render`` (what people see) < ``batch`` < ``cli``.
A module may import its own layer and those below, never above; only ``cli`` imports
click, and nothing in ``core`` imports rich or click. See docs/design.md, section 16.
"""

import ast
import doctest
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dilcli"
REPO = PACKAGE.parent
LAYERS = ["vocab", "core", "io", "render", "batch", "cli"]
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def layer_of(module_name):
    parts = module_name.split(".")
    if len(parts) < 2 or parts[0] != "dilcli":
        return None
    return parts[1] if parts[1] in LAYERS else None


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """Every module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_modules_import_only_their_layer_and_below(path):
    own = layer_of(module_name(path))
    if own is None:  # dilcli/__init__.py, __main__.py: the package's doors
        return
    for name in imports_of(path):
        other = layer_of(name)
        if other is not None:
            assert LAYERS.index(other) <= LAYERS.index(own), f"{path.name} imports {name}"
        root = name.split(".")[0]
        if root == "click":
            assert own == "cli", f"{module_name(path)} imports click"
        if root == "rich":
            assert own in ("render", "batch"), f"{module_name(path)} imports rich"


def test_the_core_opens_no_files_and_prints_nothing():
    for path in (PACKAGE / "core").glob("*.py"):
        source = path.read_text()
        assert not re.search(r"\bprint\(", source), path
        assert not re.search(r"(?<![.\w])open\(", source), path


def test_the_command_line_starts_without_numpy():
    code = (
        "import sys, click, dilcli.cli, dilcli.vocab\n"
        "from dilcli.cli import cli\n"
        "context = click.Context(cli)\n"
        "for name in cli.list_commands(context): cli.get_command(context, name)\n"
        "heavy = {'numpy', 'scipy', 'PIL', 'rich'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert len(cli.commands) >= 7"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_a_command_loads_only_its_own_module():
    code = (
        "import sys\n"
        "from dilcli.cli import main\n"
        "sys.argv = ['dilcli', 'rf-table', '-d', '1,2']\n"
        "try: main()\n"
        "except SystemExit: pass\n"
        "assert 'dilcli.cli.images' not in sys.modules, 'rf-table loaded the image commands'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_doctests_in_the_package_pass(path):
    if path.name == "__main__.py":
        return  # importing it runs the command line
    module = importlib.import_module(module_name(path))
    results = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.failed == 0


def test_every_markdown_file_the_code_cites_exists():
    """Documents named as authorities (``docs/design.md``, ``ATTRIBUTION.md``) are here."""
    cited = set()
    for path in [*MODULES, *REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py")]:
        text = path.read_text()
        cited.update(re.findall(r"\b[A-Z][A-Z_]+\.md\b|\bdocs/[\w./-]+\.md\b", text))
    cited.update(re.findall(r"\(([\w./-]+\.md)\)", (REPO / "README.md").read_text()))
    assert "docs/design.md" in cited
    cited -= {"RECEPTIVE_FIELD_TABLE.md"}  # google-research/receptive_field's, cited as such
    missing = [name for name in cited if not any(REPO.glob(f"**/{Path(name).name}"))]
    assert not missing, missing


def test_old_module_paths_still_import():
    """Scripts written for dilcli 0.1 keep working: its module paths are aliases."""
    from dilcli import _MOVED_MODULES

    for old, homes in _MOVED_MODULES.items():
        module = importlib.import_module(old)
        new = importlib.import_module(homes[0])
        public = [n for n in vars(new) if not n.startswith("_") and not n[0].isupper()]
        for name in public[:5]:
            assert getattr(module, name) is getattr(new, name), (old, name)


def test_star_imports_of_old_module_paths_bring_their_names():
    """``from dilcli.conv import *`` brought nothing: the stand-in had no __all__."""
    names = {}
    exec("from dilcli.conv import *\nfrom dilcli.context import *", names)  # noqa: S102
    assert (
        names["dilated_correlate"] is importlib.import_module("dilcli.core.conv").dilated_correlate
    )
    assert names["Layer"] is importlib.import_module("dilcli.core.layers").Layer
    assert "load_image" in dir(importlib.import_module("dilcli.imageio"))
