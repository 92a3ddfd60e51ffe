"""The options of the preference-pairs download (``preferences.jsonl``), read alike by the
comparison-tasks page and the REST API.

``strength_margins`` ("0.33,0.67,1"): each pair of a label that says how much better its choice
is (strength 1, 2, 3) carries that margin in a ``margin`` column, every other pair 0.0, as TRL's
RewardTrainer reads it (−log σ(r_c − r_r − margin)) and as a Steer reward-model run given the same
``data.strength_margins`` trains on the labels. The three numbers are checked as that run's are.
"""

from __future__ import annotations

from rest_framework import serializers

from webapp.experiments.errors import RunError
from webapp.experiments.run_config import strength_margins


def parse_strength_margins(raw: str) -> list[float]:
    """"0.33, 0.67, 1" as three margins, checked as a reward-model run's ``strength_margins``;
    ValidationError saying what is wrong."""
    parts = [part.strip() for part in raw.split(",")]
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise serializers.ValidationError(
            f"must be three numbers separated by commas, e.g. 0.33,0.67,1; got {raw[:80]!r}") from None
    try:
        return strength_margins(numbers)
    except RunError as exc:
        raise serializers.ValidationError(exc.message) from None


class PreferenceExportFilterSerializer(serializers.Serializer):
    include_ties = serializers.BooleanField(required=False, default=False,
                                            help_text="Also export tied pairs, with a 'tie' column.")
    strength_margins = serializers.CharField(
        required=False, max_length=200,
        help_text="Three margins, e.g. 0.33,0.67,1: each pair of a label of strength 1, 2 or 3 (slightly "
                  "better, better, much better) gets that one in a 'margin' column, every other pair 0.0, "
                  "as TRL's RewardTrainer reads margins. No 'margin' column when left out.")

    def validate_strength_margins(self, value: str) -> list[float]:
        return parse_strength_margins(value)
