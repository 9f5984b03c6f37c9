//! A plugin's secrets (`claimsmith:plugin/secrets`): the ones configured for
//! that plugin and no other. Values never reach a log: their `Debug` is
//! redacted.

use std::collections::BTreeMap;
use std::sync::Arc;

use claimsmith_wit::fetcher::claimsmith::plugin::secrets as wit;
use wasmtime::component::{HasSelf, Linker};

use crate::{CallContext, Capability, CapabilityView, Has};
use claimsmith_config::PluginSpec;
use claimsmith_core::World;

pub use claimsmith_core::SecretValue;

/// The secrets of one plugin, by name.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Arc<BTreeMap<String, SecretValue>>);

impl Secrets {
    pub fn new(secrets: BTreeMap<String, SecretValue>) -> Self {
        Secrets(Arc::new(secrets))
    }
}

impl wit::Host for Secrets {
    fn secret(&mut self, name: String) -> Option<String> {
        self.0.get(&name).map(|value| value.expose().to_owned())
    }
}

/// Every world imports `secrets`; a call gets its own plugin's.
impl Capability for Secrets {
    type Grant = Secrets;

    fn grant(plugin: &PluginSpec) -> Secrets {
        Secrets::new(plugin.secrets.clone())
    }

    fn link<T: CapabilityView>(linker: &mut Linker<T>, _world: World) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<Secrets>>(linker, |state: &mut T| {
            state.capabilities().get()
        })
    }

    fn prepare(grant: &Secrets, _call: &mut CallContext<'_>) -> Self {
        grant.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::Host;

    #[test]
    fn only_configured_secrets_are_given_and_debug_hides_values() {
        let mut secrets = Secrets::new(BTreeMap::from([(
            "api_key".to_owned(),
            SecretValue::new("s3cr3t".to_owned()),
        )]));
        assert_eq!(secrets.secret("api_key".into()).as_deref(), Some("s3cr3t"));
        assert_eq!(secrets.secret("other".into()), None);
        assert!(!format!("{secrets:?}").contains("s3cr3t"));
    }
}
