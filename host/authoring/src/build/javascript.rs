//! JavaScript: a `package.json` naming its world under `claimsmith`, built
//! with componentize-js (installed with `npm ci` from the pinned lock file)
//! behind the SDK's adapter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use claimsmith_engine::World;

use super::{
    BuildOptions, Language, Project, Toolchain, build_componentized, embedded, read_build_file,
    require_tool, run, write,
};

pub struct JavaScript;

impl Toolchain for JavaScript {
    fn language(&self) -> Language {
        Language::JavaScript
    }

    fn detect(&self, dir: &Path) -> Result<Option<Project>> {
        let Some(text) = read_build_file(dir, "package.json")? else {
            return Ok(None);
        };
        let file = dir.join("package.json");
        let manifest: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?;
        let Some(world) = manifest.pointer("/claimsmith/world") else {
            return Ok(None);
        };
        let world = serde_json::from_value(world.clone()).with_context(|| {
            format!(
                "{}: `claimsmith.world` must be \"post-login-action\" or \"profile-fetcher\"",
                file.display()
            )
        })?;
        let field = |key: &str| {
            manifest[key]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: `{key}` is missing", file.display()))
        };
        Ok(Some(Project {
            name: field("name")?,
            language: Language::JavaScript,
            dir: dir.to_owned(),
            world: Some(world),
            entry: field("main")?,
        }))
    }

    fn build(&self, project: &Project, options: &BuildOptions, component: &Path) -> Result<bool> {
        let pinned = [embedded::JS_SDK, embedded::JS_TOOLCHAIN];
        build_componentized(
            project,
            options,
            component,
            &pinned,
            "componentize-js",
            |staging, output| {
                let world = project.world.unwrap_or(World::PostLoginAction);
                javascript_command(project, world, options, staging, output)
            },
        )
    }
}

/// Writes the SDK and the entry module into `staging`; the command that
/// compiles them with componentize-js into `output`.
fn javascript_command(
    project: &Project,
    world: World,
    options: &BuildOptions,
    staging: &Path,
    output: &Path,
) -> Result<Command> {
    let toolchain = javascript_toolchain(&options.toolchains_dir)?;
    for (name, text) in embedded::JS_SDK {
        write(&staging.join("sdk").join(name), text)?;
    }
    let (adapter, module, plugin_export, wit_export) = match world {
        World::PostLoginAction => (
            "postLoginAction",
            "action.js",
            "onExecutePostLogin",
            "onExecutePostLogin",
        ),
        World::ProfileFetcher => (
            "profileFetcher",
            "fetcher.js",
            "fetchUserProfile",
            "fetchProfile",
        ),
    };
    let entry = format!(
        "// Written by `claimsmith build`: the plugin's function behind the WIT export.\n\
         import * as plugin from './plugin/{}';\n\
         import {{ {adapter} }} from './sdk/{module}';\n\
         export const {wit_export} = {adapter}(plugin.{plugin_export});\n",
        project.entry
    );
    write(&staging.join("entry.js"), &entry)?;
    let mut command = Command::new("node");
    command
        .current_dir(&toolchain)
        .arg("componentize.mjs")
        .arg(staging.join("entry.js"))
        .arg(staging.join("wit"))
        .arg(world.to_string())
        .arg(output);
    Ok(command)
}

/// The folder holding componentize-js, installed with `npm ci` from the
/// pinned lock file when missing or when the pin changed.
fn javascript_toolchain(toolchains: &Path) -> Result<PathBuf> {
    let dir = toolchains.join("js");
    require_tool("node", "JavaScript plugins need Node.js 18 or newer")?;
    require_tool("npm", "JavaScript plugins need npm (it comes with Node.js)")?;
    for (name, text) in embedded::JS_TOOLCHAIN {
        write(&dir.join(name), text)?;
    }
    let pin = hex::encode(Sha256::digest(
        embedded::JS_TOOLCHAIN
            .iter()
            .map(|(_, text)| *text)
            .collect::<String>(),
    ));
    let marker = dir.join(".installed");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(&pin) {
        eprintln!(
            "installing the JavaScript toolchain (componentize-js) in {}",
            dir.display()
        );
        run(Command::new("npm").current_dir(&dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]))
        .context("cannot install componentize-js with `npm ci`")?;
        write(&marker, &pin)?;
    }
    Ok(dir)
}
