//! JavaScript and TypeScript: a `package.json` naming its world under
//! `claimsmith`. Its `main` may be an ES module, CommonJS (as Auth0 Actions
//! are written), TypeScript, or, for a profile fetcher, an Auth0 connection
//! script (one anonymous function). Its npm `dependencies` are installed, and
//! esbuild bundles them with the plugin and the SDK's adapter into one module
//! that componentize-js compiles; both are pinned in the toolchain (installed
//! with `npm ci` from the pinned lock file).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use claimsmith_engine::World;

use super::{
    BuildOptions, Language, Project, Toolchain, build_componentized, embedded, read_build_file,
    require_tool, run, wit_world, write,
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
                "{}: `claimsmith.world` must be \"post-login-action\", \"credentials-exchange\" or \"profile-fetcher\"",
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

/// The modules the SDK stands in for, by the name a plugin requires them
/// with: Auth0's Management API client, and the legacy modules connection
/// scripts use. Never installed from npm, whatever version a project lists.
const SDK_MODULES: [(&str, &str); 3] = [
    ("auth0", "shims/auth0.js"),
    ("request", "shims/request.js"),
    ("jsonwebtoken", "shims/jsonwebtoken.js"),
];

/// Writes the SDK and the build's description into `staging`; the command
/// that bundles the plugin with esbuild and compiles the bundle with
/// componentize-js into `output` (`componentize.mjs` in the toolchain).
fn javascript_command(
    project: &Project,
    world: World,
    options: &BuildOptions,
    staging: &Path,
    output: &Path,
) -> Result<Command> {
    let (toolchain, node_paths) = {
        let _installing = super::one_install_at_a_time();
        (
            javascript_toolchain(&options.toolchains_dir)?,
            installed_dependencies(project, &options.toolchains_dir)?,
        )
    };
    for (name, text) in embedded::JS_SDK {
        write(&staging.join("sdk").join(name), text)?;
    }
    let description = serde_json::json!({
        "staging": staging,
        "main": project.entry,
        "world": wit_world(world),
        "output": output,
        "project": std::path::absolute(&project.dir)?,
        "nodePaths": node_paths,
        "sdkModules": serde_json::Map::from_iter(
            SDK_MODULES.map(|(name, file)| (name.to_owned(), file.into()))
        ),
    });
    let build_file = staging.join("build.json");
    write(&build_file, &description.to_string())?;
    let mut command = Command::new("node");
    command
        .current_dir(&toolchain)
        .arg("componentize.mjs")
        .arg(build_file);
    Ok(command)
}

/// Where esbuild finds the project's npm dependencies: nothing when it lists
/// none besides the SDK's stand-ins, else the `node_modules` of an install
/// kept in the toolchains folder under the digest of what was asked for (the
/// dependencies and the lock file), so that a set is installed once per
/// machine, not once per project or build.
fn installed_dependencies(project: &Project, toolchains: &Path) -> Result<Vec<PathBuf>> {
    let file = project.dir.join("package.json");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?;
    let wanted = wanted_dependencies(&manifest, &project.dir);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let lock = std::fs::read_to_string(project.dir.join("package-lock.json")).ok();
    let package = serde_json::json!({
        "name": "claimsmith-plugin-dependencies",
        "private": true,
        "dependencies": wanted,
    })
    .to_string();
    let digest = hex::encode(Sha256::digest(format!(
        "{package}\n{}",
        lock.as_deref().unwrap_or("")
    )));
    let dir = toolchains.join("js-dependencies").join(&digest[..24]);
    let marker = dir.join(".installed");
    if !marker.exists() {
        let names = wanted.keys().cloned().collect::<Vec<_>>().join(", ");
        eprintln!(
            "installing the npm dependencies of {} ({names})",
            project.name
        );
        write(&dir.join("package.json"), &package)?;
        if let Some(lock) = &lock {
            write(&dir.join("package-lock.json"), lock)?;
        }
        // Without lifecycle scripts: a plugin's dependency is bundled as
        // source, and nothing it ships runs on the build machine. Local
        // `file:` packages are copied in, not linked, so that the install
        // stands alone and errors name them as packages.
        run(Command::new("npm").current_dir(&dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--install-links",
            "--loglevel=error",
        ]))
        .with_context(|| {
            format!(
                "cannot install the npm dependencies of {} ({names})",
                project.name
            )
        })?;
        write(&marker, "")?;
    }
    Ok(vec![dir.join("node_modules")])
}

/// The project's `dependencies` that npm installs: not the SDK's stand-ins,
/// and a local `file:` package by its absolute path (the install runs in
/// another folder).
fn wanted_dependencies(
    manifest: &serde_json::Value,
    project_dir: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    let Some(dependencies) = manifest.get("dependencies").and_then(|d| d.as_object()) else {
        return serde_json::Map::new();
    };
    dependencies
        .iter()
        .filter(|(name, _)| !SDK_MODULES.iter().any(|(module, _)| module == name))
        .map(|(name, spec)| {
            let spec = match spec.as_str().and_then(|s| s.strip_prefix("file:")) {
                Some(local) => std::path::absolute(project_dir.join(local))
                    .map(|path| format!("file:{}", path.display()).into())
                    .unwrap_or_else(|_| spec.clone()),
                None => spec.clone(),
            };
            (name.clone(), spec)
        })
        .collect()
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
