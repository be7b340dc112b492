"""Names beside a restored database fit PostgreSQL's 63 bytes whatever the source's name:
a 34-38 character name used to restore fully and then fail at the switch-over."""

import pytest

from recovery.engine.pg_swap import aside_name, staging_name

STAMP = "20261201T143000Z"


@pytest.mark.parametrize("length", [1, 34, 38, 40, 63])
def test_staging_and_aside_names_fit_and_keep_the_stamp(length):
    dbname = "d" * length
    for name in (staging_name(dbname, STAMP), aside_name(dbname, STAMP)):
        assert len(name) <= 63 and name.endswith(STAMP) and name.startswith("d")
    assert staging_name(dbname, STAMP) != aside_name(dbname, STAMP)
