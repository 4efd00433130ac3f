-- An organization's login log, newest first, for its administrators.
CREATE INDEX auth_events_org ON auth_events (org_id, id);
