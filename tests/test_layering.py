"""The package layers point one way: core imports no other vad package, and each package imports only packages
of the layers below its own — function-level imports and import_module("...") by name included. And no two vad
modules import each other, directly or round a longer cycle."""
import ast
from pathlib import Path

from conftest import ROOT

# bottom up; a package may import its own modules, the `vad` root package, and packages of lower layers
LAYERS = (
    ("core",),                  # records, ledger, filters, params, stages, paths: the shared vocabulary
    ("compute",),               # models from local files and where they run
    ("llm",),                   # one interface to local and OpenAI-compatible models
    ("quality",),               # filters, dedup, GX validation, IFD
    ("sources", "generate"),    # raw sources; LLM-made data
    ("review",),                # the decision log and the review app
    ("judge", "eval"),          # categorizer and judge of machine-made records; evaluation of models
    ("publish",),               # applying decisions, the export, reports, lineage look-ups
    ("reasons",),               # the catalogue of reason codes (it imports every package to find them)
    ("cli",),                   # the command line
)
LAYER = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """vad modules a file imports anywhere in it (`from a.b import c` names module a.b.c when there is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("vad"):
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                    for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "vad"}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("vad")):
            out.add(node.args[0].value)
    return out


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = {module_name(p): p for p in (root / "vad").rglob("*.py")}
    return {m: imports(p, set(files)) for m, p in files.items()}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vad"


def layer_problems(g: dict[str, set[str]]) -> list[str]:
    out = []
    for m, targets in sorted(g.items()):
        src = package(m)
        for t in sorted(targets):
            dst = package(t)
            if dst in ("vad", src):
                continue
            if src not in LAYER or dst not in LAYER:
                out.append(f"{m} -> {t}: package {src if src not in LAYER else dst} has no layer in LAYERS")
            elif LAYER[dst] >= LAYER[src]:
                out.append(f"{m} -> {t}: {src} (layer {LAYER[src]}) imports {dst} (layer {LAYER[dst]})")
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if t not in g:
                continue
            if state.get(t) == "open":
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [])
    return found


def test_every_package_imports_only_the_layers_below_it():
    assert layer_problems(graph()) == []


def test_no_import_cycle_function_level_imports_included():
    assert cycles(graph()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    """A core module importing an upper package, and two modules importing each other, are both found."""
    g = graph()
    g["vad.core.config"] = g["vad.core.config"] | {"vad.quality.validate"}
    assert layer_problems(g) == ["vad.core.config -> vad.quality.validate: core (layer 0) imports quality (layer 3)"]
    g["vad.quality.validate"] = g["vad.quality.validate"] | {"vad.quality.merge"}
    g["vad.quality.merge"] = g["vad.quality.merge"] | {"vad.quality.validate"}
    assert any(set(c) == {"vad.quality.merge", "vad.quality.validate"} for c in cycles(g))
