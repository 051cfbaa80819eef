//! Cost of handling data-channel events: decode one JSON message, translate it to signals
//! (pricing included), and price a usage alone. Prints a table; run with
//! `cargo bench --bench realtime_events`. Events arrive a few dozen per second, so anything
//! in microseconds is far below the CPU budget.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use jarvis_core::events::TokenCounts;
use jarvis_core::metering::Pricing;
use jarvis_realtime::protocol::{Decoded, Translator, decode};

const RESPONSE_DONE: &str = r#"{"type":"response.done","event_id":"event_D1kq7Yx2mN3pQ4rS5tU6v","response":{"object":"realtime.response","id":"resp_D1kq6aB2cD3eF4gH5iJ6k","status":"completed","status_details":null,"output":[{"id":"item_D1kq6lM7nO8pQ9rS0tU1v","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Great workout today. Ending our session now, see you next time!"}]},{"id":"item_D1kq6wX2yZ3aB4cD5eF6g","type":"function_call","status":"completed","name":"end_session","call_id":"call_Hq8xZk2Lm4Np6Rt8","arguments":"{\"reason\":\"user_said_goodbye\"}"}],"conversation_id":"conv_D1kpZ9aA1bB2cC3dD4eE5","output_modalities":["audio"],"max_output_tokens":1024,"audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}},"usage":{"total_tokens":2022,"input_tokens":1670,"output_tokens":352,"input_token_details":{"text_tokens":1450,"audio_tokens":220,"image_tokens":0,"cached_tokens":1344,"cached_tokens_details":{"text_tokens":1280,"audio_tokens":64,"image_tokens":0}},"output_token_details":{"text_tokens":42,"audio_tokens":310}},"metadata":null}}"#;
const TRANSCRIPT_DELTA: &str = r#"{"type":"response.output_audio_transcript.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"Bonjour "}"#;
const IGNORED: &str = r#"{"type":"conversation.item.added","event_id":"event_2","previous_item_id":null,"item":{"id":"item_2","type":"message","status":"in_progress","role":"assistant","content":[]}}"#;

fn time<F: FnMut()>(name: &str, iterations: u32, mut f: F) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed() / iterations;
    println!("| {name:<46} | {:>9.2} µs |", per.as_secs_f64() * 1e6);
}

fn main() {
    let pricing = Arc::new(Pricing::from_config(&BTreeMap::new()).expect("shipped prices"));
    let mut translator =
        Translator::new(pricing.clone(), "gpt-realtime", "gpt-4o-mini-transcribe").expect("priced");
    let Decoded::Event(done) = decode(RESPONSE_DONE) else {
        panic!("the sample decodes");
    };
    let tokens = TokenCounts {
        input_text: 1450,
        input_audio: 220,
        cached_text: 1280,
        cached_audio: 64,
        output_text: 42,
        output_audio: 310,
        ..TokenCounts::default()
    };
    println!("| operation                                      | time / op    |");
    println!("|------------------------------------------------|--------------|");
    time("decode response.done (§11.2, 1.3 kB)", 20_000, || {
        black_box(decode(black_box(RESPONSE_DONE)));
    });
    time("decode transcript delta", 100_000, || {
        black_box(decode(black_box(TRANSCRIPT_DELTA)));
    });
    time("decode ignored conversation.item.added", 100_000, || {
        black_box(decode(black_box(IGNORED)));
    });
    time(
        "translate response.done (price + end_session)",
        100_000,
        || {
            black_box(translator.translate(black_box(&done)));
        },
    );
    time("price_response alone", 1_000_000, || {
        black_box(
            pricing
                .price_response("gpt-realtime", black_box(&tokens))
                .ok(),
        );
    });
}
