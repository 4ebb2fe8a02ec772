"""Entry point for ``python -m deploy.kafka``; see deploy.kafka.cli."""

import sys

from .cli import main

sys.exit(main())
