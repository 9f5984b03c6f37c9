-- Canaries (`POST /api/v2/plugins/{name}/canary`): at most one version per
-- plugin served, instead of the deployed one, to `share_ppm` of the users
-- (per million, sticky by user id), rolled back by the hosts when more
-- than `max_failure_ppm` of its last calls within `window_secs` failed
-- (once at least `min_calls` were made).
-- The same statements are in the other dialect's 0014_plugin_canaries.sql.
CREATE TABLE plugin_canaries (
    plugin           TEXT PRIMARY KEY,
    version          BIGINT NOT NULL,
    share_ppm        BIGINT NOT NULL,
    max_failure_ppm  BIGINT NOT NULL,
    window_secs      BIGINT NOT NULL,
    min_calls        BIGINT NOT NULL,
    started_at       TEXT NOT NULL,     -- RFC 3339
    started_by       TEXT NOT NULL,
    FOREIGN KEY (plugin, version) REFERENCES plugin_versions (plugin, version)
);
