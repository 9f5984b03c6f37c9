//! The secrets a run must not show: a config's, found wherever a value
//! holds one, and replaced.

use serde_json::Value;

use claimsmith_config::Config;
use claimsmith_core::SecretValue;

/// The secret values of a config, to hide wherever a run shows them: the
/// plugins run with their real secrets, and what they send, log or return
/// goes to an administrator's page (or into a captured login).
pub(crate) struct Redaction {
    /// Each value, and its `application/x-www-form-urlencoded` form.
    values: Vec<String>,
}

impl Redaction {
    /// Values this short are not hidden: they would blank out ordinary words.
    const MIN_LEN: usize = 4;
    pub(crate) const MARK: &'static str = "[redacted]";

    /// The secrets of `config`, and the values in `also`.
    pub(crate) fn of(config: &Config, also: &[&str]) -> Self {
        let plugins = config
            .plugins
            .values()
            .flat_map(|spec| spec.secrets.values());
        let clients = config
            .clients
            .iter()
            .filter_map(|c| c.client_secret.as_ref());
        let connections = config
            .connections
            .iter()
            .filter_map(|c| c.upstream.as_ref());
        let connections = connections.map(|upstream| &upstream.client_secret);
        let secrets = plugins
            .chain(clients)
            .chain(connections)
            .map(SecretValue::expose);
        let mut values: Vec<String> = secrets
            .chain(also.iter().copied())
            .filter(|value| value.len() >= Self::MIN_LEN)
            .flat_map(|value| {
                let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                [value.to_owned(), encoded]
            })
            .collect();
        // The longest first, so that a secret holding another goes whole.
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        Redaction { values }
    }

    pub(crate) fn text(&self, text: &str) -> String {
        self.values.iter().fold(text.to_owned(), |text, value| {
            text.replace(value, Self::MARK)
        })
    }

    pub(crate) fn json(&self, value: Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.text(&text)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.json(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(key, value)| (self.text(&key), self.json(value)))
                    .collect(),
            ),
            other => other,
        }
    }
}
