//! `claimsmith build`: plugin sources in Rust, JavaScript or Python into
//! components, each with its language's pinned toolchain.
//!
//! Owns finding plugin projects, installing the JavaScript and Python
//! toolchains (`npm ci` of `sdk/js/package-lock.json`, a virtual environment
//! with `sdk/python/requirements.txt`) once per machine and user
//! ([`default_toolchains_dir`]), a JavaScript plugin's npm dependencies,
//! staging a plugin with its SDK, and skipping a build whose inputs have not
//! changed. A component lands at
//! `<out>/<language>/<name>.wasm`. It does not load or run plugins: that is
//! the engine.
//!
//! A project is a folder with a `Cargo.toml` (Rust, a `cdylib` on
//! `claimsmith-sdk`), a `package.json` with a `claimsmith.world` key
//! (JavaScript; `main` is the plugin module), or a `pyproject.toml` with a
//! `[tool.claimsmith]` table giving `world` and `module` (Python). Its name is
//! the package's name.
//!
//! Each language is one implementation of [`Toolchain`] ([`rust`],
//! [`javascript`], [`python`]), listed once in [`TOOLCHAINS`]; what they
//! share (finding projects, staging, the build cache by input digest) is
//! here.

mod javascript;
mod python;
mod rust;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use claimsmith_engine::World;

/// A file compiled into the binary: its name and its text.
type EmbeddedFile = (&'static str, &'static str);

/// The SDK files compiled into every plugin of a language, and the pinned
/// toolchains, embedded so the binary builds plugins wherever it runs.
mod embedded {
    pub const WIT: &str = include_str!("../../../../wit/claimsmith.wit");
    pub const JS_SDK: &[(&str, &str)] = &[
        ("common.js", include_str!("../../../../sdk/js/common.js")),
        ("action.js", include_str!("../../../../sdk/js/action.js")),
        (
            "credentials.js",
            include_str!("../../../../sdk/js/credentials.js"),
        ),
        ("fetcher.js", include_str!("../../../../sdk/js/fetcher.js")),
        (
            "shims/auth0.js",
            include_str!("../../../../sdk/js/shims/auth0.js"),
        ),
        (
            "shims/request.js",
            include_str!("../../../../sdk/js/shims/request.js"),
        ),
        (
            "shims/jsonwebtoken.js",
            include_str!("../../../../sdk/js/shims/jsonwebtoken.js"),
        ),
    ];
    pub const JS_TYPES: &str = include_str!("../../../../sdk/js/claimsmith.d.ts");
    pub const JS_TOOLCHAIN: &[(&str, &str)] = &[
        (
            "package.json",
            include_str!("../../../../sdk/js/package.json"),
        ),
        (
            "package-lock.json",
            include_str!("../../../../sdk/js/package-lock.json"),
        ),
        (
            "componentize.mjs",
            include_str!("../../../../sdk/js/componentize.mjs"),
        ),
    ];
    pub const PYTHON_SDK: &[(&str, &str)] = &[
        (
            "claimsmith/__init__.py",
            include_str!("../../../../sdk/python/claimsmith/__init__.py"),
        ),
        (
            "claimsmith/action.py",
            include_str!("../../../../sdk/python/claimsmith/action.py"),
        ),
        (
            "claimsmith/credentials.py",
            include_str!("../../../../sdk/python/claimsmith/credentials.py"),
        ),
        (
            "claimsmith/fetcher.py",
            include_str!("../../../../sdk/python/claimsmith/fetcher.py"),
        ),
    ];
    pub const PYTHON_REQUIREMENTS: &str = include_str!("../../../../sdk/python/requirements.txt");
    pub const PYTHON_TOOLCHAIN: &[(&str, &str)] = &[("requirements.txt", PYTHON_REQUIREMENTS)];
}

pub use embedded::JS_TYPES;

pub use rust::RUST_PROFILE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Language {
    Rust,
    JavaScript,
    Python,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Rust, Language::JavaScript, Language::Python];

    /// The folder name of its builds, and its name on the command line.
    pub fn dir_name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::JavaScript => "js",
            Language::Python => "python",
        }
    }

    pub fn from_dir_name(name: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.dir_name() == name)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// A plugin's source, in one language.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub language: Language,
    pub dir: PathBuf,
    /// JavaScript and Python name their world; Rust's comes from the SDK macro.
    world: Option<World>,
    /// The plugin module: `main` (JavaScript) or `module` (Python).
    entry: String,
}

/// Where builds go and where the toolchains live.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out_dir: PathBuf,
    pub toolchains_dir: PathBuf,
    /// cargo's target dir for Rust projects (cargo's own choice when `None`).
    pub cargo_target_dir: Option<PathBuf>,
}

/// One finished build.
#[derive(Debug)]
pub struct Built {
    pub component: PathBuf,
    pub up_to_date: bool,
    pub duration: Duration,
}

/// Where the pinned toolchains, installed npm dependencies and the build
/// cache live unless `--toolchains` names a folder: once per machine and
/// user, as cargo and npm keep theirs. `$CLAIMSMITH_TOOLCHAINS`, else
/// `claimsmith/toolchains` in the XDG cache folder (`$XDG_CACHE_HOME`, else
/// `~/.cache`), else `target/toolchains` when there is no home.
///
/// Written out rather than taken from the `dirs` crate: the rule is two
/// variables, and `dirs` would put it, on macOS, where neither npm nor
/// cargo keep their caches.
pub fn default_toolchains_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = var("CLAIMSMITH_TOOLCHAINS") {
        return PathBuf::from(dir);
    }
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map_or_else(
            || PathBuf::from("target/toolchains"),
            |cache| cache.join("claimsmith/toolchains"),
        )
}

impl BuildOptions {
    /// Where `project`'s component lands.
    pub fn component_path(&self, project: &Project) -> PathBuf {
        self.out_dir
            .join(project.language.dir_name())
            .join(format!("{}.wasm", project.name))
    }
}

/// The plugin projects under `paths`: each path is a project, or a folder
/// searched for projects (not inside `target`, `node_modules` or hidden
/// folders), in a stable order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Project>> {
    let mut projects = Vec::new();
    for path in paths {
        let found_before = projects.len();
        search(path, &mut projects)?;
        if projects.len() == found_before {
            bail!(
                "{}: no plugin project here (a Cargo.toml, a package.json with `claimsmith.world`, or a pyproject.toml with [tool.claimsmith])",
                path.display()
            );
        }
    }
    projects.sort_by(|a, b| (&a.name, a.language).cmp(&(&b.name, b.language)));
    Ok(projects)
}

fn search(dir: &Path, projects: &mut Vec<Project>) -> Result<()> {
    if let Some(project) = project_at(dir)? {
        check_name(&project)?;
        if let Some(twin) = projects
            .iter()
            .find(|p| p.name == project.name && p.language == project.language)
        {
            bail!(
                "two {} plugins are named `{}` ({} and {}): their builds would overwrite each other",
                project.language,
                project.name,
                twin.dir.display(),
                project.dir.display()
            );
        }
        projects.push(project);
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.') && name != "target" && name != "node_modules"
        })
        .collect();
    subdirs.sort();
    for subdir in subdirs {
        search(&subdir, projects)?;
    }
    Ok(())
}

/// A name becomes a file name: lower-case letters, digits, `-` and `_` only.
fn check_name(project: &Project) -> Result<()> {
    let valid = !project.name.is_empty()
        && project
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{}: the plugin name `{}` must use only lower-case letters, digits, `-` and `_` (it names the component file)",
            project.dir.display(),
            project.name
        );
    }
    Ok(())
}

/// One language's build: how its projects are recognised, and how one
/// becomes a component. A new language is one implementation, one line in
/// [`TOOLCHAINS`] and a [`Language`] variant.
pub trait Toolchain: Sync {
    fn language(&self) -> Language;

    /// The project `dir` holds, if its build file is this language's; `None`
    /// also for a build file that is not a plugin's (the search goes on
    /// below it).
    fn detect(&self, dir: &Path) -> Result<Option<Project>>;

    /// Builds `project` into `component` (absolute paths in `options`),
    /// installing the pinned toolchain first if needed. `Ok(true)` when
    /// nothing had to be compiled.
    fn build(&self, project: &Project, options: &BuildOptions, component: &Path) -> Result<bool>;
}

/// Every language `claimsmith build` knows, in the order a folder's build
/// files are tried.
pub const TOOLCHAINS: [&dyn Toolchain; 3] = [&rust::Rust, &javascript::JavaScript, &python::Python];

fn toolchain(language: Language) -> &'static dyn Toolchain {
    match TOOLCHAINS
        .iter()
        .find(|toolchain| toolchain.language() == language)
    {
        Some(toolchain) => *toolchain,
        // Each `Language` has its toolchain in the list (a unit test holds
        // them to it).
        None => unreachable!("no toolchain for {language}"),
    }
}

/// The project in `dir`, by the first build file a toolchain recognises.
fn project_at(dir: &Path) -> Result<Option<Project>> {
    for toolchain in TOOLCHAINS {
        if let Some(project) = toolchain.detect(dir)? {
            return Ok(Some(project));
        }
    }
    Ok(None)
}

/// The WIT world a JavaScript or Python project of `world` is compiled for:
/// every post-login action as a resumable one, so that it may have Auth0's
/// `onContinuePostLogin` (its SDK resumes the chain when the plugin has
/// none). The project's build file still names the world users write.
fn wit_world(world: World) -> String {
    match world {
        World::PostLoginAction => "resumable-post-login-action".to_owned(),
        World::ProfileFetcher | World::CredentialsExchange => world.to_string(),
    }
}

/// `file` in `dir`, if it is there.
fn read_build_file(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    if !path.is_file() {
        return Ok(None);
    }
    std::fs::read_to_string(&path)
        .map(Some)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// The build of a language whose tool turns staged sources into a component
/// (JavaScript, Python): nothing when the inputs are those of the last
/// build, a copy from the build cache when they are those of any earlier
/// one, else the sources staged and `componentize` run on them (by `tool`,
/// for the error). `pinned` is
/// what the build depends on besides the sources (the SDK, the toolchain's
/// pins); `componentize` writes the SDK and entry into the staging folder and
/// returns the command that writes the component to its second argument.
fn build_componentized(
    project: &Project,
    options: &BuildOptions,
    component: &Path,
    pinned: &[&[EmbeddedFile]],
    tool: &str,
    componentize: impl FnOnce(&Path, &Path) -> Result<Command>,
) -> Result<bool> {
    let stamp = component.with_extension("wasm.inputs");
    // Read once: what is hashed is what is staged, even if a file changes
    // during the build.
    let sources = source_files(&project.dir)?;
    let inputs = input_digest(project, pinned, &sources);
    if component.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&inputs) {
        return Ok(true);
    }
    // Builds are kept by input digest, so a project regenerated or checked
    // out again is not compiled again.
    let cached = options
        .toolchains_dir
        .join("build-cache")
        .join(format!("{inputs}.wasm"));
    // A failed build must not leave the last one looking current.
    let _ = std::fs::remove_file(component);
    let _ = std::fs::remove_file(&stamp);
    let from_cache = cached.exists();
    if from_cache {
        copy_into_place(&cached, component)?;
    } else {
        let staging = options
            .out_dir
            .join(".staging")
            .join(format!("{}-{}", project.language, project.name));
        stage(&sources, &staging)?;
        // Written beside `component` and renamed into place, so that a
        // failed build leaves nothing.
        let temporary = component.with_extension("wasm.partial");
        run_reporting(
            &mut componentize(&staging, &temporary)?,
            tool,
            &project.name,
        )?;
        std::fs::rename(&temporary, component)
            .with_context(|| format!("cannot write {}", component.display()))?;
        if let Some(dir) = cached.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        copy_into_place(component, &cached)?;
    }
    std::fs::write(&stamp, &inputs).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(from_cache)
}

/// Builds `project` into its component, unless its inputs are unchanged
/// since the last build (Rust: cargo decides).
pub fn build(project: &Project, options: &BuildOptions) -> Result<Built> {
    let started = Instant::now();
    // The toolchains run in folders of their own: give them absolute paths.
    let options = &BuildOptions {
        out_dir: std::path::absolute(&options.out_dir)?,
        toolchains_dir: std::path::absolute(&options.toolchains_dir)?,
        cargo_target_dir: options.cargo_target_dir.clone(),
    };
    let component = options.component_path(project);
    if let Some(parent) = component.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let up_to_date = toolchain(project.language).build(project, options, &component)?;
    Ok(Built {
        component,
        up_to_date,
        duration: started.elapsed(),
    })
}

/// Builds every project of `projects`: Rust ones one after another (cargo
/// uses every core itself), JavaScript and Python ones `jobs` at a time
/// (each of their builds runs on one core). `report` is told of each as it
/// ends; the first failure is returned once every build has ended.
pub fn build_all(
    projects: &[Project],
    options: &BuildOptions,
    jobs: usize,
    report: &(dyn Fn(&Project, &Result<Built>) + Sync),
) -> Result<()> {
    let (rust, others): (Vec<&Project>, Vec<&Project>) = projects
        .iter()
        .partition(|project| project.language == Language::Rust);
    let first_failure = std::sync::Mutex::new(None);
    let build_one = |project: &Project| {
        let built = build(project, options).with_context(|| {
            format!(
                "cannot build {} ({}) in {}",
                project.name,
                project.language,
                project.dir.display()
            )
        });
        report(project, &built);
        if let Err(error) = built {
            lock(&first_failure).get_or_insert(error);
        }
    };
    rust.into_iter().for_each(build_one);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, others.len().max(1)) {
            scope.spawn(|| {
                while let Some(project) =
                    others.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    build_one(project);
                }
            });
        }
    });
    match lock(&first_failure).take() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held while a toolchain or a project's dependencies are installed:
/// [`build_all`] builds projects side by side, and two `npm ci` (or `pip
/// install`) in one folder would tear each other's install.
fn one_install_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static INSTALLS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    lock(&INSTALLS)
}

/// A fresh staging folder: the plugin's files in `plugin/`, the contract in `wit/`.
fn stage(sources: &[(PathBuf, Vec<u8>)], staging: &Path) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    for (relative, bytes) in sources {
        let target = staging.join("plugin").join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    write(&staging.join("wit/claimsmith.wit"), embedded::WIT)
}

/// The project's own files (not dependencies, caches or hidden files), by
/// relative path, in a stable order.
fn source_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            if name.starts_with('.') || matches!(name, "node_modules" | "target" | "__pycache__") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, files)?;
            } else {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let relative = path.strip_prefix(root).unwrap_or(&path).to_owned();
                files.push((relative, bytes));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    Ok(files)
}

/// What a componentized build depends on: the project's files, the
/// contract, and `pinned` (the SDK and the pinned toolchain).
fn input_digest(
    project: &Project,
    pinned: &[&[EmbeddedFile]],
    sources: &[(PathBuf, Vec<u8>)],
) -> String {
    let mut hasher = Sha256::new();
    let mut feed = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    feed(project.language.dir_name().as_bytes());
    feed(
        project
            .world
            .map(|w| w.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    feed(project.entry.as_bytes());
    feed(embedded::WIT.as_bytes());
    for (name, text) in pinned.iter().copied().flatten() {
        feed(name.as_bytes());
        feed(text.as_bytes());
    }
    for (relative, bytes) in sources {
        feed(relative.to_string_lossy().as_bytes());
        feed(bytes);
    }
    hex::encode(hasher.finalize())
}

fn require_tool(program: &str, why: &str) -> Result<()> {
    match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        _ => bail!("`{program}` was not found on PATH: {why}"),
    }
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", command.get_program());
    }
    Ok(())
}

/// Runs a componentizing `command`. Its error output leads the error, so
/// that the user's file and line come first, before the name of the tool
/// that failed; on success it is passed on (warnings).
fn run_reporting(command: &mut Command, tool: &str, project: &str) -> Result<()> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        eprint!("{stderr}");
        return Ok(());
    }
    let said = stderr.trim_end();
    if said.is_empty() {
        bail!("{tool} could not build {project} ({})", output.status);
    }
    bail!(
        "{said}\n{tool} could not build {project} ({})",
        output.status
    )
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn copy_into_place(from: &Path, to: &Path) -> Result<()> {
    let temporary = to.with_extension("wasm.partial");
    std::fs::copy(from, &temporary)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    std::fs::rename(&temporary, to).with_context(|| format!("cannot write {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &Path, relative: &str, text: &str) {
        write(&dir.join(relative), text).unwrap();
    }

    #[test]
    fn projects_are_found_by_their_build_files_and_other_crates_are_searched_through() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A library crate is not a plugin, but plugins may sit below it.
        write_file(root, "Cargo.toml", "[package]\nname = \"host\"\n");
        write_file(
            root,
            "plugins/a/rust/Cargo.toml",
            "[package]\nname = \"a\"\n[lib]\ncrate-type = [\"cdylib\"]\n",
        );
        write_file(
            root,
            "plugins/a/js/package.json",
            r#"{ "name": "a", "main": "a.js", "claimsmith": { "world": "post-login-action" } }"#,
        );
        write_file(
            root,
            "plugins/a/python/pyproject.toml",
            "[project]\nname = \"a\"\n[tool.claimsmith]\nworld = \"profile-fetcher\"\nmodule = \"a\"\n",
        );
        // A package.json without `claimsmith` is some other JavaScript.
        write_file(root, "tools/package.json", r#"{ "name": "tools" }"#);
        write_file(
            root,
            "plugins/a/js/node_modules/x/package.json",
            r#"{ "claimsmith": { "world": "post-login-action" }, "name": "x", "main": "x.js" }"#,
        );

        let found = discover(&[root.to_owned()]).unwrap();
        let summary: Vec<(String, Language, Option<World>)> = found
            .iter()
            .map(|p| (p.name.clone(), p.language, p.world))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".to_owned(), Language::Rust, None),
                (
                    "a".to_owned(),
                    Language::JavaScript,
                    Some(World::PostLoginAction)
                ),
                (
                    "a".to_owned(),
                    Language::Python,
                    Some(World::ProfileFetcher)
                ),
            ]
        );
    }

    #[test]
    fn twins_bad_names_bad_worlds_and_empty_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let js = |name: &str, world: &str| {
            format!(
                r#"{{ "name": "{name}", "main": "p.js", "claimsmith": {{ "world": "{world}" }} }}"#
            )
        };
        write_file(root, "one/package.json", &js("same", "post-login-action"));
        write_file(root, "two/package.json", &js("same", "post-login-action"));
        let error = discover(&[root.to_owned()]).unwrap_err().to_string();
        assert!(error.contains("two js plugins are named `same`"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        write_file(
            dir.path(),
            "package.json",
            &js("../escape", "post-login-action"),
        );
        let error = discover(&[dir.path().to_owned()]).unwrap_err().to_string();
        assert!(
            error.contains("must use only lower-case letters"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "package.json", &js("p", "pre-login"));
        let error = format!("{:#}", discover(&[dir.path().to_owned()]).unwrap_err());
        assert!(error.contains("`claimsmith.world` must be"), "{error}");

        let empty = tempfile::tempdir().unwrap();
        let error = discover(&[empty.path().to_owned()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("no plugin project here"), "{error}");
    }

    #[test]
    fn every_language_has_its_toolchain_once() {
        for language in Language::ALL {
            let count = TOOLCHAINS
                .iter()
                .filter(|t| t.language() == language)
                .count();
            assert_eq!(count, 1, "{language}");
        }
    }

    #[test]
    fn a_missing_toolchain_is_named_with_what_needs_it() {
        let error = require_tool(
            "claimsmith-no-such-tool",
            "JavaScript plugins need Node.js 18 or newer",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "`claimsmith-no-such-tool` was not found on PATH: JavaScript plugins need Node.js 18 or newer"
        );
    }

    #[test]
    fn the_input_digest_changes_with_any_source_byte() {
        let dir = tempfile::tempdir().unwrap();
        write_file(
            dir.path(),
            "package.json",
            r#"{ "name": "p", "main": "p.js", "claimsmith": { "world": "post-login-action" } }"#,
        );
        write_file(
            dir.path(),
            "p.js",
            "export function onExecutePostLogin() {}",
        );
        let project = project_at(dir.path()).unwrap().unwrap();
        let digest = || {
            input_digest(
                &project,
                &[embedded::JS_SDK],
                &source_files(dir.path()).unwrap(),
            )
        };
        let before = digest();
        assert_eq!(before, digest(), "stable");
        write_file(
            dir.path(),
            "p.js",
            "export function onExecutePostLogin() { }",
        );
        assert_ne!(before, digest(), "an edited source");
        write_file(dir.path(), "helper.js", "");
        let with_helper = digest();
        write_file(dir.path(), "node_modules/dep/index.js", "ignored");
        assert_eq!(with_helper, digest(), "dependencies are not sources");
    }
}
