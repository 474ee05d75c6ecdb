"""``python -m prover.cli`` runs ``pacda-prover``."""

import sys

from prover.cli import main

sys.exit(main())
