//! Plugin logging (`claimsmith:plugin/log`) into the host's `tracing` logs,
//! tagged with the plugin's name.

use std::sync::Arc;

use crate::stdio::OutputBudget;
use claimsmith_wit::fetcher::claimsmith::plugin::log as wit;
use wasmtime::component::{HasSelf, Linker};

use crate::{CallContext, Capability, CapabilityView, Has};
use claimsmith_config::PluginSpec;
use claimsmith_core::World;

/// Longer messages are cut: a plugin must not flood the host's logs.
const MAX_MESSAGE_CHARS: usize = 4096;
/// What a `log` call costs the output budget besides its message: about the
/// length of a log line's prefix.
const LOG_LINE_OVERHEAD_BYTES: usize = 64;

pub struct LogCapability {
    plugin: Arc<str>,
    /// Shared with stdout and stderr: a plugin calling `log` without end is
    /// cut off as one printing without end is.
    budget: OutputBudget,
    /// Where a caller collects the lines too (the console's Try it).
    sink: Option<LogSink>,
}

/// The plugin log lines of one run, collected whatever the host's log level
/// (within each call's output budget).
#[derive(Debug, Clone, Default)]
pub struct LogSink(Arc<std::sync::Mutex<Vec<LogLine>>>);

/// One `log` call of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub plugin: String,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// On one line, control characters escaped.
    pub message: String,
}

impl LogSink {
    pub fn lines(&self) -> Vec<LogLine> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, line: LogLine) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

impl LogCapability {
    pub fn new(plugin: Arc<str>, budget: OutputBudget, sink: Option<LogSink>) -> Self {
        LogCapability {
            plugin,
            budget,
            sink,
        }
    }
}

/// A plugin's message as one line of the host's log: cut to
/// [`MAX_MESSAGE_CHARS`], with newlines, `\r`, ANSI escapes and every other
/// control character escaped, so a plugin cannot forge other lines nor
/// restyle an operator's terminal. Every plugin output goes through it.
pub fn one_line(message: &str) -> String {
    one_line_cut(message, MAX_MESSAGE_CHARS)
}

/// [`one_line`], cut to at most `max_chars` characters: for text a caller
/// wrote that the host keeps (the audit trail stores it).
pub fn one_line_cut(message: &str, max_chars: usize) -> String {
    truncated(message, max_chars).escape_debug().to_string()
}

/// `message`, cut to at most `max_chars` characters, marked when cut.
pub fn truncated(message: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    match message.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}… (truncated)", &message[..cut]).into(),
        None => message.into(),
    }
}

impl wit::Host for LogCapability {
    fn log(&mut self, level: wit::Level, message: String) {
        // Most plugin logging is below the host's level: check before
        // formatting anything, this runs on every login.
        use tracing::Level;
        let target_enabled = match level {
            wit::Level::Trace => tracing::enabled!(target: "claimsmith::plugin", Level::TRACE),
            wit::Level::Debug => tracing::enabled!(target: "claimsmith::plugin", Level::DEBUG),
            wit::Level::Info => tracing::enabled!(target: "claimsmith::plugin", Level::INFO),
            wit::Level::Warn => tracing::enabled!(target: "claimsmith::plugin", Level::WARN),
            wit::Level::Error => tracing::enabled!(target: "claimsmith::plugin", Level::ERROR),
        };
        if !target_enabled && self.sink.is_none() {
            return;
        }
        let plugin = &*self.plugin;
        let message = one_line(&message);
        // The whole line or nothing: half a message misleads. Each line also
        // costs its prefix (time, level, target, plugin), or a plugin could
        // log thousands of one-character lines within the budget.
        let cost = message.len() + LOG_LINE_OVERHEAD_BYTES;
        if self.budget.take(cost) < cost {
            return;
        }
        if let Some(sink) = &self.sink {
            sink.push(LogLine {
                plugin: plugin.to_owned(),
                level: match level {
                    wit::Level::Trace => "trace",
                    wit::Level::Debug => "debug",
                    wit::Level::Info => "info",
                    wit::Level::Warn => "warn",
                    wit::Level::Error => "error",
                },
                message: message.clone(),
            });
        }
        if !target_enabled {
            return;
        }
        match level {
            wit::Level::Trace => tracing::trace!(target: "claimsmith::plugin", plugin, "{message}"),
            wit::Level::Debug => tracing::debug!(target: "claimsmith::plugin", plugin, "{message}"),
            wit::Level::Info => tracing::info!(target: "claimsmith::plugin", plugin, "{message}"),
            wit::Level::Warn => tracing::warn!(target: "claimsmith::plugin", plugin, "{message}"),
            wit::Level::Error => tracing::error!(target: "claimsmith::plugin", plugin, "{message}"),
        }
    }
}

/// Every world imports `log`.
impl Capability for LogCapability {
    /// Nothing beyond what each call is given.
    type Grant = ();

    fn grant(_plugin: &PluginSpec) {}

    fn link<T: CapabilityView>(linker: &mut Linker<T>, _world: World) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<LogCapability>>(linker, |state: &mut T| {
            state.capabilities().get()
        })
    }

    fn prepare(_grant: &(), call: &mut CallContext<'_>) -> Self {
        LogCapability::new(
            call.plugin.clone(),
            call.output_budget.clone(),
            call.log_sink.cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{one_line, truncated};

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        assert_eq!(truncated("héllo", 10), "héllo");
        assert_eq!(truncated("héllo", 2), "hé… (truncated)");
    }

    #[test]
    fn a_message_stays_one_line_without_control_characters() {
        assert_eq!(
            one_line("a\nb\r\x1b[31mc\u{7}"),
            "a\\nb\\r\\u{1b}[31mc\\u{7}"
        );
    }
}
