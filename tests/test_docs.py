"""Check that the derivation pages and the op files point at each other.

Every op file in nptransformer/ops/ needs a page docs/derivations/<name>.md, and every page
a matching op file. Each page names the functions that implement it as
`nptransformer.ops.<module>.<function>`, and each such name must import. Each op file's
docstrings mention the path of its page. Every docs path that the package mentions must
exist.
"""

import ast
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPS_DIR = ROOT / "nptransformer" / "ops"
DERIVATIONS_DIR = ROOT / "docs" / "derivations"

OP_NAMES = sorted(path.stem for path in OPS_DIR.glob("*.py") if path.stem != "__init__")
PAGE_NAMES = sorted(path.stem for path in DERIVATIONS_DIR.glob("*.md"))

# A fully qualified op function, e.g. nptransformer.ops.linear.linear_forward.
FUNCTION_NAME = re.compile(r"nptransformer\.ops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")

# A docs page path as written in docstrings and comments, e.g. docs/architecture.md.
DOCS_PATH = re.compile(r"docs/[\w/.-]+\.md")


def page_path(name):
    return DERIVATIONS_DIR / f"{name}.md"


def collect_docstrings(source_path):
    """Return the module docstring and every function's and class's docstring."""
    tree = ast.parse(source_path.read_text(encoding="utf-8"))
    nodes = [tree] + [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    return [text for text in map(ast.get_docstring, nodes) if text]


def test_ops_directory_has_op_files():
    assert OP_NAMES, f"no op files found in {OPS_DIR}"


@pytest.mark.parametrize("name", OP_NAMES)
def test_op_file_has_derivation_page(name):
    assert page_path(name).is_file(), (
        f"nptransformer/ops/{name}.py has no derivation page; "
        f"expected docs/derivations/{name}.md"
    )


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_derivation_page_has_op_file(name):
    assert name in OP_NAMES, (
        f"docs/derivations/{name}.md has no op file nptransformer/ops/{name}.py; "
        "rename the page or remove it"
    )


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_derivation_page_names_its_functions(name):
    text = page_path(name).read_text(encoding="utf-8")
    modules = {module for module, _ in FUNCTION_NAME.findall(text)}
    assert name in modules, (
        f"docs/derivations/{name}.md names no function of its own op file; expected at "
        f"least one `nptransformer.ops.{name}.<function>`, found modules {sorted(modules)}"
    )


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_derivation_page_function_names_resolve(name):
    text = page_path(name).read_text(encoding="utf-8")
    for module_name, function_name in sorted(set(FUNCTION_NAME.findall(text))):
        qualified = f"nptransformer.ops.{module_name}.{function_name}"
        try:
            module = importlib.import_module(f"nptransformer.ops.{module_name}")
        except ImportError as error:
            pytest.fail(f"docs/derivations/{name}.md names {qualified}: {error}")
        function = getattr(module, function_name, None)
        assert callable(function), (
            f"docs/derivations/{name}.md names {qualified}, but "
            f"nptransformer.ops.{module_name} has no function {function_name!r}"
        )


@pytest.mark.parametrize("name", OP_NAMES)
def test_op_file_docstrings_reference_page(name):
    expected = f"docs/derivations/{name}.md"
    texts = collect_docstrings(OPS_DIR / f"{name}.py")
    assert any(expected in text for text in texts), (
        f"no docstring in nptransformer/ops/{name}.py mentions {expected}; "
        f"add 'Derivation: {expected}.' to the module docstring"
    )


def test_docs_paths_in_package_exist():
    package_dir = ROOT / "nptransformer"
    missing = []
    for source_path in sorted(package_dir.rglob("*.py")):
        text = source_path.read_text(encoding="utf-8")
        for doc_path in sorted(set(DOCS_PATH.findall(text))):
            if not (ROOT / doc_path).is_file():
                relative = source_path.relative_to(ROOT)
                missing.append(f"{relative} mentions {doc_path}")
    assert not missing, "package files mention missing docs pages:\n" + "\n".join(
        missing
    )
