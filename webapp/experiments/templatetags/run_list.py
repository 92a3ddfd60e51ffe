from django import template

register = template.Library()


@register.filter
def tag_query(filters, tag: str) -> str:
    """``{{ filters|tag_query:tag.name }}``: the runs list's link to a tag, keeping the other filters
    (``RunListFilterForm.tag_query``; a template cannot pass it an argument)."""
    return filters.tag_query(tag)
