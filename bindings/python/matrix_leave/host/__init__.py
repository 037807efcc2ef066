"""A small reference homeserver built on the matrix_leave binding.

Run it with ``python -m matrix_leave.host --help``. It speaks just enough federation to
show the leave handshake end to end between two instances on one machine: it serves its
key document, sends and countersigns invites, answers make_leave/send_leave through the
library's :class:`~matrix_leave.Resident`, and rejects invites with the library's
:func:`~matrix_leave.leave_room` driver. State lives in SQLite in the data directory.

It federates with loopback server names only (``localhost:PORT``) and never connects
anywhere but 127.0.0.1. It needs ``aiohttp`` and ``cryptography``.

The federation endpoints, the order in which requests are checked, the limits on key
fetches and every ``/control/*`` endpoint (method, JSON body, answer) are documented in
:mod:`matrix_leave.host.server`; ``--help`` prints the control API part.
"""

__all__ = ["main"]


def main(argv=None) -> int:
    """Runs the server with command-line arguments (see ``--help``)."""
    from .server import main as _main

    return _main(argv)
