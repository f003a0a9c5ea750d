"""PostgreSQL triggers that make the audit tables append-only against raw SQL too.

- records: no UPDATE, DELETE or TRUNCATE. One exception: setting actor_id to NULL, which is what
  deleting a user does (on_delete=SET_NULL); actor_name, which the hash covers, keeps the name.
- content: no DELETE or TRUNCATE; UPDATE only to redact a field once (record and field unchanged,
  redacted_at set where it was NULL, the value replaced by exactly the redaction marker, and the
  audit.redaction event referenced), or to set redacted_by to NULL when that user is deleted.
- TRUNCATE is let through when the session has set audit.allow_truncate = 'on', which only the
  audit app's `flush` command does (a full, confirmed erase of the database).

Other databases (the SQLite embedded default) rely on the model-level refusals alone.
"""

from django.db import migrations

FUNCTIONS = """
CREATE OR REPLACE FUNCTION audit_record_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit records are append-only (% refused)', TG_OP;
END
$$;

CREATE OR REPLACE FUNCTION audit_content_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
           AND NEW.id = OLD.id AND NEW.record_id = OLD.record_id AND NEW.field = OLD.field
           AND NEW.redaction_id IS NOT NULL
           AND NEW.value = jsonb_build_object('redacted', true, 'reason', NEW.redaction_reason)
        THEN
            RETURN NEW;
        END IF;
        IF OLD.redacted_by_id IS NOT NULL AND NEW.redacted_by_id IS NULL
           AND (to_jsonb(NEW) - 'redacted_by_id') = (to_jsonb(OLD) - 'redacted_by_id') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit content is append-only: it can only be redacted, once';
    END IF;
    RAISE EXCEPTION 'audit content is append-only (% refused)', TG_OP;
END
$$;

CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('audit.allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit records are append-only (TRUNCATE refused on %)', TG_TABLE_NAME;
END
$$;
"""

TRIGGERS = """
CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON {record}
    FOR EACH ROW EXECUTE FUNCTION audit_record_guard();
CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON {record}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_content_append_only BEFORE UPDATE OR DELETE ON {content}
    FOR EACH ROW EXECUTE FUNCTION audit_content_guard();
CREATE TRIGGER audit_content_no_truncate BEFORE TRUNCATE ON {content}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_record_append_only ON {record};
DROP TRIGGER IF EXISTS audit_record_no_truncate ON {record};
DROP TRIGGER IF EXISTS audit_content_append_only ON {content};
DROP TRIGGER IF EXISTS audit_content_no_truncate ON {content};
DROP FUNCTION IF EXISTS audit_record_guard();
DROP FUNCTION IF EXISTS audit_content_guard();
DROP FUNCTION IF EXISTS audit_refuse_truncate();
"""


def _tables(apps, schema_editor) -> dict[str, str]:
    quote = schema_editor.quote_name
    return {
        "record": quote(apps.get_model("audit", "AuditRecord")._meta.db_table),
        "content": quote(apps.get_model("audit", "AuditContent")._meta.db_table),
    }


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # params=None: the SQL is run as is, its % signs are RAISE placeholders, not parameters.
    schema_editor.execute(FUNCTIONS, params=None)
    schema_editor.execute(TRIGGERS.format(**_tables(apps, schema_editor)), params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP.format(**_tables(apps, schema_editor)), params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
