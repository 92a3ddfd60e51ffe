"""Sessions logged in before the password backend became ThrottledModelBackend name Django's
ModelBackend, which is no longer in AUTHENTICATION_BACKENDS: Django would treat them as logged
out. They are moved to the new backend, the only change in them."""

from django.db import migrations

OLD = "django.contrib.auth.backends.ModelBackend"
NEW = "webapp.accounts.backends.ThrottledModelBackend"


def move_sessions(apps, schema_editor, old=OLD, new=NEW):
    from django.contrib.sessions.backends.db import SessionStore

    Session = apps.get_model("sessions", "Session")
    store = SessionStore()
    for session in Session.objects.using(schema_editor.connection.alias).iterator():
        data = store.decode(session.session_data)  # {} for one that does not verify
        if data.get("_auth_user_backend") == old:
            data["_auth_user_backend"] = new
            session.session_data = store.encode(data)
            session.save(update_fields=["session_data"])


def move_back(apps, schema_editor):
    move_sessions(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_auth_failure_windows"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(move_sessions, move_back)]
