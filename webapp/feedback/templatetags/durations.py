"""``{{ label.time_spent_ms|duration_ms }}``: a duration in milliseconds as people read it.

Label times are stored, exported (CSV, Parquet, JSONL) and answered by the API in raw
milliseconds; pages show them with this filter: "850 ms", "4.2 s", "1 min 05 s", "2 h 03 min",
and "—" for a time not known (null: a label sent without a time and without an assignment).
"""

from django import template

register = template.Library()
UNKNOWN = "—"


@register.filter(name="duration_ms")
def duration_ms(value) -> str:
    """Milliseconds (an int) for a page: under a second in ms, under a minute in seconds to a tenth,
    under an hour in minutes and seconds, then hours and minutes; each rounded half up, so 59,960 ms
    reads "1 min 00 s", never "60.0 s". "—" for None (not known); "" for what is not a count of
    milliseconds (text)."""
    if value is None:
        return UNKNOWN
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return ""
    if value < 1000:
        return f"{value} ms"
    tenths = (value + 50) // 100
    if tenths < 600:
        return f"{tenths // 10}.{tenths % 10} s"
    seconds = (value + 500) // 1000
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    minutes = (value + 30_000) // 60_000
    return f"{minutes // 60} h {minutes % 60:02d} min"
