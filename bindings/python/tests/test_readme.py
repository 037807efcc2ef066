"""The binding's README: its example runs as written, and it documents every public name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

import matrix_leave as mxl

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_the_readme_has_the_round_trip_example() -> None:
    blocks = _python_blocks()
    assert len(blocks) == 1
    for step in ("MemoryRoomStore()", ".add_event(", "MemoryKeyStore()", ".add_key(", ".make_leave(",
                 "complete_leave_template(", ".send_leave(", "leave_room("):
        assert step in blocks[0], step


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: Dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(_python_blocks()[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert capsys.readouterr().out.startswith("bob and carol left: $")
    rooms = namespace["rooms"]
    assert rooms.membership(namespace["ROOM"], namespace["BOB"]) == "leave"
    assert namespace["resident"].closed


@pytest.mark.parametrize("name", sorted(mxl.__all__))
def test_every_public_name_is_in_the_readme(name: str) -> None:
    assert re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", README.read_text(encoding="utf-8")), name


def test_the_readme_documents_the_contract() -> None:
    text = README.read_text(encoding="utf-8")
    for phrase in ("`(status, body)`", "`TypeError`", "`ValueError`", "`MatrixError`", "raised", "again from the `Resident` method",
                   "sys.unraisablehook", "NullHandler", "MATRIX_LEAVE_LIBRARY", "--help"):
        assert phrase in text, phrase
    for method in mxl.resident.ROOM_STORE_METHODS + mxl.resident.KEY_STORE_METHODS:
        assert f"def {method}(" in text, method
