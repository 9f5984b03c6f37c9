//! Roles, their permissions and the roles users hold (migration 0010), as
//! the Management API's `/roles` and `/users/{id}/roles` keep them.
//!
//! A role's id comes from the caller (the service makes `rol_` ids); its
//! name is unique. Only what the database must decide is decided here: a
//! taken name, a role or user that does not exist.

use sqlx::AnyConnection;

use crate::{Page, Store, StoreError, like_escaped, query_error, to_db_seconds};

/// A role, in Auth0's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// A permission: one scope of one API (by its identifier, the audience).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub resource_server_identifier: String,
    pub permission_name: String,
}

/// A permission a user holds, and the roles they hold it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPermission {
    pub permission: Permission,
    pub roles: Vec<Role>,
}

/// What a change to a role or an assignment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange<T> {
    Done(T),
    /// No role with this id (or, for an assignment, this one of them).
    NoRole(String),
    NoUser,
    NameTaken,
}

impl Store {
    /// Creates a role; [`RoleChange::NameTaken`] when another has its name.
    pub async fn create_role(&self, role: &Role) -> Result<RoleChange<()>, StoreError> {
        const OP: &str = "create_role";
        let inserted = sqlx::query(
            "INSERT INTO roles (id, name, description) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&role.id)
        .bind(&role.name)
        .bind(&role.description)
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?
        .rows_affected();
        Ok(if inserted == 1 {
            RoleChange::Done(())
        } else {
            RoleChange::NameTaken
        })
    }

    /// The roles whose name contains `name_filter` (without case), by name.
    pub async fn roles(
        &self,
        name_filter: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Role>, StoreError> {
        const OP: &str = "roles";
        let pattern = format!("%{}%", like_escaped(&name_filter.to_lowercase()));
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE LOWER(name) LIKE $1 ESCAPE '\\'")
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await
                .map_err(query_error(OP))?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, name, description FROM roles WHERE LOWER(name) LIKE $1 ESCAPE '\\' \
             ORDER BY name LIMIT $2 OFFSET $3",
        )
        .bind(&pattern)
        .bind(to_db_seconds(limit))
        .bind(to_db_seconds(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(Page {
            items: rows.into_iter().map(role_of).collect(),
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    pub async fn role(&self, id: &str) -> Result<Option<Role>, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(query_error("role"))?;
        find_role(&mut connection, id)
            .await
            .map_err(query_error("role"))
    }

    /// Renames a role or changes its description (what is `Some`).
    pub async fn update_role(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<RoleChange<Role>, StoreError> {
        const OP: &str = "update_role";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        if let Some(name) = name {
            let holder: Option<String> =
                sqlx::query_scalar("SELECT id FROM roles WHERE name = $1 AND id <> $2")
                    .bind(name)
                    .bind(id)
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(query_error(OP))?;
            if holder.is_some() {
                return Ok(RoleChange::NameTaken);
            }
        }
        sqlx::query(
            "UPDATE roles SET name = COALESCE($2, name), \
             description = COALESCE($3, description) WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .execute(&mut *transaction)
        .await
        .map_err(query_error(OP))?;
        let role = find_role(&mut transaction, id)
            .await
            .map_err(query_error(OP))?;
        transaction.commit().await.map_err(query_error(OP))?;
        Ok(role.map_or_else(|| RoleChange::NoRole(id.to_owned()), RoleChange::Done))
    }

    /// Deletes a role, its permissions and its assignments: false when there
    /// was none.
    pub async fn delete_role(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_error("delete_role"))?
            .rows_affected();
        Ok(deleted == 1)
    }

    /// Gives role `id` each of `permissions` it does not have yet.
    pub async fn add_role_permissions(
        &self,
        id: &str,
        permissions: &[Permission],
    ) -> Result<RoleChange<()>, StoreError> {
        self.change_role_permissions(
            id,
            permissions,
            "INSERT INTO role_permissions \
                 (role_id, resource_server_identifier, permission_name) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .await
    }

    /// Takes each of `permissions` from role `id`.
    pub async fn remove_role_permissions(
        &self,
        id: &str,
        permissions: &[Permission],
    ) -> Result<RoleChange<()>, StoreError> {
        self.change_role_permissions(
            id,
            permissions,
            "DELETE FROM role_permissions WHERE role_id = $1 \
                 AND resource_server_identifier = $2 AND permission_name = $3",
        )
        .await
    }

    /// Runs `statement` (role id, API, permission) for each of `permissions`,
    /// in one transaction, when role `id` exists.
    async fn change_role_permissions(
        &self,
        id: &str,
        permissions: &[Permission],
        statement: &'static str,
    ) -> Result<RoleChange<()>, StoreError> {
        const OP: &str = "change_role_permissions";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        if find_role(&mut transaction, id)
            .await
            .map_err(query_error(OP))?
            .is_none()
        {
            return Ok(RoleChange::NoRole(id.to_owned()));
        }
        for permission in permissions {
            sqlx::query(statement)
                .bind(id)
                .bind(&permission.resource_server_identifier)
                .bind(&permission.permission_name)
                .execute(&mut *transaction)
                .await
                .map_err(query_error(OP))?;
        }
        transaction.commit().await.map_err(query_error(OP))?;
        Ok(RoleChange::Done(()))
    }

    /// Role `id`'s permissions, by API and name; None when there is no such
    /// role.
    pub async fn role_permissions(
        &self,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<Page<Permission>>, StoreError> {
        const OP: &str = "role_permissions";
        if self.role(id).await?.is_none() {
            return Ok(None);
        }
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM role_permissions WHERE role_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(query_error(OP))?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT resource_server_identifier, permission_name FROM role_permissions \
             WHERE role_id = $1 ORDER BY resource_server_identifier, permission_name \
             LIMIT $2 OFFSET $3",
        )
        .bind(id)
        .bind(to_db_seconds(limit))
        .bind(to_db_seconds(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(Some(Page {
            items: rows.into_iter().map(permission_of).collect(),
            total: u64::try_from(total).unwrap_or(0),
        }))
    }

    /// The ids of the users who hold role `id`; None when there is no such
    /// role.
    pub async fn role_users(
        &self,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<Page<String>>, StoreError> {
        const OP: &str = "role_users";
        if self.role(id).await?.is_none() {
            return Ok(None);
        }
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_roles WHERE role_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(query_error(OP))?;
        let items: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM user_roles WHERE role_id = $1 ORDER BY user_id \
             LIMIT $2 OFFSET $3",
        )
        .bind(id)
        .bind(to_db_seconds(limit))
        .bind(to_db_seconds(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(Some(Page {
            items,
            total: u64::try_from(total).unwrap_or(0),
        }))
    }

    /// Gives user `user_id` each of `role_ids`, all or none: the first id of
    /// no role is named.
    pub async fn assign_roles(
        &self,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<RoleChange<()>, StoreError> {
        const OP: &str = "assign_roles";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        let user: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM users WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(query_error(OP))?;
        if user.is_none() {
            return Ok(RoleChange::NoUser);
        }
        for role_id in role_ids {
            if find_role(&mut transaction, role_id)
                .await
                .map_err(query_error(OP))?
                .is_none()
            {
                return Ok(RoleChange::NoRole(role_id.clone()));
            }
            // A role the upstream gave becomes the API's: a later sign-in
            // without it in `roles_from` no longer takes it back.
            sqlx::query(
                "INSERT INTO user_roles (user_id, role_id, source) VALUES ($1, $2, 'api') \
                 ON CONFLICT (user_id, role_id) DO UPDATE SET source = 'api'",
            )
            .bind(user_id)
            .bind(role_id)
            .execute(&mut *transaction)
            .await
            .map_err(query_error(OP))?;
        }
        transaction.commit().await.map_err(query_error(OP))?;
        Ok(RoleChange::Done(()))
    }

    /// Takes each of `role_ids` from user `user_id` (ids they do not hold
    /// change nothing).
    pub async fn unassign_roles(
        &self,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<(), StoreError> {
        const OP: &str = "unassign_roles";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        for role_id in role_ids {
            sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
                .bind(user_id)
                .bind(role_id)
                .execute(&mut *transaction)
                .await
                .map_err(query_error(OP))?;
        }
        transaction.commit().await.map_err(query_error(OP))
    }

    /// The roles user `user_id` holds, by name.
    pub async fn user_roles(
        &self,
        user_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Role>, StoreError> {
        const OP: &str = "user_roles";
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_roles WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await
            .map_err(query_error(OP))?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT roles.id, roles.name, roles.description FROM user_roles \
             JOIN roles ON roles.id = user_roles.role_id WHERE user_roles.user_id = $1 \
             ORDER BY roles.name LIMIT $2 OFFSET $3",
        )
        .bind(user_id)
        .bind(to_db_seconds(limit))
        .bind(to_db_seconds(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(Page {
            items: rows.into_iter().map(role_of).collect(),
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    /// Every permission user `user_id` holds through their roles, by API
    /// and name, each with the roles that give it.
    pub async fn user_permissions(&self, user_id: &str) -> Result<Vec<HeldPermission>, StoreError> {
        const OP: &str = "user_permissions";
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT role_permissions.resource_server_identifier, \
                    role_permissions.permission_name, roles.id, roles.name, roles.description \
             FROM user_roles \
             JOIN roles ON roles.id = user_roles.role_id \
             JOIN role_permissions ON role_permissions.role_id = roles.id \
             WHERE user_roles.user_id = $1 \
             ORDER BY role_permissions.resource_server_identifier, \
                      role_permissions.permission_name, roles.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let mut held: Vec<HeldPermission> = Vec::new();
        for (api, name, id, role_name, description) in rows {
            let permission = permission_of((api, name));
            let role = role_of((id, role_name, description));
            match held.last_mut() {
                Some(last) if last.permission == permission => last.roles.push(role),
                _ => held.push(HeldPermission {
                    permission,
                    roles: vec![role],
                }),
            }
        }
        Ok(held)
    }
}

/// What a login reads of a user's roles: see [`Store::authorization`].
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationQuery<'a> {
    pub user_id: &'a str,
    /// The role names the connection's `roles_from` found in this sign-in's
    /// profile; None when the connection maps none (or on a refresh).
    pub upstream_roles: Option<&'a [String]>,
    /// The API whose permissions the login's access token carries.
    pub permissions_for: Option<&'a str>,
}

/// The roles and permissions a login puts in its event and tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorization {
    /// Role names, sorted.
    pub roles: Vec<String>,
    /// The permission names the roles give for the queried API, sorted.
    pub permissions: Vec<String>,
}

impl Store {
    /// The roles user `query.user_id` holds for this login, and the
    /// permissions they give for `query.permissions_for`. With
    /// `upstream_roles`, the roles as the sign-in will leave them: those the
    /// API gave, and the existing roles of those names (which
    /// [`Store::record_login`] then stores as the upstream's).
    pub async fn authorization(
        &self,
        query: AuthorizationQuery<'_>,
    ) -> Result<Authorization, StoreError> {
        const OP: &str = "authorization";
        let mut connection = self.pool.acquire().await.map_err(query_error(OP))?;
        let roles = role_names(&mut connection, query.user_id, query.upstream_roles)
            .await
            .map_err(query_error(OP))?;
        let permissions = match query.permissions_for {
            Some(api) if !roles.is_empty() => permission_names(&mut connection, query, api)
                .await
                .map_err(query_error(OP))?,
            _ => Vec::new(),
        };
        Ok(Authorization { roles, permissions })
    }
}

/// The names of the roles `$1` holds, as [`Store::authorization`] counts
/// them, as SQL; `upstream_roles` are bound from `$first_name` on.
fn held_roles_sql(upstream_roles: Option<&[String]>, first_name: usize) -> String {
    let held = "SELECT roles.name FROM user_roles JOIN roles ON roles.id = user_roles.role_id \
                WHERE user_roles.user_id = $1";
    match upstream_roles {
        None => held.to_owned(),
        Some([]) => format!("{held} AND user_roles.source = 'api'"),
        Some(names) => format!(
            "{held} AND user_roles.source = 'api' UNION SELECT name FROM roles WHERE name IN ({})",
            placeholders(first_name, names.len())
        ),
    }
}

/// `$first, $first+1, ...`: one placeholder per name bound into an
/// `IN (...)`. sqlx's Any driver binds no arrays; the pipeline bounds the
/// upstream's names.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn role_names(
    connection: &mut AnyConnection,
    user_id: &str,
    upstream_roles: Option<&[String]>,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!("{} ORDER BY 1", held_roles_sql(upstream_roles, 2));
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user_id);
    for name in upstream_roles.unwrap_or_default() {
        query = query.bind(name);
    }
    query.fetch_all(connection).await
}

async fn permission_names(
    connection: &mut AnyConnection,
    query: AuthorizationQuery<'_>,
    api: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT DISTINCT role_permissions.permission_name FROM role_permissions \
         JOIN roles ON roles.id = role_permissions.role_id \
         WHERE role_permissions.resource_server_identifier = $2 AND roles.name IN ({}) \
         ORDER BY 1",
        held_roles_sql(query.upstream_roles, 3)
    );
    let mut bound = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(query.user_id)
        .bind(api);
    for name in query.upstream_roles.unwrap_or_default() {
        bound = bound.bind(name);
    }
    bound.fetch_all(connection).await
}

/// Makes the roles the upstream gave user `user_id` the existing roles
/// named `names`, leaving those the API gave alone; part of recording a
/// sign-in.
pub(crate) async fn sync_upstream_roles(
    connection: &mut AnyConnection,
    user_id: &str,
    names: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND source = 'upstream'")
        .bind(user_id)
        .execute(&mut *connection)
        .await?;
    if names.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO user_roles (user_id, role_id, source) \
         SELECT $1, id, 'upstream' FROM roles WHERE name IN ({}) \
         ON CONFLICT (user_id, role_id) DO NOTHING",
        placeholders(2, names.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id);
    for name in names {
        query = query.bind(name);
    }
    query.execute(connection).await?;
    Ok(())
}

async fn find_role(connection: &mut AnyConnection, id: &str) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT id, name, description FROM roles WHERE id = $1")
            .bind(id)
            .fetch_optional(connection)
            .await?;
    Ok(row.map(role_of))
}

fn role_of((id, name, description): (String, String, String)) -> Role {
    Role {
        id,
        name,
        description,
    }
}

fn permission_of((resource_server_identifier, permission_name): (String, String)) -> Permission {
    Permission {
        resource_server_identifier,
        permission_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use crate::tests::{new_user, on_both_backends, open_temp, save_user, sign_in};

    fn role(id: &str, name: &str) -> Role {
        Role {
            id: id.to_owned(),
            name: name.to_owned(),
            description: format!("the {name}s"),
        }
    }

    fn permission(api: &str, name: &str) -> Permission {
        Permission {
            resource_server_identifier: api.to_owned(),
            permission_name: name.to_owned(),
        }
    }

    async fn a_user(store: &Store, user_id: &str) {
        save_user(store, &new_user(user_id), true).await;
    }

    async fn roles_have_unique_names_and_are_listed_by_name(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let (admin, editor) = (role("rol_a", "admin"), role("rol_e", "Editor"));
        assert_eq!(
            store.create_role(&editor).await.unwrap(),
            RoleChange::Done(())
        );
        assert_eq!(
            store.create_role(&admin).await.unwrap(),
            RoleChange::Done(())
        );
        let twin = role("rol_twin", "admin");
        assert_eq!(
            store.create_role(&twin).await.unwrap(),
            RoleChange::NameTaken
        );

        let all = store.roles("", 0, 10).await.unwrap();
        assert_eq!(
            (all.items, all.total),
            (vec![editor.clone(), admin.clone()], 2)
        );
        let found = store.roles("EDIT", 0, 10).await.unwrap();
        assert_eq!(found.items, std::slice::from_ref(&editor));
        assert_eq!(store.roles("%", 0, 10).await.unwrap().total, 0);
        let second = store.roles("", 1, 1).await.unwrap();
        assert_eq!((second.items, second.total), (vec![admin.clone()], 2));

        let taken = store
            .update_role("rol_e", Some("admin"), None)
            .await
            .unwrap();
        assert_eq!(taken, RoleChange::NameTaken);
        let missing = store.update_role("rol_x", None, Some("new")).await.unwrap();
        assert_eq!(missing, RoleChange::NoRole("rol_x".to_owned()));
        let described = store
            .update_role("rol_e", None, Some("writes"))
            .await
            .unwrap();
        let editor = Role {
            description: "writes".to_owned(),
            ..editor
        };
        assert_eq!(described, RoleChange::Done(editor.clone()));
        assert_eq!(store.role("rol_e").await.unwrap(), Some(editor));

        assert!(store.delete_role("rol_a").await.unwrap());
        assert!(!store.delete_role("rol_a").await.unwrap());
        assert_eq!(store.role("rol_a").await.unwrap(), None);
    }

    async fn permissions_and_assignments_go_with_their_role(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let (reader, writer) = (role("rol_r", "reader"), role("rol_w", "writer"));
        for role in [&reader, &writer] {
            store.create_role(role).await.unwrap();
        }
        let read = permission("https://api", "read:docs");
        let write = permission("https://api", "write:docs");
        let other = permission("https://other", "read:docs");
        let added = store
            .add_role_permissions("rol_w", &[read.clone(), write.clone(), read.clone()])
            .await
            .unwrap();
        assert_eq!(added, RoleChange::Done(()));
        store
            .add_role_permissions("rol_r", &[read.clone(), other.clone()])
            .await
            .unwrap();
        let none = store
            .add_role_permissions("rol_x", std::slice::from_ref(&read))
            .await
            .unwrap();
        assert_eq!(none, RoleChange::NoRole("rol_x".to_owned()));
        let of_writer = store
            .role_permissions("rol_w", 0, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (of_writer.items, of_writer.total),
            (vec![read.clone(), write.clone()], 2)
        );

        a_user(&store, "github|1").await;
        a_user(&store, "github|2").await;
        let roles = ["rol_r".to_owned(), "rol_w".to_owned()];
        assert_eq!(
            store.assign_roles("github|1", &roles).await.unwrap(),
            RoleChange::Done(())
        );
        let unknown_user = store.assign_roles("github|9", &roles).await.unwrap();
        assert_eq!(unknown_user, RoleChange::NoUser);
        // All or none: the role before the unknown one is not given either.
        let with_unknown = ["rol_r".to_owned(), "rol_x".to_owned()];
        let refused = store.assign_roles("github|2", &with_unknown).await.unwrap();
        assert_eq!(refused, RoleChange::NoRole("rol_x".to_owned()));
        assert_eq!(store.user_roles("github|2", 0, 10).await.unwrap().total, 0);

        let held = store.user_roles("github|1", 0, 10).await.unwrap();
        assert_eq!(held.items, [reader.clone(), writer.clone()]);
        let users = store.role_users("rol_w", 0, 10).await.unwrap().unwrap();
        assert_eq!(users.items, ["github|1"]);
        let permissions = store.user_permissions("github|1").await.unwrap();
        let shown: Vec<(&str, &str, Vec<&str>)> = permissions
            .iter()
            .map(|held| {
                (
                    held.permission.resource_server_identifier.as_str(),
                    held.permission.permission_name.as_str(),
                    held.roles.iter().map(|role| role.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("https://api", "read:docs", vec!["reader", "writer"]),
                ("https://api", "write:docs", vec!["writer"]),
                ("https://other", "read:docs", vec!["reader"]),
            ]
        );

        store
            .remove_role_permissions("rol_w", &[write])
            .await
            .unwrap();
        assert_eq!(
            store
                .role_permissions("rol_w", 0, 10)
                .await
                .unwrap()
                .unwrap()
                .items,
            [read]
        );
        store
            .unassign_roles("github|1", &["rol_r".to_owned()])
            .await
            .unwrap();
        assert_eq!(
            store.user_roles("github|1", 0, 10).await.unwrap().items,
            [writer]
        );
        store.delete_role("rol_w").await.unwrap();
        assert_eq!(store.user_roles("github|1", 0, 10).await.unwrap().total, 0);
        assert_eq!(store.role_permissions("rol_w", 0, 10).await.unwrap(), None);
        assert_eq!(store.role_users("rol_w", 0, 10).await.unwrap(), None);
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    /// What a sign-in of `user_id` with `upstream` reads, for API `api`.
    async fn read(
        store: &Store,
        user_id: &str,
        upstream: Option<&[String]>,
        api: &str,
    ) -> Authorization {
        let query = AuthorizationQuery {
            user_id,
            upstream_roles: upstream,
            permissions_for: Some(api),
        };
        store.authorization(query).await.unwrap()
    }

    async fn the_upstream_gives_and_takes_back_only_its_own_roles(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        for (id, name) in [("rol_a", "admin"), ("rol_e", "editor"), ("rol_v", "viewer")] {
            store.create_role(&role(id, name)).await.unwrap();
        }
        for (id, name) in [
            ("rol_a", "delete:docs"),
            ("rol_e", "write:docs"),
            ("rol_v", "read:docs"),
        ] {
            let given = [
                permission("https://api", name),
                permission("https://other", "x"),
            ];
            store.add_role_permissions(id, &given).await.unwrap();
        }
        a_user(&store, "okta|1").await;
        store
            .assign_roles("okta|1", &names(&["rol_v"]))
            .await
            .unwrap();

        // Before the sign-in stores anything, the read shows what it will
        // leave: the API's role and the existing ones the upstream names.
        let groups = names(&["Everyone", "editor"]);
        let before = read(&store, "okta|1", Some(&groups), "https://api").await;
        assert_eq!(before.roles, ["editor", "viewer"]);
        assert_eq!(before.permissions, ["read:docs", "write:docs"]);
        let user = new_user("okta|1");
        sign_in(&store, &user, true, Some(&groups)).await;
        let stored = read(&store, "okta|1", None, "https://api").await;
        assert_eq!(stored, before);

        // A later sign-in without the group takes the upstream's role back,
        // never the API's; one the API gives too stays the API's.
        let groups = names(&["admin", "viewer"]);
        sign_in(&store, &user, true, Some(&groups)).await;
        let now = read(&store, "okta|1", None, "https://api").await;
        assert_eq!(now.roles, ["admin", "viewer"]);
        store
            .assign_roles("okta|1", &names(&["rol_a"]))
            .await
            .unwrap();
        sign_in(&store, &user, true, Some(&[])).await;
        let after = read(&store, "okta|1", None, "https://other").await;
        assert_eq!(after.roles, ["admin", "viewer"]);
        assert_eq!(after.permissions, ["x"]);
        // Without `roles_from` (None) a sign-in leaves every role as it is.
        sign_in(&store, &user, true, Some(&names(&["editor"]))).await;
        sign_in(&store, &user, true, None).await;
        let kept = read(&store, "okta|1", None, "https://api").await;
        assert_eq!(kept.roles, ["admin", "editor", "viewer"]);
        let nobody = read(&store, "okta|2", Some(&names(&["admin"])), "https://none").await;
        assert_eq!(
            (nobody.roles, nobody.permissions),
            (names(&["admin"]), vec![])
        );
    }

    on_both_backends!(
        roles_have_unique_names_and_are_listed_by_name,
        permissions_and_assignments_go_with_their_role,
        the_upstream_gives_and_takes_back_only_its_own_roles,
    );
}
