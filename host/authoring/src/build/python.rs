//! Python: a `pyproject.toml` whose `[tool.claimsmith]` names the world and
//! the module, built with componentize-py (in a virtual environment from the
//! pinned requirements) behind the SDK's adapter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use claimsmith_engine::World;

use super::{
    BuildOptions, Language, Project, Toolchain, build_componentized, embedded, read_build_file,
    require_tool, run, wit_world, write,
};

pub struct Python;

impl Toolchain for Python {
    fn language(&self) -> Language {
        Language::Python
    }

    fn detect(&self, dir: &Path) -> Result<Option<Project>> {
        let Some(text) = read_build_file(dir, "pyproject.toml")? else {
            return Ok(None);
        };
        let file = dir.join("pyproject.toml");
        let manifest: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}", file.display()))?;
        let Some(settings) = manifest.get("tool").and_then(|t| t.get("claimsmith")) else {
            return Ok(None);
        };
        let text_of = |value: Option<&toml::Value>, key: &str| {
            value
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("{}: `{key}` is missing", file.display()))
        };
        let world = text_of(settings.get("world"), "tool.claimsmith.world")?;
        let world = serde_json::from_value(serde_json::Value::String(world)).with_context(|| {
            format!(
                "{}: `tool.claimsmith.world` must be \"post-login-action\", \"credentials-exchange\" or \"profile-fetcher\"",
                file.display()
            )
        })?;
        Ok(Some(Project {
            name: text_of(
                manifest.get("project").and_then(|p| p.get("name")),
                "project.name",
            )?,
            language: Language::Python,
            dir: dir.to_owned(),
            world: Some(world),
            entry: text_of(settings.get("module"), "tool.claimsmith.module")?,
        }))
    }

    fn build(&self, project: &Project, options: &BuildOptions, component: &Path) -> Result<bool> {
        let pinned = [embedded::PYTHON_SDK, embedded::PYTHON_TOOLCHAIN];
        build_componentized(
            project,
            options,
            component,
            &pinned,
            "componentize-py",
            |staging, output| {
                let world = project.world.unwrap_or(World::PostLoginAction);
                python_command(project, world, options, staging, output)
            },
        )
    }
}

/// Writes the SDK and the entry module into `staging`; the command that
/// compiles them with componentize-py into `output`.
fn python_command(
    project: &Project,
    world: World,
    options: &BuildOptions,
    staging: &Path,
    output: &Path,
) -> Result<Command> {
    let componentize_py = {
        let _installing = super::one_install_at_a_time();
        python_toolchain(&options.toolchains_dir)?
    };
    let plugin_dir = staging.join("plugin");
    for (name, text) in embedded::PYTHON_SDK {
        write(&plugin_dir.join(name), text)?;
    }
    // The adapter's arguments: the plugin's functions behind the WIT exports.
    // Auth0's `on_continue_post_login` is optional (the adapter resumes the
    // chain without one).
    let (module, adapter, functions) = match world {
        World::PostLoginAction => (
            "action",
            "post_login_action",
            "_plugin.on_execute_post_login, getattr(_plugin, \"on_continue_post_login\", None)",
        ),
        World::ProfileFetcher => ("fetcher", "profile_fetcher", "_plugin.fetch_user_profile"),
        World::CredentialsExchange => (
            "credentials",
            "credentials_exchange",
            "_plugin.on_execute_credentials_exchange",
        ),
    };
    let entry = format!(
        "# Written by `claimsmith build`: the plugin's functions behind the WIT exports.\n\
         import {plugin} as _plugin\n\
         from claimsmith.{module} import {adapter}\n\
         \n\
         WitWorld = {adapter}({functions})\n",
        plugin = project.entry
    );
    write(&plugin_dir.join("claimsmith_entry.py"), &entry)?;
    let mut command = Command::new(componentize_py);
    command
        .arg("--quiet")
        .arg("-d")
        .arg(staging.join("wit"))
        .args(["-w", &wit_world(world), "componentize", "-p"])
        .arg(&plugin_dir)
        .arg("claimsmith_entry")
        .arg("-o")
        .arg(output);
    Ok(command)
}

/// componentize-py in a virtual environment, installed when missing or when
/// the pin changed.
fn python_toolchain(toolchains: &Path) -> Result<PathBuf> {
    let dir = toolchains.join("python");
    let componentize_py = dir.join("venv/bin/componentize-py");
    let pin = hex::encode(Sha256::digest(embedded::PYTHON_REQUIREMENTS));
    let marker = dir.join(".installed");
    if componentize_py.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(&pin) {
        return Ok(componentize_py);
    }
    require_tool("python3", "Python plugins need Python 3.10 or newer")?;
    eprintln!(
        "installing the Python toolchain (componentize-py) in {}",
        dir.display()
    );
    write(&dir.join("requirements.txt"), embedded::PYTHON_REQUIREMENTS)?;
    run(Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir.join("venv")))
    .context("cannot create a virtual environment (on Debian: apt-get install python3-venv)")?;
    run(Command::new(dir.join("venv/bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(dir.join("requirements.txt")))
    .context("cannot install componentize-py with pip")?;
    write(&marker, &pin)?;
    Ok(componentize_py)
}
