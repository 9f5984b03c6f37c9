-- Plugin versions kept by the deployment itself (`source = "store"`): each
-- pushed component once per plugin and SHA-256, numbered 1, 2, ... per
-- plugin, and the history of deploys, whose newest row per plugin is the
-- version every host runs. The component is kept as base64 text, the same
-- in both dialects; a host refuses one whose digest is not its row's.
-- The same statements are in the other dialect's 0012_plugin_versions.sql.
CREATE TABLE plugin_versions (
    plugin      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,      -- lowercase hex of the component
    size        BIGINT NOT NULL,    -- bytes
    world       TEXT NOT NULL,
    language    TEXT NOT NULL,      -- as `claimsmith inspect` names it; "" when unknown
    created_at  TEXT NOT NULL,      -- RFC 3339
    created_by  TEXT NOT NULL,      -- the Management API client, or "config"
    component   TEXT NOT NULL,      -- base64
    PRIMARY KEY (plugin, version),
    UNIQUE (plugin, sha256)
);

CREATE TABLE plugin_deployments (
    plugin       TEXT NOT NULL,
    seq          BIGINT NOT NULL,   -- 1, 2, ... per plugin: the newest is live
    version      BIGINT NOT NULL,
    deployed_at  TEXT NOT NULL,     -- RFC 3339
    deployed_by  TEXT NOT NULL,
    PRIMARY KEY (plugin, seq),
    FOREIGN KEY (plugin, version) REFERENCES plugin_versions (plugin, version)
);
