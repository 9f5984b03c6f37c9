//! The console's roles: the roles page (each role with its permissions),
//! and a user's roles given and taken on their page. Each change is a
//! CSRF-checked POST recorded in the admin trail, as the Management API's
//! `POST/DELETE /api/v2/users/{id}/roles` would make it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::{Session, check_csrf, not_found, pages, server_error};
use crate::Service;
use claimsmith_store::{Permission, Role, RoleChange};

/// The most roles the roles page lists, and a user's page offers.
const MAX_ROLES_SHOWN: u64 = 200;
/// The most permissions shown per role.
const MAX_PERMISSIONS_SHOWN: u64 = 100;

pub(super) async fn roles(State(service): State<Arc<Service>>, session: Session) -> Response {
    let page = match service.store.roles("", 0, MAX_ROLES_SHOWN).await {
        Ok(page) => page,
        Err(error) => return server_error(error),
    };
    let mut listed: Vec<(Role, Vec<Permission>)> = Vec::new();
    for role in page.items {
        match service
            .store
            .role_permissions(&role.id, 0, MAX_PERMISSIONS_SHOWN)
            .await
        {
            Ok(permissions) => {
                let permissions = permissions.map(|page| page.items).unwrap_or_default();
                listed.push((role, permissions));
            }
            Err(error) => return server_error(error),
        }
    }
    Html(pages::roles(&session, &listed, page.total)).into_response()
}

/// The roles `user_id` holds, and the others they could be given.
pub(super) async fn of_user(
    service: &Service,
    user_id: &str,
) -> Result<(Vec<Role>, Vec<Role>), claimsmith_store::StoreError> {
    let held = service
        .store
        .user_roles(user_id, 0, MAX_ROLES_SHOWN)
        .await?;
    let all = service.store.roles("", 0, MAX_ROLES_SHOWN).await?;
    let others = all
        .items
        .into_iter()
        .filter(|role| !held.items.iter().any(|h| h.id == role.id))
        .collect();
    Ok((held.items, others))
}

/// `change=add|remove` of `role` (an id) for the user, then back to their page.
pub(super) async fn change(
    State(service): State<Arc<Service>>,
    session: Session,
    Path(user_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_csrf(&session, &form) {
        return refused.into_response();
    }
    let Some(role) = form.get("role").cloned() else {
        return not_found("No such role", "The form named no role.");
    };
    let roles = std::slice::from_ref(&role);
    let (action, outcome) = match form.get("change").map(String::as_str) {
        Some("add") => (
            "assign_role",
            service.store.assign_roles(&user_id, roles).await,
        ),
        Some("remove") => (
            "unassign_role",
            service
                .store
                .unassign_roles(&user_id, roles)
                .await
                .map(RoleChange::Done),
        ),
        _ => return not_found("No such change", "A role is added or removed."),
    };
    match outcome {
        Ok(RoleChange::Done(())) => {}
        Ok(RoleChange::NoUser) => {
            return not_found("No such user", &format!("There is no user {user_id}."));
        }
        Ok(RoleChange::NoRole(_) | RoleChange::NameTaken) => {
            return not_found("No such role", &format!("There is no role {role}."));
        }
        Err(error) => return server_error(error),
    }
    service
        .record_admin_action(&session.admin, action, &user_id, json!({ "role": role }))
        .await;
    let back = format!("/admin/users/{}", pages::segment(&user_id));
    Redirect::to(&back).into_response()
}
