"""``python -m tools.protocol_docs``: see :func:`tools.protocol_docs.generator.main`."""

import sys

from tools.protocol_docs.generator import main

sys.exit(main())
