//! The daemon on gym networks: a whole session over ICE-TCP when UDP is blocked, over IPv6
//! loopback, and through an HTTP proxy; a connect that cannot succeed names each transport it
//! tried, in the session's end detail, the log and `status`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jarvis_core::events::EventPayload;
use jarvis_store::Store;
use support::rig::{Emulator, Kiosk};

fn assert_goodbye(kiosk: &Kiosk) -> jarvis_store::SessionSummary {
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(
        s.end_reason.as_deref(),
        Some("goodbye"),
        "{s:?}\n{}",
        kiosk.log()
    );
    assert_eq!(s.responses, 3, "{s:?}");
    s
}

#[test]
fn a_whole_session_runs_over_tcp_when_udp_is_blocked() {
    let emulator = Emulator::start("kiosk_e2e.toml", &["block-udp"]);
    let kiosk = Kiosk::start(&emulator, "kiosk-tcp", "");
    let s = assert_goodbye(&kiosk);
    eprintln!(
        "scan -> data channel open over TCP only: {:?} ms",
        s.connect_ms
    );
    let log = kiosk.stop();
    let connected = log
        .lines()
        .find(|l| l.contains("WebRTC connected"))
        .unwrap_or_else(|| panic!("no `WebRTC connected` line:\n{log}"));
    assert!(connected.contains("Tcp"), "{connected}");
}

#[test]
fn a_whole_session_runs_over_ipv6_loopback() {
    let emulator = Emulator::start_on("[::1]:0", "kiosk_e2e.toml", &[]);
    assert!(
        emulator.base_url.starts_with("http://[::1]:"),
        "{}",
        emulator.base_url
    );
    let kiosk = Kiosk::start(&emulator, "kiosk-v6", "");
    assert_goodbye(&kiosk);
    kiosk.stop();
}

#[test]
fn a_connect_with_no_working_path_names_each_transport() {
    let emulator = Emulator::start("kiosk_e2e.toml", &["block-udp", "refuse-tcp"]);
    let kiosk = Kiosk::start(&emulator, "kiosk-nopath", "[session]\ncooldown_s = 1\n");
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(s.end_reason.as_deref(), Some("connect_failed"), "{s:?}");
    let detail = session_ended_detail(&kiosk);
    for needle in [
        "UDP to 127.0.0.1:",
        "no answer to",
        "TCP to 127.0.0.1:",
        "connection refused",
    ] {
        assert!(detail.contains(needle), "{needle} in {detail}");
    }
    assert!(!detail.contains("was lost"), "{detail}");
    // `status` lists it among the last errors.
    support::wait_until("the cause in status", Duration::from_secs(10), || {
        let status = kiosk.status()?.to_string();
        (status.contains("connect_failed") && status.contains("connection refused")).then_some(())
    });
    let log = kiosk.stop();
    assert!(log.contains("no answer to"), "{log}");
}

/// The `detail` of the store's `session_ended` event.
fn session_ended_detail(kiosk: &Kiosk) -> String {
    let mut store = Store::open_existing(&kiosk.db()).unwrap();
    store
        .pending(1000)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.event.payload {
            EventPayload::SessionEnded { detail, .. } => detail,
            _ => None,
        })
        .expect("a session_ended event with a detail")
}

/// A small forward proxy: absolute-form requests (`GET http://host/path`) are forwarded,
/// `CONNECT host:port` is tunnelled. Records the request lines it served.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, &log);
                });
            }
        });
        Proxy { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One client connection, one request: forwarded on a fresh upstream connection, then both
/// sides are closed (reqwest opens a new connection for the next request).
fn serve(client: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let request_line = line.trim_end().to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
        let lower = h.to_ascii_lowercase();
        if !lower.starts_with("proxy-") && !lower.starts_with("connection:") {
            headers.push(h);
        }
    }
    log.lock().unwrap().push(request_line.clone());
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let upstream = TcpStream::connect(target)?;
        (&client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (mut up_r, mut up_w) = (upstream.try_clone()?, upstream);
        let mut down_w = client.try_clone()?;
        std::thread::spawn(move || std::io::copy(&mut up_r, &mut down_w));
        std::io::copy(&mut reader, &mut up_w)?;
        return Ok(());
    }
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut upstream = TcpStream::connect(host)?;
    write!(upstream, "{method} {path} HTTP/1.1\r\n")?;
    for h in &headers {
        upstream.write_all(h.as_bytes())?;
    }
    upstream.write_all(b"Connection: close\r\n\r\n")?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    (&client).write_all(&answer)?;
    client.shutdown(std::net::Shutdown::Both)
}

#[test]
fn every_openai_call_goes_through_the_configured_proxy() {
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let proxy = Proxy::start();
    let url = proxy.url();
    let env = [
        ("HTTP_PROXY", url.as_str()),
        ("HTTPS_PROXY", url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let kiosk = Kiosk::start_with_env(&emulator, "kiosk-proxy", "", &env);
    assert_goodbye(&kiosk);
    let through = |seen: &[String], path: &str| {
        seen.iter()
            .any(|l| l.starts_with("POST http://") && l.contains(path))
    };
    // The hang-up follows the session's end.
    let seen = support::wait_until(
        "the hang-up through the proxy",
        Duration::from_secs(10),
        || {
            let seen = proxy.seen();
            through(&seen, "/hangup").then_some(seen)
        },
    );
    for path in ["/v1/realtime/client_secrets", "/v1/realtime/calls"] {
        assert!(
            through(&seen, path),
            "{path} went through the proxy: {seen:?}"
        );
    }
    kiosk.stop();
}

#[test]
fn no_proxy_keeps_the_calls_direct() {
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let proxy = Proxy::start();
    let url = proxy.url();
    let env = [
        ("HTTP_PROXY", url.as_str()),
        ("HTTPS_PROXY", url.as_str()),
        ("NO_PROXY", "127.0.0.1,localhost"),
    ];
    let kiosk = Kiosk::start_with_env(&emulator, "kiosk-noproxy", "", &env);
    assert_goodbye(&kiosk);
    assert_eq!(proxy.seen(), Vec::<String>::new());
    kiosk.stop();
}

#[test]
fn https_calls_go_through_the_proxy_in_a_connect_tunnel() {
    // OpenAI is HTTPS: through HTTPS_PROXY the kiosk asks the proxy for a `CONNECT host:443`
    // tunnel and runs TLS inside it, never resolving the name itself. No TLS server runs here
    // and the proxy cannot resolve the name, so the call fails after the tunnel was asked for.
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let proxy = Proxy::start();
    let url = proxy.url();
    let env = [
        ("HTTPS_PROXY", url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
        (
            "JARVIS_KIOSK__OPENAI__BASE_URL",
            "https://api.openai.test/v1",
        ),
    ];
    let kiosk = Kiosk::start_with_env(&emulator, "kiosk-https-proxy", "", &env);
    kiosk.scanner.scan("0012345678");
    let seen = support::wait_until(
        "a CONNECT tunnel through the proxy",
        Duration::from_secs(20),
        || {
            let seen = proxy.seen();
            seen.iter()
                .any(|l| l.starts_with("CONNECT api.openai.test:443 "))
                .then_some(seen)
        },
    );
    assert!(
        seen.iter().all(|l| l.starts_with("CONNECT ")),
        "HTTPS calls only ever go in a tunnel: {seen:?}"
    );
    kiosk.stop();
}
