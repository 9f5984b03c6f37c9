//! A plugin's stdout and stderr, captured line by line into the host's logs,
//! tagged with the plugin's name and escaped as its `log` messages are. A
//! plugin that prints (or calls `log`) without end is cut off after a budget
//! shared by all three, and the cut is logged once; its writes keep
//! succeeding so that printing never traps it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::log::one_line;

/// How many bytes of output (stdout, stderr and `log` messages together)
/// one invocation may log.
pub const OUTPUT_BUDGET_BYTES: usize = 64 * 1024;

/// The output budget an invocation's streams and `log` calls share.
pub type OutputBudget = Arc<SharedBudget>;

pub struct SharedBudget {
    plugin: Arc<str>,
    left: AtomicUsize,
    /// The cut is logged once, by the first output refused in whole or part.
    cut: AtomicBool,
}

pub fn output_budget(plugin: Arc<str>) -> OutputBudget {
    Arc::new(SharedBudget {
        plugin,
        left: AtomicUsize::new(OUTPUT_BUDGET_BYTES),
        cut: AtomicBool::new(false),
    })
}

impl SharedBudget {
    /// Takes up to `wanted` bytes from the budget: how many it got.
    pub fn take(&self, wanted: usize) -> usize {
        let mut taken = 0;
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                taken = wanted.min(left);
                Some(left - taken)
            });
        if taken < wanted && !self.cut.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "claimsmith::plugin", plugin = &*self.plugin, "output budget of {OUTPUT_BUDGET_BYTES} bytes used up; further output dropped");
        }
        taken
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Shared between the WASI context and the streams it hands out.
#[derive(Clone)]
pub struct PluginOutput {
    inner: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    plugin: Arc<str>,
    stream: Stream,
    pending: Vec<u8>,
    budget: OutputBudget,
}

impl PluginOutput {
    pub fn new(plugin: Arc<str>, stream: Stream, budget: OutputBudget) -> Self {
        PluginOutput {
            inner: Arc::new(Mutex::new(LineBuffer {
                plugin,
                stream,
                pending: Vec::new(),
                budget,
            })),
        }
    }

    fn write(&self, bytes: &[u8]) {
        // A poisoned lock only means another write panicked: keep logging.
        let mut buffer = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        buffer.write(bytes);
    }
}

impl LineBuffer {
    fn write(&mut self, bytes: &[u8]) {
        let taken = self.budget.take(bytes.len());
        if taken == 0 {
            return;
        }
        self.pending.extend_from_slice(&bytes[..taken]);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..end]);
        }
        if taken < bytes.len() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }

    fn emit(&self, line: &[u8]) {
        // CRLF ends a line too; a `\r` anywhere else is escaped below.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        let line = one_line(&String::from_utf8_lossy(line));
        let plugin = &*self.plugin;
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "claimsmith::plugin", plugin, stream = "stdout", "{line}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "claimsmith::plugin", plugin, stream = "stderr", "{line}")
            }
        }
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        self.emit(&rest);
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PluginOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for PluginOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        PluginOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for PluginOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        PluginOutput::write(&self, bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
