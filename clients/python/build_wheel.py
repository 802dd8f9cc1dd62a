"""Builds the ``tapedeck`` wheel from a ``tapedeck`` binary that is already built: the client
library and the pytest plugin (``tapedeck/``) plus the binary as a script
(``tapedeck-VERSION.data/scripts/tapedeck``), which pip installs on the environment's PATH —
the layout maturin's ``bindings = "bin"`` gives. The tests use it to package the binary their
own build produced, with no second compile; a release builds with maturin instead (README.md).
Standard library only.

    python3 clients/python/build_wheel.py --binary target/debug/tapedeck --out dist/

Prints the wheel's path (``--store-binary`` leaves the binary uncompressed, as the tests do). The tag is ``py3-none-PLATFORM`` for this machine (``linux_x86_64``,
``macosx_11_0_arm64``, …) unless ``--platform`` names another.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sysconfig
import zipfile
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "tapedeck"
# A fixed date for every entry, so two builds of the same files are the same bytes.
DATE = (2026, 1, 1, 0, 0, 0)


def project() -> Tuple[str, str, str, str]:
    """The name, version, summary and Python requirement in ``pyproject.toml``."""
    text = (HERE / "pyproject.toml").read_text()

    def field(name: str) -> str:
        found = re.search(rf'^{name}\s*=\s*"([^"]*)"', text, re.MULTILINE)
        if not found:
            raise SystemExit(f"build_wheel: no `{name}` in {HERE / 'pyproject.toml'}")
        return found.group(1)

    return field("name"), field("version"), field("description"), field("requires-python")


def platform_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", sysconfig.get_platform())


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build(binary: Path, out: Path, platform: str, compress: bool = True) -> Path:
    name, version, summary, requires = project()
    dist = name.replace("-", "_")
    tag = f"py3-none-{platform}"
    info = f"{dist}-{version}.dist-info"
    readme = (HERE / "README.md").read_text()
    files: List[Tuple[str, bytes, int]] = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files.append((f"tapedeck/{path.relative_to(PACKAGE).as_posix()}", path.read_bytes(), 0o644))
    exe = "tapedeck.exe" if binary.suffix == ".exe" else "tapedeck"
    files.append((f"{dist}-{version}.data/scripts/{exe}", binary.read_bytes(), 0o755))
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {name}\n"
        f"Version: {version}\n"
        f"Summary: {summary}\n"
        f"Requires-Python: {requires}\n"
        "License: MIT OR Apache-2.0\n"
        "Description-Content-Type: text/markdown\n"
        "\n"
        f"{readme}"
    )
    files.append((f"{info}/METADATA", metadata.encode(), 0o644))
    wheel = (
        "Wheel-Version: 1.0\n"
        "Generator: tapedeck build_wheel.py\n"
        "Root-Is-Purelib: false\n"
        f"Tag: {tag}\n"
    )
    files.append((f"{info}/WHEEL", wheel.encode(), 0o644))
    entry_points = "[pytest11]\ntapedeck = tapedeck.pytest_plugin\n"
    files.append((f"{info}/entry_points.txt", entry_points.encode(), 0o644))
    record = [record_line(n, data) for n, data, _ in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode(), 0o644))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as whl:
        for n, data, mode in files:
            entry = zipfile.ZipInfo(n, DATE)
            entry.external_attr = (0o100000 | mode) << 16
            # A debug binary is hundreds of MB: the tests store it as it is, in a second.
            stored = not compress and n.endswith(("/tapedeck", "/tapedeck.exe"))
            entry.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            whl.writestr(entry, data)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, required=True, help="the built tapedeck binary")
    parser.add_argument("--out", type=Path, required=True, help="the folder the wheel goes to")
    parser.add_argument("--platform", default=platform_tag(), help="the platform tag")
    parser.add_argument(
        "--store-binary", action="store_true", help="store the binary uncompressed (faster)"
    )
    args = parser.parse_args()
    if not args.binary.is_file():
        raise SystemExit(f"build_wheel: no binary at {args.binary}; build it with `cargo build`")
    print(build(args.binary, args.out, args.platform, compress=not args.store_binary))


if __name__ == "__main__":
    main()
