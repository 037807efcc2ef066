"""``python -m matrix_leave.host``: runs the reference homeserver."""

import sys

from . import main

sys.exit(main())
