"""The facts' parsers against real command output, with pyinfra-testing (pyinfra's own harness).

One test per case file in tests/facts/<module>.<Fact>/: the case's `output` is a fixture from
tests/fixtures/ (where each one came from is in the README there), its `fact` the expected dict.
"""

from pathlib import Path

import pytest
from pyinfra_testing.facts import make_fact_tests

# The cases leave out `command` (the scripts are long and tested by running them, in
# test_facts_scripts.py); pyinfra-testing warns about that for every case.
pytestmark = pytest.mark.filterwarnings("ignore:No command set for test")

CASES = Path(__file__).resolve().parent.parent / "facts"

# Case folders are named <module>.<Fact>; Python's __pycache__ (written where PYTHONDONTWRITEBYTECODE is unset) is not one.
for _fact_path in sorted(d.name for d in CASES.iterdir() if d.is_dir() and "." in d.name):
    globals()[f"Test_{_fact_path.replace('.', '_')}"] = make_fact_tests("facts", _fact_path, CASES / _fact_path)
