//! The shipped example config loads, documents every key, and bad values name their key.

use std::path::{Path, PathBuf};

use jarvis_config::{Config, ConfigError, ConfigSource};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jarvis-kiosk.example.toml")
}

fn load(path: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(&ConfigSource {
        path: path.to_path_buf(),
        explicit: true,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn write(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("c.toml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn example_loads_and_equals_the_defaults() {
    let cfg = load(&example(), &[]).expect("example config must load");
    assert_eq!(cfg.kiosk.id, "kiosk-demo-01");
    let mut defaults = Config::default();
    defaults.kiosk.id = cfg.kiosk.id.clone();
    assert_eq!(
        cfg.to_toml(),
        defaults.to_toml(),
        "example values must be the defaults"
    );
}

/// Every key of every section appears in the example, set or commented out.
#[test]
fn example_documents_every_key() {
    let text = std::fs::read_to_string(example()).unwrap();
    let mut cfg = Config::default();
    cfg.kiosk.id = "x".into();
    let value: toml::Value = toml::from_str(&cfg.to_toml()).unwrap();
    let mut missing = Vec::new();
    fn walk(prefix: &str, v: &toml::Value, text: &str, missing: &mut Vec<String>) {
        let Some(table) = v.as_table() else { return };
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                // Maps such as `pricing` are documented by a commented example entry.
                if !text.contains(&format!("[{path}]")) && !text.contains(&format!("[{path}.")) {
                    missing.push(format!("[{path}]"));
                }
                walk(&path, v, text, missing);
            } else if !text
                .lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{k} =")))
            {
                missing.push(path);
            }
        }
    }
    walk("", &value, &text, &mut missing);
    for optional in [
        "hash_key_file",
        "input_sample_rate",
        "input_channels",
        "input_format",
        "output_sample_rate",
        "output_channels",
        "period_frames",
        "prompts_dir",
        "api_key_file",
        "token_url",
        "token_credential_file",
        "instructions_file",
        "url",
        "password_file",
        "ca_file",
        "listen",
    ] {
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("# {optional} =")))
        {
            missing.push(optional.into());
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}

#[test]
fn environment_overrides_the_file() {
    let cfg = load(
        &example(),
        &[
            ("JARVIS_KIOSK__SESSION__MAX_DURATION_S", "120"),
            ("JARVIS_KIOSK__BADGE__SERIAL__PATH", "/dev/ttyACM7"),
            ("JARVIS_KIOSK__KIOSK__ID", "k-42"),
            ("JARVIS_KIOSK__OPENAI__GOODBYE_PHRASES", "au revoir,salut"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.session.max_duration_s, 120);
    assert_eq!(cfg.badge.serial.path, PathBuf::from("/dev/ttyACM7"));
    assert_eq!(cfg.kiosk.id, "k-42");
    assert_eq!(cfg.openai.goodbye_phrases, ["au revoir", "salut"]);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k\"\n[session]\nmax_duraton_s = 5\n",
    );
    let err = load(&p, &[]).unwrap_err().to_string();
    assert!(err.contains("max_duraton_s"), "{err}");

    let err = load(&example(), &[("JARVIS_KIOSK__BOGUS__KEY", "1")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn inline_secrets_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k\"\n[openai]\napi_key = \"sk-123\"\n",
    );
    let err = load(&p, &[]).unwrap_err().to_string();
    assert!(err.contains("api_key_file"), "{err}");
    assert!(
        !err.contains("sk-123"),
        "the secret must not be echoed: {err}"
    );

    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k\"\n[central]\nurl = \"postgres://k:hunter2@db/x\"\n",
    );
    let err = load(&p, &[]).unwrap_err().to_string();
    assert!(err.contains("central.password_file"), "{err}");
}

#[test]
fn bad_values_name_the_key_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[kiosk]\nid = \"\"\n", "kiosk.id"),
        (
            "[kiosk]\nid = \"k\"\n[session]\nmax_cost_usd = \"abc\"\n",
            "max_cost_usd",
        ),
        (
            "[kiosk]\nid = \"k\"\n[session]\nmax_duration_s = \"long\"\n",
            "max_duration_s",
        ),
        (
            "[kiosk]\nid = \"k\"\n[badge]\nframing = \"morse\"\n",
            "framing",
        ),
        (
            "[kiosk]\nid = \"k\"\n[badge]\nmin_len = 40\n",
            "badge.min_len",
        ),
        (
            "[kiosk]\nid = \"k\"\n[audio]\ninput_sample_rate = 5\n",
            "audio.input_sample_rate",
        ),
        (
            "[kiosk]\nid = \"k\"\n[health]\nlisten = \"0.0.0.0:80\"\n",
            "health.listen",
        ),
        (
            "[kiosk]\nid = \"k\"\n[session]\ndaily_budget_usd = \"0.5\"\n",
            "session.daily_budget_usd",
        ),
        ("[kiosk]\nid = \"k\"\n[log]\nlevel = \"[[[\"\n", "log.level"),
    ];
    for (body, key) in cases {
        let p = write(dir.path(), body);
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(err.contains(key), "{body:?} -> {err}");
    }
}

#[test]
fn several_problems_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"\"\n[session]\nmax_duration_s = 0\nidle_timeout_s = 0\n",
    );
    match load(&p, &[]) {
        Err(ConfigError::Invalid(issues)) => assert_eq!(issues.len(), 3, "{issues:?}"),
        other => panic!("expected three issues, got {other:?}"),
    }
}

#[test]
fn explicit_missing_file_is_an_error_default_missing_is_not() {
    let err = load(Path::new("/nonexistent/jarvis.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/jarvis.toml") && err.contains("--config"),
        "{err}"
    );
    let implicit = Config::load(&ConfigSource {
        path: "/nonexistent/jarvis.toml".into(),
        explicit: false,
        env: vec![("JARVIS_KIOSK__KIOSK__ID".into(), "k".into())],
    });
    assert!(implicit.is_ok(), "{implicit:?}");
}

/// The keys `config check` names for `path` with `env`.
fn issue_keys(path: &Path, env: &[(&str, &str)]) -> Vec<String> {
    match load(path, env) {
        Err(ConfigError::Invalid(issues)) => issues.into_iter().map(|i| i.key).collect(),
        other => panic!("expected issues, got {other:?}"),
    }
}

#[test]
fn switching_the_example_to_live_names_each_realtime_only_key_to_move() {
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("kiosk-token");
    let env = [
        ("JARVIS_KIOSK__OPENAI__API", "live"),
        (
            "JARVIS_KIOSK__OPENAI__LIVE__RELAY_URL",
            "https://broker.example.net/v1/live/sessions",
        ),
        (
            "JARVIS_KIOSK__OPENAI__TOKEN_CREDENTIAL_FILE",
            cred.to_str().unwrap(),
        ),
    ];
    let keys = issue_keys(&example(), &env);
    assert_eq!(
        keys,
        [
            "openai.model",
            "openai.voice",
            "openai.turn_detection",
            "openai.transcription_model"
        ]
    );
    let err = load(&example(), &env).unwrap_err().to_string();
    assert!(err.contains("set openai.live.model instead"), "{err}");
}

#[test]
fn a_live_kiosk_behind_the_broker_loads_with_the_live_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k1\"\n[openai]\napi = \"live\"\ntoken_credential_file = \"kiosk-token\"\n\
         [openai.live]\nrelay_url = \"https://broker.example.net/v1/live/sessions\"\n",
    );
    let cfg = load(&p, &[]).expect("a Live config loads");
    assert_eq!(cfg.openai.api, jarvis_config::VoiceApi::Live);
    assert_eq!(cfg.openai.live.model, "gpt-live-1.1");
    assert_eq!(cfg.openai.live.delegation_model, "gpt-5-mini");
}

#[test]
fn live_settings_are_refused_with_the_realtime_api_and_bad_live_settings_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k1\"\n[openai]\napi_key_file = \"key\"\n[openai.live]\nmodel = \"gpt-live-1\"\n",
    );
    assert_eq!(issue_keys(&p, &[]), ["openai.live.model"]);
    // Live without a way to create sessions, with a Realtime model and a Realtime token URL.
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k1\"\n[openai]\napi = \"live\"\n\
         token_url = \"https://broker.example.net/v1/realtime/client_secrets\"\n\
         token_credential_file = \"t\"\n[openai.live]\nmodel = \"gpt-realtime\"\ndelegation_model = \" \"\n",
    );
    assert_eq!(
        issue_keys(&p, &[]),
        [
            "openai.live.model",
            "openai.live.delegation_model",
            "openai.live.relay_url",
            "openai.token_url"
        ]
    );
    // Both a key file and a relay.
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k1\"\n[openai]\napi = \"live\"\napi_key_file = \"key\"\n\
         [openai.live]\nrelay_url = \"https://broker.example.net/v1/live/sessions\"\n",
    );
    assert_eq!(issue_keys(&p, &[]), ["openai.live.relay_url"]);
}

#[test]
fn a_live_kiosk_must_price_its_model_and_its_delegation_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "[kiosk]\nid = \"k1\"\n[openai]\napi = \"live\"\napi_key_file = \"key\"\n\
         [openai.live]\nmodel = \"gpt-live-2\"\ndelegation_model = \"gpt-9\"\n",
    );
    assert_eq!(
        issue_keys(&p, &[]),
        ["openai.live.model", "openai.live.delegation_model"]
    );
}
