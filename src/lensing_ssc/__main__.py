"""``python -m lensing_ssc``: the same as the ``lensing-ssc`` command."""

import sys

from lensing_ssc.cli import main

sys.exit(main())
