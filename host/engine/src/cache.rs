//! The on-disk cache of compiled plugins, so a restart does not recompile.
//!
//! An entry is keyed by the sha256 of the wasm and by the engine's
//! compatibility hash (wasmtime version, target, compiler settings): a new
//! wasm, a new wasmtime or a changed setting all miss the cache.
//!
//! An entry is machine code the host runs, so the cache runs nothing it
//! cannot prove it wrote itself:
//! - the directory, the key and every entry must belong to the host's user
//!   and be writable by no one else, or they are not used;
//! - an entry starts with an HMAC-SHA256 of its name and its compiled bytes,
//!   keyed by a secret of this cache (`compile-cache.key`, mode 0600, made on
//!   first use). A torn, truncated, tampered, planted or renamed entry fails
//!   the check and is recompiled and overwritten, never deserialized. The key
//!   lives beside the entries because it guards them against what arrives
//!   without it (a crash mid-write, a copy from elsewhere, a stray write), not
//!   against the host's own user, who can run code in the host anyway; a key
//!   elsewhere would also tie a shared cache to one data directory;
//! - a file is written under a temporary name, flushed to disk, renamed into
//!   place and the directory flushed, so a crash leaves the old entry or the
//!   new one, and a concurrent start never reads a half-written one.
//!
//! Beside whole components it keeps Cranelift's compiled functions
//! ([`FunctionCache`], under `functions/`), keyed by the hash of each
//! function's input: every JavaScript plugin carries the same engine
//! (StarlingMonkey) and every Python one the same interpreter, so a new
//! plugin of a language compiles little more than what is its own. Those
//! entries are tagged alike but not flushed: a lost one is compiled again.

use std::borrow::Cow;
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, ensure};
use aws_lc_rs::hmac;
use wasmtime::component::Component;

/// The cache's secret, beside the entries it authenticates.
const KEY_FILE: &str = "compile-cache.key";
/// Where [`FunctionCache`] keeps its entries, inside the cache.
const FUNCTIONS_DIR: &str = "functions";
const KEY_BYTES: usize = 32;
/// The length of the HMAC-SHA256 tag an entry starts with.
const TAG_BYTES: usize = 32;

/// Access that group and others must not have, and what it would let them do.
type Forbidden = (u32, &'static str);
const NOT_WRITABLE: Forbidden = (0o022, "write");
const SECRET: Forbidden = (0o077, "read or write");

pub(crate) struct CompileCache {
    dir: PathBuf,
    key: hmac::Key,
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cache,
    Compiled,
}

impl CompileCache {
    /// The cache in `dir`, created private if missing, with its key (made
    /// now if missing). Refuses a directory that another user owns or that
    /// group or others may write.
    pub(crate) fn open(dir: PathBuf) -> anyhow::Result<Self> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let metadata = std::fs::metadata(&dir)
            .with_context(|| format!("cannot read the metadata of {}", dir.display()))?;
        check_owned(&metadata, NOT_WRITABLE).with_context(|| dir.display().to_string())?;
        let key = key(&dir)?;
        let functions = dir.join(FUNCTIONS_DIR);
        DirBuilder::new()
            .mode(0o700)
            .create(&functions)
            .or_else(|error| match error.kind() {
                ErrorKind::AlreadyExists => Ok(()),
                _ => Err(error),
            })
            .with_context(|| format!("cannot create {}", functions.display()))?;
        let metadata = std::fs::metadata(&functions)
            .with_context(|| format!("cannot read the metadata of {}", functions.display()))?;
        check_owned(&metadata, NOT_WRITABLE).with_context(|| functions.display().to_string())?;
        Ok(CompileCache { dir, key })
    }

    /// The compiled form of `wasm`, from the cache or compiled and cached now.
    /// A cache that cannot be read or written costs a compile, never a failure.
    pub(crate) fn component(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, Source)> {
        let name = entry_name(engine, digest);
        let path = self.dir.join(&name);
        match self.read_entry(&path, &name) {
            Ok(Some(compiled)) => {
                // SAFETY: deserializing runs the machine code in `compiled`. Its
                // tag proves this cache wrote it, under this name, from
                // wasmtime's own output; and it was checked in memory, so what
                // runs is what was checked, whatever the file holds by now.
                match unsafe { Component::deserialize(engine, &compiled) } {
                    Ok(component) => return Ok((component, Source::Cache)),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "compile cache entry unusable; recompiling");
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), error = format!("{error:#}"), "compile cache entry refused; recompiling and overwriting it");
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        if let Err(error) = self.store(&path, &name, &compiled) {
            tracing::warn!(path = %path.display(), error = format!("{error:#}"), "cannot write the compile cache");
        }
        // SAFETY: `compiled` was produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        Ok((component, Source::Compiled))
    }

    /// The compiled bytes of the entry at `path`, once its tag proves this
    /// cache wrote them under `name`; `None` when there is no entry.
    fn read_entry(&self, path: &Path, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(mut entry) = read_owned(path, NOT_WRITABLE)? else {
            return Ok(None);
        };
        let Some((tag, compiled)) = entry.split_at_checked(TAG_BYTES) else {
            return Err(anyhow!(
                "truncated: {} bytes, shorter than its tag",
                entry.len()
            ));
        };
        aws_lc_rs::constant_time::verify_slices_are_equal(self.tag(name, compiled).as_ref(), tag)
            .map_err(|_| {
            anyhow!("its tag does not match: torn, tampered, or not written by this cache")
        })?;
        entry.drain(..TAG_BYTES);
        Ok(Some(entry))
    }

    fn store(&self, path: &Path, name: &str, compiled: &[u8]) -> anyhow::Result<()> {
        self.write_entry(path, name, compiled, Flush::Yes)?;
        sync_dir(&self.dir)
    }

    /// `compiled`, tagged, put in place at `path` under a temporary name
    /// first; flushed to disk before the rename when `flush` says so.
    fn write_entry(
        &self,
        path: &Path,
        name: &str,
        compiled: &[u8],
        flush: Flush,
    ) -> anyhow::Result<()> {
        let tag = self.tag(name, compiled);
        let temporary = write_temporary(path, &[tag.as_ref(), compiled], flush)?;
        std::fs::rename(&temporary, path)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&temporary);
            })
            .with_context(|| format!("cannot rename {} into place", temporary.display()))
    }

    /// The entry's name is authenticated with its bytes, so an entry moved
    /// to another plugin's name is refused like a tampered one.
    fn tag(&self, name: &str, compiled: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(name.as_bytes());
        context.update(&[0]);
        context.update(compiled);
        context.sign()
    }
}

/// Cranelift's incremental compilation cache, over a [`CompileCache`]: a
/// compiled function by the hash Cranelift makes of its input (the function,
/// the target, the compiler's settings). What Cranelift reads back it links
/// into machine code the host runs, so an entry is tagged and checked as a
/// component's is.
#[derive(Debug)]
pub(crate) struct FunctionCache(pub(crate) std::sync::Arc<CompileCache>);

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FunctionCache {
    fn entry(&self, key: &[u8]) -> (PathBuf, String) {
        let name = format!("{FUNCTIONS_DIR}/{}", hex::encode(key));
        (self.0.dir.join(&name), name)
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let (path, name) = self.entry(key);
        match self.0.read_entry(&path, &name) {
            Ok(found) => found.map(Cow::Owned),
            Err(error) => {
                tracing::debug!(path = %path.display(), error = format!("{error:#}"), "compiled function refused; compiling it");
                None
            }
        }
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let (path, name) = self.entry(key);
        self.0.write_entry(&path, &name, &value, Flush::No).is_ok()
    }
}

fn entry_name(engine: &wasmtime::Engine, digest: &str) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{digest}-{:016x}.cwasm", hasher.finish())
}

/// The cache's key, read from `dir` or made now.
fn key(dir: &Path) -> anyhow::Result<hmac::Key> {
    let path = dir.join(KEY_FILE);
    if let Some(key) = read_key(&path)? {
        return Ok(key);
    }
    let mut secret = [0u8; KEY_BYTES];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| anyhow!("no randomness for the compile cache key"))?;
    let temporary = write_temporary(&path, &[&secret], Flush::Yes)?;
    // A link, unlike a rename, never replaces: of two hosts starting at once
    // on one cache, one key wins and both use it.
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            read_key(&path)?.with_context(|| format!("{} vanished as it was made", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn read_key(path: &Path) -> anyhow::Result<Option<hmac::Key>> {
    let Some(secret) = read_owned(path, SECRET)? else {
        return Ok(None);
    };
    ensure!(
        secret.len() == KEY_BYTES,
        "{} holds {} bytes, not a {KEY_BYTES}-byte key",
        path.display(),
        secret.len()
    );
    Ok(Some(hmac::Key::new(hmac::HMAC_SHA256, &secret)))
}

/// The contents of the regular file at `path` (a symlink is refused), if it
/// exists and passes [`check_owned`].
fn read_owned(path: &Path, forbidden: Forbidden) -> anyhow::Result<Option<Vec<u8>>> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot open {}", path.display()));
        }
    };
    // Checked on the open file, not the path: the path may change meanwhile.
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot read the metadata of {}", path.display()))?;
    ensure!(
        metadata.is_file(),
        "{} is not a regular file",
        path.display()
    );
    check_owned(&metadata, forbidden).with_context(|| path.display().to_string())?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(bytes))
}

/// Refuses what another user owns or what group or others have `forbidden`
/// access to: whoever can write the cache can run code in the host.
fn check_owned(metadata: &Metadata, forbidden: Forbidden) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    check_owned_by(metadata, unsafe { libc::geteuid() }, forbidden)
}

/// [`check_owned`] for a host that runs as `host_uid`: apart, so that the
/// refusal of another user's file is tested without root, who alone can give
/// a file away.
fn check_owned_by(
    metadata: &Metadata,
    host_uid: u32,
    (forbidden, access): Forbidden,
) -> anyhow::Result<()> {
    ensure!(
        metadata.uid() == host_uid,
        "owned by uid {}, not by the host's user (uid {host_uid})",
        metadata.uid()
    );
    let mode = metadata.mode() & 0o7777;
    ensure!(
        mode & forbidden == 0,
        "mode {mode:o} lets group or others {access} it"
    );
    Ok(())
}

/// Writes `parts` to a new file (mode 0600) next to `path` and flushes it to
/// disk, so that once moved into place it is whole even after a crash.
/// Whether a file is flushed to disk before it is put in place: what a
/// crash must not lose (a component, the key) is; a compiled function,
/// compiled again when lost, is not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flush {
    Yes,
    No,
}

fn write_temporary(path: &Path, parts: &[&[u8]], flush: Flush) -> anyhow::Result<PathBuf> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            parts.iter().try_for_each(|part| file.write_all(part))?;
            match flush {
                Flush::Yes => file.sync_all(),
                Flush::No => Ok(()),
            }
        });
    match written {
        Ok(()) => Ok(temporary),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error).with_context(|| format!("cannot write {}", temporary.display()))
        }
    }
}

/// Flushes a directory, so a rename or link in it survives a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot flush {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The smallest component: a preamble and nothing else.
    const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";

    /// Another component: the empty one with a custom section.
    fn other() -> Vec<u8> {
        let mut wasm = EMPTY.to_vec();
        wasm.extend_from_slice(&[0, 5, 4, b'n', b'o', b't', b'e']);
        wasm
    }

    fn digest(wasm: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(wasm))
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        cache_dir: PathBuf,
        engine: wasmtime::Engine,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let cache_dir = dir.path().join("compile-cache");
            Fixture {
                _dir: dir,
                cache_dir,
                engine: wasmtime::Engine::default(),
            }
        }

        fn cache(&self) -> CompileCache {
            CompileCache::open(self.cache_dir.clone()).unwrap()
        }

        fn load(&self, wasm: &[u8]) -> Source {
            self.cache()
                .component(&self.engine, wasm, &digest(wasm))
                .unwrap()
                .1
        }

        fn entry(&self, wasm: &[u8]) -> PathBuf {
            self.cache_dir.join(entry_name(&self.engine, &digest(wasm)))
        }

        /// Caches `EMPTY`, checks a second load reads it back, and returns
        /// the entry's path and bytes.
        fn cached(&self) -> (PathBuf, Vec<u8>) {
            assert_eq!(self.load(EMPTY), Source::Compiled);
            assert_eq!(self.load(EMPTY), Source::Cache);
            let entry = self.entry(EMPTY);
            let bytes = std::fs::read(&entry).unwrap();
            (entry, bytes)
        }

        fn mode(&self, path: &Path) -> u32 {
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        }
    }

    #[test]
    fn the_cache_and_its_key_are_private_and_entries_carry_a_tag() {
        let fixture = Fixture::new();
        let (entry, bytes) = fixture.cached();
        assert_eq!(fixture.mode(&fixture.cache_dir), 0o700);
        assert_eq!(fixture.mode(&fixture.cache_dir.join(KEY_FILE)), 0o600);
        assert_eq!(fixture.mode(&entry), 0o600);
        let compiled = fixture.engine.precompile_component(EMPTY).unwrap();
        assert_eq!(&bytes[TAG_BYTES..], compiled);
        // The key is kept: a new cache on the directory reads the entry.
        assert_eq!(fixture.load(EMPTY), Source::Cache);
    }

    #[test]
    fn a_compiled_function_is_read_back_only_as_written_under_its_own_key() {
        use wasmtime::CacheStore as _;
        let fixture = Fixture::new();
        let functions = FunctionCache(std::sync::Arc::new(fixture.cache()));
        let (key, other_key) = ([1u8; 32], [2u8; 32]);
        assert!(functions.get(&key).is_none(), "nothing yet");
        assert!(functions.insert(&key, b"machine code".to_vec()));
        assert_eq!(functions.get(&key).as_deref(), Some(&b"machine code"[..]));
        let (path, _) = functions.entry(&key);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "private like every entry");
        // Moved to another function's key: refused, as a renamed component is.
        let (other_path, _) = functions.entry(&other_key);
        std::fs::copy(&path, &other_path).unwrap();
        assert!(functions.get(&other_key).is_none(), "moved");
        // Altered in place: refused.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(functions.get(&key).is_none(), "altered");
    }

    #[test]
    fn a_tampered_entry_is_recompiled_and_overwritten() {
        let fixture = Fixture::new();
        let (entry, bytes) = fixture.cached();
        // The last byte: wasmtime itself loads most one-byte changes, this
        // one among them.
        let mut tampered = bytes.clone();
        *tampered.last_mut().unwrap() ^= 1;
        std::fs::write(&entry, &tampered).unwrap();
        assert_eq!(fixture.load(EMPTY), Source::Compiled);
        assert_eq!(std::fs::read(&entry).unwrap(), bytes);
    }

    #[test]
    fn a_truncated_entry_is_recompiled_and_overwritten() {
        let fixture = Fixture::new();
        let (entry, bytes) = fixture.cached();
        for length in [bytes.len() - 1, bytes.len() / 2, TAG_BYTES - 1, 0] {
            std::fs::write(&entry, &bytes[..length]).unwrap();
            assert_eq!(fixture.load(EMPTY), Source::Compiled, "{length} bytes");
            assert_eq!(std::fs::read(&entry).unwrap(), bytes);
        }
    }

    #[test]
    fn a_planted_entry_with_a_wrong_tag_is_never_deserialized() {
        let fixture = Fixture::new();
        let (entry, bytes) = fixture.cached();
        // Valid machine code for this very engine, as another writer would
        // leave it: untagged, under a wrong tag, or another plugin's entry
        // (its tag good for its own name) moved to this name.
        let compiled = fixture.engine.precompile_component(EMPTY).unwrap();
        let mut wrong_tag = vec![0; TAG_BYTES];
        wrong_tag.extend_from_slice(&compiled);
        let other = other();
        assert_eq!(fixture.load(&other), Source::Compiled);
        let moved = std::fs::read(fixture.entry(&other)).unwrap();
        for planted in [compiled, wrong_tag, moved] {
            std::fs::write(&entry, &planted).unwrap();
            assert_eq!(fixture.load(EMPTY), Source::Compiled);
            assert_eq!(std::fs::read(&entry).unwrap(), bytes);
        }
    }

    #[test]
    fn an_entry_others_may_write_or_a_symlink_is_not_read() {
        let fixture = Fixture::new();
        let (entry, bytes) = fixture.cached();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(fixture.load(EMPTY), Source::Compiled);
        assert_eq!(fixture.mode(&entry), 0o600);

        let elsewhere = fixture.cache_dir.with_file_name("elsewhere.cwasm");
        std::fs::write(&elsewhere, &bytes).unwrap();
        std::fs::remove_file(&entry).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        assert_eq!(fixture.load(EMPTY), Source::Compiled);
        assert!(!std::fs::symlink_metadata(&entry).unwrap().is_symlink());
    }

    #[test]
    fn a_cache_directory_others_may_write_is_not_used_and_plugins_still_compile() {
        let fixture = Fixture::new();
        let (entry, _) = fixture.cached();
        std::fs::set_permissions(&fixture.cache_dir, std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let refused = CompileCache::open(fixture.cache_dir.clone()).err().unwrap();
        assert!(
            format!("{refused:#}").contains("mode 777 lets group or others write it"),
            "{refused:#}"
        );

        // The engine runs without the cache: it compiles, and neither reads
        // nor writes the directory.
        std::fs::remove_file(&entry).unwrap();
        let engine = crate::Engine::new(
            &crate::EngineSettings {
                cache_dir: Some(fixture.cache_dir.clone()),
                ..Default::default()
            },
            claimsmith_capabilities::http::OutboundHttp::new().unwrap(),
        )
        .unwrap();
        assert!(engine.cache.is_none());
        engine.compile(EMPTY, &digest(EMPTY)).unwrap();
        assert!(!entry.exists());
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let fixture = Fixture::new();
        fixture.cached();
        let key = fixture.cache_dir.join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = CompileCache::open(fixture.cache_dir.clone()).err().unwrap();
        assert!(
            format!("{refused:#}").contains("lets group or others read or write it"),
            "{refused:#}"
        );
    }

    #[test]
    fn a_cache_file_of_another_user_is_refused() {
        let fixture = Fixture::new();
        fixture.cached();
        let metadata = std::fs::metadata(fixture.cache_dir.join(KEY_FILE)).unwrap();
        let host_uid = metadata.uid() + 1;
        let refused = check_owned_by(&metadata, host_uid, SECRET).unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "owned by uid {}, not by the host's user (uid {host_uid})",
                metadata.uid()
            )
        );
    }

    /// End to end where the test can give the directory away (as root, as
    /// CI runs); `a_cache_file_of_another_user_is_refused` checks the same
    /// refusal for every user.
    #[test]
    fn a_cache_directory_of_another_user_is_not_used() {
        let fixture = Fixture::new();
        fixture.cached();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let other_uid = unsafe { libc::geteuid() } + 1;
        if let Err(error) = std::os::unix::fs::chown(&fixture.cache_dir, Some(other_uid), None) {
            // Only root may give a directory away.
            assert_eq!(error.kind(), ErrorKind::PermissionDenied);
            return;
        }
        let refused = CompileCache::open(fixture.cache_dir.clone()).err().unwrap();
        assert!(
            format!("{refused:#}").contains(&format!("owned by uid {other_uid}")),
            "{refused:#}"
        );
    }
}
