"""`python -m devices` runs the simulator CLI (edge-sim)."""

from devices.cli import main

raise SystemExit(main())
