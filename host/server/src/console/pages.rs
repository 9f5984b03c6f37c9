//! The console's HTML: one function per page, every value escaped.
//!
//! Plain server-rendered pages with a little CSS and one small script (the
//! Try it page's copy button); no build step.

use serde_json::{Map, Value};

use super::Session;
use crate::management::PluginInfo;
use claimsmith_golden::Tried;
use claimsmith_store::{
    LoginFilter, LoginListing, Page, Permission, Role, Shadow, StoredUserRow, UserListing,
};

/// `text` safe inside HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `text` as one path segment of a URL.
pub(super) fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: center; }
header a { color: #cfd6e4; text-decoration: none; } header a:hover { color: #fff; }
header .who { margin-left: auto; font-size: 12px; }
main { padding: 16px 24px; max-width: 1200px; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: 8px 0 20px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
pre { background: #fff; border: 1px solid #e3e6eb; padding: 10px; overflow: auto; }
code { font: 12px ui-monospace, monospace; }
.outcome-minted { color: #17803d; } .outcome-denied { color: #b25e00; } .outcome-failed { color: #c0262d; }
.timeline { background: #fff; border: 1px solid #e3e6eb; padding: 10px; }
.step { display: grid; grid-template-columns: 180px 1fr 260px; gap: 10px; align-items: center; margin: 4px 0; }
.track { background: #eef0f4; height: 14px; }
.bar { background: #4a6cf7; height: 14px; min-width: 2px; }
.bar.failed { background: #c0262d; } .bar.denied { background: #b25e00; } .bar.skipped { background: #999; }
form.inline { display: inline; }
textarea { width: 100%; font: 12px ui-monospace, monospace; }
input[type=search], input[type=text] { padding: 4px 6px; }
"#;

fn layout(session: Option<&Session>, title: &str, body: &str) -> String {
    let nav = match session {
        Some(session) => format!(
            r#"<a href="/admin/users">Users</a><a href="/admin/roles">Roles</a><a href="/admin/logins">Logins</a><a href="/admin/plugins">Plugins</a>
<span class="who">signed in as {admin}
<form class="inline" method="post" action="/admin/logout"><input type="hidden" name="csrf" value="{csrf}"><button>Sign out</button></form></span>"#,
            admin = escape(&session.admin),
            csrf = escape(&session.csrf),
        ),
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Claimsmith</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body><header><strong>Claimsmith</strong>{nav}</header>
<main><h1>{title}</h1>
{body}
</main></body></html>"#,
        title = escape(title),
    )
}

/// A page that only says something.
pub(super) fn message(title: &str, text: &str) -> String {
    layout(None, title, &format!("<p>{}</p>", escape(text)))
}

fn json_block(value: &Value) -> String {
    format!(
        "<pre><code>{}</code></pre>",
        escape(&serde_json::to_string_pretty(value).unwrap_or_default())
    )
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A map as a two-column table.
fn table_of(map: &Map<String, Value>) -> String {
    let rows: String = map
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name),
                escape(&text_of(value))
            )
        })
        .collect();
    format!("<table class=\"fields\">{rows}</table>")
}

pub(super) fn users(session: &Session, q: &str, page: &Page<UserListing>) -> String {
    let rows: String = page
        .items
        .iter()
        .map(|listing| {
            let email = listing.row.profile.get("email").map(text_of).unwrap_or_default();
            format!(
                r#"<tr><td><a href="/admin/users/{link}">{id}</a></td><td>{email}</td><td>{count}</td><td>{last}</td></tr>"#,
                link = segment(&listing.user_id),
                id = escape(&listing.user_id),
                email = escape(&email),
                count = listing.row.user.logins_count,
                last = escape(listing.row.user.last_login.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let body = format!(
        r#"<form id="user-search" method="get" action="/admin/users"><input type="search" name="q" value="{q}" placeholder="email or user id" autofocus> <button>Search</button></form>
<p>{total} user(s).</p>
<table id="users"><tr><th>User</th><th>Email</th><th>Logins</th><th>Last login</th></tr>{rows}</table>"#,
        q = escape(q),
        total = page.total,
    );
    layout(Some(session), "Users", &body)
}

fn outcome_of(listing: &LoginListing) -> (&'static str, Option<&str>) {
    match &listing.entry.outcome {
        claimsmith_store::AuditOutcome::Minted => ("minted", None),
        claimsmith_store::AuditOutcome::Denied { reason } => ("denied", Some(reason)),
        claimsmith_store::AuditOutcome::Failed { error } => ("failed", Some(error)),
    }
}

fn login_rows(listings: &[LoginListing]) -> String {
    listings
        .iter()
        .map(|listing| {
            let (outcome, detail) = outcome_of(listing);
            let user = listing.entry.user_id.as_deref().unwrap_or("");
            format!(
                r#"<tr><td><a href="/admin/logins/{id}">{at}</a></td><td class="outcome-{outcome}">{outcome}</td><td>{user}</td><td>{client}</td><td>{connection}</td><td>{detail}</td></tr>"#,
                id = listing.id,
                at = escape(&listing.entry.at),
                user = escape(user),
                client = escape(&listing.entry.client_id),
                connection = escape(&listing.entry.connection),
                detail = escape(detail.unwrap_or("")),
            )
        })
        .collect()
}

/// Try it's one script: copies the golden case. The console's content
/// security policy runs this script, by its hash, and no other.
pub(super) const COPY_CASE_SCRIPT: &str = "
document.getElementById('copy-case').addEventListener('click', async () => {
  const text = document.getElementById('golden-case').textContent;
  try { await navigator.clipboard.writeText(text); document.getElementById('copied').textContent = 'copied'; }
  catch (e) { document.getElementById('copied').textContent = 'select the text and copy it'; }
});
";

const LOGIN_HEADER: &str = "<tr><th>When</th><th>Outcome</th><th>User</th><th>Client</th><th>Connection</th><th>Reason or error</th></tr>";

/// What a user's page shows.
pub(super) struct UserPage<'a> {
    pub user_id: &'a str,
    pub row: &'a StoredUserRow,
    pub recent: &'a [LoginListing],
    /// The roles they hold, and the others there are.
    pub roles: &'a (Vec<Role>, Vec<Role>),
}

pub(super) fn user(session: &Session, page: &UserPage<'_>) -> String {
    let UserPage {
        user_id,
        row,
        recent,
        roles,
    } = *page;
    let mut facts = Map::new();
    facts.insert("user_id".into(), Value::from(user_id));
    facts.insert("logins_count".into(), Value::from(row.user.logins_count));
    facts.insert(
        "last_login".into(),
        Value::from(row.user.last_login.clone().unwrap_or_default()),
    );
    facts.insert("created_at".into(), Value::from(row.created_at.clone()));
    let body = format!(
        r#"{facts}
<h2>Profile at the last login</h2>
{profile_table}
<details><summary>As JSON</summary>{profile_json}</details>
<h2>User metadata</h2>{user_metadata}
<h2>App metadata</h2>{app_metadata}
<h2>Roles</h2>
{roles}
<h2>Recent logins</h2>
<table id="recent-logins">{LOGIN_HEADER}{rows}</table>"#,
        facts = table_of(&facts),
        profile_table = table_of(&row.profile),
        profile_json = json_block(&Value::Object(row.profile.clone())),
        user_metadata = json_block(&Value::Object(row.user.user_metadata.clone())),
        app_metadata = json_block(&Value::Object(row.user.app_metadata.clone())),
        rows = login_rows(recent),
        roles = user_roles(session, user_id, roles),
    );
    layout(Some(session), user_id, &body)
}

/// The user's roles, each with a button taking it back, and a form giving
/// one of the others.
fn user_roles(session: &Session, user_id: &str, (held, others): &(Vec<Role>, Vec<Role>)) -> String {
    let form = |change: &str, role_field: &str, button: &str| {
        format!(
            r#"<form class="inline" method="post" action="/admin/users/{link}/roles"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="change" value="{change}">{role_field}<button>{button}</button></form>"#,
            link = segment(user_id),
            csrf = escape(&session.csrf),
        )
    };
    let rows: String = held
        .iter()
        .map(|role| {
            let field = format!(r#"<input type="hidden" name="role" value="{}">"#, escape(&role.id));
            format!(
                r#"<tr data-role="{name}"><td>{name}</td><td>{description}</td><td>{remove}</td></tr>"#,
                name = escape(&role.name),
                description = escape(&role.description),
                remove = form("remove", &field, "Remove"),
            )
        })
        .collect();
    let add = if others.is_empty() {
        "<p>No other role to give (roles are made through the Management API).</p>".to_owned()
    } else {
        let options: String = others
            .iter()
            .map(|role| {
                format!(
                    r#"<option value="{}">{}</option>"#,
                    escape(&role.id),
                    escape(&role.name)
                )
            })
            .collect();
        let field = format!(r#"<select name="role" id="role-to-add">{options}</select> "#);
        format!(
            r#"<div id="add-role">{}</div>"#,
            form("add", &field, "Add role")
        )
    };
    format!(
        r#"<table id="user-roles"><tr><th>Role</th><th>Description</th><th></th></tr>{rows}</table>
{add}"#
    )
}

/// Every role, with the permissions it gives (API and name).
pub(super) fn roles(session: &Session, roles: &[(Role, Vec<Permission>)], total: u64) -> String {
    let rows: String = roles
        .iter()
        .map(|(role, permissions)| {
            let permissions: String = permissions
                .iter()
                .map(|p| {
                    format!(
                        "<li><code>{}</code> on {}</li>",
                        escape(&p.permission_name),
                        escape(&p.resource_server_identifier)
                    )
                })
                .collect();
            format!(
                r#"<tr data-role="{name}"><td>{name}</td><td>{description}</td><td><ul>{permissions}</ul></td></tr>"#,
                name = escape(&role.name),
                description = escape(&role.description),
            )
        })
        .collect();
    let body = format!(
        r#"<p>{total} role(s). Roles and their permissions are made through the Management API (<code>/api/v2/roles</code>); a user's page gives and takes them.</p>
<table id="roles"><tr><th>Role</th><th>Description</th><th>Permissions</th></tr>{rows}</table>"#
    );
    layout(Some(session), "Roles", &body)
}

pub(super) fn logins(
    session: &Session,
    filter: &LoginFilter,
    page: u64,
    rows_per_page: u64,
    found: &Page<LoginListing>,
) -> String {
    let selected = |value: &str| {
        if filter.outcome.as_deref() == Some(value) {
            " selected"
        } else {
            ""
        }
    };
    let query = |page: u64| {
        format!(
            "?outcome={}&client={}&user={}&page={page}",
            segment(filter.outcome.as_deref().unwrap_or("")),
            segment(filter.client_id.as_deref().unwrap_or("")),
            segment(filter.user_id.as_deref().unwrap_or("")),
        )
    };
    let mut pager = String::new();
    if page > 0 {
        pager.push_str(&format!(
            r#"<a href="/admin/logins{}">Newer</a> "#,
            query(page - 1)
        ));
    }
    if (page + 1) * rows_per_page < found.total {
        pager.push_str(&format!(
            r#"<a href="/admin/logins{}">Older</a>"#,
            query(page + 1)
        ));
    }
    let body = format!(
        r#"<form method="get" action="/admin/logins">
<select name="outcome"><option value="">any outcome</option><option value="minted"{m}>minted</option><option value="denied"{d}>denied</option><option value="failed"{f}>failed</option></select>
<input type="text" name="client" placeholder="client id" value="{client}">
<input type="text" name="user" placeholder="user id" value="{user}">
<button>Filter</button></form>
<p>{total} login(s), newest first.</p>
<table id="logins">{LOGIN_HEADER}{rows}</table>
<p>{pager}</p>"#,
        m = selected("minted"),
        d = selected("denied"),
        f = selected("failed"),
        client = escape(filter.client_id.as_deref().unwrap_or("")),
        user = escape(filter.user_id.as_deref().unwrap_or("")),
        total = found.total,
        rows = login_rows(&found.items),
    );
    layout(Some(session), "Logins", &body)
}

/// One step as the audit row stores it (the pipeline's `StepReport`).
struct Step {
    name: String,
    kind: String,
    micros: u64,
    fuel: Option<u64>,
    status: String,
    detail: String,
}

fn steps_of(steps: &Value) -> Vec<Step> {
    steps
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|step| {
            let duration = &step["duration"];
            let micros = duration["secs"].as_u64().unwrap_or(0) * 1_000_000
                + duration["nanos"].as_u64().unwrap_or(0) / 1000;
            let (status, detail) = match &step["status"] {
                Value::String(status) => (status.clone(), String::new()),
                Value::Object(status) => status
                    .iter()
                    .next()
                    .map(|(name, inner)| {
                        let detail = inner
                            .as_object()
                            .and_then(|fields| fields.values().next())
                            .map(text_of)
                            .unwrap_or_default();
                        (name.clone(), detail)
                    })
                    .unwrap_or_default(),
                _ => (String::new(), String::new()),
            };
            Step {
                name: text_of(&step["name"]),
                kind: text_of(&step["kind"]),
                micros,
                fuel: step["fuel_consumed"].as_u64(),
                status,
                detail,
            }
        })
        .collect()
}

fn timeline(steps: &Value) -> String {
    let steps = steps_of(steps);
    let longest = steps
        .iter()
        .map(|step| step.micros)
        .max()
        .unwrap_or(1)
        .max(1);
    let rows: String = steps
        .iter()
        .map(|step| {
            let width = (step.micros as f64 / longest as f64 * 100.0).clamp(0.5, 100.0);
            let fuel = step.fuel.map(|fuel| format!(", {fuel} fuel")).unwrap_or_default();
            let detail = if step.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&step.detail))
            };
            format!(
                r#"<div class="step" data-step="{name}"><div><strong>{name}</strong><br><small>{kind}</small></div><div class="track"><div class="bar {status}" style="width: {width:.1}%"></div></div><div><span class="duration">{ms:.3} ms</span>{fuel} · {status}{detail}</div></div>"#,
                name = escape(&step.name),
                kind = escape(&step.kind),
                status = escape(&step.status),
                ms = step.micros as f64 / 1000.0,
            )
        })
        .collect();
    format!(r#"<div class="timeline" id="steps">{rows}</div>"#)
}

pub(super) fn login(session: &Session, listing: &LoginListing) -> String {
    let (outcome, detail) = outcome_of(listing);
    let entry = &listing.entry;
    let mut facts = Map::new();
    facts.insert("at".into(), Value::from(entry.at.clone()));
    facts.insert("outcome".into(), Value::from(outcome));
    if let Some(detail) = detail {
        facts.insert("reason or error".into(), Value::from(detail));
    }
    facts.insert(
        "user".into(),
        Value::from(entry.user_id.clone().unwrap_or_default()),
    );
    facts.insert("client".into(), Value::from(entry.client_id.clone()));
    facts.insert("connection".into(), Value::from(entry.connection.clone()));
    facts.insert(
        "correlation id".into(),
        Value::from(entry.correlation_id.clone().unwrap_or_default()),
    );
    facts.insert(
        "chain version".into(),
        Value::from(entry.chain_version.clone().unwrap_or_default()),
    );
    let user_link = entry
        .user_id
        .as_deref()
        .map(|user| {
            format!(
                r#"<p><a href="/admin/users/{}">The user's page</a></p>"#,
                segment(user)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "{facts}{user_link}<h2>Steps</h2><p>Each bar is the step's time, against the slowest step.</p>{timeline}",
        facts = table_of(&facts),
        timeline = timeline(&entry.steps),
    );
    layout(Some(session), &format!("Login {}", listing.id), &body)
}

pub(super) fn plugins(session: &Session, infos: &[PluginInfo]) -> String {
    let rows: String = infos
        .iter()
        .map(|info| {
            let info = serde_json::to_value(info).unwrap_or_default();
            let name = text_of(&info["name"]);
            // A store plugin names its version and may be shadowed.
            let version = info["version"].as_u64().map_or_else(String::new, |version| {
                format!(r#"<br><small>version {version}</small>"#)
            });
            let shadow = info["version"].as_u64().map_or_else(String::new, |_| {
                format!(r#"<br><a href="/admin/plugins/{}/shadow">Shadow</a>"#, segment(&name))
            });
            format!(
                r#"<tr><td><strong>{name_html}</strong>{version}</td><td>{world}</td><td><code>{sha}</code><br><small>{size} bytes</small></td><td>{limits}</td><td>{origins}</td><td>{used}</td><td><a href="/admin/plugins/{link}/try">Try it</a>{shadow}</td></tr>"#,
                name_html = escape(&name),
                world = escape(&text_of(&info["world"])),
                sha = escape(&text_of(&info["sha256"])),
                size = info["size"],
                limits = escape(&info["limits"].to_string()),
                origins = escape(&info["allowed_origins"].to_string()),
                used = escape(&info["used_by"].to_string()),
                link = segment(&name),
            )
        })
        .collect();
    let body = format!(
        r#"<table id="plugins"><tr><th>Plugin</th><th>World</th><th>SHA-256 and size</th><th>Limits</th><th>Allowed origins</th><th>Runs as</th><th></th></tr>{rows}</table>"#
    );
    layout(Some(session), "Plugins", &body)
}

/// A shadow run's tallies, then each change of its latest differences.
pub(super) fn shadow(session: &Session, shadow: &Shadow) -> String {
    let tally = &shadow.tally;
    let counts = [
        ("runs", tally.runs),
        ("identical", tally.identical),
        ("different", tally.different),
        ("failed", tally.failed),
        ("dropped", tally.dropped),
    ];
    let tally_rows: String = counts
        .iter()
        .map(|(name, count)| format!("<tr><th>{name}</th><td>{count}</td></tr>"))
        .collect();
    let changes: String = shadow
        .differences
        .iter()
        .flat_map(|run| {
            let changes = run["changes"].as_array().cloned().unwrap_or_default();
            changes.into_iter().map(move |change| (run.clone(), change))
        })
        .map(|(run, change)| {
            let cell = |value: &Value| escape(&text_of(value));
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                cell(&run["at"]),
                cell(&run["user_id"]),
                cell(&change["what"]),
                cell(&change["name"]),
                cell(&change["live"]),
                cell(&change["candidate"]),
            )
        })
        .collect();
    let body = format!(
        r#"<p>Version {version} of <strong>{plugin}</strong> runs beside the deployed version on {percent}% of the logins, since {since} ({by}).</p><table id="shadow-tally" class="fields">{tally_rows}</table><h2>Latest differences</h2><table id="shadow-differences"><tr><th>When</th><th>User</th><th>What</th><th>Name</th><th>Live</th><th>Candidate</th></tr>{changes}</table>"#,
        version = shadow.version,
        plugin = escape(&shadow.plugin),
        percent = shadow.sample_ppm as f64 / 10_000.0,
        since = escape(&shadow.started_at),
        by = escape(&shadow.started_by),
    );
    layout(Some(session), "Shadow run", &body)
}

pub(super) fn try_it(
    session: &Session,
    plugin: &str,
    input: &str,
    whole_chain: bool,
    result: Option<&Result<Tried, String>>,
) -> String {
    let checked = |chain: bool| if chain == whole_chain { " checked" } else { "" };
    let result_html = match result {
        None => String::new(),
        Some(Err(error)) => format!(
            r#"<h2>Could not run</h2><p id="try-error">{}</p>"#,
            escape(error)
        ),
        Some(Ok(tried)) => {
            let logs: String = tried
                .logs
                .iter()
                .map(|line| format!("{} {} {}\n", line.level, line.plugin, line.message))
                .collect();
            let notes: String = tried
                .notes
                .iter()
                .map(|note| format!("<li>{}</li>", escape(note)))
                .collect();
            let steps = serde_json::to_value(&tried.steps).unwrap_or_default();
            format!(
                r#"<h2>Outcome</h2><div id="try-outcome">{outcome}</div>
<h2>Steps</h2>{timeline}
<h2>The plugin's logs</h2><pre id="try-logs">{logs}</pre>
{notes}
<h2>As a golden case</h2>
<p><button type="button" id="copy-case">Copy as a golden case</button> <span id="copied"></span></p>
<pre><code id="golden-case">{case}</code></pre>
<script>{COPY_CASE_SCRIPT}</script>"#,
                outcome = json_block(&Value::Object(tried.outcome.clone())),
                timeline = timeline(&steps),
                logs = escape(&logs),
                notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!("<h2>Notes</h2><ul>{notes}</ul>")
                },
                case = escape(&tried.golden_case),
            )
        }
    };
    let body = format!(
        r#"<p>Edit the login (the <code>claimsmith run --input</code> shape, as JSON; for a credentials-exchange plugin, a machine client's token request, as its golden cases give it): its HTTP is answered from <code>http</code>, never sent. The plugin runs with its configured grants and secrets.</p>
<form method="post" action="/admin/plugins/{link}/try">
<input type="hidden" name="csrf" value="{csrf}">
<textarea name="input" id="try-input" rows="18">{input}</textarea>
<p><label><input type="radio" name="scope" value="plugin"{only}> this plugin</label>
<label><input type="radio" name="scope" value="chain"{chain}> the whole chain</label>
<button id="run">Run</button></p>
</form>
{result_html}"#,
        link = segment(plugin),
        csrf = escape(&session.csrf),
        input = escape(input),
        only = checked(false),
        chain = checked(true),
    );
    layout(Some(session), &format!("Try {plugin}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(segment("okta|00u1 /x"), "okta%7C00u1%20%2Fx");
    }
}
