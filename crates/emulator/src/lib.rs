//! A local stand-in for the OpenAI Realtime API (tests and demos): the same HTTP endpoints, a
//! real str0m WebRTC answerer, an energy VAD on the kiosk's audio, and a scripted conversation
//! emitting the GA server events. Faults (HTTP errors, slow answers, drops, malformed events)
//! are switchable. A scenario can stream audio all the call long (`continuous_audio`), and the
//! member can interrupt a reply (barge-in, as `server_vad` with `interrupt_response`); each
//! call's timeline and decoded member audio are kept for tests ([`Emulator::calls`]).
//! It also serves GPT-Live (`POST /v1/live/sessions`, [`live`]): the same peer, VAD and
//! scenario turns, with Live's event contract and per-second usage.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use jarvis_realtime_emulator::{Emulator, EmulatorConfig, scenario::Scenario};
//! let scenario = Scenario::load("tests/fixtures/scenarios/goodbye.toml".as_ref())?;
//! let emu = Emulator::start(EmulatorConfig::new(scenario)).await?;
//! let base_url = emu.base_url(); // "http://127.0.0.1:PORT/v1" -> openai.base_url
//! # Ok(()) }
//! ```

mod answer;
pub mod audio;
mod call;
pub mod faults;
mod http;
pub mod live;
mod network;
pub mod record;
pub mod scenario;
pub mod script;
pub mod vad;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};

use faults::{ErrorResponse, Faults, error_response};
use jarvis_realtime::peer::{PeerEvents, PeerHandle};
use record::CallRecord;
use scenario::Scenario;

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// HTTP listen address; port 0 picks a free one. The WebRTC answerer uses the same IP
    /// (127.0.0.1 when it is unspecified).
    pub listen: SocketAddr,
    /// The conversation to replay.
    pub scenario: Scenario,
    /// Failures to inject.
    pub faults: Faults,
}

impl EmulatorConfig {
    /// 127.0.0.1 on a free port, no faults.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            scenario,
            faults: Faults::default(),
        }
    }
}

/// Counters a test can assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmulatorStats {
    /// Client secrets minted.
    pub secrets_issued: u64,
    /// SDP offers answered.
    pub calls_answered: u64,
    /// Successful hangup requests.
    pub hangups: u64,
    /// GPT-Live sessions created.
    pub live_sessions: u64,
    /// Calls cut by the drop fault.
    pub drops: u64,
    /// The `type` of every client event received, in order (`<invalid>` for non-JSON).
    pub client_events: Vec<String>,
}

/// The emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address is taken or not local.
    #[error("emulator cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

struct CallEntry {
    hangup: Option<oneshot::Sender<()>>,
    task: AbortHandle,
    /// The unanswered sockets a network fault put in the answer, held as long as the call.
    _dead_ends: network::DeadEnds,
}

/// State shared by the HTTP handlers and the calls.
struct Shared {
    scenario: Arc<Scenario>,
    faults: Faults,
    peer_ip: IpAddr,
    http_faults_left: Mutex<Option<u32>>,
    calls: Mutex<HashMap<String, CallEntry>>,
    stats: Mutex<EmulatorStats>,
    records: Mutex<Vec<Arc<Mutex<CallRecord>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn take_http_fault(&self) -> Option<ErrorResponse> {
        let status = self.faults.http_status?;
        let mut left = lock(&self.http_faults_left);
        match left.as_mut() {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        Some(error_response(status, self.faults.retry_after_s, None))
    }

    fn note_secret(&self) -> u64 {
        let mut s = lock(&self.stats);
        s.secrets_issued += 1;
        s.secrets_issued
    }

    fn note_hangup(&self) {
        lock(&self.stats).hangups += 1;
    }

    fn note_drop(&self) {
        lock(&self.stats).drops += 1;
    }

    fn record_client_event(&self, text: &str) {
        let kind = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("type")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "<invalid>".into());
        lock(&self.stats).client_events.push(kind);
    }

    fn start_call(
        self: &Arc<Self>,
        peer: PeerHandle,
        events: PeerEvents,
        dead_ends: network::DeadEnds,
    ) -> String {
        let n = {
            let mut s = lock(&self.stats);
            s.calls_answered += 1;
            s.calls_answered
        };
        let call_id = format!("rtc_EMU{n:06}");
        let (tx, rx) = oneshot::channel();
        let record = Arc::new(Mutex::new(CallRecord {
            call_id: call_id.clone(),
            ..CallRecord::default()
        }));
        lock(&self.records).push(record.clone());
        let recorder = call::Recorder::new(record);
        let task = tokio::spawn(call::run(
            self.clone(),
            call_id.clone(),
            peer,
            events,
            rx,
            recorder,
        ));
        lock(&self.calls).insert(
            call_id.clone(),
            CallEntry {
                hangup: Some(tx),
                task: task.abort_handle(),
                _dead_ends: dead_ends,
            },
        );
        call_id
    }

    /// True when the call exists; a repeated hangup of a known call is accepted too.
    fn hang_up(&self, call_id: &str) -> bool {
        let mut calls = lock(&self.calls);
        let Some(entry) = calls.get_mut(call_id) else {
            return false;
        };
        if let Some(tx) = entry.hangup.take() {
            let _ = tx.send(());
        }
        true
    }
}

/// A running emulator. Dropping it stops the server and every call.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds the HTTP listener and starts serving (needs a tokio runtime).
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|e| EmulatorError::Listen {
                    addr: config.listen,
                    source: e,
                })?;
        let addr = listener.local_addr().map_err(|e| EmulatorError::Listen {
            addr: config.listen,
            source: e,
        })?;
        let peer_ip = if config.listen.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            config.listen.ip()
        };
        let shared = Arc::new(Shared {
            scenario: Arc::new(config.scenario),
            http_faults_left: Mutex::new(config.faults.fail_times),
            faults: config.faults,
            peer_ip,
            calls: Mutex::new(HashMap::new()),
            stats: Mutex::new(EmulatorStats::default()),
            records: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `openai.base_url`: `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EmulatorStats {
        lock(&self.shared.stats).clone()
    }

    /// A snapshot of every call so far, in answer order: its timeline (speech boundaries and
    /// whether reply audio was playing, barge-ins, server events), the audio of each reply,
    /// and the member audio as decoded.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.call_log().calls()
    }

    /// A handle on the call records that can leave the emulator's thread: tests run it on a
    /// runtime of their own and read its calls from the test's thread.
    pub fn call_log(&self) -> CallLog {
        CallLog(self.shared.clone())
    }
}

/// See [`Emulator::call_log`].
#[derive(Clone)]
pub struct CallLog(Arc<Shared>);

impl CallLog {
    /// As [`Emulator::calls`].
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.0.records)
            .iter()
            .map(|r| lock(r).clone())
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
        for (_, c) in lock(&self.shared.calls).drain() {
            c.task.abort();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "emulator accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| http::handle(shared.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "emulator HTTP connection ended");
            }
        });
    }
}
