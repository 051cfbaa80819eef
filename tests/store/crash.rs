//! Kill -9 durability: a child process appends events in a burst and prints each one only after
//! its commit returned; the test SIGKILLs it mid-burst, reopens the file and checks that every
//! acknowledged event is there and the database is intact. The child is this test binary
//! re-executed with `JARVIS_STORE_CRASH_CHILD` set (see `crash_writer_child`).
//!
//! This proves commit-then-acknowledge ordering and crash consistency of the process; a power
//! cut additionally relies on `synchronous=FULL` fsyncs, which a kill cannot exercise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;
use jarvis_core::money::NanoUsd;
use jarvis_store::{IntegrityCheck, Store};
use uuid::Uuid;

const CHILD_ENV: &str = "JARVIS_STORE_CRASH_CHILD";

/// The writer half: does nothing in a normal test run, and writes until killed when the crash
/// test re-executes this binary with `JARVIS_STORE_CRASH_CHILD=<db path>`.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut opts = options(Path::new(&path));
    opts.clock = jarvis_core::clock::wall_ms;
    let mut store = Store::open_with(opts).unwrap().0;
    let out = std::io::stdout();
    let ack = |seq: i64, id: Uuid| {
        let mut lock = out.lock();
        writeln!(lock, "ACK {seq} {id}").unwrap();
        lock.flush().unwrap();
    };
    // Bounded so a child whose parent died cannot run forever.
    for round in 0..50_000i64 {
        let sid = Uuid::now_v7();
        let session = [
            started(sid, round),
            usage(sid, round, cost(1_000 + round as u64, 2_000)),
            transcription(sid, round, 300),
            usage(sid, round, cost(5, 7)),
            ended(sid, round, 10),
        ];
        for ev in &session {
            let seq = store.append(ev).unwrap();
            ack(seq, ev.event_id);
        }
        let beats: Vec<_> = (0..8).map(|i| heartbeat(round * 8 + i, 64)).collect();
        let seqs = store.append_batch(&beats).unwrap();
        for (seq, ev) in seqs.iter().zip(&beats) {
            ack(*seq, ev.event_id);
        }
    }
}

/// Runs one writer, kills it after at least `min_acks` acknowledgements, returns every ack.
fn crash_one_writer(path: &Path, min_acks: usize) -> Vec<(i64, Uuid)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        let (seq, id) = rest.split_once(' ').unwrap();
        acks.push((seq.parse().unwrap(), Uuid::parse_str(id).unwrap()));
        if acks.len() >= min_acks && !killed {
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the writer must die by SIGKILL mid-burst, not exit ({status:?})"
    );
    acks
}

#[test]
fn acknowledged_events_survive_sigkill_mid_burst() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let mut acked: BTreeMap<i64, Uuid> = BTreeMap::new();
    for (round, min_acks) in [150, 611, 97, 1_303, 420].into_iter().enumerate() {
        let acks = crash_one_writer(&path, min_acks);
        assert!(acks.len() >= min_acks, "round {round}");
        for (seq, id) in acks {
            assert!(
                acked.insert(seq, id).is_none(),
                "seq {seq} acknowledged twice"
            );
        }

        let mut opts = options(&path);
        opts.check = IntegrityCheck::Full;
        let (mut store, report) = Store::open_with(opts).unwrap();
        assert!(report.recovered.is_none(), "round {round}: {report:?}");
        assert!(
            store.check(IntegrityCheck::Full).unwrap().is_empty(),
            "round {round}: integrity_check"
        );
        let stored: BTreeMap<i64, Uuid> = store
            .pending(1_000_000)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.event.event_id))
            .collect();
        for (seq, id) in &acked {
            assert_eq!(
                stored.get(seq),
                Some(id),
                "round {round}: acknowledged seq {seq} lost"
            );
        }
        // The sessions roll-up commits with its events: it matches the outbox exactly.
        let rolled_up: NanoUsd = store
            .recent_sessions(1_000_000)
            .unwrap()
            .iter()
            .map(|s| s.total_nusd)
            .sum();
        assert_eq!(
            rolled_up,
            store.spent_since(i64::MIN).unwrap(),
            "round {round}"
        );
    }
}
