"""The house rules, checked on the source: what each folder may import, no import circles, small modules, every
third-party private reached only through a compat module, and the public API table."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bnport"
MODULES = sorted(PACKAGE.rglob("*.py"))
FRAMEWORKS = ("torch", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "jax")


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The modules ``path`` imports (absolute names), at module level only or anywhere."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _in_fresh_interpreter(modules: list[str]) -> list[str]:
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(f for f in {FRAMEWORKS!r} if f in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("folder, allowed", [("core", ()), ("io", ()), ("reports", ()), ("cli", ()),
                                             ("onnxcheck", ("onnx", "onnxruntime"))])
def test_a_folder_imports_only_the_frameworks_it_is_named_for(folder, allowed):
    modules = [_name(p) for p in MODULES if p.relative_to(PACKAGE).parts[0] == folder]
    assert modules
    assert set(_in_fresh_interpreter(modules)) <= set(allowed)


def test_no_import_circles_between_bnports_modules():
    known = {_name(p): p for p in MODULES}
    edges = {}
    for name, path in known.items():
        targets = set()
        for imported in _imports(path, top_level_only=True):
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "bnport":
                targets.add(imported)
        edges[name] = targets
    circles = []
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_no_name_directly_under_bnport_is_a_public_function():
    import bnport

    functions = {n for n in bnport.__all__ if n[0].islower() and not n.startswith("_")}
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert names & functions == set()


#: attribute names and modules private to a library bnport depends on; reached only from the compat modules
PRIVATE = ("_inbound_nodes", "_outbound_nodes", "_keras_history", "_nodes_by_depth", "_run_through_graph",
           "_standardize_inputs", "_flatten_layers", "_call_context_args", "_save_state", "_get_optimizers",
           "_foreach_copy_", "_convert_data_format", "_h5_entry_initialized", "_h5_entry_path", "_h5_entry_group",
           "_create_h5_group", "_maybe_convert_to_channels_last", "_available", "_import_tree",
           "import_all_plugins")
COMPAT = {"bnport.adapters.keras.compat.keras", "bnport.adapters.keras.compat.keras_ops",
          "bnport.adapters.keras.compat.tf2onnx", "bnport.adapters.keras.compat.tf2onnx_graph",
          "bnport.adapters.keras.compat.jax2onnx", "bnport.adapters.torch.compat"}


def test_third_party_privates_are_reached_only_through_the_compat_modules():
    offenders = []
    for path in MODULES:
        name = _name(path)
        if name in COMPAT:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                offenders.append(f"{name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in PRIVATE:
                offenders.append(f"{name}:{node.lineno} '{node.value}'")
        offenders += [f"{name} imports {m}" for m in _imports(path, top_level_only=False)
                      if m.startswith(("keras.src", "tf2onnx.", "jax2onnx."))]
    assert offenders == []


def test_every_name_of_the_public_api_table_resolves_to_what_its_module_defines():
    import bnport

    assert bnport.__all__ == sorted(set(bnport._EAGER) | set(bnport._LAZY))
    for name, module in bnport._LAZY.items():
        assert getattr(bnport, name) is getattr(importlib.import_module(module), name), name
    for name in ("port", "verify", "convert", "from_torch", "to_keras", "check_layer", "explain", "plan",
                 "inspect", "ConvertReport", "Row", "VerifyReport", "PortReport", "PatchError"):
        assert name in bnport.__all__
    from bnport.testing import assert_ported

    assert callable(assert_ported)


def test_the_console_script_and_the_report_schema_keep_their_names():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    module, _, function = project["scripts"]["bnport"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    from bnport.reports import writers

    assert Path(writers.SCHEMA_PATH).name in {p.name for p in (PACKAGE / "schemas").glob("*.json")}


def test_the_bundled_keras_archives_are_written_by_the_oldest_supported_keras():
    """Keras reads the archives older versions wrote, not newer ones': written by the floor Keras, every supported
    Keras (the demo's user's included) reads them (scripts/make_fixtures.py keras, run with the floor set)."""
    import json
    import zipfile

    floor = dict(line.split("==") for line in (PACKAGE.parent / "scripts" / "constraints-floor.txt").read_text()
                 .split() if "==" in line)["keras"]
    archives = sorted((PACKAGE.parent / "fixtures").glob("*.keras"))
    assert archives
    written = {p.name: json.loads(zipfile.ZipFile(p).read("metadata.json"))["keras_version"] for p in archives}
    assert written == dict.fromkeys(written, floor)


def test_both_adapters_offer_every_verb_of_the_protocol():
    import inspect

    from bnport import adapters
    from bnport.adapters.base import Adapter

    verbs = {n for n, v in vars(Adapter).items() if callable(v) and not n.startswith("_")}
    assert {"graph", "prepare", "commit", "values", "load", "destination", "save"} <= verbs
    for framework in ("torch", "keras"):
        adapter = adapters.get(framework)
        assert adapter.framework == framework
        for verb in verbs:
            mine, protocol = getattr(type(adapter), verb, None), getattr(Adapter, verb)
            assert callable(mine), f"{framework} adapter lacks {verb}"
            assert list(inspect.signature(mine).parameters) == list(inspect.signature(protocol).parameters), verb


def test_the_port_and_convert_workflows_do_not_branch_on_direction():
    for name in ("porting", "conversion"):
        tree = ast.parse((PACKAGE / "workflows" / f"{name}.py").read_text())
        compared = [node for node in ast.walk(tree) if isinstance(node, ast.Compare)
                    and any(isinstance(side, ast.Name) and side.id in ("TORCH", "KERAS", "TO_KERAS", "TO_TORCH")
                            for side in [node.left, *node.comparators])]
        assert compared == [], name


def test_each_built_in_kind_is_one_module_declaring_it_and_both_sides():
    from bnport.adapters import kinds as kind_defs
    from bnport.core import kinds

    definitions = kind_defs.definitions()
    assert [d.name for d in definitions] == list(kind_defs.MODULES)
    assert set(kinds.BUILT_IN) == set(kind_defs.MODULES)
    for d in definitions:
        if d.name == "batchnorm":  # its own spec and modules (adapters/*/batchnorm.py)
            continue
        assert d.torch_read and d.keras_read and d.keras_targets, d.name
        assert d.keras_classes() or d.keras_match, d.name
        assert d.torch_classes(), d.name
    names = {p.stem for p in (PACKAGE / "adapters" / "kinds").glob("*.py")} - {"__init__"}
    assert names == set(kind_defs.MODULES)
