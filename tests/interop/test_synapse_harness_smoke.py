"""Smoke test for :mod:`synapse_harness`: one real Synapse, an invite that is
rejected, and the resulting ``leave`` membership checked via the admin API.

Installs Synapse into its venv on first use (about 40 s), then starts it
(a few seconds).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synapse_harness as sh  # noqa: E402


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory):
    t0 = time.monotonic()
    venv = sh.ensure_synapse_venv()
    install_s = time.monotonic() - t0
    port = sh.find_free_port()
    server = sh.SynapseServer(tmp_path_factory.mktemp("synapse"), port,
                              federation_whitelist=["localhost:1"],
                              venv_dir=venv, default_room_version="11")
    with server:
        print(f"\nsynapse {sh.synapse_version(venv)}: ensure_venv {install_s:.1f}s, "
              f"start {server.start_seconds:.1f}s")
        yield server
    assert not server.running


def test_reject_invite_gives_leave(synapse: sh.SynapseServer) -> None:
    hs = synapse
    alice, alice_tok = hs.register_user("alice", admin=True)
    bob, bob_tok = hs.register_user("bob")
    assert alice == f"@alice:{hs.server_name}"
    assert bob == f"@bob:{hs.server_name}"

    room_id = hs.create_room(alice_tok, "11")
    status, ver = hs.request(
        "GET", f"/_matrix/client/v3/rooms/{sh.quote(room_id)}/state/m.room.create/",
        token=alice_tok)
    assert status == 200, ver
    assert ver.get("room_version") == "11"

    hs.invite(alice_tok, room_id, bob)
    invite = hs.wait_for_invite(bob_tok, room_id, timeout=30)
    assert any(ev.get("type") == "m.room.create"
               for ev in invite["invite_state"]["events"])
    assert hs.membership_of(alice_tok, room_id, bob) == "invite"

    hs.leave(bob_tok, room_id, reason="no thanks")
    assert hs.membership_of(alice_tok, room_id, bob) == "leave"
    assert hs.membership_of(alice_tok, room_id, alice) == "join"
    assert hs.membership_of(alice_tok, room_id, "@nobody:example.org") is None

    # Bob (now left) can't read state himself; the admin API still can.
    state = hs.room_state(alice_tok, room_id)
    ev = next(e for e in state
              if e["type"] == "m.room.member" and e["state_key"] == bob)
    assert ev["content"].get("reason") == "no thanks"


def test_server_keys_over_tls(synapse: sh.SynapseServer) -> None:
    keys = synapse.server_keys()
    assert keys["server_name"] == synapse.server_name
    assert synapse.signing_key_id in keys["verify_keys"]
    assert synapse.server_name in keys["signatures"]
