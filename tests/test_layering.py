"""The import layers, enforced by reading the code's imports (every ``import`` statement,
also those inside functions).

schemas/ and pipeline_config.py at the bottom; trainer/ (training, export, the families) above
them; components/ (TFX components) and pipeline/ (wiring) above that; serving/ (the model server
and client) beside them importing no training code; fashion_cli.py on top.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "trainer", "components", "pipeline", "serving")
OURS = PACKAGES + ("pipeline_config", "fashion_cli")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files(*folders) -> list:
    found = []
    for folder in folders:
        target = ROOT / folder
        found += [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    return found


def imports(path: pathlib.Path) -> list:
    """``(imported module, at module level)`` for every import statement of a file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, id(node) in top_level))
            # "from trainer.families import registry" imports trainer.families.registry
            found += [(f"{node.module}.{alias.name}", id(node) in top_level)
                      for alias in node.names]
    return found


def _ours(module: str) -> bool:
    return module.split(".")[0] in OURS


def _violations(folders, forbidden) -> list:
    return [(str(path.relative_to(ROOT)), module) for path in _files(*folders)
            for module, _ in imports(path) if module.split(".")[0] in forbidden
            or any(module == f or module.startswith(f + ".") for f in forbidden)]


def test_trainer_never_imports_the_server():
    assert _violations(["trainer"], {"serving", "fashion_cli"}) == []


def test_the_server_imports_no_training_components_or_pipeline():
    assert _violations(["serving"], {"trainer", "components", "pipeline", "fashion_cli"}) == []


def test_components_never_import_the_command_line():
    assert _violations(["components", "pipeline", "trainer"], {"fashion_cli"}) == []


def test_the_bottom_layer_imports_only_itself():
    assert _violations(["schemas"], set(OURS) - {"schemas"}) == []
    lazy = [(module, top) for module, top in imports(ROOT / "pipeline_config.py")
            if _ours(module)]
    # get_config asks the registry for the families' presets, inside the function.
    assert all(not top and module.startswith("trainer.families") for module, top in lazy), lazy


def _family_folders() -> list:
    return sorted(p for p in (ROOT / "trainer" / "families").iterdir()
                  if p.is_dir() and (p / "spec.py").exists())


def test_no_family_imports_another_familys_folder():
    names = {folder.name for folder in _family_folders()}
    for folder in _family_folders():
        others = {f"trainer.families.{name}" for name in names - {folder.name}}
        assert _violations([str(folder.relative_to(ROOT))], others) == [], folder.name


def test_generic_code_names_no_family():
    """Outside a family's folder, code reaches families only through the registry and the
    spec types."""
    families = {f"trainer.families.{folder.name}" for folder in _family_folders()}
    generic = [str(p.relative_to(ROOT)) for p in [ROOT / "fashion_cli.py", ROOT / "scripts",
                                                  ROOT / "components", ROOT / "pipeline",
                                                  ROOT / "serving"]]
    generic += [str(p.relative_to(ROOT)) for p in (ROOT / "trainer").iterdir()
                if p.name != "families" and (p.suffix == ".py" or p.is_dir())]
    assert _violations(generic, families) == []


def model_code_modules() -> set:
    """Our modules that import Keras, directly or through another of our modules."""
    graph = {}
    for path in _files(*PACKAGES, "pipeline_config.py", "fashion_cli.py"):
        graph[_module_name(path)] = {m for m, _ in imports(path)}
    model_code = {name for name, used in graph.items()
                  if any(m == "keras" or m.startswith("keras.") for m in used)}
    changed = True
    while changed:
        changed = False
        for name, used in graph.items():
            if name not in model_code and used & model_code:
                model_code.add(name)
                changed = True
    return model_code


def test_the_model_code_set_is_what_it_should_be():
    model_code = model_code_modules()
    assert {"trainer.training", "trainer.kinds.classifier",
            "trainer.families.category.model"} <= model_code
    assert not {"trainer.families.registry", "trainer.families.category.spec",
                "trainer.kinds.classifier_evaluation", "pipeline.pipeline"} & model_code


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_building_the_pipeline_loads_no_model_code(profile):
    """``pipeline/`` wires every registered family without importing a model: checked in a
    fresh interpreter after building the whole pipeline."""
    script = (
        "import sys, json\n"
        "import pipeline_config as pc\n"
        "from pipeline.pipeline import create_pipeline\n"
        f"create_pipeline(pc.get_config({profile!r}, workspace='/tmp/layering'))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{list(OURS)!r})))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    import json
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "trainer.families.registry" in loaded  # it did ask the registry
    assert loaded & model_code_modules() == set()
