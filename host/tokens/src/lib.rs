//! Signing keys and the tokens Claimsmith mints, and ([`sealing`]) the
//! encryption of what others keep for the host.
//!
//! This crate owns:
//! - a signing key: generated, parsed from PKCS#8, and read from the PEM
//!   file a deployment kept before keys lived in the database (the key ring,
//!   `claimsmith-keys`, imports it; the service's keys live in the database);
//! - the JWKS document that publishes a key's public half;
//! - the standard claims of the two tokens minted per login (an RFC 9068
//!   access token and an OIDC id token), and their signing.
//!
//! It must not decide which custom claims are allowed (the pipeline validates
//! those before minting, with `claimsmith-core`'s rules), which key signs (the
//! key ring does), or touch the database. Its only I/O is that key file.

pub mod sealing;

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use claimsmith_core::is_reserved_claim;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use serde_json::{Map, Value};

/// `typ` header of access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The `gty` claim of a token minted for a machine client by the client
/// credentials grant, as Auth0 writes it; no other token has a `gty`.
pub const CLIENT_CREDENTIALS_GTY: &str = "client-credentials";
/// `typ` header of id tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The JWS algorithm the host signs its tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    #[default]
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// As jsonwebtoken names it, for verifying.
    pub fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The JOSE name, as in the `alg` header: "ES256", "RS256" or "EdDSA".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The algorithm of a JOSE name ([`SigningAlgorithm::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::ES256, Self::RS256, Self::EdDSA]
            .into_iter()
            .find(|alg| alg.as_str() == name)
    }

    fn key_file_name(self) -> &'static str {
        match self {
            Self::ES256 => "signing-key-es256.pem",
            Self::RS256 => "signing-key-rs256.pem",
            Self::EdDSA => "signing-key-eddsa.pem",
        }
    }

    /// The hash `at_hash` is computed with: the one of the JWS algorithm
    /// (OIDC Core 3.1.3.6). For EdDSA on Ed25519 that is SHA-512.
    fn at_hash_digest(self) -> &'static digest::Algorithm {
        match self {
            Self::ES256 | Self::RS256 => &digest::SHA256,
            Self::EdDSA => &digest::SHA512,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be loaded or created, or a token not signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file exists but cannot be read (permissions, not a file...).
    #[error("cannot read signing key file {}: {error}", path.display())]
    KeyFileUnreadable { path: PathBuf, error: io::Error },

    /// The key directory or file cannot be created or written.
    #[error("cannot write signing key file {}: {error}", path.display())]
    KeyFileUnwritable { path: PathBuf, error: io::Error },

    /// The key file is not an unencrypted PKCS#8 PEM key of the configured algorithm.
    #[error(
        "signing key file {} is corrupt ({reason}); restore it from a backup, or delete it to \
         generate a new key (tokens signed with the old key will no longer verify)",
        path.display()
    )]
    KeyFileCorrupt { path: PathBuf, reason: String },

    /// The crypto library could not generate a key.
    #[error("generating a new {algorithm} signing key failed: {reason}")]
    KeyGeneration {
        algorithm: SigningAlgorithm,
        reason: String,
    },

    /// Building or signing a token failed.
    #[error("signing a {typ:?} token with {algorithm} key {kid} failed: {reason}")]
    Signing {
        algorithm: SigningAlgorithm,
        kid: String,
        typ: String,
        reason: String,
    },
}

/// The parsed private key. Kept parsed so that signing never re-reads DER:
/// `jsonwebtoken::encode` would re-parse (and, for RSA, re-validate) the key
/// on every call.
enum KeyMaterial {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A private signing key with everything derived from it computed once.
pub struct SigningKey {
    algorithm: SigningAlgorithm,
    material: KeyMaterial,
    kid: String,
    public_jwk: Jwk,
    /// base64url of the JWS header for each `typ` this module mints; any other
    /// `typ` has its header encoded per call.
    access_token_header: String,
    id_token_header: String,
}

impl fmt::Debug for SigningKey {
    // Only public facts: the derived Debug of the key pairs is safe today, but
    // we do not want to depend on that for secret material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads `<dir>/signing-key-<alg lowercase>.pem` (PKCS#8 PEM), or generates a new key,
    /// creates `dir` if needed and writes the file with mode 0600 (written to a temp file in
    /// the same dir first, so a crash never leaves a half-written key).
    ///
    /// The temp file is put in place with a hard link rather than a rename, so that
    /// when two processes start on an empty directory at once, the second one
    /// loads the first one's key instead of replacing it. On filesystems without
    /// hard links it falls back to a rename.
    pub fn load_or_generate(dir: &Path, alg: SigningAlgorithm) -> Result<Self, TokenError> {
        let path = dir.join(alg.key_file_name());
        match fs::read(&path) {
            Ok(pem) => {
                let key = Self::from_pem_file_contents(&path, &pem, alg)?;
                warn_if_readable_by_others(&path);
                tracing::info!(path = %path.display(), kid = %key.kid, alg = %alg, "loaded signing key");
                Ok(key)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Self::generate_and_store(dir, &path, alg)
            }
            Err(error) => Err(TokenError::KeyFileUnreadable { path, error }),
        }
    }

    /// Generates a key in memory only (for tests and benches).
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, TokenError> {
        Self::generate_with_pkcs8(alg).map(|(key, _)| key)
    }

    /// Generates a key, and its PKCS#8 DER for a caller that keeps it
    /// elsewhere (the key ring seals it into the database).
    pub fn generate_with_pkcs8(alg: SigningAlgorithm) -> Result<(Self, Vec<u8>), TokenError> {
        let pkcs8 = generate_pkcs8(alg)?;
        let key =
            Self::from_pkcs8_der(alg, &pkcs8).map_err(|reason| TokenError::KeyGeneration {
                algorithm: alg,
                reason: format!("the generated key does not parse back: {reason}"),
            })?;
        Ok((key, pkcs8))
    }

    /// A key from its PKCS#8 DER, as [`SigningKey::generate_with_pkcs8`]
    /// gave it.
    pub fn from_pkcs8(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, String> {
        Self::from_pkcs8_der(alg, pkcs8)
    }

    /// The PKCS#8 DER of the key file [`SigningKey::load_or_generate`]
    /// keeps in `dir`, when there is one: a deployment from before keys
    /// lived in the database imports it, so its tokens stay valid.
    pub fn read_key_file(dir: &Path, alg: SigningAlgorithm) -> Result<Option<Vec<u8>>, TokenError> {
        let path = dir.join(alg.key_file_name());
        match fs::read(&path) {
            Ok(pem) => decode_pkcs8_pem(&pem)
                .map(Some)
                .map_err(|reason| TokenError::KeyFileCorrupt { path, reason }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(TokenError::KeyFileUnreadable { path, error }),
        }
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK with "kid", "alg", "use":"sig".
    pub fn public_jwk(&self) -> &Jwk {
        &self.public_jwk
    }

    /// A JWKS document {"keys":[...]} a standard JWT library can verify tokens with.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public_jwk.clone()],
        }
    }

    /// Signs `claims` as a compact JWS with header {alg, kid, typ}. typ is given by caller.
    pub fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, TokenError> {
        let header: Cow<'_, str> = match typ {
            ACCESS_TOKEN_TYP => Cow::Borrowed(&self.access_token_header),
            ID_TOKEN_TYP => Cow::Borrowed(&self.id_token_header),
            other => Cow::Owned(
                encode_header(self.algorithm, &self.kid, other)
                    .map_err(|reason| self.signing_error(typ, reason))?,
            ),
        };
        let payload = serde_json::to_vec(claims).map_err(|error| {
            self.signing_error(typ, format!("claims do not serialize: {error}"))
        })?;

        // header.payload.signature; the signature is at most 256 bytes (RS256).
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);

        let signature = self
            .sign_bytes(token.as_bytes())
            .map_err(|reason| self.signing_error(typ, reason))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    fn sign_bytes(&self, signing_input: &[u8]) -> Result<Vec<u8>, String> {
        // aws-lc-rs ignores the rng argument (AWS-LC draws its own randomness),
        // it is only there for API compatibility with ring.
        let rng = rand::SystemRandom::new();
        match &self.material {
            // The FIXED algorithm yields r||s as JWS requires (RFC 7518 3.4), not DER.
            KeyMaterial::Es256(key_pair) => key_pair
                .sign(&rng, signing_input)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|error| format!("ECDSA signing failed: {error}")),
            KeyMaterial::Rs256(key_pair) => {
                let mut signature = vec![0; key_pair.public_modulus_len()];
                key_pair
                    .sign(&RSA_PKCS1_SHA256, &rng, signing_input, &mut signature)
                    .map_err(|error| format!("RSA signing failed: {error}"))?;
                Ok(signature)
            }
            KeyMaterial::EdDsa(key_pair) => key_pair
                .try_sign(signing_input)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|error| format!("Ed25519 signing failed: {error}")),
        }
    }

    fn signing_error(&self, typ: &str, reason: String) -> TokenError {
        TokenError::Signing {
            algorithm: self.algorithm,
            kid: self.kid.clone(),
            typ: typ.to_owned(),
            reason,
        }
    }

    fn from_pem_file_contents(
        path: &Path,
        pem: &[u8],
        alg: SigningAlgorithm,
    ) -> Result<Self, TokenError> {
        let corrupt = |reason: String| TokenError::KeyFileCorrupt {
            path: path.to_owned(),
            reason,
        };
        let der = decode_pkcs8_pem(pem).map_err(corrupt)?;
        Self::from_pkcs8_der(alg, &der).map_err(corrupt)
    }

    /// Parses an unencrypted PKCS#8 private key and precomputes everything
    /// signing and publishing need.
    fn from_pkcs8_der(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, String> {
        let (material, key_parameters) = match alg {
            SigningAlgorithm::ES256 => {
                let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|error| format!("not a PKCS#8 P-256 private key: {error}"))?;
                let parameters = ec_p256_jwk_parameters(key_pair.public_key().as_ref())?;
                (KeyMaterial::Es256(key_pair), parameters)
            }
            SigningAlgorithm::RS256 => {
                let key_pair = RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|error| format!("not a PKCS#8 RSA private key: {error}"))?;
                // RFC 7518 3.3: keys of 2048 bits or larger MUST be used with RS256.
                let modulus_bits = key_pair.public_modulus_len() * 8;
                if modulus_bits < 2048 {
                    return Err(format!(
                        "RSA key has {modulus_bits} bits, RS256 needs at least 2048"
                    ));
                }
                let components = RsaPublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
                let parameters = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: URL_SAFE_NO_PAD.encode(&components.n),
                    e: URL_SAFE_NO_PAD.encode(&components.e),
                });
                (KeyMaterial::Rs256(key_pair), parameters)
            }
            SigningAlgorithm::EdDSA => {
                let key_pair = Ed25519KeyPair::from_pkcs8(pkcs8)
                    .map_err(|error| format!("not a PKCS#8 Ed25519 private key: {error}"))?;
                let parameters = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: URL_SAFE_NO_PAD.encode(key_pair.public_key().as_ref()),
                });
                (KeyMaterial::EdDsa(key_pair), parameters)
            }
        };

        let mut public_jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: key_parameters,
        };
        // The thumbprint only covers the required key members, so it can be
        // computed before kid/alg/use are set.
        let kid = public_jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|error| format!("cannot compute the JWK thumbprint: {error}"))?;
        public_jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(match alg {
                SigningAlgorithm::ES256 => KeyAlgorithm::ES256,
                SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
                SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
            }),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };

        Ok(Self {
            algorithm: alg,
            access_token_header: encode_header(alg, &kid, ACCESS_TOKEN_TYP)?,
            id_token_header: encode_header(alg, &kid, ID_TOKEN_TYP)?,
            material,
            kid,
            public_jwk,
        })
    }

    fn generate_and_store(
        dir: &Path,
        path: &Path,
        alg: SigningAlgorithm,
    ) -> Result<Self, TokenError> {
        let unwritable = |path: &Path, error: io::Error| TokenError::KeyFileUnwritable {
            path: path.to_owned(),
            error,
        };

        let pkcs8 = generate_pkcs8(alg)?;
        let key =
            Self::from_pkcs8_der(alg, &pkcs8).map_err(|reason| TokenError::KeyGeneration {
                algorithm: alg,
                reason: format!("the generated key does not parse back: {reason}"),
            })?;

        fs::create_dir_all(dir).map_err(|error| unwritable(path, error))?;
        let temp_path = write_temp_key_file(dir, alg, &encode_pkcs8_pem(&pkcs8))
            .map_err(|(temp_path, error)| unwritable(&temp_path, error))?;

        // A hard link fails if the target exists, unlike rename: that is what
        // keeps a concurrent starter from replacing a key already in use.
        let placed = match fs::hard_link(&temp_path, path) {
            Ok(()) => {
                // A leftover temp name would only be clutter: not an error.
                let _ = fs::remove_file(&temp_path);
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&temp_path);
                Err(error)
            }
            // No hard links here (some network or FAT filesystems): rename is
            // still atomic, only the concurrent-start protection is lost.
            Err(_) => fs::rename(&temp_path, path).inspect_err(|_| {
                let _ = fs::remove_file(&temp_path);
            }),
        };
        match placed {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                tracing::info!(path = %path.display(), "another process created the signing key first, loading it");
                let pem = fs::read(path).map_err(|error| TokenError::KeyFileUnreadable {
                    path: path.to_owned(),
                    error,
                })?;
                return Self::from_pem_file_contents(path, &pem, alg);
            }
            Err(error) => return Err(unwritable(path, error)),
        }
        sync_directory(dir);

        tracing::info!(path = %path.display(), kid = %key.kid, alg = %alg, "generated a new signing key");
        Ok(key)
    }
}

/// Generates a key pair and returns it as PKCS#8 v1 DER, the form `openssl
/// genpkey` writes and every tool reads (v2, with the public key embedded, is
/// rejected by some older parsers).
fn generate_pkcs8(alg: SigningAlgorithm) -> Result<Vec<u8>, TokenError> {
    let failed = |reason: String| TokenError::KeyGeneration {
        algorithm: alg,
        reason,
    };
    // Copying out of aws-lc-rs's zeroize-on-drop buffers leaves a plain copy of
    // the DER in memory; it is short-lived and only goes to the key file.
    match alg {
        SigningAlgorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|key_pair| key_pair.to_pkcs8v1())
            .map(|document| document.as_ref().to_vec())
            .map_err(|error| failed(error.to_string())),
        SigningAlgorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .and_then(|key_pair| key_pair.as_der())
            .map(|der| der.as_ref().to_vec())
            .map_err(|error| failed(error.to_string())),
        SigningAlgorithm::EdDSA => Ed25519KeyPair::generate()
            .and_then(|key_pair| key_pair.to_pkcs8v1())
            .map(|document| document.as_ref().to_vec())
            .map_err(|error| failed(error.to_string())),
    }
}

/// JWK parameters of a P-256 public key given as an uncompressed SEC1 point.
fn ec_p256_jwk_parameters(point: &[u8]) -> Result<AlgorithmParameters, String> {
    const COORDINATE_LEN: usize = 32;
    match point {
        [0x04, coordinates @ ..] if coordinates.len() == 2 * COORDINATE_LEN => {
            let (x, y) = coordinates.split_at(COORDINATE_LEN);
            Ok(AlgorithmParameters::EllipticCurve(
                EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: URL_SAFE_NO_PAD.encode(x),
                    y: URL_SAFE_NO_PAD.encode(y),
                },
            ))
        }
        _ => Err("the P-256 public key is not an uncompressed point".to_owned()),
    }
}

fn encode_header(alg: SigningAlgorithm, kid: &str, typ: &str) -> Result<String, String> {
    #[derive(serde::Serialize)]
    struct JwsHeader<'a> {
        alg: &'a str,
        kid: &'a str,
        typ: &'a str,
    }
    let json = serde_json::to_vec(&JwsHeader {
        alg: alg.as_str(),
        kid,
        typ,
    })
    .map_err(|error| format!("header does not serialize: {error}"))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

fn encode_pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 64);
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    // RFC 7468 wraps the base64 at 64 columns; base64 is ASCII, so byte
    // chunks are whole characters.
    for line in body.as_bytes().chunks(64) {
        pem.extend(line.iter().map(|&byte| char::from(byte)));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

/// Extracts the DER of the (single) unencrypted PKCS#8 block of a PEM file.
/// Other labels ("RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
/// are refused with a hint, since those are the usual operator mistakes.
fn decode_pkcs8_pem(pem: &[u8]) -> Result<Vec<u8>, String> {
    let text =
        std::str::from_utf8(pem).map_err(|_| "the file is not a PEM text file".to_owned())?;
    let Some((_, after_begin)) = text.split_once(PEM_BEGIN) else {
        return Err(format!(
            "no \"{PEM_BEGIN}\" line found; the key must be an unencrypted PKCS#8 PEM \
             (convert with `openssl pkcs8 -topk8 -nocrypt`)"
        ));
    };
    let Some((body, _)) = after_begin.split_once(PEM_END) else {
        return Err(format!("no \"{PEM_END}\" line found"));
    };
    let base64_body: String = body.split_ascii_whitespace().collect();
    STANDARD
        .decode(base64_body)
        .map_err(|error| format!("the PEM body is not valid base64: {error}"))
}

/// Writes `contents` to a new, owner-only temp file next to the key file and
/// flushes it to disk. On error, returns the path it was writing.
fn write_temp_key_file(
    dir: &Path,
    alg: SigningAlgorithm,
    contents: &str,
) -> Result<PathBuf, (PathBuf, io::Error)> {
    let mut suffix = [0u8; 8];
    // A name collision is only an error (create_new), never a corruption, so a
    // failing RNG just means a fixed suffix.
    let _ = rand::fill(&mut suffix);
    let temp_path = dir.join(format!(
        ".{}.tmp-{}-{}",
        alg.key_file_name(),
        std::process::id(),
        hex::encode(suffix)
    ));

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        // Set at creation so the key is never readable by others, not even briefly.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = || -> io::Result<()> {
        let mut file = options.open(&temp_path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    match write() {
        Ok(()) => Ok(temp_path),
        Err(error) => {
            let _ = fs::remove_file(&temp_path);
            Err((temp_path, error))
        }
    }
}

/// Makes the new directory entry durable. Best effort: the key is already
/// complete on disk, only its name could be lost in a power cut, in which case
/// the next start generates a new key.
fn sync_directory(dir: &Path) {
    #[cfg(unix)]
    {
        if let Err(error) = fs::File::open(dir).and_then(|directory| directory.sync_all()) {
            tracing::warn!(dir = %dir.display(), %error, "could not sync the key directory");
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = %format_args!("{mode:o}"), "signing key file is accessible to other users; it should be mode 600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Everything the host decided about one login, from which both tokens are minted.
pub struct MintRequest<'a> {
    pub issuer: &'a str,
    /// User id, e.g. "okta|00u123".
    pub subject: &'a str,
    pub client_id: &'a str,
    /// Access token audience; when None, the access token's aud is the client id.
    pub audience: Option<&'a str>,
    /// Space-joined into the access token's "scope" claim.
    pub scopes: &'a [String],
    /// Id token only.
    pub nonce: Option<&'a str>,
    /// Unix seconds.
    pub auth_time: u64,
    /// Unix seconds; iat and nbf.
    pub now: u64,
    /// Seconds.
    pub access_token_ttl: u64,
    /// Seconds.
    pub id_token_ttl: u64,
    /// Standard OIDC profile claims chosen by the caller, go in the id token.
    pub profile_claims: &'a Map<String, Value>,
    /// Custom claims for the access token.
    pub access_token_claims: &'a Map<String, Value>,
    /// Custom claims for the id token.
    pub id_token_claims: &'a Map<String, Value>,
    /// The access token's `permissions` claim (Auth0's RBAC), when its API
    /// adds one.
    pub permissions: Option<&'a [String]>,
    /// How the user signed in at the upstream (its id token's `acr` and
    /// `amr`), for the id token: an app's `acr_values` asked the upstream
    /// for it, so the app must see what it got.
    pub authentication: &'a UpstreamAuthentication,
}

/// The upstream id token's `acr` and `amr` (OIDC Core §2), as a sign-in
/// received them and its refreshes keep them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamAuthentication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl UpstreamAuthentication {
    /// Of an id token's claims: `acr` when a string, `amr`'s strings.
    pub fn of_claims(claims: &Map<String, Value>) -> Self {
        let amr = claims.get("amr").and_then(Value::as_array);
        UpstreamAuthentication {
            acr: claims.get("acr").and_then(Value::as_str).map(str::to_owned),
            amr: amr
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Puts `acr` and `amr` into `claims`, each when there is one.
    pub fn insert_into(&self, claims: &mut Map<String, Value>) {
        if let Some(acr) = &self.acr {
            claims.insert("acr".into(), acr.as_str().into());
        }
        if !self.amr.is_empty() {
            claims.insert("amr".into(), self.amr.clone().into());
        }
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct MintedTokens {
    pub access_token: String,
    pub id_token: String,
    /// Lifetime of the access token in seconds, for the token response.
    pub expires_in: u64,
}

/// Mints the access token and the id token of one login.
///
/// Reserved claims (see [`RESERVED_CLAIMS`](claimsmith_core::RESERVED_CLAIMS)) found in any of the caller's claim
/// maps are dropped, not only overwritten: a reserved claim the host does not
/// set for this token (e.g. "scope" when there are no scopes, "nonce" in an
/// access token, "cnf") would otherwise pass through unchecked.
pub fn mint(key: &SigningKey, request: &MintRequest<'_>) -> Result<MintedTokens, TokenError> {
    let access_token = mint_access_token(key, request)?;
    let id_token = mint_id_token(key, request, &access_token)?;
    Ok(MintedTokens {
        access_token,
        id_token,
        expires_in: request.access_token_ttl,
    })
}

/// What a machine token says: who asked, for what, and the custom claims
/// the credentials-exchange chain set.
#[derive(Debug, Clone, Copy)]
pub struct ClientToken<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scopes: &'a [String],
    pub custom_claims: &'a Map<String, Value>,
}

/// An access token for a client acting as itself (the client credentials
/// grant, RFC 6749 §4.4): `sub` is the client, there is no user, and
/// `gty` says so (as Auth0's Management API tokens do).
pub fn mint_client_access_token(
    key: &SigningKey,
    token: &ClientToken<'_>,
    now: u64,
    ttl: u64,
) -> Result<String, TokenError> {
    let mut claims = Map::new();
    copy_unreserved_claims(&mut claims, token.custom_claims, "machine access token");
    claims.insert("iss".into(), token.issuer.into());
    claims.insert("sub".into(), token.client_id.into());
    claims.insert("aud".into(), token.audience.into());
    claims.insert("client_id".into(), token.client_id.into());
    claims.insert("azp".into(), token.client_id.into());
    claims.insert("scope".into(), token.scopes.join(" ").into());
    claims.insert("gty".into(), CLIENT_CREDENTIALS_GTY.into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl).into());
    claims.insert("jti".into(), new_jti(key, ACCESS_TOKEN_TYP)?.into());
    key.sign(ACCESS_TOKEN_TYP, &claims)
}

fn mint_access_token(key: &SigningKey, request: &MintRequest<'_>) -> Result<String, TokenError> {
    let mut claims = Map::new();
    copy_unreserved_claims(&mut claims, request.access_token_claims, "access token");

    claims.insert("iss".into(), request.issuer.into());
    claims.insert("sub".into(), request.subject.into());
    claims.insert(
        "aud".into(),
        request.audience.unwrap_or(request.client_id).into(),
    );
    claims.insert("client_id".into(), request.client_id.into());
    claims.insert("azp".into(), request.client_id.into());
    if !request.scopes.is_empty() {
        claims.insert("scope".into(), request.scopes.join(" ").into());
    }
    if let Some(permissions) = request.permissions {
        claims.insert("permissions".into(), permissions.into());
    }
    insert_times(&mut claims, request, request.access_token_ttl);
    claims.insert("jti".into(), new_jti(key, ACCESS_TOKEN_TYP)?.into());

    key.sign(ACCESS_TOKEN_TYP, &claims)
}

fn mint_id_token(
    key: &SigningKey,
    request: &MintRequest<'_>,
    access_token: &str,
) -> Result<String, TokenError> {
    let mut claims = Map::new();
    copy_unreserved_claims(&mut claims, request.profile_claims, "id token profile");
    copy_unreserved_claims(&mut claims, request.id_token_claims, "id token");

    claims.insert("iss".into(), request.issuer.into());
    claims.insert("sub".into(), request.subject.into());
    claims.insert("aud".into(), request.client_id.into());
    claims.insert("azp".into(), request.client_id.into());
    insert_times(&mut claims, request, request.id_token_ttl);
    if let Some(nonce) = request.nonce {
        claims.insert("nonce".into(), nonce.into());
    }
    request.authentication.insert_into(&mut claims);
    claims.insert("jti".into(), new_jti(key, ID_TOKEN_TYP)?.into());
    claims.insert(
        "at_hash".into(),
        left_half_hash(key.algorithm(), access_token).into(),
    );

    key.sign(ID_TOKEN_TYP, &claims)
}

fn copy_unreserved_claims(
    target: &mut Map<String, Value>,
    source: &Map<String, Value>,
    what: &str,
) {
    for (name, value) in source {
        if is_reserved_claim(name) {
            // The pipeline should have rejected it; reaching here is a bug
            // upstream. The value is not logged: claims can carry personal data.
            tracing::warn!(claim = %name, token = what, "dropping a reserved claim supplied as a custom claim");
            continue;
        }
        target.insert(name.clone(), value.clone());
    }
}

fn insert_times(claims: &mut Map<String, Value>, request: &MintRequest<'_>, ttl: u64) {
    claims.insert("iat".into(), request.now.into());
    claims.insert("nbf".into(), request.now.into());
    claims.insert("exp".into(), request.now.saturating_add(ttl).into());
    claims.insert("auth_time".into(), request.auth_time.into());
}

/// A random 128-bit token id, base64url.
fn new_jti(key: &SigningKey, typ: &str) -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes).map_err(|error| {
        key.signing_error(typ, format!("the random generator failed for jti: {error}"))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// OIDC Core 3.1.3.6 `at_hash`: base64url of the left half of the hash of the
/// ASCII access token, with the hash of the JWS algorithm.
fn left_half_hash(alg: SigningAlgorithm, token: &str) -> String {
    let hash = digest::digest(alg.at_hash_digest(), token.as_bytes());
    let hash = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&hash[..hash.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, EncodingKey, Validation, decode, decode_header};
    use serde_json::json;
    use sha2::Digest as _;

    const ISSUER: &str = "https://auth.example.com/";
    const SUBJECT: &str = "okta|00u123";
    const CLIENT_ID: &str = "spa-client";
    const API_AUDIENCE: &str = "https://api.example.com";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn as_map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Verifies `token` the way a relying party would: fetch the JWKS (as
    /// JSON), pick the key by the header's kid, check signature, iss and aud.
    fn verify(key: &SigningKey, token: &str, audience: &str) -> (jsonwebtoken::Header, Value) {
        let jwks_json = serde_json::to_string(&key.jwks()).expect("JWKS serializes");
        let jwks: JwkSet = serde_json::from_str(&jwks_json).expect("JWKS parses");

        let header = decode_header(token).expect("header decodes");
        let kid = header.kid.as_deref().expect("header has a kid");
        let jwk = jwks.find(kid).expect("kid is in the JWKS");
        let alg = jsonwebtoken::Algorithm::try_from(jwk.common.key_algorithm.expect("jwk alg"))
            .expect("supported alg");
        let decoding_key = DecodingKey::from_jwk(jwk).expect("decoding key from JWK");

        let mut validation = Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        let data = decode::<Value>(token, &decoding_key, &validation).expect("token verifies");
        (data.header, data.claims)
    }

    fn expected_at_hash(alg: SigningAlgorithm, access_token: &str) -> String {
        // Independent of the module's aws-lc digest on purpose.
        let full: Vec<u8> = match alg {
            SigningAlgorithm::ES256 | SigningAlgorithm::RS256 => {
                sha2::Sha256::digest(access_token.as_bytes()).to_vec()
            }
            SigningAlgorithm::EdDSA => sha2::Sha512::digest(access_token.as_bytes()).to_vec(),
        };
        URL_SAFE_NO_PAD.encode(&full[..full.len() / 2])
    }

    fn mint_and_verify(alg: SigningAlgorithm) {
        let key = SigningKey::generate(alg).expect("key generates");
        assert_eq!(key.algorithm(), alg);
        let now = now();
        let scopes = vec![
            "openid".to_owned(),
            "profile".to_owned(),
            "orders:read".to_owned(),
        ];
        let profile = as_map(json!({"name": "Ada Lovelace", "email": "ada@example.com"}));
        let access_custom = as_map(json!({"https://example.com/roles": ["admin", "dev"]}));
        let id_custom = as_map(json!({"https://example.com/tenant": "acme", "name": "Ada L."}));
        let request = MintRequest {
            issuer: ISSUER,
            subject: SUBJECT,
            client_id: CLIENT_ID,
            audience: Some(API_AUDIENCE),
            scopes: &scopes,
            nonce: Some("n-0S6_WzA2Mj"),
            auth_time: now - 5,
            now,
            access_token_ttl: 900,
            id_token_ttl: 3600,
            profile_claims: &profile,
            access_token_claims: &access_custom,
            id_token_claims: &id_custom,
            permissions: None,
            authentication: &Default::default(),
        };

        let minted = mint(&key, &request).expect("mint");
        assert_eq!(minted.expires_in, 900);

        let (header, access) = verify(&key, &minted.access_token, API_AUDIENCE);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(access["iss"], ISSUER);
        assert_eq!(access["sub"], SUBJECT);
        assert_eq!(access["aud"], API_AUDIENCE);
        assert_eq!(access["client_id"], CLIENT_ID);
        assert_eq!(access["azp"], CLIENT_ID);
        assert_eq!(access["scope"], "openid profile orders:read");
        assert_eq!(access["iat"], now);
        assert_eq!(access["nbf"], now);
        assert_eq!(access["exp"], now + 900);
        assert_eq!(access["auth_time"], now - 5);
        assert_eq!(access["https://example.com/roles"], json!(["admin", "dev"]));
        assert!(access.get("nonce").is_none(), "nonce is id token only");
        assert!(
            access.get("name").is_none(),
            "profile claims are id token only"
        );
        let access_jti = access["jti"].as_str().expect("jti is a string");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(access_jti)
                .expect("base64url jti")
                .len(),
            16
        );

        let (header, id) = verify(&key, &minted.id_token, CLIENT_ID);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(id["iss"], ISSUER);
        assert_eq!(id["sub"], SUBJECT);
        assert_eq!(id["aud"], CLIENT_ID);
        assert_eq!(id["azp"], CLIENT_ID);
        assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
        assert_eq!(id["exp"], now + 3600);
        assert_eq!(id["auth_time"], now - 5);
        assert_eq!(id["email"], "ada@example.com");
        assert_eq!(
            id["name"], "Ada L.",
            "custom id claims override profile claims"
        );
        assert_eq!(id["https://example.com/tenant"], "acme");
        assert!(id.get("scope").is_none());
        assert!(id.get("https://example.com/roles").is_none());
        assert_ne!(id["jti"], access["jti"]);
        assert_eq!(id["at_hash"], expected_at_hash(alg, &minted.access_token));

        // The id token must not verify for the API audience, nor the access
        // token for the client: the two audiences are distinct.
        let jwk = key.public_jwk();
        let decoding_key = DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut wrong_audience = Validation::new(
            jsonwebtoken::Algorithm::try_from(jwk.common.key_algorithm.expect("alg")).expect("alg"),
        );
        wrong_audience.set_audience(&[API_AUDIENCE]);
        assert!(decode::<Value>(&minted.id_token, &decoding_key, &wrong_audience).is_err());
    }

    #[test]
    fn es256_tokens_verify_with_the_jwks() {
        mint_and_verify(SigningAlgorithm::ES256);
    }

    #[test]
    fn rs256_tokens_verify_with_the_jwks() {
        mint_and_verify(SigningAlgorithm::RS256);
    }

    #[test]
    fn eddsa_tokens_verify_with_the_jwks() {
        mint_and_verify(SigningAlgorithm::EdDSA);
    }

    #[test]
    fn tampered_token_is_rejected() {
        let key = SigningKey::generate(SigningAlgorithm::ES256).expect("key");
        let claims =
            as_map(json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": SUBJECT, "exp": now() + 60}));
        let token = key.sign("JWT", &claims).expect("sign");
        let forged_claims =
            as_map(json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": "admin", "exp": now() + 60}));
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).expect("json"));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);

        let decoding_key = DecodingKey::from_jwk(key.public_jwk()).expect("decoding key");
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&[CLIENT_ID]);
        assert!(decode::<Value>(&token, &decoding_key, &validation).is_ok());
        assert!(decode::<Value>(&forged, &decoding_key, &validation).is_err());
    }

    #[test]
    fn reserved_claims_in_custom_claims_never_reach_the_tokens() {
        let key = SigningKey::generate(SigningAlgorithm::ES256).expect("key");
        let now = now();
        let forged = as_map(json!({
            "sub": "admin", "iss": "https://evil.example", "aud": "other-api", "exp": 9_999_999_999u64,
            "client_id": "other-client", "jti": "fixed", "scope": "admin:all", "nonce": "forged",
            "cnf": {"jkt": "x"}, "amr": ["mfa"], "at_hash": "forged", "keep": "me",
            "permissions": ["delete:everything"]
        }));
        let request = MintRequest {
            issuer: ISSUER,
            subject: SUBJECT,
            client_id: CLIENT_ID,
            audience: None,
            scopes: &[],
            nonce: None,
            auth_time: now,
            now,
            access_token_ttl: 300,
            id_token_ttl: 300,
            profile_claims: &forged,
            access_token_claims: &forged,
            id_token_claims: &forged,
            permissions: None,
            // What the upstream said, which no forged claim may replace.
            authentication: &UpstreamAuthentication {
                acr: Some("urn:claimsmith:mfa".into()),
                amr: vec!["otp".into()],
            },
        };
        let minted = mint(&key, &request).expect("mint");

        let (_, access) = verify(&key, &minted.access_token, CLIENT_ID);
        assert_eq!(access["sub"], SUBJECT);
        assert_eq!(access["iss"], ISSUER);
        assert_eq!(access["aud"], CLIENT_ID, "no audience: the client id");
        assert_eq!(access["client_id"], CLIENT_ID);
        assert_eq!(access["exp"], now + 300);
        assert_ne!(access["jti"], "fixed");
        assert_eq!(access["keep"], "me");
        for dropped in [
            "scope",
            "nonce",
            "cnf",
            "amr",
            "acr",
            "at_hash",
            "permissions",
        ] {
            assert!(
                access.get(dropped).is_none(),
                "{dropped} leaked into the access token"
            );
        }

        let (_, id) = verify(&key, &minted.id_token, CLIENT_ID);
        assert_eq!(id["sub"], SUBJECT);
        assert_eq!(id["aud"], CLIENT_ID);
        assert_eq!(
            id["at_hash"],
            expected_at_hash(SigningAlgorithm::ES256, &minted.access_token)
        );
        assert_eq!(
            (&id["acr"], &id["amr"]),
            (&json!("urn:claimsmith:mfa"), &json!(["otp"])),
            "the upstream's authentication, not the forged amr"
        );
        for dropped in ["scope", "nonce", "cnf", "client_id"] {
            assert!(
                id.get(dropped).is_none(),
                "{dropped} leaked into the id token"
            );
        }
    }

    #[test]
    fn reserved_claim_names() {
        for name in ["sub", "nonce", "may_act", "cnf", "scope"] {
            assert!(is_reserved_claim(name), "{name}");
        }
        for name in ["Sub", "email", "https://example.com/sub", ""] {
            assert!(!is_reserved_claim(name), "{name}");
        }
    }

    #[test]
    fn load_or_generate_persists_the_key_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_dir = dir.path().join("data").join("keys");
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::RS256,
        ] {
            let first = SigningKey::load_or_generate(&key_dir, alg).expect("generate");
            let second = SigningKey::load_or_generate(&key_dir, alg).expect("load");
            assert_eq!(
                first.kid(),
                second.kid(),
                "{alg}: reloading must give the same key"
            );
            assert_eq!(first.public_jwk(), second.public_jwk());

            // A token signed before the restart verifies with the reloaded key.
            let claims = as_map(json!({
                "iss": ISSUER, "aud": CLIENT_ID, "sub": SUBJECT, "nbf": now(), "exp": now() + 60
            }));
            let token = first.sign("JWT", &claims).expect("sign");
            verify(&second, &token, CLIENT_ID);

            let path = key_dir.join(alg.key_file_name());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&path)
                    .expect("key file exists")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{alg}: mode {mode:o}");
            }
        }
        let mut names: Vec<String> = fs::read_dir(&key_dir)
            .expect("read dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "signing-key-eddsa.pem",
                "signing-key-es256.pem",
                "signing-key-rs256.pem"
            ],
            "exactly the key files, no temp files left behind"
        );
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        // Two processes (here threads) starting on an empty data directory must
        // end up with the key that is on disk, not each with its own.
        let dir = tempfile::tempdir().expect("tempdir");
        let barrier = std::sync::Barrier::new(8);
        let kids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        SigningKey::load_or_generate(dir.path(), SigningAlgorithm::EdDSA)
                            .expect("load or generate")
                            .kid()
                            .to_owned()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("thread"))
                .collect()
        });
        let on_disk = SigningKey::load_or_generate(dir.path(), SigningAlgorithm::EdDSA)
            .expect("load")
            .kid()
            .to_owned();
        assert!(
            kids.iter().all(|kid| *kid == on_disk),
            "{kids:?} vs {on_disk}"
        );
    }

    #[test]
    fn key_files_are_standard_pkcs8_pem() {
        // Operators must be able to use their own `openssl genpkey` keys and
        // inspect ours; cross-check with jsonwebtoken's own PEM parser and
        // its JWK derivation.
        let dir = tempfile::tempdir().expect("tempdir");
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::RS256,
        ] {
            let key = SigningKey::load_or_generate(dir.path(), alg).expect("generate");
            let pem = fs::read(dir.path().join(alg.key_file_name())).expect("read");
            assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
            let (encoding_key, jwt_alg) = match alg {
                SigningAlgorithm::ES256 => (
                    EncodingKey::from_ec_pem(&pem),
                    jsonwebtoken::Algorithm::ES256,
                ),
                SigningAlgorithm::RS256 => (
                    EncodingKey::from_rsa_pem(&pem),
                    jsonwebtoken::Algorithm::RS256,
                ),
                SigningAlgorithm::EdDSA => (
                    EncodingKey::from_ed_pem(&pem),
                    jsonwebtoken::Algorithm::EdDSA,
                ),
            };
            let encoding_key = encoding_key.expect("jsonwebtoken parses our PEM");
            let library_jwk = Jwk::from_encoding_key(&encoding_key, jwt_alg).expect("library JWK");
            assert_eq!(library_jwk.algorithm, key.public_jwk().algorithm, "{alg}");
        }
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let key = SigningKey::generate(SigningAlgorithm::ES256).expect("key");
        let AlgorithmParameters::EllipticCurve(ec) = &key.public_jwk().algorithm else {
            panic!("ES256 key is not an EC JWK");
        };
        // RFC 7638 3.2: required members only, lexicographic order, no whitespace.
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            ec.x, ec.y
        );
        let expected = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
        assert_eq!(key.kid(), expected);

        let jwk = serde_json::to_value(key.public_jwk()).expect("jwk json");
        assert_eq!(jwk["kid"], expected);
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kty"], "EC");
        assert!(
            jwk.get("d").is_none(),
            "no private member in the public JWK"
        );
    }

    #[test]
    fn corrupt_key_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing-key-es256.pem");
        for contents in [
            &b"not a key"[..],
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            fs::write(&path, contents).expect("write");
            let error = SigningKey::load_or_generate(dir.path(), SigningAlgorithm::ES256)
                .expect_err("corrupt file must not load");
            assert!(
                matches!(error, TokenError::KeyFileCorrupt { .. }),
                "{error:?}"
            );
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{error}"
            );
        }
        // The corrupt key is left for the operator, not silently replaced.
        assert_eq!(
            fs::read(&path).expect("read"),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn key_of_another_algorithm_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        SigningKey::load_or_generate(dir.path(), SigningAlgorithm::EdDSA).expect("generate");
        fs::rename(
            dir.path().join("signing-key-eddsa.pem"),
            dir.path().join("signing-key-es256.pem"),
        )
        .expect("rename");
        let error = SigningKey::load_or_generate(dir.path(), SigningAlgorithm::ES256)
            .expect_err("an Ed25519 key is not an ES256 key");
        assert!(
            matches!(error, TokenError::KeyFileCorrupt { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn unreadable_and_unwritable_key_paths_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the key file should be: reading fails (and not
        // with NotFound, so no new key is generated over it).
        let path = dir.path().join("signing-key-es256.pem");
        fs::create_dir(&path).expect("mkdir");
        let error = SigningKey::load_or_generate(dir.path(), SigningAlgorithm::ES256)
            .expect_err("a directory is not a key file");
        assert!(
            matches!(error, TokenError::KeyFileUnreadable { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );

        // The key directory is a dangling symlink: reading finds no key, and
        // creating the directory fails (even as root, unlike a chmod).
        #[cfg(unix)]
        {
            let key_dir = dir.path().join("keys");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &key_dir).expect("symlink");
            let error = SigningKey::load_or_generate(&key_dir, SigningAlgorithm::ES256)
                .expect_err("cannot create the key directory");
            assert!(
                matches!(error, TokenError::KeyFileUnwritable { .. }),
                "{error:?}"
            );
            assert!(
                error.to_string().contains(&key_dir.display().to_string()),
                "{error}"
            );
        }
    }

    #[test]
    fn debug_does_not_print_the_private_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::load_or_generate(dir.path(), SigningAlgorithm::ES256).expect("key");
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()), "{debug}");
        let pem = fs::read_to_string(dir.path().join("signing-key-es256.pem")).expect("read");
        let der = decode_pkcs8_pem(pem.as_bytes()).expect("der");
        // The private scalar sits inside the DER; check no rendering of it leaks.
        for rendering in [hex::encode(&der[36..68]), STANDARD.encode(&der[36..68])] {
            assert!(!debug.contains(&rendering[..16]), "{debug}");
        }
        assert!(!debug.to_lowercase().contains("private"), "{debug}");
    }

    #[test]
    fn sign_uses_the_given_typ_and_a_cached_header_for_known_typs() {
        let key = SigningKey::generate(SigningAlgorithm::EdDSA).expect("key");
        let claims = as_map(json!({"a": 1}));
        for typ in ["at+jwt", "JWT", "logout+jwt", "we\"ird"] {
            let token = key.sign(typ, &claims).expect("sign");
            let header = decode_header(&token).expect("header");
            assert_eq!(header.typ.as_deref(), Some(typ));
            assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
        }
    }

    #[test]
    fn jti_is_unique_per_token() {
        let key = SigningKey::generate(SigningAlgorithm::ES256).expect("key");
        let empty = Map::new();
        let request = MintRequest {
            issuer: ISSUER,
            subject: SUBJECT,
            client_id: CLIENT_ID,
            audience: None,
            scopes: &[],
            nonce: None,
            auth_time: 0,
            now: now(),
            access_token_ttl: 60,
            id_token_ttl: 60,
            profile_claims: &empty,
            access_token_claims: &empty,
            id_token_claims: &empty,
            permissions: None,
            authentication: &Default::default(),
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let minted = mint(&key, &request).expect("mint");
            for token in [minted.access_token, minted.id_token] {
                let claims: Value =
                    jsonwebtoken::dangerous::insecure_decode_claims(&token).expect("claims");
                assert!(seen.insert(claims["jti"].as_str().expect("jti").to_owned()));
            }
        }
    }

    #[test]
    fn algorithm_serde_names() {
        for (alg, name) in [
            (SigningAlgorithm::ES256, "ES256"),
            (SigningAlgorithm::RS256, "RS256"),
            (SigningAlgorithm::EdDSA, "EdDSA"),
        ] {
            assert_eq!(serde_json::to_value(alg).expect("ser"), json!(name));
            assert_eq!(
                serde_json::from_value::<SigningAlgorithm>(json!(name)).expect("de"),
                alg
            );
            assert_eq!(alg.as_str(), name);
        }
        assert_eq!(SigningAlgorithm::default(), SigningAlgorithm::ES256);
        assert!(serde_json::from_value::<SigningAlgorithm>(json!("es256")).is_err());
    }

    #[test]
    fn signing_key_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SigningKey>();
    }
}
