"""Compares the public typed API of git-hop's generated package with
half-orm-dev's for the same database (test_typed_api.rs).

    python compare_typed_api.py OURS_ROOT THEIRS_ROOT PACKAGE

Compared, for every relation half-orm-dev generates:
- its TypedDict: name, fields in order, annotations;
- its BC_ base class: every method, async or not, with its signature;
- its class's __init__ signature;
- its direct foreign-key attributes (fk_*);
- every ho_ method of half-orm-dev's DC_Relation, against the method our
  class really has (git-hop gives type checkers half_orm's own Relation).
Prints one line per difference and exits 1 when there is any; prints what
was compared on the last line.
"""
import ast
import importlib
import inspect
import pathlib
import re
import sys

ours_root, theirs_root, package = map(pathlib.Path, sys.argv[1:4])
package = str(package)
problems = []
counts = {"typeddicts": 0, "fields": 0, "bc_methods": 0, "inits": 0, "fks": 0, "relation_methods": 0}


def parse(path):
    return ast.parse(path.read_text(encoding="utf-8"))


def base_names(cls):
    return [ast.unparse(b) for b in cls.bases]


def typeddicts(tree):
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(b.endswith("TypedDict") for b in base_names(node)):
            out[node.name] = [
                (s.target.id, ast.unparse(s.annotation))
                for s in node.body
                if isinstance(s, ast.AnnAssign)
            ]
    return out


def methods(cls):
    return {
        f.name: ("async " if isinstance(f, ast.AsyncFunctionDef) else "")
        + f"({ast.unparse(f.args)})"
        + (f" -> {ast.unparse(f.returns)}" if f.returns else "")
        for f in cls.body
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def classes(tree):
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


# half-orm-dev's side.
their_pkg = theirs_root / package
their_dicts = typeddicts(parse(their_pkg / "ho_typeddicts.py"))
bc_source = (their_pkg / "ho_baseclasses.py").read_text(encoding="utf-8")
their_bcs = {n: c for n, c in classes(ast.parse(bc_source)).items() if n.startswith("BC_")}
their_fks = {}
for name, cls in classes(ast.parse(bc_source)).items():
    if name.startswith("DC_") and name != "DC_Relation":
        their_fks["BC_" + name[3:]] = sorted(
            ast.unparse(t.targets[0]).split(".", 1)[1]
            for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__post_init__"
            for t in f.body
            if isinstance(t, ast.Assign) and ast.unparse(t.targets[0]).startswith("self.fk_")
        )
relation_methods = dict(
    re.findall(r"^    (?:async )?def (ho_\w+)(\(.*\)(?: -> .*)?):  # type: ignore\[empty-body\]$", bc_source, re.M)
)
their_inits = {}
for path in their_pkg.rglob("*.py"):
    if path.name == "__init__.py" or path.parent == their_pkg:
        continue
    for cls in classes(parse(path)).values():
        for b in base_names(cls):
            if b.startswith("ho_baseclasses.BC_"):
                their_inits[b.split(".", 1)[1]] = methods(cls).get("__init__")

# git-hop's side: everything in the relation's own module.
our_dicts, our_bcs, our_inits, our_fks, our_classes = {}, {}, {}, {}, {}
for path in sorted((ours_root / package).rglob("*.py")):
    if path.name == "__init__.py":
        continue
    tree = parse(path)
    our_dicts.update(typeddicts(tree))
    for name, cls in classes(tree).items():
        if name.startswith("BC_"):
            our_bcs[name] = cls
            our_fks[name] = sorted(
                s.target.id
                for block in cls.body if isinstance(block, ast.If)
                for s in block.body
                if isinstance(s, ast.AnnAssign) and s.target.id.startswith("fk_")
            )
        elif any(b.startswith("BC_") for b in base_names(cls)):
            bc = next(b for b in base_names(cls) if b.startswith("BC_"))
            our_inits[bc] = methods(cls).get("__init__")
            module = ".".join(path.relative_to(ours_root).with_suffix("").parts)
            our_classes[bc] = (module, name)

for name, fields in their_dicts.items():
    counts["typeddicts"] += 1
    counts["fields"] += len(fields)
    if our_dicts.get(name) != fields:
        problems.append(f"TypedDict {name}: half-orm-dev {fields}, git-hop {our_dicts.get(name)}")
for name, cls in their_bcs.items():
    if name not in our_bcs:
        problems.append(f"base class {name}: missing")
        continue
    ours = methods(our_bcs[name])
    for m, sig in methods(cls).items():
        counts["bc_methods"] += 1
        if ours.get(m) != sig:
            problems.append(f"{name}.{m}: half-orm-dev {sig}, git-hop {ours.get(m)}")
    counts["inits"] += 1
    if our_inits.get(name) != their_inits.get(name):
        problems.append(f"__init__ of {name}: half-orm-dev {their_inits.get(name)}, git-hop {our_inits.get(name)}")
    counts["fks"] += len(their_fks.get(name, []))
    if our_fks.get(name) != their_fks.get(name, []):
        problems.append(f"foreign keys of {name}: half-orm-dev {their_fks.get(name)}, git-hop {our_fks.get(name)}")

# The methods every class has (half-orm-dev copies half_orm's Relation into
# DC_Relation; git-hop's classes are half_orm's): compare with the real ones.
sys.path.insert(0, str(ours_root))
for bc, (module, name) in sorted(our_classes.items()):
    cls = getattr(importlib.import_module(module), name)
    overridden = set(methods(their_bcs[bc])) if bc in their_bcs else set()
    for m, sig in relation_methods.items():
        if m in overridden:
            continue
        counts["relation_methods"] += 1
        raw = inspect.getattr_static(cls, m, None)
        if raw is None:
            problems.append(f"{name}.{m}: missing")
            continue
        fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        if str(inspect.signature(fn)) != sig:
            problems.append(f"{name}.{m}: half-orm-dev {sig}, git-hop {inspect.signature(fn)}")

for p in problems:
    print(p)
print("compared", " ".join(f"{k}={v}" for k, v in counts.items()))
sys.exit(1 if problems else 0)
