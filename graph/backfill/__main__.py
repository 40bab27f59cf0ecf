import sys

from graph.backfill.job import main

sys.exit(main())
