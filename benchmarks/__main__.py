"""python -m benchmarks: the speed suite (see benchmarks/run.py)."""

from benchmarks.run import main

raise SystemExit(main())
