-- Roles and their permissions, in the shape of Auth0's (the Management API's
-- /roles), and the roles each user holds. A role's name is unique. Deleting a
-- role takes its permissions and its assignments with it; deleting a user,
-- theirs.
-- The same statements are in the other dialect's 0010_roles.sql.
CREATE TABLE roles (
    id           TEXT PRIMARY KEY,   -- rol_ and 16 random characters
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL
);

CREATE TABLE role_permissions (
    role_id                     TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource_server_identifier  TEXT NOT NULL,   -- the API's identifier: its audience
    permission_name             TEXT NOT NULL,
    PRIMARY KEY (role_id, resource_server_identifier, permission_name)
);

-- `source` says who gave the role: 'api' (the Management API or the
-- console) or 'upstream' (the connection's `roles_from`, at a sign-in, which
-- takes back the upstream's roles the user no longer has, never the others).
CREATE TABLE user_roles (
    user_id  TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role_id  TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    source   TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'upstream')),
    PRIMARY KEY (user_id, role_id)
);

CREATE INDEX user_roles_by_role ON user_roles (role_id);
