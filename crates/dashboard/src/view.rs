//! The page as server-rendered HTML, without I/O: a snapshot in, markup out. Charts are inline
//! SVG drawn here (no front-end library, nothing to vendor, works offline). The page's one
//! script fetches `/fragment` every `refresh_s` and swaps it in, so it updates without a
//! reload; it is small enough to read in full below.

use std::fmt::Write as _;

use jarvis_core::money::NanoUsd;

use crate::queries::{KioskRow, Snapshot};

/// What the page compares the snapshot with.
#[derive(Debug, Clone)]
pub struct PageContext {
    pub operator: String,
    pub period_days: u32,
    pub refresh_s: u64,
    pub silent_after_s: u64,
    pub kiosk_budget: NanoUsd,
    pub gym_budget: NanoUsd,
    /// The kiosks' heartbeat interval: one beat per interval is 100 % uptime.
    pub heartbeat_s: u64,
}

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "42 s", "5 min", "3 h", "2 d": how long ago, as a person reads it.
pub fn ago(s: u64) -> String {
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=172_799 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} d", (s + 43_200) / 86_400),
    }
}

/// USD with cents ("$1.23"), rounded half up from nano-USD.
pub fn usd(v: NanoUsd) -> String {
    let cents = (u128::from(v.0) + 5_000_000) / 10_000_000;
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// `part / whole` as a percentage, 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / whole as f64).min(100.0)
    }
}

/// A bar chart as inline SVG: one bar per value, labelled under the first, middle and last
/// bars, the maximum written at the top. Any input gives well-formed SVG (empty, zeros,
/// huge values).
pub fn bar_chart(title: &str, values: &[(String, f64)], unit: &str) -> String {
    const W: f64 = 320.0;
    const H: f64 = 120.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 16.0;
    let max = values
        .iter()
        .map(|(_, v)| if v.is_finite() { v.max(0.0) } else { 0.0 })
        .fold(0.0_f64, f64::max);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"10\" class=\"axis\">max {}{}</text>",
        fmt_value(max),
        esc(unit)
    );
    let n = values.len().max(1) as f64;
    let slot = W / n;
    let plot = H - TOP - BOTTOM;
    for (i, (label, v)) in values.iter().enumerate() {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let h = if max > 0.0 { v / max * plot } else { 0.0 };
        let x = i as f64 * slot;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}: {}{}</title></rect>",
            x + slot * 0.1,
            TOP + plot - h,
            slot * 0.8,
            h,
            esc(label),
            fmt_value(v),
            esc(unit)
        );
        if i == 0 || i + 1 == values.len() || i == values.len() / 2 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
                x,
                H - 3.0,
                esc(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn usd_f64(v: NanoUsd) -> f64 {
    v.0 as f64 / 1e9
}

/// The whole page for a logged-in operator.
pub fn page(ctx: &PageContext, snap: &Snapshot) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>JARVIS fleet</title><style>",
    );
    html.push_str(STYLE);
    html.push_str("</style></head><body><header><h1>JARVIS fleet</h1><nav>");
    for days in [1u32, 7, 30] {
        let cls = if days == ctx.period_days {
            " class=\"on\""
        } else {
            ""
        };
        let _ = write!(html, "<a{cls} href=\"/?days={days}\">{days} d</a>");
    }
    let _ = write!(
        html,
        "</nav><span id=\"who\">{}</span><span id=\"status\"></span>\
<form method=\"post\" action=\"/logout\"><button>Log out</button></form></header>\
<main id=\"live\" data-days=\"{}\" data-refresh=\"{}\">",
        esc(&ctx.operator),
        ctx.period_days,
        ctx.refresh_s
    );
    html.push_str(&fragment(ctx, snap));
    html.push_str("</main><script>");
    html.push_str(SCRIPT);
    html.push_str("</script></body></html>");
    html
}

/// The part of the page that refreshes.
pub fn fragment(ctx: &PageContext, snap: &Snapshot) -> String {
    let mut html = String::new();
    let mut gyms: Vec<&str> = snap.kiosks.iter().map(|k| k.gym_id.as_str()).collect();
    gyms.dedup();
    let alive = snap.kiosks.iter().filter(|k| is_alive(ctx, k)).count();
    let live = snap
        .kiosks
        .iter()
        .filter(|k| k.live_session.is_some())
        .count();
    let _ = write!(
        html,
        "<section class=\"summary\"><b data-alive=\"{alive}\">{alive}/{} kiosks alive</b> \
<b data-live-count=\"{live}\">{live} in session</b></section>",
        snap.kiosks.len()
    );
    for gym in gyms {
        let kiosks: Vec<&KioskRow> = snap.kiosks.iter().filter(|k| k.gym_id == gym).collect();
        let spend: NanoUsd = kiosks.iter().map(|k| k.cost_today).sum();
        let sessions: u64 = kiosks.iter().map(|k| k.sessions_today).sum();
        let over = spend.0 >= ctx.gym_budget.0;
        let _ = write!(
            html,
            "<section class=\"gym\" data-gym=\"{g}\"><h2>{g}</h2><p class=\"{}\">today {sessions} sessions, \
{} of {} budget</p>{}<table><tr><th>kiosk</th><th>seen</th><th>session</th><th>today</th><th>backlog</th></tr>",
            if over { "over" } else { "" },
            usd(spend),
            usd(ctx.gym_budget),
            meter(spend, ctx.gym_budget),
            g = esc(gym),
        );
        for k in kiosks {
            html.push_str(&kiosk_row(ctx, k));
        }
        html.push_str("</table></section>");
    }
    html.push_str(&alerts(snap));
    html.push_str(&sla(ctx, snap));
    html
}

fn is_alive(ctx: &PageContext, k: &KioskRow) -> bool {
    k.seen && k.seen_ago_s < ctx.silent_after_s
}

fn meter(spend: NanoUsd, budget: NanoUsd) -> String {
    let pct = percent(spend.0, budget.0);
    format!(
        "<svg class=\"meter\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\" aria-label=\"{pct:.0}% of budget\"><rect width=\"100\" height=\"6\" class=\"track\"/><rect width=\"{pct:.1}\" height=\"6\" class=\"{}\"/></svg>",
        if pct >= 100.0 { "full" } else { "used" }
    )
}

fn kiosk_row(ctx: &PageContext, k: &KioskRow) -> String {
    let alive = is_alive(ctx, k);
    let seen = if k.seen {
        format!("{} ago", ago(k.seen_ago_s))
    } else {
        "never".into()
    };
    let session = match k.live_session {
        Some(id) => format!(
            "<span class=\"live\" data-live=\"{id}\">live {}</span>",
            ago(k.live_for_s)
        ),
        None => "<span data-live=\"\">idle</span>".into(),
    };
    let backlog = match (k.outbox_backlog, k.outbox_oldest_age_s) {
        (Some(n), Some(age)) if n > 0 => {
            format!("{n} ({} old)", ago(u64::try_from(age).unwrap_or(0)))
        }
        (Some(n), _) => n.to_string(),
        (None, _) => "?".into(),
    };
    let over = k.cost_today.0 >= ctx.kiosk_budget.0;
    format!(
        "<tr data-kiosk=\"{id}\" class=\"{}\"><td><i class=\"dot\"></i>{id}<small>{}</small></td><td>{seen}</td>\
<td>{session}</td><td class=\"{}\">{} / {}</td><td>{backlog}</td></tr>",
        if alive { "up" } else { "down" },
        esc(&k.label),
        if over { "over" } else { "" },
        k.sessions_today,
        usd(k.cost_today),
        id = esc(&k.kiosk_id),
    )
}

fn alerts(snap: &Snapshot) -> String {
    let mut html = String::from("<section class=\"alerts\"><h2>Last alerts</h2>");
    if snap.alerts.is_empty() {
        html.push_str("<p>none</p>");
    }
    html.push_str("<ul>");
    for a in &snap.alerts {
        let _ = write!(
            html,
            "<li class=\"{}{}\"><b>{}</b> {} · {} · {} ago<br>{}</li>",
            esc(&a.severity),
            if a.acknowledged { " ack" } else { "" },
            esc(&a.code),
            esc(&a.kiosk_id),
            esc(&a.gym_id),
            ago(a.ago_s),
            esc(&a.message)
        );
    }
    html.push_str("</ul></section>");
    html
}

fn sla(ctx: &PageContext, snap: &Snapshot) -> String {
    let s = &snap.sla;
    let expected = (s.expected_s / ctx.heartbeat_s.max(1) as f64).ceil() as u64;
    let per_session = NanoUsd(s.cost.0.checked_div(s.sessions).unwrap_or(0));
    let mut html = format!(
        "<section class=\"sla\"><h2>Last {} d</h2><dl>\
<dt>uptime</dt><dd data-uptime>{:.2}%</dd>\
<dt>sessions</dt><dd>{} ({} connected, {} ended)</dd>\
<dt>connect</dt><dd>{:.0} ms avg, {:.0} ms p95 (24 h)</dd>\
<dt>cost</dt><dd>{} total, {} per session</dd>{}</dl><p class=\"reasons\">",
        ctx.period_days,
        percent(s.beats, expected),
        s.sessions,
        s.connected,
        s.ended,
        s.connect_avg_ms,
        s.connect_p95_ms,
        usd(s.cost),
        usd(per_session),
        if s.live_sessions > 0 {
            format!(
                "<dt>GPT-Live</dt><dd>{} of them, {} s billed</dd>",
                s.live_sessions, s.billed_seconds
            )
        } else {
            String::new()
        },
    );
    for (reason, n) in &s.end_reasons {
        let _ = write!(html, "<span>{} {n}</span> ", esc(reason));
    }
    html.push_str("</p>");
    let per_day: Vec<(String, f64)> = snap
        .cost_per_day
        .iter()
        .map(|(day, _, cost)| (day.get(5..).unwrap_or(day).to_owned(), usd_f64(*cost)))
        .collect();
    html.push_str(&bar_chart("Cost per day (USD)", &per_day, " $"));
    let per_hour: Vec<(String, f64)> = snap
        .sessions_per_hour
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let label = if i == 23 {
                "now".to_owned()
            } else {
                format!("-{}h", 23 - i)
            };
            (label, *n as f64)
        })
        .collect();
    html.push_str(&bar_chart("Sessions per hour (last 24 h)", &per_hour, ""));
    html.push_str("</section>");
    html
}

/// The login form; `error` is shown above it.
pub fn login(error: Option<&str>) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>JARVIS fleet: log in</title>\
<style>{STYLE}</style></head><body><main class=\"login\"><h1>JARVIS fleet</h1>{}\
<form method=\"post\" action=\"/login\"><label>Operator <input name=\"operator\" autocomplete=\"username\" required></label>\
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button>Log in</button></form></main></body></html>",
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\">{}</p>",
            esc(e)
        ))
    )
}

const STYLE: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f5f6f8}\
header{display:flex;flex-wrap:wrap;gap:.5em;align-items:center;padding:.5em 1em;background:#1b1f24;color:#fff}\
header h1{font-size:1.1em;margin:0 1em 0 0}header a{color:#9cf;margin-right:.6em}header a.on{color:#fff;font-weight:bold}\
#who{margin-left:auto}#status{font-size:.85em}main{padding:.5em;max-width:60em;margin:auto}\
section{background:#fff;border-radius:6px;padding:.5em .8em;margin:.6em 0}h2{font-size:1em;margin:.2em 0}\
table{width:100%;border-collapse:collapse;font-size:.9em}td,th{text-align:left;padding:.25em .3em;border-top:1px solid #eee}td{overflow-wrap:anywhere}\
small{display:block;color:#667}.dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.3em}\
tr.up .dot{background:#2a2}tr.down .dot{background:#d33}.live{color:#06c;font-weight:bold}.over{color:#c00;font-weight:bold}\
.meter{width:100%;height:8px}.meter .track{fill:#e4e6ea}.meter .used{fill:#2a7}.meter .full{fill:#d33}\
.alerts ul{list-style:none;padding:0;margin:0}.alerts li{border-left:4px solid #fb3;padding:.2em .5em;margin:.3em 0;font-size:.9em}\
.alerts li.critical{border-color:#d33}.alerts li.info{border-color:#9ab}.alerts li.ack{opacity:.55}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.1em 1em;margin:.3em 0}dt{color:#667}dd{margin:0}\
.chart{width:100%;max-width:40em;height:auto;display:block;margin:.5em 0}.chart rect{fill:#4a8fd8}.axis{font-size:8px;fill:#667}\
.login{max-width:22em}.login label{display:block;margin:.5em 0}.login input{width:100%;font-size:1em;padding:.3em}\
.error{color:#c00}button{font-size:.95em}\
@media (max-width:600px){td:nth-child(5),th:nth-child(5){display:none}}";

/// Polls `/fragment` and swaps it in; a failed poll shows in the header and is retried.
const SCRIPT: &str = "\
(function(){var m=document.getElementById('live'),s=document.getElementById('status'),\
d=m.dataset.days,r=Math.max(1,+m.dataset.refresh)*1000;\
function tick(){fetch('/fragment?days='+d,{credentials:'same-origin'}).then(function(x){\
if(x.status===401){location.href='/login';return null}if(!x.ok)throw new Error('HTTP '+x.status);return x.text()})\
.then(function(t){if(t!==null){m.innerHTML=t;s.textContent='updated '+new Date().toLocaleTimeString();\
m.dataset.updates=(+(m.dataset.updates||0)+1)}})\
.catch(function(e){s.textContent='offline: '+e.message}).finally(function(){setTimeout(tick,r)})}\
setTimeout(tick,r)})();";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn money_and_time_read_like_a_person_writes_them() {
        assert_eq!(usd(NanoUsd(1_234_999_999)), "$1.23");
        assert_eq!(usd(NanoUsd(1_235_000_000)), "$1.24");
        assert_eq!(usd(NanoUsd(0)), "$0.00");
        assert_eq!(ago(42), "42 s");
        assert_eq!(ago(300), "5 min");
        assert_eq!(ago(3 * 3600), "3 h");
        assert_eq!(ago(3 * 86_400), "3 d");
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(50, 10), 100.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    proptest! {
        #[test]
        fn charts_are_well_formed_for_any_values(
            values in proptest::collection::vec(("[a-d<&]{0,6}", proptest::num::f64::ANY), 0..40)
        ) {
            let svg = bar_chart("t", &values, " $");
            prop_assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            prop_assert_eq!(svg.matches("<rect").count(), values.len());
            prop_assert!(!svg.contains("NaN") && !svg.contains("inf"));
            for h in svg.split("height=\"").skip(1) {
                let v: f64 = h.split('"').next().unwrap().parse().unwrap();
                prop_assert!((0.0..=120.0).contains(&v));
            }
        }
    }
}
