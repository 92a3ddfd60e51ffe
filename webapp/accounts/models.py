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
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now()),
                           revoked_at__isnull=True)


class ApiToken(models.Model):
    """A personal API token; only its digest is stored, the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise the token in lists.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="None: the token never expires.")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

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


class AccountOrigin(models.Model):
    """Who created an account with a generated password, and so saw that password.

    Any owner can create accounts on their project's Members page. An owner of another project
    who adds such an account is told who created it (and may still know its password) and must
    confirm, so no one can pre-create a colleague's account and keep a way into their projects.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="origin")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by_username = models.CharField(max_length=150, help_text="Kept if the creator's account is deleted.")
    project_name = models.CharField(max_length=120, blank=True, help_text="The project it was created from.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user_id} created by {self.created_by_username}"
