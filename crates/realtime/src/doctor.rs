//! `doctor`'s OpenAI lines: does `openai.base_url`'s name resolve, and does the host answer
//! over HTTPS with a certificate this kiosk trusts? Sessions fail on exactly these, so a
//! technician learns it before a member does.

use std::error::Error as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Url;

use jarvis_config::OpenAiConfig;
use jarvis_core::health::Check;

const DNS: &str = "openai dns";
const HTTPS: &str = "openai https";

/// Both checks, each bounded by `wait`.
pub async fn checks(cfg: &OpenAiConfig, wait: Duration) -> Vec<Check> {
    let url = match Url::parse(&cfg.base_url) {
        Ok(u) if u.host_str().is_some() => u,
        _ => {
            let fail = |name| {
                Check::fail(
                    name,
                    format!("`{}` is not a URL with a host", cfg.base_url),
                    "set openai.base_url (default https://api.openai.com/v1)",
                )
            };
            return vec![fail(DNS), fail(HTTPS)];
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let dns = resolve(&host, port, wait).await;
    let https = if dns.level == jarvis_core::health::Level::Fail {
        Check::fail(
            HTTPS,
            format!("not tried: {host} does not resolve"),
            "fix DNS first (see the line above)",
        )
    } else {
        reach(cfg, &url, &host, port, wait).await
    };
    vec![dns, https]
}

async fn resolve(host: &str, port: u16, wait: Duration) -> Check {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Check::ok(DNS, format!("{host} is an address: no DNS needed"));
    }
    let started = Instant::now();
    match tokio::time::timeout(wait, tokio::net::lookup_host((bare, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            if addrs.is_empty() {
                return dns_failure(host, "no address");
            }
            Check::ok(
                DNS,
                format!(
                    "{host} resolves to {} in {} ms",
                    addrs.join(", "),
                    started.elapsed().as_millis()
                ),
            )
        }
        Ok(Err(e)) => dns_failure(host, &e.to_string()),
        Err(_) => dns_failure(host, &format!("no answer within {} s", wait.as_secs())),
    }
}

fn dns_failure(host: &str, why: &str) -> Check {
    Check::fail(
        DNS,
        format!("cannot resolve {host}: {why}"),
        "check the kiosk's network link and DNS servers (`resolvectl status` or \
         /etc/resolv.conf); a site firewall may block DNS",
    )
}

async fn reach(cfg: &OpenAiConfig, url: &Url, host: &str, port: u16, wait: Duration) -> Check {
    let client = match crate::http::http_client(cfg) {
        Ok(c) => c,
        Err(e) => return Check::fail(HTTPS, e.to_string(), "see the message"),
    };
    let started = Instant::now();
    match client.get(url.clone()).timeout(wait).send().await {
        Ok(response) => {
            let ms = started.elapsed().as_millis();
            let status = response.status().as_u16();
            if url.scheme() == "https" {
                Check::ok(
                    HTTPS,
                    format!("{url} answered HTTP {status} in {ms} ms (TLS certificate verified)"),
                )
            } else if is_loopback(host) {
                Check::ok(
                    HTTPS,
                    format!(
                        "{url} answered HTTP {status} in {ms} ms (plain HTTP to a local emulator)"
                    ),
                )
            } else {
                Check::warn(
                    HTTPS,
                    format!("{url} answered HTTP {status} in {ms} ms over plain HTTP"),
                    "use an https:// openai.base_url: plain HTTP exposes the API key",
                )
            }
        }
        Err(e) => reach_failure(&e, host, port, wait),
    }
}

fn reach_failure(e: &reqwest::Error, host: &str, port: u16, wait: Duration) -> Check {
    let firewall = format!(
        "check the network link and that the firewall lets the kiosk reach {host}:{port} \
         (outbound TCP); set HTTPS_PROXY in the unit's environment if the site requires a proxy"
    );
    if e.is_timeout() {
        return Check::fail(
            HTTPS,
            format!("{host}:{port} did not answer within {} s", wait.as_secs()),
            firewall,
        );
    }
    let chain = error_chain(e);
    if let Some(tls) = tls_error(e) {
        return Check::fail(
            HTTPS,
            format!("TLS with {host}:{port} failed: {tls}"),
            "check the clock (`timedatectl`; a wrong date fails every certificate) and whether a \
             proxy or captive portal intercepts HTTPS; trusted CAs come from the ca-certificates \
             package",
        );
    }
    Check::fail(
        HTTPS,
        format!("cannot reach {host}:{port}: {chain}"),
        firewall,
    )
}

/// The rustls error under a failed request, if TLS is what failed. `io::Error` hides what
/// it wraps from `source()`, so wrapped errors are opened with `get_ref()`.
fn tls_error(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// `outer: inner: innermost`, the way support reads errors.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        let part = err.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = err.source();
    }
    text
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use jarvis_core::health::Level;

    const WAIT: Duration = Duration::from_secs(3);

    fn cfg(base_url: String) -> OpenAiConfig {
        OpenAiConfig {
            base_url,
            ..Default::default()
        }
    }

    /// A real HTTP/1.1 server on loopback that answers every request with 404, as OpenAI's
    /// `/v1` does without a path.
    async fn http_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_local_emulator_over_plain_http_is_reachable() {
        let addr = http_server().await;
        let got = checks(&cfg(format!("http://{addr}/v1")), WAIT).await;
        assert_eq!(got[0].level, Level::Ok, "{got:?}");
        assert!(got[0].detail.contains("no DNS needed"));
        assert_eq!(got[1].level, Level::Ok, "{got:?}");
        assert!(got[1].detail.contains("HTTP 404"), "{got:?}");
    }

    #[tokio::test]
    async fn localhost_resolves_through_the_system_resolver() {
        let addr = http_server().await;
        let got = checks(&cfg(format!("http://localhost:{}/v1", addr.port())), WAIT).await;
        assert_eq!(got[0].level, Level::Ok, "{got:?}");
        assert!(got[0].detail.contains("127.0.0.1"), "{got:?}");
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_fails_the_tls_check_with_the_clock_fix() {
        let addr = http_server().await;
        let got = checks(&cfg(format!("https://{addr}/v1")), WAIT).await;
        assert_eq!(got[1].level, Level::Fail, "{got:?}");
        assert!(got[1].detail.contains("TLS"), "{got:?}");
        assert!(got[1].fix.as_deref().unwrap().contains("timedatectl"));
    }

    #[tokio::test]
    async fn a_closed_port_names_the_host_port_and_the_firewall() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let got = checks(&cfg(format!("https://127.0.0.1:{port}/v1")), WAIT).await;
        assert_eq!(got[1].level, Level::Fail, "{got:?}");
        assert!(
            got[1].detail.contains(&format!("127.0.0.1:{port}")),
            "{got:?}"
        );
        assert!(got[1].fix.as_deref().unwrap().contains("firewall"));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let got = checks(
            &cfg(format!("http://{addr}/v1")),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(got[1].level, Level::Fail, "{got:?}");
        assert!(got[1].detail.contains("did not answer"), "{got:?}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_fails_dns_and_skips_https() {
        let got = checks(&cfg("https://kiosk-doctor.invalid/v1".into()), WAIT).await;
        assert_eq!(got[0].level, Level::Fail, "{got:?}");
        assert!(got[0].detail.contains("kiosk-doctor.invalid"));
        assert!(got[0].fix.as_deref().unwrap().contains("DNS"));
        assert_eq!(got[1].level, Level::Fail);
        assert!(got[1].detail.contains("not tried"));
    }

    #[test]
    fn loopback_hosts_are_told_from_remote_ones() {
        assert!(is_loopback("127.0.0.1") && is_loopback("[::1]") && is_loopback("localhost"));
        assert!(!is_loopback("api.openai.com") && !is_loopback("10.0.0.1"));
    }
}
