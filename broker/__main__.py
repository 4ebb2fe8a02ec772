"""``python -m broker TOOL``: Kafka's command-line tools for the local log."""

import sys

from .cli import main

sys.exit(main())
