import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "steer_"


def token_digest(raw: str) -> str:
    """API tokens carry 256 bits of randomness, so an unsalted SHA-256 is enough to store them."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A personal API token; only its digest is stored, the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise the token in lists.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        self.revoked_at = timezone.now()


class AuthFailureWindow(models.Model):
    """Failed sign-ins of one key (a client address or a username, with the rate's period) in
    one fixed window of that period; see ``webapp.accounts.auth_failures``."""

    key = models.CharField(max_length=300)
    window = models.BigIntegerField(help_text="Window number: seconds since the epoch // the period.")
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(help_text="The end of the next window, after which the row counts for nothing.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window"], name="auth_failure_one_row_per_window")]
        indexes = [models.Index(fields=["expires_at"], name="auth_failure_expiry")]
