"""The tree shows the architecture (issue 24): only entry points at the top of search/, and the layers hold."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"__init__.py", "settings.py", "urls.py", "wsgi.py", "asgi.py", "apps.py", "models.py", "tasks.py"}
SUB_PACKAGES = {"web", "api", "admin", "engine", "ingest", "jobs", "storage", "runtime", "media", "documents",
                "management", "migrations"}


def test_the_top_of_search_holds_only_the_entry_points_and_the_sub_packages():
    top = ROOT / "search"
    assert {p.name for p in top.glob("*.py")} == ENTRY_POINTS
    packages = {p.name for p in top.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == SUB_PACKAGES


def test_module_names_are_unique_across_the_product():
    seen: dict[str, Path] = {}
    for path in sorted([*ROOT.glob("search/**/*.py"), *ROOT.glob("encoders/**/*.py")]):
        # A Django database backend must be a module named base (search/storage/pgembedded/base.py).
        if path.name == "__init__.py" or {"migrations", "commands", "pgembedded"} & set(path.parts):
            continue
        assert path.stem not in seen, f"{path.relative_to(ROOT)} and {seen[path.stem].relative_to(ROOT)}"
        seen[path.stem] = path


def test_the_import_contracts_hold():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
