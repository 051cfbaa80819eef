//! `jarvis-realtime-emulator`: a local OpenAI Realtime stand-in for demos and manual tests.
//!
//! Prints `listening on http://ADDR/v1` on stdout once ready (point `openai.base_url` there) and
//! serves until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig, faults::Faults, scenario::Scenario};

/// Local OpenAI Realtime emulator (HTTP + WebRTC) replaying a scripted conversation.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// HTTP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Scenario file (TOML), e.g. tests/fixtures/scenarios/goodbye.toml.
    #[arg(long)]
    scenario: PathBuf,
    /// Fault to inject, repeatable: http-status=CODE, retry-after=S, fail-times=N,
    /// answer-delay-ms=MS, drop-after-turn=N, pause-after-turn=N, pause-ms=MS, malformed,
    /// block-udp (only ICE-TCP connects), refuse-tcp, expire-after-ms=MS (GPT-Live sessions).
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Send a packet every 20 ms all the call long (Opus silence between replies, marker bit on
    /// every packet), as OpenAI's servers do; overrides the scenario's `continuous_audio`.
    #[arg(long)]
    continuous_audio: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,str0m=warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut scenario = Scenario::load(&args.scenario).context("loading --scenario")?;
    scenario.continuous_audio |= args.continuous_audio;
    let faults = Faults::parse(&args.faults)?;
    let emu = Emulator::start(EmulatorConfig {
        listen: args.listen,
        scenario,
        faults,
    })
    .await?;
    println!("listening on {}", emu.base_url());
    std::io::stdout().flush().context("writing to stdout")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    tracing::info!(stats = ?emu.stats(), "emulator stopping");
    Ok(())
}
