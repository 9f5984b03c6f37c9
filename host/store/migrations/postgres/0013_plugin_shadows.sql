-- Shadow runs (`POST /api/v2/plugins/{name}/shadow`): at most one candidate
-- version per plugin, run beside the deployed one on `sample_ppm` of the
-- logins (per million), with the tallies every host adds to and the latest
-- differences (a JSON array, newest first, capped by the host).
-- The same statements are in the other dialect's 0013_plugin_shadows.sql.
CREATE TABLE plugin_shadows (
    plugin       TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    sample_ppm   BIGINT NOT NULL,
    started_at   TEXT NOT NULL,     -- RFC 3339
    started_by   TEXT NOT NULL,
    runs         BIGINT NOT NULL DEFAULT 0,
    identical    BIGINT NOT NULL DEFAULT 0,
    different    BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    dropped      BIGINT NOT NULL DEFAULT 0,
    differences  TEXT NOT NULL DEFAULT '[]',
    FOREIGN KEY (plugin, version) REFERENCES plugin_versions (plugin, version)
);
