"""Build the Scrapyd egg of this project without a ``setup.py``.

``python -m crawler.scheduling.egg [PATH]`` writes ``dist/crawler-<version>-py3.X.egg`` (or
PATH): the ``crawler`` package plus the ``EGG-INFO`` that Scrapyd reads (the ``scrapy``
entry point names ``crawler.settings``). Deploy it with ``scrapyd-deploy --egg PATH`` or a
``POST`` to Scrapyd's ``addversion.json``. The egg holds only this project's code: the Python that
runs Scrapyd needs the dependencies from ``pyproject.toml`` installed.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # crawler/
ROOT = PACKAGE.parent
SETTINGS_MODULE = "crawler.settings"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed file times: the same tree gives the same egg
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def project_version(root: Path = ROOT) -> str:
    """``[project] version`` from ``pyproject.toml``."""
    with (root / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def egg_files(package: Path = PACKAGE) -> list[Path]:
    """The package's files, sorted, without caches."""
    return sorted(
        path
        for path in package.rglob("*")
        if path.is_file()
        and path.suffix not in _SKIP_SUFFIXES
        and not _SKIP_DIRS.intersection(path.relative_to(package).parts)
    )


def egg_info(version: str) -> dict[str, str]:
    return {
        "EGG-INFO/PKG-INFO": f"Metadata-Version: 2.1\nName: crawler\nVersion: {version}\n",
        "EGG-INFO/entry_points.txt": f"[scrapy]\nsettings = {SETTINGS_MODULE}\n",
        "EGG-INFO/top_level.txt": "crawler\n",
        "EGG-INFO/zip-safe": "\n",
    }


def build_egg(output: Path | None = None, version: str | None = None) -> Path:
    """Write the egg and return its path."""
    version = version or project_version()
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    output = output or ROOT / "dist" / f"crawler-{version}-{python}.egg"
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as egg:
        for path in egg_files():
            name = path.relative_to(PACKAGE.parent).as_posix()
            egg.writestr(zipfile.ZipInfo(name, _EPOCH), path.read_bytes(), zipfile.ZIP_DEFLATED)
        for name, text in egg_info(version).items():
            egg.writestr(zipfile.ZipInfo(name, _EPOCH), text, zipfile.ZIP_DEFLATED)
    temporary.replace(output)  # never a half-written egg under the final name
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.scheduling.egg", description=__doc__)
    parser.add_argument("output", nargs="?", type=Path, help="where to write the egg")
    parser.add_argument("--version", help="egg version (default: pyproject.toml's)")
    options = parser.parse_args(argv)
    try:
        path = build_egg(options.output, options.version)
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        print(f"error: cannot build the egg: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
