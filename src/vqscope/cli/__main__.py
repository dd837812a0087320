"""`python -m vqscope.cli`: the same as the `vqscope` command."""

import sys

from . import main

sys.exit(main())
