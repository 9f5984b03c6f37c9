//! The bottom layer of the host: the domain types every other crate passes
//! around, the clock and the claim rules.
//!
//! Owns shapes and rules that need nothing else: a login and its step
//! reports ([`login`]), the time ([`clock`]), the reserved claim names
//! ([`claims`]), the trusted-proxy ranges ([`proxy`]), the contract's worlds
//! by name ([`world`]) and redacted secrets ([`secret`]). It must not depend
//! on any other Claimsmith crate, run plugins, do I/O beyond reading the
//! clock, or know about HTTP.

pub mod claims;
pub mod clock;
pub mod login;
pub mod proxy;
pub mod secret;
pub mod world;

pub use claims::{MANAGEMENT_SCOPES, RESERVED_CLAIMS, is_reserved_claim, management_audience};
pub use clock::{Clock, SystemClock, rfc3339};
pub use login::{
    Login, RequestInfo, StepKind, StepReport, StepStatus, StoredUser, Transaction, UpstreamLogin,
    UserRecord, user_id,
};
pub use proxy::{ForwardedHeader, ProxyRange};
pub use secret::SecretValue;
pub use world::World;
