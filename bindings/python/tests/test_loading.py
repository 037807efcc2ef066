"""Finding and loading the native library, and the declarations of its symbols checked
against the Rust sources and the committed C header."""

from __future__ import annotations

import ctypes
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Set

import pytest

import matrix_leave as mxl
from matrix_leave import _native
from _vectors import ROOT

HEADER = ROOT / "include" / "matrix_leave.h"
FFI = ROOT / "src" / "ffi"


def _exports() -> Set[str]:
    """Every `extern "C" fn mxl_*` defined in the Rust FFI modules."""
    names: Set[str] = set()
    for path in FFI.glob("*.rs"):
        names |= set(re.findall(r'extern\s+"C"\s+fn\s+(mxl_\w+)', path.read_text(encoding="utf-8")))
    return names


def test_every_export_is_declared_with_argtypes_and_restype() -> None:
    exports = _exports()
    assert exports, "no exports found in src/ffi"
    assert exports == set(_native.PROTOTYPES)
    lib = _native.lib()
    for name, (argtypes, restype) in _native.PROTOTYPES.items():
        if name in _native.OPTIONAL_SYMBOLS and not hasattr(lib, name):
            continue
        fn = getattr(lib, name)
        assert fn.argtypes == argtypes, name
        assert fn.restype is restype, name
        # Never ctypes' default `int` for a pointer or a size.
        assert restype is not ctypes.c_int, name


_SCALARS: Dict[str, Any] = {
    "size_t": ctypes.c_size_t,
    "uint32_t": ctypes.c_uint32,
    "uint16_t": ctypes.c_uint16,
    "int64_t": ctypes.c_int64,
    "int32_t": ctypes.c_int32,
    "bool": ctypes.c_bool,
    "mxl_result": ctypes.c_uint32,
}


def _header() -> str:
    """The committed header without its comments."""
    return re.sub(r"/\*.*?\*/", "", HEADER.read_text(encoding="utf-8"), flags=re.S)


def _matches(c_type: str, py_type: Any) -> bool:
    """Whether a ctypes declaration fits a C type of the header: the same scalar, or any
    pointer (data or function) for a pointer."""
    c_type = " ".join(c_type.replace("const ", "").split())
    if c_type == "void":
        return py_type is None
    if "*" in c_type or c_type.endswith("_fn"):
        is_pointer = py_type in (ctypes.c_char_p, ctypes.c_void_p) or issubclass(
            py_type, (ctypes._Pointer, ctypes._CFuncPtr)  # type: ignore[attr-defined]
        )
        return bool(is_pointer)
    return _SCALARS.get(c_type) is py_type


def test_prototypes_match_the_header() -> None:
    declared = {}
    for ret, name, args in re.findall(r"^(?!typedef)([A-Za-z_][\w \*]*?)\s*\b(mxl_\w+)\(([^;]*?)\);", _header(), re.M):
        params = [] if args.strip() == "void" else [" ".join(a.split()) for a in args.split(",")]
        declared[name] = (ret, [p.rsplit(" ", 1)[0] + (" *" if "*" in p.rsplit(" ", 1)[1] else "") for p in params])
    assert set(declared) == set(_native.PROTOTYPES)
    for name, (ret, params) in declared.items():
        argtypes, restype = _native.PROTOTYPES[name]
        assert _matches(ret, restype), (name, ret, restype)
        assert len(params) == len(argtypes), name
        for c_type, py_type in zip(params, argtypes):
            assert _matches(c_type, py_type), (name, c_type, py_type)


def test_structures_match_the_header() -> None:
    structs = dict((name, body) for body, name in re.findall(r"typedef struct \{(.*?)\} (mxl_\w+);", _header(), re.S))
    ours = [
        _native.mxl_lookup, _native.mxl_store, _native.mxl_resident_callbacks, _native.mxl_resident_config,
        _native.mxl_send_leave_params, _native.mxl_template_params, _native.mxl_http_request,
        _native.mxl_transport, _native.mxl_leave_params,
    ]
    for cls in ours:
        fields = [" ".join(f.split()) for f in structs[cls.__name__].split(";") if f.strip()]
        c_fields = []
        for f in fields:
            pointer_fn = re.match(r"(.*?)\(\*(\w+)\)\(", f)
            if pointer_fn:
                c_fields.append((pointer_fn.group(2), "fn *"))
            else:
                c_type, field = f.rsplit(" ", 1)
                c_fields.append((field.lstrip("*"), c_type + (" *" if field.startswith("*") else "")))
        py_fields = [(f[0], f[1]) for f in cls._fields_]
        assert [n for n, _ in c_fields] == [n for n, _ in py_fields], cls.__name__
        for (name, c_type), (_, py_type) in zip(c_fields, py_fields):
            assert _matches(c_type, py_type), (cls.__name__, name, c_type, py_type)


def test_callback_statuses_match_the_header() -> None:
    source = HEADER.read_text(encoding="utf-8")
    found = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define MXL_CB_(\w+) (\d+)", source)}
    assert found == {"OK": _native.CB_OK, "NOT_FOUND": _native.CB_NOT_FOUND, "ERROR": _native.CB_ERROR}


def test_abi_version_and_result_codes_match_the_header() -> None:
    header = HEADER.read_text(encoding="utf-8")
    abi = re.search(r"#define MXL_ABI_VERSION (\d+)", header)
    assert abi is not None
    assert mxl.abi_version() == int(abi.group(1)) == _native.ABI_VERSION
    codes: Dict[str, int] = {m.group(1): int(m.group(2)) for m in re.finditer(r"MXL_RESULT_(\w+) = (\d+)", header)}
    assert codes == {c.name: c.value for c in mxl.ResultCode}


def test_result_codes_map_like_the_library_says() -> None:
    lib = _native.lib()
    for code in mxl.ResultCode:
        status = int(lib.mxl_result_http_status(code))
        errcode = lib.mxl_result_errcode(code).decode()
        assert (status == 200) == (code == mxl.ResultCode.OK)
        assert (errcode == "") == (code == mxl.ResultCode.OK)


def test_library_version_is_the_crate_version() -> None:
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    version = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.MULTILINE)
    assert version is not None
    assert mxl.library_version() == version.group(1)


def test_ed25519_backend_follows_the_cpu() -> None:
    # The checkout's .cargo/config.toml compiles the AVX-512 IFMA code on x86_64, and
    # curve25519-dalek takes it when the CPU has AVX-512 IFMA and VL, else AVX2.
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if not flags:
        assert mxl.ed25519_backend() in ("avx512ifma", "avx2", "serial")
    elif {"avx512ifma", "avx512vl"} <= flags:
        assert mxl.ed25519_backend() == "avx512ifma"
    elif "avx2" in flags:
        assert mxl.ed25519_backend() == "avx2"
    else:
        assert mxl.ed25519_backend() == "serial"


def _fake_checkout(tmp: Path, crate: str) -> Path:
    (tmp / "Cargo.toml").write_text(f'[package]\nname = "{crate}"\nversion = "0.1.0"\n\n[lib]\nname = "x"\n')
    package = tmp / "bindings" / "python" / "matrix_leave"
    package.mkdir(parents=True)
    return package


def test_candidates_walk_up_to_the_checkout(tmp_path: Path) -> None:
    package = _fake_checkout(tmp_path, "matrix-leave")
    name = _native.library_file_name()
    assert _native.candidate_paths(package, {}) == [tmp_path / "target" / "release" / name]
    # A copy inside the package comes first.
    (package / name).write_bytes(b"")
    assert _native.candidate_paths(package, {}) == [package / name, tmp_path / "target" / "release" / name]


def test_candidates_ignore_other_crates(tmp_path: Path) -> None:
    package = _fake_checkout(tmp_path, "something-else")
    assert _native.candidate_paths(package, {}) == []


def test_environment_variable_is_the_only_candidate_when_set(tmp_path: Path) -> None:
    package = _fake_checkout(tmp_path, "matrix-leave")
    chosen = tmp_path / "custom.so"
    assert _native.candidate_paths(package, {_native.LIBRARY_ENV: str(chosen)}) == [chosen]


def _run_python(code: str, env_update: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # The package as this test imported it, whatever the working directory.
    package_root = str(Path(mxl.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.update(env_update)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_a_missing_library_names_every_path_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "libmatrix_leave.so"
    done = _run_python(
        "import matrix_leave\nmatrix_leave.canonical_json({})",
        {_native.LIBRARY_ENV: str(missing)},
        tmp_path,
    )
    assert done.returncode != 0
    assert "LibraryLoadError" in done.stderr
    assert str(missing) in done.stderr
    # Importing alone does not need the library.
    assert _run_python("import matrix_leave", {_native.LIBRARY_ENV: str(missing)}, tmp_path).returncode == 0


def test_a_file_that_is_not_the_library_is_reported(tmp_path: Path) -> None:
    bogus = tmp_path / "libmatrix_leave.so"
    bogus.write_bytes(b"not an ELF file")
    done = _run_python("import matrix_leave\nmatrix_leave.library_path()", {_native.LIBRARY_ENV: str(bogus)}, tmp_path)
    assert done.returncode != 0
    assert str(bogus) in done.stderr


def test_an_installed_copy_is_found_without_a_checkout(tmp_path: Path) -> None:
    """The package copied out of the checkout, with the library inside it, loads that copy."""
    import shutil

    package = tmp_path / "site" / "matrix_leave"
    shutil.copytree(Path(mxl.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "host"))
    shutil.copy(mxl.library_path(), package / _native.library_file_name())
    env = {"PYTHONPATH": str(tmp_path / "site")}
    env_without = {k: v for k, v in os.environ.items() if k != _native.LIBRARY_ENV}
    env_without.update(env)
    done = subprocess.run(
        [sys.executable, "-c", "import matrix_leave; print(matrix_leave.library_path())"],
        env=env_without, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(package / _native.library_file_name())
    # Without the copy, and outside any checkout, nothing is found and the error says so.
    (package / _native.library_file_name()).unlink()
    done = subprocess.run(
        [sys.executable, "-c", "import matrix_leave; matrix_leave.library_path()"],
        env=env_without, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and "LibraryLoadError" in done.stderr
    # It names what it looked at, and how to fix it.
    expected_copy = str(package / _native.library_file_name())
    assert f"{expected_copy}: no such file" in done.stderr
    assert f"a matrix-leave checkout enclosing {package}: none found" in done.stderr
    assert "set MATRIX_LEAVE_LIBRARY" in done.stderr
    assert "cargo build --release" in done.stderr and "pip install -e bindings/python" in done.stderr
    assert "(no candidate path)" not in done.stderr


def test_the_error_without_any_candidate_lists_what_was_searched(tmp_path: Path) -> None:
    """A package outside any checkout, without a bundled copy: nothing to try, but the
    error still says where it looked and how to fix it."""
    package = tmp_path / "site" / "matrix_leave"
    package.mkdir(parents=True)
    candidates, searched = _native._search(package, {})
    assert candidates == []
    assert [where for where, _ in searched] == [
        str(package / _native.library_file_name()),
        f"a matrix-leave checkout enclosing {package}",
    ]
    message = str(mxl.LibraryLoadError(searched))
    assert str(package / _native.library_file_name()) in message
    assert "MATRIX_LEAVE_LIBRARY" in message and "cargo build --release" in message
    assert "pip install -e" in message


def test_the_error_for_an_explicit_path_says_only_it_was_tried(tmp_path: Path) -> None:
    missing = tmp_path / "libmatrix_leave.so"
    done = _run_python("import matrix_leave\nmatrix_leave.library_path()", {_native.LIBRARY_ENV: str(missing)}, tmp_path)
    assert done.returncode != 0
    assert f"{missing}: no such file" in done.stderr
    assert "MATRIX_LEAVE_LIBRARY is set, so only that path was tried" in done.stderr


def test_a_checkout_without_a_build_says_to_build(tmp_path: Path) -> None:
    package = _fake_checkout(tmp_path, "matrix-leave")
    candidates, searched = _native._search(package, {})
    assert candidates == [tmp_path / "target" / "release" / _native.library_file_name()]
    assert [where for where, _ in searched] == [str(package / _native.library_file_name())]
    # Through the real loader: the package copied into that (unbuilt) checkout.
    import shutil

    package.rmdir()
    shutil.copytree(Path(mxl.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "host", "*.so"))
    env = {k: v for k, v in os.environ.items() if k != _native.LIBRARY_ENV}
    env["PYTHONPATH"] = str(package.parent)
    done = subprocess.run(
        [sys.executable, "-c", "import matrix_leave; matrix_leave.library_path()"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert f"run `cargo build --release` in {tmp_path}" in done.stderr


@pytest.mark.parametrize("name", sorted(mxl.__all__))
def test_public_names_are_documented(name: str) -> None:
    obj = getattr(mxl, name)
    if isinstance(obj, type) or inspect.isfunction(obj):
        assert inspect.getdoc(obj), name
        for attr, member in vars(obj).items() if isinstance(obj, type) else ():
            if not attr.startswith("__") and (inspect.isfunction(member) or isinstance(member, (property, classmethod))):
                assert inspect.getdoc(member), f"{name}.{attr}"
