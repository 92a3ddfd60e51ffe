from django import template

register = template.Library()


@register.filter
def metric(metrics, key: str):
    """``{{ rm.metrics|metric:"eval/records" }}``: one metric by its key (keys hold a "/", which
    template dot lookups cannot spell), or None. Never the order of the keys: jsonb sorts them."""
    return metrics.get(key) if isinstance(metrics, dict) else None
