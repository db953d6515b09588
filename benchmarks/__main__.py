"""``python -m benchmarks [NAME ...] [--scale 10k|100k|1m] [--json OUT]``: see benchmarks.suite."""

import sys

from benchmarks.suite import main

sys.exit(main())
