import sys

from ci_perf.cli import main

sys.exit(main())
