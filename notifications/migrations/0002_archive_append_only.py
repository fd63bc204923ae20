"""On PostgreSQL, the database itself refuses to change or delete archived messages.

A BEFORE UPDATE OR DELETE trigger raises, with two narrow exceptions:
- DELETE while the transaction-local setting statuspage.archive_purge is 'on', which only
  notifications.archive.archive_purge sets (SET LOCAL, so it ends with the transaction);
- an UPDATE that only sets page_id/incident_id/update_id/subscriber_id to NULL and changes
  nothing else: Django's on_delete=SET_NULL when a page, incident, update or subscriber is
  deleted (the hashed, frozen public ids stay).
Purge checkpoints are refused any UPDATE or DELETE. TRUNCATE is left to privileges: the test
runner empties tables with it, and an operator who can TRUNCATE can also drop the trigger.
SQLite has no such trigger; the model and queryset guards apply there.
"""
from __future__ import annotations

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION notifications_archive_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'notifications_archivedmessage' THEN
        IF TG_OP = 'DELETE' AND current_setting('statuspage.archive_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        IF TG_OP = 'UPDATE'
           AND (NEW.page_id IS NULL OR NEW.page_id = OLD.page_id)
           AND (NEW.incident_id IS NULL OR NEW.incident_id = OLD.incident_id)
           AND (NEW.update_id IS NULL OR NEW.update_id = OLD.update_id)
           AND (NEW.subscriber_id IS NULL OR NEW.subscriber_id = OLD.subscriber_id)
           AND (to_jsonb(NEW) - ARRAY['page_id', 'incident_id', 'update_id', 'subscriber_id'])
               = (to_jsonb(OLD) - ARRAY['page_id', 'incident_id', 'update_id', 'subscriber_id'])
        THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the compliance archive is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS archivedmessage_append_only ON notifications_archivedmessage;
CREATE TRIGGER archivedmessage_append_only
    BEFORE UPDATE OR DELETE ON notifications_archivedmessage
    FOR EACH ROW EXECUTE FUNCTION notifications_archive_append_only();

DROP TRIGGER IF EXISTS archivecheckpoint_append_only ON notifications_archivecheckpoint;
CREATE TRIGGER archivecheckpoint_append_only
    BEFORE UPDATE OR DELETE ON notifications_archivecheckpoint
    FOR EACH ROW EXECUTE FUNCTION notifications_archive_append_only();
"""

DROP = r"""
DROP TRIGGER IF EXISTS archivedmessage_append_only ON notifications_archivedmessage;
DROP TRIGGER IF EXISTS archivecheckpoint_append_only ON notifications_archivecheckpoint;
DROP FUNCTION IF EXISTS notifications_archive_append_only();
"""


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
