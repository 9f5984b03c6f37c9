//! Roles in the Management API, in Auth0's shapes and scopes: `/roles`, a
//! role's permissions and users, and `/users/{id}/roles` and
//! `/users/{id}/permissions`.
//!
//! Owns the shapes and the checks of what a request may ask (lengths, list
//! sizes); the roles are the [`Store`](claimsmith_store::Store)'s. Every
//! change is in the admin trail.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Paging, bad_request, caller, payload};
use crate::Service;
use claimsmith_store::{HeldPermission, Permission, Role, RoleChange};

/// The longest role name, in characters.
const MAX_NAME_CHARS: usize = 50;
/// The longest role description, in characters (Auth0's).
const MAX_DESCRIPTION_CHARS: usize = 140;
/// The most permissions, or roles, one request may add or remove.
const MAX_ITEMS_PER_CHANGE: usize = 100;

/// A role, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    id: String,
    name: String,
    description: String,
}

impl From<Role> for RoleView {
    fn from(
        Role {
            id,
            name,
            description,
        }: Role,
    ) -> Self {
        RoleView {
            id,
            name,
            description,
        }
    }
}

/// A new role.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// 1 to 50 characters, unique.
    name: String,
    /// Up to 140 characters.
    #[serde(default)]
    description: String,
}

/// What a PATCH of a role may change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    name: Option<String>,
    description: Option<String>,
}

/// One permission: a scope of one API.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionRef {
    /// The API's identifier (its audience).
    resource_server_identifier: String,
    permission_name: String,
}

/// The permissions to add to or remove from a role.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionList {
    permissions: Vec<PermissionRef>,
}

/// The roles to give a user or take from them.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleList {
    roles: Vec<String>,
}

/// A role's permission, as Auth0 lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionView {
    resource_server_identifier: String,
    permission_name: String,
    /// The API's name: its identifier, as Claimsmith names APIs by it.
    resource_server_name: String,
    description: String,
}

impl From<Permission> for PermissionView {
    fn from(permission: Permission) -> Self {
        PermissionView {
            resource_server_name: permission.resource_server_identifier.clone(),
            resource_server_identifier: permission.resource_server_identifier,
            permission_name: permission.permission_name,
            description: String::new(),
        }
    }
}

/// Where a user's permission comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionSource {
    source_id: String,
    source_name: String,
    /// Always `ROLE`: permissions are held through roles only.
    source_type: &'static str,
}

/// A permission a user holds, and the roles that give it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPermission {
    #[serde(flatten)]
    permission: PermissionView,
    sources: Vec<PermissionSource>,
}

impl From<HeldPermission> for UserPermission {
    fn from(held: HeldPermission) -> Self {
        UserPermission {
            permission: held.permission.into(),
            sources: held
                .roles
                .into_iter()
                .map(|role| PermissionSource {
                    source_id: role.id,
                    source_name: role.name,
                    source_type: "ROLE",
                })
                .collect(),
        }
    }
}

/// A user who holds a role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleMember {
    user_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoleSearch {
    /// Only roles whose name contains this, compared without case.
    name_filter: Option<String>,
}

fn no_role() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The role does not exist.")
}

fn name_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "A role with this name already exists.",
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.trim() != name {
        return Err(bad_request(format!(
            "Payload validation error: 'name' must be 1 to {MAX_NAME_CHARS} characters without \
             leading or trailing spaces"
        )));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(bad_request(format!(
            "Payload validation error: 'description' must be at most {MAX_DESCRIPTION_CHARS} \
             characters"
        )));
    }
    Ok(())
}

/// A list of 1 to [`MAX_ITEMS_PER_CHANGE`] items named `property`.
fn check_items<T>(property: &str, items: &[T]) -> Result<(), ApiError> {
    if items.is_empty() || items.len() > MAX_ITEMS_PER_CHANGE {
        return Err(bad_request(format!(
            "Payload validation error: '{property}' must hold 1 to {MAX_ITEMS_PER_CHANGE} items"
        )));
    }
    Ok(())
}

/// The store's answer to a change, or the API error it stands for.
fn changed<T>(change: RoleChange<T>) -> Result<T, ApiError> {
    match change {
        RoleChange::Done(done) => Ok(done),
        RoleChange::NoRole(id) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("The role {id} does not exist."),
        )),
        RoleChange::NoUser => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The user does not exist.",
        )),
        RoleChange::NameTaken => Err(name_taken()),
    }
}

#[utoipa::path(
    get,
    path = "/roles",
    tag = "roles",
    params(RoleSearch, Paging),
    responses(
        (status = 200, description = "The roles, by name", body = [RoleView]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:roles", body = ApiError)
    ),
    security(("bearer" = ["read:roles"]))
)]
pub(super) async fn list_roles(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(search): Query<RoleSearch>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:roles")?;
    let page = service
        .store
        .roles(
            search.name_filter.as_deref().unwrap_or(""),
            paging.offset(),
            paging.limit(),
        )
        .await
        .map_err(ApiError::server)?;
    let roles: Vec<RoleView> = page.items.into_iter().map(RoleView::from).collect();
    Ok(paging.answer("roles", roles, page.total))
}

#[utoipa::path(
    post,
    path = "/roles",
    tag = "roles",
    request_body = NewRole,
    responses(
        (status = 200, description = "The role created", body = RoleView),
        (status = 400, description = "A name or description out of bounds", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without create:roles", body = ApiError),
        (status = 409, description = "Another role has the name", body = ApiError)
    ),
    security(("bearer" = ["create:roles"]))
)]
pub(super) async fn create_role(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<RoleView>, ApiError> {
    let actor = caller(&service, &headers, "create:roles")?;
    let new: NewRole = payload(&body)?;
    check_name(&new.name)?;
    check_description(&new.description)?;
    let role = Role {
        id: format!(
            "rol_{}",
            crate::protocol::random_token()
                .chars()
                .take(16)
                .collect::<String>()
        ),
        name: new.name,
        description: new.description,
    };
    changed(
        service
            .store
            .create_role(&role)
            .await
            .map_err(ApiError::server)?,
    )?;
    service
        .record_admin_action(&actor, "create_role", &role.id, json!({"name": role.name}))
        .await;
    Ok(Json(role.into()))
}

#[utoipa::path(
    get,
    path = "/roles/{id}",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id")),
    responses(
        (status = 200, body = RoleView),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:roles", body = ApiError),
        (status = 404, description = "No such role", body = ApiError)
    ),
    security(("bearer" = ["read:roles"]))
)]
pub(super) async fn get_role(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RoleView>, ApiError> {
    caller(&service, &headers, "read:roles")?;
    let role = service
        .store
        .role(&id)
        .await
        .map_err(ApiError::server)?
        .ok_or_else(no_role)?;
    Ok(Json(role.into()))
}

#[utoipa::path(
    patch,
    path = "/roles/{id}",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id")),
    request_body = RoleUpdate,
    responses(
        (status = 200, description = "The role after the update", body = RoleView),
        (status = 400, description = "A name or description out of bounds", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:roles", body = ApiError),
        (status = 404, description = "No such role", body = ApiError),
        (status = 409, description = "Another role has the name", body = ApiError)
    ),
    security(("bearer" = ["update:roles"]))
)]
pub(super) async fn update_role(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<RoleView>, ApiError> {
    let actor = caller(&service, &headers, "update:roles")?;
    let update: RoleUpdate = payload(&body)?;
    if let Some(name) = &update.name {
        check_name(name)?;
    }
    if let Some(description) = &update.description {
        check_description(description)?;
    }
    let role = changed(
        service
            .store
            .update_role(&id, update.name.as_deref(), update.description.as_deref())
            .await
            .map_err(ApiError::server)?,
    )?;
    let detail = serde_json::to_value(&update).unwrap_or_default();
    service
        .record_admin_action(&actor, "update_role", &id, detail)
        .await;
    Ok(Json(role.into()))
}

#[utoipa::path(
    delete,
    path = "/roles/{id}",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id")),
    responses(
        (status = 200, description = "Deleted, with its permissions and assignments"),
        (status = 401, body = ApiError),
        (status = 403, description = "Without delete:roles", body = ApiError),
        (status = 404, description = "No such role", body = ApiError)
    ),
    security(("bearer" = ["delete:roles"]))
)]
pub(super) async fn delete_role(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = caller(&service, &headers, "delete:roles")?;
    if !service
        .store
        .delete_role(&id)
        .await
        .map_err(ApiError::server)?
    {
        return Err(no_role());
    }
    service
        .record_admin_action(&actor, "delete_role", &id, json!({}))
        .await;
    Ok(StatusCode::OK)
}

#[utoipa::path(
    get,
    path = "/roles/{id}/permissions",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id"), Paging),
    responses(
        (status = 200, description = "The role's permissions, by API and name", body = [PermissionView]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:roles", body = ApiError),
        (status = 404, description = "No such role", body = ApiError)
    ),
    security(("bearer" = ["read:roles"]))
)]
pub(super) async fn role_permissions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:roles")?;
    let page = service
        .store
        .role_permissions(&id, paging.offset(), paging.limit())
        .await
        .map_err(ApiError::server)?
        .ok_or_else(no_role)?;
    let permissions: Vec<PermissionView> =
        page.items.into_iter().map(PermissionView::from).collect();
    Ok(paging.answer("permissions", permissions, page.total))
}

fn permissions_of(body: &[u8]) -> Result<Vec<Permission>, ApiError> {
    let list: PermissionList = payload(body)?;
    check_items("permissions", &list.permissions)?;
    Ok(list
        .permissions
        .into_iter()
        .map(|p| Permission {
            resource_server_identifier: p.resource_server_identifier,
            permission_name: p.permission_name,
        })
        .collect())
}

/// Whether a request gives a role permissions or takes them away.
#[derive(Clone, Copy)]
enum PermissionChange {
    Add,
    Remove,
}

/// Gives role `id` the permissions `body` lists, or takes them away, for a
/// caller with `update:roles`; in the admin trail.
async fn change_permissions(
    service: &Service,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    change: PermissionChange,
) -> Result<(), ApiError> {
    let actor = caller(service, headers, "update:roles")?;
    let permissions = permissions_of(body)?;
    let store = &service.store;
    let (outcome, action) = match change {
        PermissionChange::Add => (
            store.add_role_permissions(id, &permissions).await,
            "add_role_permissions",
        ),
        PermissionChange::Remove => (
            store.remove_role_permissions(id, &permissions).await,
            "remove_role_permissions",
        ),
    };
    changed(outcome.map_err(ApiError::server)?)?;
    let detail = serde_json::from_slice(body).unwrap_or_default();
    service
        .record_admin_action(&actor, action, id, detail)
        .await;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/roles/{id}/permissions",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id")),
    request_body = PermissionList,
    responses(
        (status = 201, description = "The permissions are the role's (those it had stay once)"),
        (status = 400, description = "No permissions, or more than 100", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:roles", body = ApiError),
        (status = 404, description = "No such role", body = ApiError)
    ),
    security(("bearer" = ["update:roles"]))
)]
pub(super) async fn add_role_permissions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    change_permissions(&service, &headers, &id, &body, PermissionChange::Add).await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(
    delete,
    path = "/roles/{id}/permissions",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id")),
    request_body = PermissionList,
    responses(
        (status = 200, description = "The permissions are no longer the role's"),
        (status = 400, description = "No permissions, or more than 100", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:roles", body = ApiError),
        (status = 404, description = "No such role", body = ApiError)
    ),
    security(("bearer" = ["update:roles"]))
)]
pub(super) async fn remove_role_permissions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    change_permissions(&service, &headers, &id, &body, PermissionChange::Remove).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(
    get,
    path = "/roles/{id}/users",
    tag = "roles",
    params(("id" = String, Path, description = "The role's id"), Paging),
    responses(
        (status = 200, description = "The users who hold the role, by user id", body = [RoleMember]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:roles and read:users", body = ApiError),
        (status = 404, description = "No such role", body = ApiError)
    ),
    security(("bearer" = ["read:roles", "read:users"]))
)]
pub(super) async fn role_users(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:roles")?;
    caller(&service, &headers, "read:users")?;
    let page = service
        .store
        .role_users(&id, paging.offset(), paging.limit())
        .await
        .map_err(ApiError::server)?
        .ok_or_else(no_role)?;
    let users: Vec<RoleMember> = page
        .items
        .into_iter()
        .map(|user_id| RoleMember { user_id })
        .collect();
    Ok(paging.answer("users", users, page.total))
}

#[utoipa::path(
    get,
    path = "/users/{id}/roles",
    tag = "roles",
    params(("id" = String, Path, description = "The user id"), Paging),
    responses(
        (status = 200, description = "The user's roles, by name", body = [RoleView]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:users and read:roles", body = ApiError)
    ),
    security(("bearer" = ["read:users", "read:roles"]))
)]
pub(super) async fn user_roles(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:users")?;
    caller(&service, &headers, "read:roles")?;
    let page = service
        .store
        .user_roles(&id, paging.offset(), paging.limit())
        .await
        .map_err(ApiError::server)?;
    let roles: Vec<RoleView> = page.items.into_iter().map(RoleView::from).collect();
    Ok(paging.answer("roles", roles, page.total))
}

fn role_ids_of(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let list: RoleList = payload(body)?;
    check_items("roles", &list.roles)?;
    Ok(list.roles)
}

#[utoipa::path(
    post,
    path = "/users/{id}/roles",
    tag = "roles",
    params(("id" = String, Path, description = "The user id")),
    request_body = RoleList,
    responses(
        (status = 204, description = "The user holds the roles (all of them, or none if one does not exist)"),
        (status = 400, description = "No roles, or more than 100", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:users", body = ApiError),
        (status = 404, description = "No such user or role", body = ApiError)
    ),
    security(("bearer" = ["update:users"]))
)]
pub(super) async fn assign_roles(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let actor = caller(&service, &headers, "update:users")?;
    let roles = role_ids_of(&body)?;
    changed(
        service
            .store
            .assign_roles(&id, &roles)
            .await
            .map_err(ApiError::server)?,
    )?;
    service
        .record_admin_action(&actor, "assign_roles", &id, json!({"roles": roles}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/users/{id}/roles",
    tag = "roles",
    params(("id" = String, Path, description = "The user id")),
    request_body = RoleList,
    responses(
        (status = 204, description = "The user no longer holds the roles"),
        (status = 400, description = "No roles, or more than 100", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:users", body = ApiError)
    ),
    security(("bearer" = ["update:users"]))
)]
pub(super) async fn unassign_roles(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let actor = caller(&service, &headers, "update:users")?;
    let roles = role_ids_of(&body)?;
    service
        .store
        .unassign_roles(&id, &roles)
        .await
        .map_err(ApiError::server)?;
    service
        .record_admin_action(&actor, "unassign_roles", &id, json!({"roles": roles}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/users/{id}/permissions",
    tag = "roles",
    params(("id" = String, Path, description = "The user id"), Paging),
    responses(
        (status = 200, description = "The permissions the user holds through roles, by API and name", body = [UserPermission]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:users", body = ApiError)
    ),
    security(("bearer" = ["read:users"]))
)]
pub(super) async fn user_permissions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:users")?;
    let held = service
        .store
        .user_permissions(&id)
        .await
        .map_err(ApiError::server)?;
    let total = held.len() as u64;
    let page: Vec<UserPermission> = held
        .into_iter()
        .skip(usize::try_from(paging.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.limit()).unwrap_or(usize::MAX))
        .map(UserPermission::from)
        .collect();
    Ok(paging.answer("permissions", page, total))
}
