//! A secret value (a client secret, a database password, a plugin's API
//! key) that never reaches a log: its `Debug` is redacted, and the one place
//! that must use it asks for it by name ([`SecretValue::expose`]).

use std::fmt;

/// A secret's value, redacted in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}
