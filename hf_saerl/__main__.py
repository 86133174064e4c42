"""`python -m hf_saerl`: the hf-saerl command line."""

import sys

from .cli import main

sys.exit(main())
