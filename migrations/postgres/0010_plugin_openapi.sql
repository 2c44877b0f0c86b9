-- A plugin version may carry the OpenAPI operations of the routes it claims (a
-- JSON document, as uploaded); `GET /api/openapi.json` serves those of the active
-- versions. NULL: the version has none, and its routes get a generic description.
ALTER TABLE plugin_versions ADD COLUMN openapi TEXT;
