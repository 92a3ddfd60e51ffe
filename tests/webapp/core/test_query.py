from webapp.core.query import BIGINT_MAX, query_id


def test_a_query_id_is_ascii_digits_within_a_bigint():
    assert query_id("42") == 42 and query_id("0") == 0 and query_id(str(BIGINT_MAX)) == BIGINT_MAX
    for bad in ("", "-1", "4.2", " 4", "²", "٣", "1e3", str(BIGINT_MAX + 1), None, 42):
        assert query_id(bad) is None, bad
